"""IAM hardening (issue 9): IAM5 acknowledgements cover only their statements, OIDC subjects, key admins."""

from __future__ import annotations

import json

import jsii
import pytest
from aws_cdk import Aspects, IAspect, Validations
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_iam as iam
from aws_cdk.assertions import Annotations, Match
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct

from constructs_lib import BreakGlassSigningKey, CosignSigningKey, GitHubActionsSigningRole, NotationSigningProfile
from constructs_lib.admission import AdmissionController
from tests.constructs.checks import ENV_B, assert_clean, nag_findings, new_app, new_stack, synth_error

ECR = "111111111111.dkr.ecr.us-east-1.amazonaws.com"
ANY_RESOURCE = "AwsSolutions-IAM5[Resource::*]"
TEAM_REPOSITORIES = "AwsSolutions-IAM5[Resource::arn:aws:ecr:us-east-1:111111111111:repository/team/*]"


def _admission():
    app = new_app()
    stack = new_stack(app)
    controller = AdmissionController(stack, "Admission", signing_keys=[CosignSigningKey(stack, "Key", alias="alias/k")],
                                     image_patterns=[f"{ECR}/team/**"])
    return app, stack, controller


def _iam5_on(app, path_part: str) -> list[str]:
    return [f for f in nag_findings(app) if f.startswith("AwsSolutions-IAM5") and path_part in f]


# --- IAM5 acknowledgements are scoped to the statements they were made for -------------------------------

def test_admission_role_wildcards_are_acknowledged_when_nothing_was_added():
    # Given the admission role as the controller builds it (Resource::* for two actions, team/* for reads)
    app, _stack, _controller = _admission()
    # When
    app.synth()
    # Then cdk-nag reports nothing on it
    assert _iam5_on(app, "/Admission/") == []


def test_admission_role_reports_a_new_action_on_the_acknowledged_star_resource():
    # Regression: the role's AwsSolutions-IAM5[Resource::*] acknowledgement (made for
    # ecr:GetAuthorizationToken and ecs:DescribeTaskDefinition) silently covered any later "*" grant.
    # Given a statement added to the admission role that grants another action on "*"
    app, _stack, controller = _admission()
    controller.role.add_to_principal_policy(iam.PolicyStatement(actions=["s3:GetObject"], resources=["*"]))
    # When
    app.synth()
    # Then the Resource::* finding is no longer acknowledged
    assert _iam5_on(app, "/Admission/") == [f"{ANY_RESOURCE} at Stack/Admission/Role/DefaultPolicy/Resource"]


def test_admission_role_reports_a_new_action_on_an_acknowledged_scoped_wildcard():
    # Given push rights added on the repositories the role may only read
    app, _stack, controller = _admission()
    controller.role.add_to_principal_policy(iam.PolicyStatement(
        actions=["ecr:PutImage"], resources=["arn:aws:ecr:us-east-1:111111111111:repository/team/*"]))
    # When
    app.synth()
    # Then
    assert _iam5_on(app, "/Admission/") == [f"{TEAM_REPOSITORIES} at Stack/Admission/Role/DefaultPolicy/Resource"]


def test_admission_role_reports_a_new_wildcard_resource_and_a_wildcard_action():
    app, _stack, controller = _admission()
    controller.role.add_to_principal_policy(iam.PolicyStatement(
        actions=["s3:Get*"], resources=["arn:aws:s3:::audit-bucket/*"]))
    app.synth()
    assert sorted(_iam5_on(app, "/Admission/")) == [
        "AwsSolutions-IAM5[Action::s3:Get*] at Stack/Admission/Role/DefaultPolicy/Resource",
        "AwsSolutions-IAM5[Resource::arn:aws:s3:::audit-bucket/*] at Stack/Admission/Role/DefaultPolicy/Resource",
    ]


def test_ci_role_reports_a_new_action_on_star():
    # Given a GitHub signing role whose only "*" is ecr:GetAuthorizationToken, then a push action on "*"
    app = new_app()
    stack = new_stack(app)
    role = GitHubActionsSigningRole(stack, "GitHub", repository="acme/app")
    role.allow_push(ecr.Repository(stack, "Repo", image_scan_on_push=True))
    role.role.add_to_principal_policy(iam.PolicyStatement(actions=["ecr:PutImage"], resources=["*"]))
    # When
    app.synth()
    # Then
    assert _iam5_on(app, "/GitHub/") == [f"{ANY_RESOURCE} at Stack/GitHub/Resource/DefaultPolicy/Resource"]


def test_ci_role_star_acknowledgement_holds_for_the_authorization_token_alone():
    app = new_app()
    stack = new_stack(app)
    role = GitHubActionsSigningRole(stack, "GitHub", repository="acme/app")
    role.allow_push(ecr.Repository(stack, "Repo", image_scan_on_push=True))
    app.synth()
    assert _iam5_on(app, "/GitHub/") == []


def test_revocation_check_grant_reports_a_new_action_on_the_profile_versions():
    # Given a role granted the revocation check (profile/* and signing-jobs/* acknowledged for it)
    app = new_app()
    stack = new_stack(app)
    profile = NotationSigningProfile(stack, "Profile", signing_profile_name="team_images")
    role = iam.Role(stack, "Checker", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    profile.grant_revocation_check(role)
    # When another action is granted on the profile's versions
    role.add_to_principal_policy(iam.PolicyStatement(actions=["signer:RevokeSignature"],
                                                     resources=[f"{profile.signing_profile_arn}/*"]))
    app.synth()
    # Then only that resource's finding is reported; the signing-jobs wildcard stays acknowledged
    assert _iam5_on(app, "/Checker/") == [
        f"AwsSolutions-IAM5[Resource::<{stack.resolve(profile.node.default_child.logical_id)}.Arn>/*] "
        "at Stack/Checker/DefaultPolicy/Resource"]


def test_acknowledgement_reason_is_written_to_the_template_metadata():
    # Given the reference app's setting (acknowledgements copied into the template)
    app = new_app()
    Validations.of(app).add_plugins(AwsSolutionsChecks(app, write_suppressions_to_cloud_formation=True))
    stack = new_stack(app)
    role = GitHubActionsSigningRole(stack, "GitHub", repository="acme/app")
    role.allow_push(ecr.Repository(stack, "Repo", image_scan_on_push=True))
    # When
    template = app.synth().get_stack_by_name("Stack").template
    # Then the role's policy carries the Resource::* acknowledgement and its reason
    [policy] = [r for r in template["Resources"].values() if r["Type"] == "AWS::IAM::Policy"]
    rules = {r["id"]: r["reason"] for r in policy["Metadata"]["cdk_nag"]["rules_to_suppress"]}
    assert "ecr:GetAuthorizationToken supports no resource-level permission" in rules[ANY_RESOURCE]


@jsii.implements(IAspect)
class _LateGrant:
    """Adds a statement to the role after the acknowledgement aspect ran on it (a higher priority runs later)."""

    def __init__(self, role: iam.Role) -> None:
        self._role = role
        self._done = False

    def visit(self, node: IConstruct) -> None:
        if not self._done and node.node.path == self._role.node.path:
            self._done = True
            self._role.add_to_principal_policy(iam.PolicyStatement(actions=["ecr:PutImage"], resources=["*"]))


def test_rejects_synth_when_a_statement_is_added_to_an_acknowledged_resource_after_aspects_ran():
    app = new_app()
    stack = new_stack(app)
    role = GitHubActionsSigningRole(stack, "GitHub", repository="acme/app")
    role.allow_push(ecr.Repository(stack, "Repo", image_scan_on_push=True))
    Aspects.of(app).add(_LateGrant(role.role), priority=900)
    message = synth_error(app)
    assert "acknowledgement of AwsSolutions-IAM5[Resource::*] covers only ecr:GetAuthorizationToken" in message
    assert "granting ecr:PutImage on that resource was added after aspects ran" in message


@pytest.mark.parametrize("value, rendered", [
    ({"Fn::Sub": "arn:${AWS::Partition}:s3:::b/*"}, "arn:<AWS::Partition>:s3:::b/*"),
    ({"Fn::ImportValue": "Stack:ExportsOutputFnGetAttRoleArn"}, "Stack:ExportsOutputFnGetAttRoleArn"),
    ({"Fn::GetAtt": ["Repo02AC86CF", "Arn"]}, "<Repo02AC86CF.Arn>"),
    ({"Fn::If": ["C", "a", "b"]}, '{"Fn::If":["C","a","b"]}'),
])
def test_renders_findings_as_cdk_nag_flattens_references(value, rendered):
    from constructs_lib._nag import render

    assert render(value) == rendered


# --- GitHub OIDC trust: exact subjects, optionally under a customized subject template ---------------------

OIDC = "token.actions.githubusercontent.com"
GITHUB_EXAMPLE_WORKFLOW = "octo-org/octo-automation/.github/workflows/oidc.yml@refs/heads/main"


def _trust(**props) -> dict:
    app = new_app()
    stack = new_stack(app)
    GitHubActionsSigningRole(stack, "GitHub", **props)
    [role] = [r for r in app.synth().get_stack_by_name("Stack").template["Resources"].values()
              if r["Type"] == "AWS::IAM::Role"]
    [statement] = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    return statement


def test_default_subjects_are_exact_branch_and_environment_subjects():
    # When
    statement = _trust(repository="acme/app", branches=["main"], environments=["production"])
    # Then aud and sub are compared exactly; nothing is a pattern
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Condition"] == {"StringEquals": {
        f"{OIDC}:aud": "sts.amazonaws.com",
        f"{OIDC}:sub": ["repo:acme/app:ref:refs/heads/main", "repo:acme/app:environment:production"],
    }}


def test_customized_subject_with_ref_binds_environments_to_branches():
    # Given the repository's subject template set to repo, context, ref on GitHub
    statement = _trust(repository="acme/app", branches=["main"], environments=["production"],
                       subject_claim_keys=["repo", "context", "ref"], environment_branches=["main", "hotfix"])
    # Then an environment job assumes the role only from main or hotfix, and no StringLike widens it
    assert statement["Condition"] == {"StringEquals": {
        f"{OIDC}:aud": "sts.amazonaws.com",
        f"{OIDC}:sub": [
            "repo:acme/app:ref:refs/heads/main:ref:refs/heads/main",
            "repo:acme/app:environment:production:ref:refs/heads/main",
            "repo:acme/app:environment:production:ref:refs/heads/hotfix",
        ],
    }}


def test_customized_subject_with_job_workflow_ref_matches_githubs_documented_example():
    # Given GitHub's documented template (repo, context, job_workflow_ref) and its example values
    statement = _trust(repository="octo-org/octo-repo", branches=[], environments=["prod"],
                       subject_claim_keys=["repo", "context", "job_workflow_ref"], workflows=[GITHUB_EXAMPLE_WORKFLOW])
    # Then the subject is exactly the one GitHub's documentation shows
    assert statement["Condition"]["StringEquals"][f"{OIDC}:sub"] == [
        "repo:octo-org/octo-repo:environment:prod:job_workflow_ref:" + GITHUB_EXAMPLE_WORKFLOW]
    assert "StringLike" not in statement["Condition"]


def test_github_role_with_customized_subjects_is_clean_under_cdk_nag_and_cfn_lint():
    app = new_app()
    stack = new_stack(app)
    role = GitHubActionsSigningRole(stack, "GitHub", repository="acme/app", branches=["main"],
                                    environments=["production"], environment_branches=["main"],
                                    subject_claim_keys=["repo", "context", "ref", "job_workflow_ref"],
                                    workflows=["acme/pipelines/.github/workflows/sign.yml@refs/tags/v3"])
    role.allow_push(ecr.Repository(stack, "Repo", image_scan_on_push=True))
    assert_clean(app, app.synth())
    assert role.subjects == (
        "repo:acme/app:ref:refs/heads/main:ref:refs/heads/main:job_workflow_ref:"
        "acme/pipelines/.github/workflows/sign.yml@refs/tags/v3",
        "repo:acme/app:environment:production:ref:refs/heads/main:job_workflow_ref:"
        "acme/pipelines/.github/workflows/sign.yml@refs/tags/v3",
    )


@pytest.mark.parametrize("props, message", [
    (dict(subject_claim_keys=["job_workflow_ref"], workflows=[GITHUB_EXAMPLE_WORKFLOW]),
     "subject_claim_keys must be 'repo', 'context', then optionally"),
    (dict(subject_claim_keys=["repo", "context", "actor"]), "subject_claim_keys must be 'repo', 'context'"),
    (dict(subject_claim_keys=["repo", "context", "ref", "ref"]), "subject_claim_keys must be 'repo', 'context'"),
    (dict(environments=["production"], subject_claim_keys=["repo", "context", "ref"]),
     r"environments \['production'\] need environment_branches"),
    (dict(environments=["production"], environment_branches=["main"]),
     "environment_branches needs 'ref' in subject_claim_keys"),
    (dict(workflows=[GITHUB_EXAMPLE_WORKFLOW]), "workflows and 'job_workflow_ref' in subject_claim_keys go together"),
    (dict(subject_claim_keys=["repo", "context", "job_workflow_ref"]), "go together"),
    (dict(subject_claim_keys=["repo", "context", "job_workflow_ref"],
          workflows=["octo-org/octo-automation/.github/workflows/*.yml@refs/heads/main"]), "a workflow must be"),
    (dict(branches=[f"release-{n:03d}" for n in range(60)]), "more than 1600"),
])
def test_rejects_github_trust_when_the_subject_template_or_its_values_are_wrong(props, message):
    app = new_app()
    stack = new_stack(app)
    with pytest.raises(ValueError, match=message):
        GitHubActionsSigningRole(stack, "GitHub", repository="acme/app", **props)


# --- signing keys: named administrators replace the account root ------------------------------------------

ADMIN_SID = "AllowKeyAdministrationWithoutUse"


def _key_policies(app, stack_name: str = "Stack") -> list[dict]:
    template = app.synth().get_stack_by_name(stack_name).template
    return [r["Properties"]["KeyPolicy"] for r in template["Resources"].values() if r["Type"] == "AWS::KMS::Key"]


def _admin_statement(policy: dict) -> dict:
    [statement] = [s for s in policy["Statement"] if s.get("Sid") == ADMIN_SID]
    return statement


def test_key_admin_statement_names_the_account_root_by_default():
    app = new_app()
    stack = new_stack(app)
    CosignSigningKey(stack, "Key", alias="alias/team/cosign")
    [policy] = _key_policies(app)
    principal = _admin_statement(policy)["Principal"]["AWS"]
    assert principal == {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":iam::111111111111:root"]]}


@pytest.mark.parametrize("kind", ["cosign", "break-glass"])
def test_named_key_admins_replace_the_account_root(kind):
    # Given a security team role and the CloudFormation execution role as the only administrators
    app = new_app()
    stack = new_stack(app, "Vault", env=ENV_B) if kind == "break-glass" else new_stack(app)
    security = iam.Role(stack, "KeyAdmins", assumed_by=iam.AccountPrincipal(stack.account))
    deploy = CosignSigningKey.cloudformation_execution_role(stack)
    key_class = BreakGlassSigningKey if kind == "break-glass" else CosignSigningKey
    key = key_class(stack, "Key", alias=f"alias/{kind}", admins=[security, deploy])
    # When
    [policy] = _key_policies(app, stack.stack_name)
    # Then the admin statement names exactly those two, may rewrite the policy, and may not sign
    admin = _admin_statement(policy)
    assert admin["Principal"]["AWS"] == [
        {"Fn::GetAtt": [stack.resolve(security.node.default_child.logical_id), "Arn"]},
        {"Fn::Sub": f"arn:${{AWS::Partition}}:iam::{stack.account}:role/cdk-hnb659fds-cfn-exec-role-"
                    f"{stack.account}-us-east-1"},
    ]
    assert "kms:PutKeyPolicy" in admin["Action"] and "kms:Sign" not in admin["Action"]
    # and no statement of the key policy names the account root any more
    assert ":root" not in json.dumps(policy)
    assert key.admin_arns == (security.role_arn, deploy.role_arn)
    assert Annotations.from_stack(stack).find_warning("*", Match.string_like_regexp("key-admins-lockout")) == []


def test_named_key_admins_are_clean_under_cdk_nag_and_cfn_lint():
    app = new_app()
    stack = new_stack(app)
    security = iam.Role(stack, "KeyAdmins", assumed_by=iam.AccountPrincipal(stack.account))
    CosignSigningKey(stack, "Key", alias="alias/team/cosign",
                     admins=[security, CosignSigningKey.cloudformation_execution_role(stack)])
    assert_clean(app, app.synth())


def test_warns_when_named_key_admins_leave_out_the_deploying_role():
    # Given admins without the role CloudFormation deploys with (KMS's lockout check would refuse the key)
    app = new_app()
    stack = new_stack(app)
    security = iam.Role(stack, "KeyAdmins", assumed_by=iam.AccountPrincipal(stack.account))
    CosignSigningKey(stack, "Key", alias="alias/team/cosign", admins=[security])
    app.synth()
    # Then synth warns and names the fix
    [warning] = Annotations.from_stack(stack).find_warning("*", Match.string_like_regexp("key-admins-lockout"))
    assert "cloudformation_execution_role(stack)" in warning.entry.data


def test_deploy_role_given_as_a_literal_arn_counts_as_the_deploying_role():
    app = new_app()
    stack = new_stack(app)
    deploy = iam.Role.from_role_arn(
        stack, "Deploy", "arn:aws:iam::111111111111:role/cdk-hnb659fds-cfn-exec-role-111111111111-us-east-1")
    CosignSigningKey(stack, "Key", alias="alias/team/cosign", admins=[deploy])
    app.synth()
    assert Annotations.from_stack(stack).find_warning("*", Match.string_like_regexp("key-admins-lockout")) == []


@pytest.mark.parametrize("admin", [
    iam.AccountRootPrincipal(), iam.AccountPrincipal("222222222222"), iam.ServicePrincipal("cloudformation.amazonaws.com"),
    iam.ArnPrincipal("arn:aws:iam::111111111111:role/admins-*"),
], ids=["account-root", "other-account", "service", "wildcard-role"])
def test_rejects_key_admins_when_one_is_not_a_role_or_user(admin):
    stack = new_stack(new_app())
    with pytest.raises(ValueError, match="admins must be IAM roles or users"):
        CosignSigningKey(stack, "Key", alias="alias/x", admins=[admin])


def test_rejects_cloudformation_execution_role_when_the_synthesizer_names_none():
    from aws_cdk import App, CliCredentialsStackSynthesizer, Stack

    stack = Stack(App(), "Cli", synthesizer=CliCredentialsStackSynthesizer())
    with pytest.raises(ValueError, match="uses CliCredentialsStackSynthesizer, which names no CloudFormation execution"):
        CosignSigningKey.cloudformation_execution_role(stack)
