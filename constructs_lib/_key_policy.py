"""The key policy of a signing key, built from who may administer, sign and verify.

What restricts ``kms:Sign`` (KMS takes no encryption context for Sign, so context conditions
cannot): the key policy names each signer by ARN and pins ``kms:SigningAlgorithm`` and
``kms:MessageType`` to what cosign sends; the account root is *not* granted ``kms:Sign``, so no IAM
policy in the account can add a signer; and an explicit deny refuses ``kms:Sign`` to every
principal whose ``aws:PrincipalArn`` is not a named signer, which also voids any KMS grant.

Who administers (``kms:PutKeyPolicy`` among others, never ``kms:Sign``): the account root by
default, so IAM policies in the key's account decide; or named roles and users, which replace the
root, so that only they (and whoever can become them) can rewrite the policy.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from aws_cdk import Annotations, Stack
from aws_cdk import aws_iam as iam
from constructs import IConstruct

from . import _actions, _defaults
from ._grants import identity_arn

SID_ADMIN = "AllowKeyAdministrationWithoutUse"
SID_SIGN = "AllowNamedSignersToSign"
SID_SIGNER_METADATA = "AllowNamedSignersToReadPublicKey"
SID_VERIFY = "AllowNamedVerifiers"
SID_DENY = "DenySignToEveryoneElse"
PARTITION_PREFIX = re.compile(r"^arn:aws(-[a-z]+)*:")


def build_key_policy(
    *,
    admins: Sequence[iam.IPrincipal],
    signer_arns: Sequence[str],
    verifiers: Sequence[iam.IPrincipal],
    signing_algorithm: str,
    allow_deletion: bool,
) -> iam.PolicyDocument:
    """The whole key policy; an empty ``signer_arns`` denies ``kms:Sign`` to everyone."""
    admin_actions = _actions.KMS_ADMIN_ACTIONS + (_actions.KMS_DELETE_ACTIONS if allow_deletion else ())
    statements = [
        iam.PolicyStatement(
            sid=SID_ADMIN,
            principals=list(admins),
            actions=list(admin_actions),
            resources=["*"],  # in a key policy "*" means this key
        )
    ]
    signers = [iam.ArnPrincipal(arn) for arn in signer_arns]
    if signers:
        statements.append(
            iam.PolicyStatement(
                sid=SID_SIGN,
                principals=signers,
                actions=list(_actions.KMS_SIGN_ACTIONS),
                resources=["*"],
                conditions={
                    "StringEquals": {
                        "kms:SigningAlgorithm": signing_algorithm,
                        "kms:MessageType": _defaults.COSIGN_MESSAGE_TYPE,
                    }
                },
            )
        )
        # Kept apart from the Sign statement: the MessageType/SigningAlgorithm conditions would
        # otherwise implicitly deny GetPublicKey, which carries neither key.
        statements.append(
            iam.PolicyStatement(
                sid=SID_SIGNER_METADATA,
                principals=[iam.ArnPrincipal(arn) for arn in signer_arns],
                actions=list(_actions.KMS_SIGNER_METADATA_ACTIONS),
                resources=["*"],
            )
        )
    if verifiers:
        statements.append(
            iam.PolicyStatement(
                sid=SID_VERIFY,
                principals=list(verifiers),
                actions=list(_actions.KMS_VERIFY_ACTIONS),
                resources=["*"],
            )
        )
    deny = iam.PolicyStatement(
        sid=SID_DENY,
        effect=iam.Effect.DENY,
        principals=[iam.AnyPrincipal()],
        actions=list(_actions.KMS_SIGN_ACTIONS),
        resources=["*"],
    )
    if signer_arns:
        deny.add_condition("ArnNotEquals", {"aws:PrincipalArn": list(signer_arns)})
    statements.append(deny)
    return iam.PolicyDocument(statements=statements)


def admin_arn(admin: iam.IGrantable) -> str:
    """The ARN of a named key administrator: one role or user, never '*', an account or a service."""
    fragment = admin.grant_principal.policy_fragment.principal_json
    if "*" in fragment or any("*" in values for values in fragment.values()):
        raise ValueError(
            f"admins must not include '*' ({admin}): every AWS identity could call kms:PutKeyPolicy and "
            "name itself a signer; pass the administrator roles, or omit admins= for the account"
        )
    try:
        return identity_arn(admin, "an admin")
    except ValueError as exc:
        raise ValueError(
            f"admins must be IAM roles or users, got {admin.grant_principal}: an account or service principal would "
            "let every identity it delegates to rewrite the key policy; pass the administrator roles (and "
            "cloudformation_execution_role(stack)), or omit admins= to let the account's IAM policies decide"
        ) from exc


def warn_unless_deploy_role_is_admin(key: IConstruct, admin_arns: Sequence[str]) -> None:
    """Warn when named admins leave out the role CloudFormation deploys with (KMS would refuse the policy)."""
    stack = Stack.of(key)
    deploy_arn = getattr(stack.synthesizer, "cloud_formation_execution_role_arn", None)
    if not deploy_arn:
        return
    for arn in admin_arns:
        resolved = stack.resolve(arn)
        if resolved == {"Fn::Sub": deploy_arn} or (
            isinstance(resolved, str) and PARTITION_PREFIX.sub("arn:${AWS::Partition}:", resolved) == deploy_arn
        ):
            return
    Annotations.of(key).add_warning_v2(
        "signed-images:key-admins-lockout",
        f"key {key.node.path} names admins without the CloudFormation execution role ({deploy_arn}); KMS refuses a "
        "key policy that would not let the deploying role call kms:PutKeyPolicy, so creating or updating the key "
        "fails: add CosignSigningKey.cloudformation_execution_role(stack) to admins=",
    )
