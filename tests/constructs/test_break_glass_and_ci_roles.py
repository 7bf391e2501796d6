"""Break-glass keys refuse CI roles; CI roles trust one repository or project and hold nothing more."""

from __future__ import annotations

import pytest
from aws_cdk import Environment, Stack
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_iam as iam
from aws_cdk.assertions import Match, Template

from constructs_lib import (
    BreakGlassSigningKey,
    CodeBuildSigningRole,
    CosignSigningKey,
    GitHubActionsSigningRole,
    NotationSigningProfile,
)
from tests.constructs.checks import ENV_B, assert_clean, denies_sign, grants_sign, new_app, new_stack, synth_error


@pytest.fixture(scope="module")
def synthesized():
    # Given CI roles in account A and a break-glass key in account B with its own signer
    app = new_app()
    ci = new_stack(app, "Ci")
    repo = ecr.Repository(ci, "Repo", image_scan_on_push=True)
    profile = NotationSigningProfile(ci, "Profile")
    key = CosignSigningKey(ci, "Key", alias="alias/ci/cosign")
    github = GitHubActionsSigningRole(ci, "GitHub", repository="acme/app", branches=["main", "release"])
    codebuild = CodeBuildSigningRole(ci, "CodeBuild", project_names=["build-images"])
    for role in (github, codebuild):
        role.allow_push(repo)
        role.allow_managed_signing(profile)
        role.allow_cosign_signing(key)
    vault = Stack(app, "Vault", env=ENV_B)
    approver = iam.Role(vault, "Approver", assumed_by=iam.AccountPrincipal("222222222222"))
    glass = BreakGlassSigningKey(vault, "Key", alias="alias/glass", signers=[approver], verifiers=[iam.AccountPrincipal("111111111111")])
    return app, app.synth(), ci, vault, github, glass


def test_break_glass_key_is_flagged_and_signable_only_by_its_signer(synthesized):
    # Given
    _app, assembly, _ci, vault, _github, glass = synthesized
    template = assembly.get_stack_by_name("Vault").template
    approver_id = vault.resolve(vault.get_logical_id(vault.node.find_child("Approver").node.default_child))
    [policy] = [r["Properties"]["KeyPolicy"] for r in template["Resources"].values() if r["Type"] == "AWS::KMS::Key"]
    # Then
    assert glass.break_glass is True
    [allow] = [s for s in policy["Statement"] if grants_sign(s)]
    [deny] = [s for s in policy["Statement"] if denies_sign(s)]
    assert allow["Principal"]["AWS"] == {"Fn::GetAtt": [approver_id, "Arn"]}
    assert deny["Condition"]["ArnNotEquals"]["aws:PrincipalArn"] == [allow["Principal"]["AWS"]]


def test_github_role_trusts_only_listed_branches_of_one_repository(synthesized):
    _app, _assembly, ci, *_ = synthesized
    Template.from_stack(ci).has_resource_properties(
        "AWS::IAM::Role",
        {
            "AssumeRolePolicyDocument": {
                "Statement": [
                    {
                        "Action": "sts:AssumeRoleWithWebIdentity",
                        "Condition": {
                            "StringEquals": {
                                "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
                                "token.actions.githubusercontent.com:sub": [
                                    "repo:acme/app:ref:refs/heads/main",
                                    "repo:acme/app:ref:refs/heads/release",
                                ],
                            }
                        },
                        "Effect": "Allow",
                        "Principal": {"Federated": {"Ref": Match.string_like_regexp("^GitHubOidcProvider")}},
                    }
                ]
            },
            "MaxSessionDuration": 3600,
        },
    )


def test_codebuild_role_trust_is_bound_to_the_account_and_project(synthesized):
    _app, _assembly, ci, *_ = synthesized
    Template.from_stack(ci).has_resource_properties(
        "AWS::IAM::Role",
        {
            "AssumeRolePolicyDocument": {
                "Statement": [
                    {
                        "Action": "sts:AssumeRole",
                        "Principal": {"Service": "codebuild.amazonaws.com"},
                        "Effect": "Allow",
                        "Condition": {
                            "StringEquals": {"aws:SourceAccount": "111111111111"},
                            "ArnEquals": {"aws:SourceArn": [Match.object_like({"Fn::Join": Match.any_value()})]},
                        },
                    }
                ]
            }
        },
    )


def test_ci_role_may_push_and_sign_and_nothing_more(synthesized):
    # Given
    _app, assembly, *_ = synthesized
    template = assembly.get_stack_by_name("Ci").template
    # When
    actions = set()
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::IAM::Policy":
            for statement in resource["Properties"]["PolicyDocument"]["Statement"]:
                actions.update([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])
                if statement["Resource"] == "*":
                    assert statement["Action"] == "ecr:GetAuthorizationToken"
    # Then
    assert actions == {
        "ecr:GetAuthorizationToken", "ecr:BatchCheckLayerAvailability", "ecr:InitiateLayerUpload",
        "ecr:UploadLayerPart", "ecr:CompleteLayerUpload", "ecr:PutImage", "ecr:BatchGetImage",
        "ecr:GetDownloadUrlForLayer", "signer:SignPayload", "kms:Sign", "kms:GetPublicKey", "kms:DescribeKey",
    }


def test_ci_and_break_glass_stacks_are_clean(synthesized):
    app, assembly, *_ = synthesized
    assert_clean(app, assembly)


# --- misuse -------------------------------------------------------------------------------------


def _vault(app) -> Stack:
    return Stack(app, "Vault", env=ENV_B)


def test_rejects_break_glass_signer_when_it_is_a_ci_signing_role():
    app = new_app()
    role = CodeBuildSigningRole(new_stack(app), "CodeBuild")
    key = BreakGlassSigningKey(_vault(app), "Key", alias="alias/glass")
    with pytest.raises(ValueError, match=r"break-glass key Vault/Key refuses Stack/CodeBuild is a CI signing role: no CI role may sign"):
        key.grant_sign(role)
    with pytest.raises(ValueError, match=r"refuses Stack/CodeBuild is a CI signing role"):
        key.grant_sign(role.role)


def test_rejects_break_glass_signer_when_github_can_assume_it():
    # Given a plain role, not one of ours, that GitHub Actions can assume
    app = new_app()
    vault = _vault(app)
    provider = GitHubActionsSigningRole.import_github_oidc_provider(vault, "Provider")
    sneaky = iam.Role(
        vault, "Sneaky",
        assumed_by=iam.WebIdentityPrincipal(
            provider.oidc_provider_arn, {"StringLike": {"token.actions.githubusercontent.com:sub": "repo:acme/*"}}
        ),
    )
    # When / Then
    with pytest.raises(ValueError, match=r"refuses Vault/Sneaky can be assumed by token.actions.githubusercontent.com"):
        BreakGlassSigningKey(vault, "Key", alias="alias/glass", signers=[sneaky])


def test_rejects_cosign_grant_when_a_ci_role_asks_for_a_break_glass_key():
    app = new_app()
    role = CodeBuildSigningRole(new_stack(app), "CodeBuild")
    glass = BreakGlassSigningKey.from_key_arn(new_stack(app, "Other"), "Glass", "arn:aws:kms:us-east-1:222222222222:key/abc")
    assert glass.break_glass is True
    with pytest.raises(ValueError, match=r"CI signing role Stack/CodeBuild cannot sign with break-glass key .*use a CosignSigningKey"):
        role.allow_cosign_signing(glass)


def test_rejects_break_glass_key_when_it_shares_an_account_with_a_ci_role():
    app = new_app()
    CodeBuildSigningRole(new_stack(app, "Ci"), "CodeBuild")
    BreakGlassSigningKey(new_stack(app, "Vault"), "Key", alias="alias/glass")
    message = synth_error(app)
    assert "break-glass key Vault/Key is in account 111111111111, which also holds CI signing role Ci/CodeBuild" in message
    assert "deploy the break-glass key to a separate account" in message


def test_rejects_break_glass_key_when_it_shares_a_stack_with_a_ci_role():
    app = new_app()
    stack = new_stack(app)
    CodeBuildSigningRole(stack, "CodeBuild")
    BreakGlassSigningKey(stack, "Key", alias="alias/glass")
    assert "shares stack Stack with CI signing role Stack/CodeBuild; move the break-glass key" in synth_error(app)


def test_rejects_break_glass_key_when_its_stack_has_no_account():
    app = new_app()
    BreakGlassSigningKey(Stack(app, "Vault", env=Environment()), "Key", alias="alias/glass")
    assert "is in an environment-agnostic stack; give stack Vault an explicit env=" in synth_error(app)


def test_rejects_github_repository_when_it_is_not_owner_slash_repo():
    with pytest.raises(ValueError, match=r"repository must be 'owner/repo', got 'acme'"):
        GitHubActionsSigningRole(new_stack(new_app()), "GitHub", repository="acme")


def test_rejects_github_branch_when_it_has_a_wildcard():
    with pytest.raises(ValueError, match=r"a branch or environment name must be an exact name without '\*', got 'release/\*'"):
        GitHubActionsSigningRole(new_stack(new_app()), "GitHub", repository="acme/app", branches=["release/*"])


def test_rejects_github_role_when_no_branch_or_environment_may_sign():
    with pytest.raises(ValueError, match=r"repository acme/app needs at least one branch or environment"):
        GitHubActionsSigningRole(new_stack(new_app()), "GitHub", repository="acme/app", branches=[])


def test_rejects_second_github_provider_when_one_account_would_get_two():
    app = new_app()
    stack = new_stack(app)
    GitHubActionsSigningRole(stack, "First", repository="acme/a")
    GitHubActionsSigningRole(stack, "Second", repository="acme/b")
    message = synth_error(app)
    assert "Stack/Second creates a GitHub OIDC provider, but Stack/First already creates one" in message
    assert "pass provider=First.provider (or import_github_oidc_provider())" in message


def test_accepts_shared_github_provider():
    app = new_app()
    stack = new_stack(app)
    first = GitHubActionsSigningRole(stack, "First", repository="acme/a")
    GitHubActionsSigningRole(stack, "Second", repository="acme/b", provider=first.provider)
    Template.from_stack(stack).resource_count_is("AWS::IAM::OIDCProvider", 1)


def test_rejects_ci_role_when_it_is_given_another_action():
    # Given a CI role that someone widened by hand
    app = new_app()
    role = CodeBuildSigningRole(new_stack(app), "CodeBuild")
    role.role.add_to_policy(iam.PolicyStatement(actions=["s3:GetObject"], resources=["arn:aws:s3:::bucket/*"]))
    # When / Then
    assert "CI signing role Stack/CodeBuild holds 's3:GetObject', which is not a push or sign action" in synth_error(app)


def test_rejects_ci_role_when_a_managed_policy_is_attached():
    app = new_app()
    role = CodeBuildSigningRole(new_stack(app), "CodeBuild")
    role.role.add_managed_policy(iam.ManagedPolicy.from_aws_managed_policy_name("ReadOnlyAccess"))
    assert "CI signing role Stack/CodeBuild has a managed or inline policy" in synth_error(app)


def test_rejects_break_glass_key_when_a_ci_role_stack_could_deploy_to_any_account():
    # Regression: a CI role in an environment-agnostic stack was taken to be in another account,
    # although that stack can be deployed to the break-glass account.
    app = new_app()
    CodeBuildSigningRole(Stack(app, "Ci", env=Environment()), "CodeBuild")
    BreakGlassSigningKey(_vault(app), "Key", alias="alias/glass")
    message = synth_error(app)
    assert "cannot tell whether CI signing role Ci/CodeBuild is outside account 222222222222" in message
    assert "give stack Ci an explicit account" in message


@pytest.mark.parametrize("policy_class", [iam.Policy, iam.ManagedPolicy], ids=["policy", "managed-policy"])
def test_rejects_ci_role_when_a_separate_policy_is_attached(policy_class):
    # Regression: only the role's DefaultPolicy was read, so iam.Policy(roles=[...]) or
    # iam.ManagedPolicy(roles=[...]) widened a CI role without a synth error.
    app = new_app()
    stack = new_stack(app)
    role = CodeBuildSigningRole(stack, "CodeBuild")
    policy_class(stack, "Extra", roles=[role.role],
                 statements=[iam.PolicyStatement(actions=["s3:GetObject"], resources=["arn:aws:s3:::bucket/*"])])
    assert "CI signing role Stack/CodeBuild holds 's3:GetObject', which is not a push or sign action" in synth_error(app)
