"""The report's reading rules on hand-written assemblies: IAM delegation, conditional denies, literal ARNs,
hooks outside the assembly, other deployment controllers, wildcard signing rules, tags, reasonless acks."""

from __future__ import annotations

import json
import re

from image_verifier.review import build_report, gather_facts

from tests.review.assembly_builder import (
    ACCOUNT,
    ROOT_ALLOWS_EVERYTHING,
    policy,
    role,
    signing_key,
    write_assembly,
)
from tests.review.report_helpers import NOW, row_with, sections

GITHUB_TRUST = {
    "Effect": "Allow", "Action": "sts:AssumeRoleWithWebIdentity",
    "Principal": {"Federated": f"arn:aws:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com"},
    "Condition": {"StringLike": {"token.actions.githubusercontent.com:sub": "repo:acme/*"}},
}


def test_key_policy_that_allows_the_account_delegates_signing_to_iam(tmp_path):
    # Given: the account root may do anything with the key, one role has kms:Sign on it in IAM, one has not
    cdk_out = write_assembly(tmp_path, {"Keys": {"Resources": {
        "Key": signing_key(ROOT_ALLOWS_EVERYTHING),
        "Granted": role(GITHUB_TRUST, RoleName="granted-ci"),
        "GrantedPolicy": policy("Granted", {"Effect": "Allow", "Action": "kms:Sign",
                                            "Resource": {"Fn::GetAtt": ["Key", "Arn"]}}),
        "Other": role(GITHUB_TRUST, RoleName="other-ci"),
        "OtherPolicy": policy("Other", {"Effect": "Allow", "Action": "ecr:PutImage", "Resource": "*"}),
    }}})
    # When
    [key] = gather_facts(cdk_out, now=NOW).keys
    # Then
    assert [(s.role.ref.logical_id, s.verdict) for s in key.signers] == [("Granted", "yes")]
    assert key.signers[0].via == "key policy allows the account; IAM: Policy `GrantedPolicy` in Keys"


def test_deny_with_a_condition_it_cannot_judge_is_reported_as_conditional(tmp_path):
    # Given
    deny = {"Sid": "OnlyFromCi", "Effect": "Deny", "Action": "kms:*", "Principal": "*", "Resource": "*",
            "Condition": {"StringNotEquals": {"aws:SourceVpce": "vpce-1234"}}}
    allow = {"Sid": "Sign", "Effect": "Allow", "Action": "kms:Sign", "Resource": "*",
             "Principal": {"AWS": {"Fn::GetAtt": ["Ci", "Arn"]}}}
    cdk_out = write_assembly(tmp_path, {"Keys": {"Resources": {"Key": signing_key(allow, deny), "Ci": role(GITHUB_TRUST)}}})
    # When
    [key] = gather_facts(cdk_out, now=NOW).keys
    # Then
    assert [s.verdict for s in key.signers] == ["conditional: OnlyFromCi denies unless its condition holds"]
    assert key.denies[0].conditions == ("StringNotEquals `aws:SourceVpce` = `vpce-1234`",)


def test_literal_provider_arn_and_wildcard_sub_are_read_from_the_trust_policy(tmp_path):
    # Given
    cdk_out = write_assembly(tmp_path, {"Ci": {"Resources": {
        "Ci": role(GITHUB_TRUST, RoleName="acme-ci"),
        "CiPolicy": policy("Ci", {"Effect": "Allow", "Action": ["signer:StartSigningJob"], "Resource": "*"}),
        "Profile": {"Type": "AWS::Signer::SigningProfile", "Properties": {
            "PlatformId": "Notation-OCI-SHA384-ECDSA", "ProfileName": "acme"}},
    }}})
    # When
    report = sections(build_report(cdk_out, now=NOW))["Who can sign"]
    # Then: the "*" resource covers the profile
    row = row_with(report, "(acme-ci)", "OIDC provider")
    assert "`token.actions.githubusercontent.com`" in row and "`repo:acme/*` (StringLike)" in row
    assert "`Ci` (acme-ci) in Ci may call signer:StartSigningJob" in report


def test_import_value_and_sub_are_followed_to_the_exporting_stack(tmp_path):
    # Given: the hook's function lives in another stack and is reached through an export
    function = {"Type": "AWS::Lambda::Function", "Properties": {"FunctionName": "gate", "Code": {"S3Key": "abc.zip"}}}
    service = {"Type": "AWS::ECS::Service", "Properties": {"DeploymentConfiguration": {"LifecycleHooks": [{
        "HookTargetArn": {"Fn::ImportValue": {"Fn::Sub": "${AWS::AccountId}-gate"}},
        "LifecycleStages": ["PRE_SCALE_UP", "POST_SCALE_UP"]}]}}}
    cdk_out = write_assembly(tmp_path, {
        "Gate": {"Resources": {"Gate": function}, "Outputs": {"GateArn": {
            "Value": {"Fn::GetAtt": ["Gate", "Arn"]}, "Export": {"Name": f"{ACCOUNT}-gate"}}}},
        "App": {"Resources": {"Web": service}},
    }, assets={"abc": {"admission_policy.json": json.dumps({"version": "1", "trustedSigners": [], "rules": []})}})
    # When
    facts = gather_facts(cdk_out, now=NOW)
    # Then
    [web] = facts.services
    assert web.protected and web.stages == ("PRE_SCALE_UP", "POST_SCALE_UP")
    assert web.admission_hooks[0].target_label == "`Gate` (gate) in Gate"


def test_services_whose_hook_is_elsewhere_or_whose_controller_is_not_ecs_are_not_protected(tmp_path):
    # Given
    outside = {"Type": "AWS::ECS::Service", "Properties": {"DeploymentConfiguration": {"LifecycleHooks": [{
        "HookTargetArn": "arn:aws:lambda:us-west-2:555555555555:function:someone-elses", "LifecycleStages": ["PRE_SCALE_UP"]}]}}}
    code_deploy = {"Type": "AWS::ECS::Service", "Properties": {"DeploymentController": {"Type": "CODE_DEPLOY"}}}
    cdk_out = write_assembly(tmp_path, {"App": {"Resources": {"Outside": outside, "Legacy": code_deploy}}})
    # When
    section = sections(build_report(cdk_out, now=NOW))["ECS services"].split("### NOT protected", 1)[1]
    # Then
    assert "not in this assembly: cannot tell what it checks" in row_with(section, "`Outside` in App")
    assert "deployment controller CODE_DEPLOY (no ECS lifecycle hooks)" in row_with(section, "`Legacy` in App")


def test_signing_rule_filters_match_with_wildcards_and_no_filter_means_every_repository(tmp_path):
    # Given
    profile = {"Type": "AWS::Signer::SigningProfile", "Properties": {"PlatformId": "Notation-OCI-SHA384-ECDSA",
                                                                      "ProfileName": "team"}}
    rules = {"Type": "AWS::ECR::SigningConfiguration", "Properties": {"Rules": [
        {"SigningProfileArn": {"Fn::GetAtt": ["Profile", "Arn"]},
         "RepositoryFilters": [{"Filter": "team-*", "FilterType": "WILDCARD_MATCH"}]}]}}
    repos = {f"Repo{i}": {"Type": "AWS::ECR::Repository", "Properties": {"RepositoryName": name}}
             for i, name in enumerate(["team-api", "other/api"])}
    cdk_out = write_assembly(tmp_path, {"Registry": {"Resources": {"Profile": profile, "Rules": rules, **repos}}})
    # When
    by_name = {r.name: r for r in gather_facts(cdk_out, now=NOW).repositories}
    # Then
    assert [r.filters for r in by_name["team-api"].rules] == [("team-*",)]
    assert by_name["other/api"].rules == ()


def test_break_glass_key_is_recognised_by_its_tag(tmp_path):
    # Given
    key = signing_key({"Sid": "Deny", "Effect": "Deny", "Action": "kms:Sign", "Principal": "*", "Resource": "*"},
                      Tags=[{"Key": "purpose", "Value": "break-glass"}])
    cdk_out = write_assembly(tmp_path, {"Vault": {"Resources": {"Emergency": key}}})
    # When
    section = sections(build_report(cdk_out, now=NOW))["Break-glass path"]
    # Then
    assert "`Emergency` in Vault" in section and "marked by tag purpose=break-glass" in section
    assert "nobody in this assembly can sign with it (denied by Deny)" in section


def test_acknowledgement_without_a_reason_is_flagged(tmp_path):
    # Given: one written to the template without a reason, one recorded in code metadata
    bucket = {"Type": "AWS::S3::Bucket", "Metadata": {"cdk_nag": {"rules_to_suppress": [{"id": "AwsSolutions-S1"}]}}}
    metadata = {"/App/Logs": [{"type": "aws:cdk:acknowledged-rules",
                               "data": {"Annotation::AwsSolutions-S10": "TLS is enforced by the bucket policy"}}],
                "/App/Logs/Resource": [{"type": "aws:cdk:logicalId", "data": "Logs"}]}
    cdk_out = write_assembly(tmp_path, {"App": {"Resources": {"Logs": bucket}}}, metadata={"App": metadata})
    # When
    section = sections(build_report(cdk_out, now=NOW))["cdk-nag acknowledgements"]
    # Then
    assert "**NO REASON GIVEN**" in row_with(section, "`AwsSolutions-S1`")
    assert "in code (Validations.acknowledge)" in row_with(section, "`Logs`", "`AwsSolutions-S10`", "TLS is enforced")


def test_policy_placeholder_without_its_environment_variable_stays_visible(tmp_path):
    # Given: the policy names a variable the function does not set
    document = {"version": "1", "trustedSigners": [{"name": "k", "cosignKey": {"kmsKeyArn": {"fromEnv": "MISSING"}}}],
                "rules": [{"name": "r", "images": ["registry.example/app"], "anyOf": ["k"]}]}
    function = {"Type": "AWS::Lambda::Function", "Properties": {"Code": {"S3Key": "def.zip"}}}
    cdk_out = write_assembly(tmp_path, {"App": {"Resources": {"Gate": function}}},
                             assets={"def": {"admission_policy.json": json.dumps(document)}})
    # When
    [admission] = gather_facts(cdk_out, now=NOW).policies
    # Then
    assert admission.signers[0].trusts == ("`<$MISSING: not set on the function>`",)
    assert admission.rules[0].images == ("registry.example/app",)


def test_key_policy_that_allows_everyone_lists_every_role_as_a_signer(tmp_path):
    # Given: Principal "*" needs no IAM permission; with an org condition the verdict cannot be "yes"
    open_to_all = {"Sid": "Everyone", "Effect": "Allow", "Action": "kms:Sign", "Principal": {"AWS": "*"},
                   "Resource": "*"}
    org_only = {**open_to_all, "Condition": {"StringEquals": {"aws:PrincipalOrgID": "o-abc123"}}}
    for name, statement, verdict in (("open", open_to_all, "yes"),
                                     ("org", org_only, "conditional: the key policy allows everyone (`*`) under conditions")):
        cdk_out = write_assembly(tmp_path / name, {"Keys": {"Resources": {
            "Key": signing_key(statement), "Anyone": role(GITHUB_TRUST)}}})
        # When
        [key] = gather_facts(cdk_out, now=NOW).keys
        # Then
        assert [(s.role.ref.logical_id, s.verdict, s.via) for s in key.signers] == [
            ("Anyone", verdict, "key policy allows everyone (`*`)")]


def test_nested_stack_resources_are_read_and_their_parameters_followed(tmp_path):
    # Given: a real synth of an app whose pusher role lives in a NestedStack
    from aws_cdk import App, Environment, NestedStack, Stack
    from aws_cdk import aws_ecr as ecr
    from aws_cdk import aws_iam as iam

    app = App(outdir=str(tmp_path / "cdk.out"), analytics_reporting=False)
    parent = Stack(app, "Parent", env=Environment(account=ACCOUNT, region="us-east-1"))
    repository = ecr.Repository(parent, "Repo", repository_name="nested/app")
    inner = NestedStack(parent, "Inner")
    repository.grant_push(iam.Role(inner, "Pusher", role_name="nested-pusher",
                                   assumed_by=iam.ServicePrincipal("codebuild.amazonaws.com")))
    app.synth()
    # When
    [repo] = gather_facts(tmp_path / "cdk.out", now=NOW).repositories
    # Then: the nested role's policy names the repository through a parameter of the nested stack
    assert [p.ref.properties["RoleName"] for p in repo.pushers] == ["nested-pusher"]
    assert repo.pushers[0].ref.stack.parent is not None and repo.pushers[0].ref.stack.parent.name == "Parent"


def test_template_text_cannot_break_the_diagram_or_the_tables(tmp_path):
    # Given: a protected service whose stage name holds quotes, a pipe and a line break, and an unprotected
    # one whose hook ARN tries to start a Markdown heading
    function = {"Type": "AWS::Lambda::Function", "Properties": {"Code": {"S3Key": "abc.zip"}}}
    web = {"Type": "AWS::ECS::Service", "Properties": {"DeploymentConfiguration": {"LifecycleHooks": [
        {"HookTargetArn": {"Fn::GetAtt": ["Gate", "Arn"]}, "LifecycleStages": ['PRE_SCALE_UP"]|x\nclick n1']}]}}}
    other = {"Type": "AWS::ECS::Service", "Properties": {"DeploymentConfiguration": {"LifecycleHooks": [
        {"HookTargetArn": "arn:x|y\n## injected", "LifecycleStages": ["POST_SCALE_UP"]}]}}}
    cdk_out = write_assembly(tmp_path, {"App": {"Resources": {"Gate": function, "Web": web, "Other": other}}},
                             assets={"abc": {"admission_policy.json": "{}"}})
    # When
    report = build_report(cdk_out, now=NOW)
    # Then: every edge label is one quoted string without quotes of its own, and no line starts a heading
    edges = [line for line in sections(report)["Trust flow"].splitlines() if "-->" in line]
    assert edges and all(re.fullmatch(r'\s+n\d+ -\.?->\|"[^"|]*"\| n\d+', line) for line in edges)
    assert "arn:x\\|y ## injected" in row_with(sections(report)["ECS services"], "`Other` in App")
    assert "\n## injected" not in report and "\nclick" not in report


def test_key_description_with_line_breaks_stays_on_one_line(tmp_path):
    # Given
    key = signing_key({"Sid": "Deny", "Effect": "Deny", "Action": "kms:Sign", "Principal": "*", "Resource": "*"},
                      Description="ops key\n## Everything is fine\n- nobody")
    cdk_out = write_assembly(tmp_path, {"Keys": {"Resources": {"Key": key}}})
    # When
    report = build_report(cdk_out, now=NOW)
    # Then
    assert "ops key ## Everything is fine - nobody" in report and "\n## Everything" not in report


def test_pusher_without_sign_payload_on_the_rule_profile_is_flagged(tmp_path):
    # Given: a signing rule covers the repository, but the pushing role may not call signer:SignPayload
    profile = {"Type": "AWS::Signer::SigningProfile", "Properties": {"PlatformId": "Notation-OCI-SHA384-ECDSA",
                                                                      "ProfileName": "team"}}
    rules = {"Type": "AWS::ECR::SigningConfiguration", "Properties": {"Rules": [
        {"SigningProfileArn": {"Fn::GetAtt": ["Profile", "Arn"]}}]}}
    repo = {"Type": "AWS::ECR::Repository", "Properties": {"RepositoryName": "team/api"}}
    push = {"Effect": "Allow", "Action": ["ecr:PutImage"], "Resource": {"Fn::GetAtt": ["Repo", "Arn"]}}
    cdk_out = write_assembly(tmp_path, {"Registry": {"Resources": {
        "Profile": profile, "Rules": rules, "Repo": repo,
        "Signs": role(GITHUB_TRUST, RoleName="signs"), "SignsPolicy": policy("Signs", push, {
            "Effect": "Allow", "Action": "signer:SignPayload", "Resource": {"Fn::GetAtt": ["Profile", "Arn"]}}),
        "Unsigned": role(GITHUB_TRUST, RoleName="unsigned"), "UnsignedPolicy": policy("Unsigned", push),
    }}})
    # When
    row = row_with(sections(build_report(cdk_out, now=NOW))["Repositories and ECR signing rules"], "`team/api`")
    # Then
    assert "every repository of the registry" not in row and "rule 1 of `Rules`" in row
    assert "`Signs` (signs) in Registry" in row and "`Signs` (signs) in Registry (**no" not in row
    assert "`Unsigned` (unsigned) in Registry (**no signer:SignPayload on the profile: its pushes stay unsigned**)" in row
