"""CosignSigningKey: the key policy lets only named signers sign, and denies everyone else."""

from __future__ import annotations

import pytest
import jsii
from aws_cdk import IStableStringProducer, Lazy, Token
from aws_cdk import aws_iam as iam
from aws_cdk.assertions import Match, Template

from constructs_lib import CosignSigningKey, KeyState, SigningKeySpec
from tests.constructs.checks import (
    as_list,
    assert_clean,
    denies_sign,
    grants_sign,
    new_app,
    new_stack,
    principal_refs,
    resources,
    statements,
)


@jsii.implements(IStableStringProducer)
class _Fixed:
    """A string token (what a context value or a deploy-time attribute looks like at synth)."""

    def __init__(self, value: str) -> None:
        self._value = value

    def produce(self) -> str:
        return self._value


def _key_policy(template: dict, logical_id_prefix: str) -> dict:
    [key] = [v for k, v in resources(template, "AWS::KMS::Key").items() if k.startswith(logical_id_prefix)]
    return key["Properties"]["KeyPolicy"]


def _role(stack, id: str) -> iam.Role:
    return iam.Role(stack, id, assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"))


@pytest.fixture(scope="module")
def synthesized():
    # Given two signer roles, a cross-account verifier, a P-384 key and a retired key
    app = new_app()
    stack = new_stack(app)
    signer_a, signer_b, outsider = _role(stack, "SignerA"), _role(stack, "SignerB"), _role(stack, "Outsider")
    key = CosignSigningKey(
        stack, "Key", alias="alias/test/cosign", signers=[signer_a], verifiers=[iam.AccountPrincipal("333333333333")]
    )
    key.grant_sign(signer_b)
    CosignSigningKey(stack, "Strong", alias="alias/test/p384", key_spec=SigningKeySpec.ECC_NIST_P384, signers=[signer_a])
    CosignSigningKey(stack, "Old", alias="alias/test/old", state=KeyState.RETIRED)
    assembly = app.synth()
    return app, assembly, stack, key, outsider


def _logical_id(stack, construct) -> str:
    return stack.resolve(stack.get_logical_id(construct.node.default_child))


def test_key_is_asymmetric_sign_verify_and_retained(synthesized):
    # Given
    _app, _assembly, stack, _key, _outsider = synthesized
    # Then
    template = Template.from_stack(stack)
    template.has_resource(
        "AWS::KMS::Key",
        {
            "Properties": Match.object_like(
                {
                    "KeySpec": "ECC_NIST_P256",
                    "KeyUsage": "SIGN_VERIFY",
                    "PendingWindowInDays": 30,
                    "Description": "cosign image signing key (alias/test/cosign, active)",
                }
            ),
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
        },
    )
    template.has_resource_properties("AWS::KMS::Alias", {"AliasName": "alias/test/cosign"})


def test_only_named_signers_may_sign(synthesized):
    # Given
    _app, assembly, stack, key, outsider = synthesized
    policy = _key_policy(assembly.get_stack_by_name("Stack").template, "Key")
    signer_ids = {_logical_id(stack, stack.node.find_child(n)) for n in ("SignerA", "SignerB")}
    # When
    allows = statements(policy, grants_sign)
    # Then exactly one Allow names kms:Sign, for the two signers, with cosign's conditions
    assert len(allows) == 1
    named = {ref["Fn::GetAtt"][0] for ref in principal_refs(allows[0])}
    assert named == signer_ids
    assert allows[0]["Condition"] == {
        "StringEquals": {"kms:SigningAlgorithm": "ECDSA_SHA_256", "kms:MessageType": "DIGEST"}
    }
    assert allows[0]["Action"] == "kms:Sign"
    # and the outsider is named nowhere in a Sign statement
    outsider_id = _logical_id(stack, outsider)
    assert outsider_id not in str(allows)
    # and no Allow statement holds a wildcard action
    for statement in policy["Statement"]:
        assert not any(action.endswith("*") for action in as_list(statement["Action"]))


def test_every_other_principal_is_explicitly_denied_sign(synthesized):
    # Given
    _app, assembly, _stack, _key, _outsider = synthesized
    policy = _key_policy(assembly.get_stack_by_name("Stack").template, "Key")
    [allow] = statements(policy, grants_sign)
    # When
    [deny] = statements(policy, denies_sign)
    # Then the deny covers every principal except exactly the signers of the Allow
    assert deny["Principal"] == {"AWS": "*"}
    assert deny["Action"] == "kms:Sign"
    assert sorted(map(str, deny["Condition"]["ArnNotEquals"]["aws:PrincipalArn"])) == sorted(
        map(str, principal_refs(allow))
    )


def test_administrators_manage_but_cannot_sign_or_grant(synthesized):
    # Given
    _app, assembly, _stack, _key, _outsider = synthesized
    policy = _key_policy(assembly.get_stack_by_name("Stack").template, "Key")
    # When
    [admin] = [s for s in policy["Statement"] if s.get("Sid") == "AllowKeyAdministrationWithoutUse"]
    # Then
    assert "kms:PutKeyPolicy" in admin["Action"]
    for forbidden in ("kms:Sign", "kms:Verify", "kms:CreateGrant", "kms:ScheduleKeyDeletion", "kms:*"):
        assert forbidden not in admin["Action"]
    assert ":root" in str(admin["Principal"])


def test_signers_can_read_the_public_key_and_verifiers_can_verify(synthesized):
    # Given
    _app, assembly, _stack, _key, _outsider = synthesized
    policy = _key_policy(assembly.get_stack_by_name("Stack").template, "Key")
    by_sid = {s["Sid"]: s for s in policy["Statement"]}
    # Then
    assert by_sid["AllowNamedSignersToReadPublicKey"]["Action"] == ["kms:GetPublicKey", "kms:DescribeKey"]
    assert "Condition" not in by_sid["AllowNamedSignersToReadPublicKey"]
    assert by_sid["AllowNamedVerifiers"]["Action"] == ["kms:GetPublicKey", "kms:Verify", "kms:DescribeKey"]
    assert "333333333333" in str(by_sid["AllowNamedVerifiers"]["Principal"])


def test_p384_key_allows_only_ecdsa_sha_384(synthesized):
    # Given
    _app, assembly, _stack, _key, _outsider = synthesized
    template = assembly.get_stack_by_name("Stack").template
    # Then
    [allow] = statements(_key_policy(template, "Strong"), grants_sign)
    assert allow["Condition"]["StringEquals"]["kms:SigningAlgorithm"] == "ECDSA_SHA_384"
    [key] = [v for k, v in resources(template, "AWS::KMS::Key").items() if k.startswith("Strong")]
    assert key["Properties"]["KeySpec"] == "ECC_NIST_P384"


def test_retired_key_keeps_verification_and_denies_sign_to_everyone(synthesized):
    # Given
    _app, assembly, _stack, _key, _outsider = synthesized
    policy = _key_policy(assembly.get_stack_by_name("Stack").template, "Old")
    # Then
    assert statements(policy, grants_sign) == []
    [deny] = statements(policy, denies_sign)
    assert deny["Principal"] == {"AWS": "*"} and "Condition" not in deny


def test_signer_role_policy_names_the_key_with_cosign_conditions(synthesized):
    # Given
    _app, _assembly, stack, _key, _outsider = synthesized
    # Then
    Template.from_stack(stack).has_resource_properties(
        "AWS::IAM::Policy",
        {
            "PolicyDocument": {
                "Statement": [
                    {
                        "Action": "kms:Sign",
                        "Effect": "Allow",
                        "Condition": {"StringEquals": {"kms:SigningAlgorithm": "ECDSA_SHA_256", "kms:MessageType": "DIGEST"}},
                        "Resource": {"Fn::GetAtt": [_logical_id(stack, _key), "Arn"]},
                    },
                    {"Action": ["kms:GetPublicKey", "kms:DescribeKey"], "Effect": "Allow",
                     "Resource": {"Fn::GetAtt": [_logical_id(stack, _key), "Arn"]}},
                ]
            },
            "Roles": [{"Ref": _logical_id(stack, stack.node.find_child("SignerB"))}],
        },
    )


def test_key_stack_is_clean(synthesized):
    app, assembly, *_ = synthesized
    assert_clean(app, assembly)


def test_exposes_the_attributes_the_admission_controller_needs(synthesized):
    # Given
    _app, _assembly, _stack, key, _outsider = synthesized
    # Then
    assert Token.is_unresolved(key.key_arn) and Token.is_unresolved(key.key_id)
    assert key.break_glass is False and key.state is KeyState.ACTIVE
    assert key.signing_algorithm == "ECDSA_SHA_256"


# --- misuse -------------------------------------------------------------------------------------


def test_rejects_alias_when_it_lacks_the_alias_prefix():
    stack = new_stack(new_app())
    with pytest.raises(ValueError, match=r"alias must be 'alias/' followed by .*got 'payments-cosign'"):
        CosignSigningKey(stack, "Key", alias="payments-cosign")


def test_rejects_alias_when_it_is_a_token():
    stack = new_stack(new_app())
    with pytest.raises(ValueError, match=r"alias is a token .*pass a literal alias"):
        CosignSigningKey(stack, "Key", alias=Token.as_string(Lazy.string(_Fixed("alias/x"))))


def test_rejects_signers_when_the_key_is_retired():
    stack = new_stack(new_app())
    with pytest.raises(ValueError, match=r"a retired key takes no signers, got 1; remove signers="):
        CosignSigningKey(stack, "Key", alias="alias/x", state=KeyState.RETIRED, signers=[_role(stack, "R")])


def test_rejects_grant_sign_when_the_key_is_retired():
    stack = new_stack(new_app())
    key = CosignSigningKey(stack, "Key", alias="alias/x", state=KeyState.RETIRED)
    with pytest.raises(ValueError, match=r"signing key Stack/Key is retired and takes no signers; grant signing on its successor"):
        key.grant_sign(_role(stack, "R"))


def test_rejects_signer_when_it_is_an_account_principal():
    stack = new_stack(new_app())
    key = CosignSigningKey(stack, "Key", alias="alias/x")
    with pytest.raises(ValueError, match=r"a signer must be an IAM role or user.*account or service principal"):
        key.grant_sign(iam.AccountRootPrincipal())


def test_rejects_from_key_arn_when_the_arn_is_a_token():
    stack = new_stack(new_app())
    key = CosignSigningKey(stack, "Key", alias="alias/x")
    with pytest.raises(ValueError, match=r"key_arn is a token .*use CosignSigningKey.from_key_attributes\(\)"):
        CosignSigningKey.from_key_arn(stack, "Imported", key.key_arn)


def test_rejects_from_key_arn_when_it_is_an_alias_arn():
    stack = new_stack(new_app())
    with pytest.raises(ValueError, match=r"key_arn must be a key ARN like .*got 'arn:aws:kms:us-east-1:111111111111:alias/x'"):
        CosignSigningKey.from_key_arn(stack, "Imported", "arn:aws:kms:us-east-1:111111111111:alias/x")


def test_imported_key_reads_id_and_environment_from_its_arn():
    # Given
    stack = new_stack(new_app())
    # When
    key = CosignSigningKey.from_key_arn(stack, "Imported", "arn:aws:kms:us-west-2:333333333333:key/1234abcd-12ab")
    # Then
    assert key.key_id == "1234abcd-12ab"
    assert (key.env.account, key.env.region) == ("333333333333", "us-west-2")
    assert key.break_glass is False and key.state is KeyState.ACTIVE


@pytest.mark.parametrize(
    "principal",
    [
        iam.AnyPrincipal(),
        iam.ArnPrincipal("*"),
        iam.ArnPrincipal("arn:aws:iam::111111111111:role/ci-*"),
        iam.ArnPrincipal("arn:aws:iam::*:role/ci"),
        iam.ArnPrincipal("arn:aws:sts::111111111111:assumed-role/ci/session"),
        iam.ArnPrincipal("arn:aws:iam::111111111111:group/builders"),
    ],
    ids=["any-principal", "star-arn", "wildcard-role", "wildcard-account", "session", "group"],
)
def test_rejects_signer_when_it_is_not_one_role_or_user_arn(principal):
    # Regression: "*" as a signer rendered Allow Principal "*" and a deny on ArnNotEquals "*",
    # which never matches (ARN conditions take wildcards): anyone in any account could sign.
    # A session ARN never equals aws:PrincipalArn (the role ARN), so that signer was always denied.
    stack = new_stack(new_app())
    key = CosignSigningKey(stack, "Key", alias="alias/x")
    with pytest.raises(ValueError, match=r"a signer must be one IAM role or user ARN .*got '"):
        key.grant_sign(principal)
    assert key.signer_arns == ()


@pytest.mark.parametrize("admin", [iam.AnyPrincipal(), iam.StarPrincipal(), iam.ArnPrincipal("*")],
                         ids=["any-principal", "star-principal", "star-arn"])
def test_rejects_admins_when_one_is_everyone(admin):
    # Regression: admins=[AnyPrincipal()] let any AWS identity call kms:PutKeyPolicy and name itself a signer.
    stack = new_stack(new_app())
    with pytest.raises(ValueError, match=r"admins must not include '\*'"):
        CosignSigningKey(stack, "Key", alias="alias/x", admins=[admin])
