"""NotationSigningProfile and RegistrySigningRules: defaults, grants, and misuse caught at synth."""

from __future__ import annotations

import json

import pytest
from aws_cdk import Environment, Stack
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_iam as iam
from aws_cdk.assertions import Match, Template

from constructs_lib import NotationSigningProfile, RegistrySigningRules, SigningRule
from tests.constructs.checks import ENV_B, assert_clean, new_app, new_stack, synth_error

PROFILE_ARN = "arn:aws:signer:us-east-1:111111111111:/signing-profiles/imported_profile"


@pytest.fixture(scope="module")
def synthesized():
    # Given a profile with a short validity, a pusher and a verifier, and rules with filters
    app = new_app()
    stack = new_stack(app)
    profile = NotationSigningProfile(stack, "Profile", signing_profile_name="team_a", signature_validity_months=12)
    pusher = iam.Role(stack, "Pusher", assumed_by=iam.ServicePrincipal("codebuild.amazonaws.com"))
    verifier = iam.Role(stack, "Verifier", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    profile.grant_sign(pusher)
    profile.grant_revocation_check(verifier)
    imported = NotationSigningProfile.from_signing_profile_arn(stack, "Imported", PROFILE_ARN)
    rules = RegistrySigningRules(stack, "Rules", rules=[SigningRule(profile=profile, repository_filters=["team-a/*"])])
    rules.add_rule(SigningRule(profile=imported))
    return app, app.synth(), stack, profile


def test_profile_is_notation_with_the_given_validity(synthesized):
    _app, _assembly, stack, _profile = synthesized
    Template.from_stack(stack).has_resource_properties(
        "AWS::Signer::SigningProfile",
        {
            "PlatformId": "Notation-OCI-SHA384-ECDSA",
            "ProfileName": "team_a",
            "SignatureValidityPeriod": {"Type": "MONTHS", "Value": 12},
        },
    )


def test_grant_sign_gives_sign_payload_on_the_profile_only(synthesized):
    _app, _assembly, stack, _profile = synthesized
    Template.from_stack(stack).has_resource_properties(
        "AWS::IAM::Policy",
        {
            "PolicyDocument": {
                "Statement": [
                    {
                        "Action": "signer:SignPayload",
                        "Effect": "Allow",
                        "Resource": {"Fn::GetAtt": [Match.string_like_regexp("^Profile"), "Arn"]},
                    }
                ]
            },
            "Roles": [{"Ref": Match.string_like_regexp("^Pusher")}],
        },
    )


def test_grant_revocation_check_names_the_profile_its_versions_and_signing_jobs(synthesized):
    # Given
    app, assembly, stack, _profile = synthesized
    # Then the statement names the profile, its versions and its signing jobs (no "*"), and the
    # app is still clean under cdk-nag
    policies = Template.from_stack(stack).find_resources("AWS::IAM::Policy")
    [statement] = [st for p in policies.values() for st in p["Properties"]["PolicyDocument"]["Statement"]
                   if st["Action"] == "signer:GetRevocationStatus"]
    rendered = json.dumps(statement["Resource"])
    assert len(statement["Resource"]) == 3 and '"*"' not in rendered
    assert ":/signing-jobs/*" in rendered and '"/*"' in rendered
    assert_clean(app, assembly)


def test_rules_render_profiles_and_filters(synthesized):
    _app, _assembly, stack, _profile = synthesized
    Template.from_stack(stack).has_resource_properties(
        "AWS::ECR::SigningConfiguration",
        {
            "Rules": [
                {
                    "SigningProfileArn": {"Fn::GetAtt": [Match.string_like_regexp("^Profile"), "Arn"]},
                    "RepositoryFilters": [{"Filter": "team-a/*", "FilterType": "WILDCARD_MATCH"}],
                },
                {"SigningProfileArn": PROFILE_ARN},
            ]
        },
    )


def test_imported_profile_takes_name_and_environment_from_its_arn():
    stack = new_stack(new_app())
    profile = NotationSigningProfile.from_signing_profile_arn(stack, "P", PROFILE_ARN)
    assert profile.signing_profile_name == "imported_profile"
    assert (profile.env.account, profile.env.region) == ("111111111111", "us-east-1")


def test_profile_imported_by_attributes_builds_the_profile_arn():
    stack = new_stack(new_app())
    profile = NotationSigningProfile.from_signing_profile_attributes(stack, "P", signing_profile_name="abc")
    assert stack.resolve(profile.signing_profile_arn) == {
        "Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":signer:us-east-1:111111111111:/signing-profiles/abc"]]
    }


# --- misuse -------------------------------------------------------------------------------------


def test_rejects_validity_when_it_exceeds_135_months():
    stack = new_stack(new_app())
    with pytest.raises(ValueError, match=r"signature_validity_months must be between 1 and 135 .*got 136"):
        NotationSigningProfile(stack, "P", signature_validity_months=136)


@pytest.mark.parametrize("name", ["a", "has-dash", "x" * 65, "spaces here"])
def test_rejects_profile_name_when_it_is_not_2_to_64_word_characters(name):
    stack = new_stack(new_app())
    with pytest.raises(ValueError, match=r"signing_profile_name must be 2 to 64 letters, digits or underscores"):
        NotationSigningProfile(stack, "P", signing_profile_name=name)


def test_rejects_profile_name_when_it_is_a_token():
    stack = new_stack(new_app())
    with pytest.raises(ValueError, match=r"signing_profile_name is a token .*pass a literal name"):
        NotationSigningProfile(stack, "P", signing_profile_name=stack.stack_id)


def test_rejects_import_when_the_profile_arn_is_a_token():
    stack = new_stack(new_app())
    profile = NotationSigningProfile(stack, "P")
    with pytest.raises(ValueError, match=r"signing_profile_arn is a token .*use NotationSigningProfile.from_signing_profile_attributes\(\)"):
        NotationSigningProfile.from_signing_profile_arn(stack, "I", profile.signing_profile_arn)


def test_rejects_import_when_given_a_profile_version_arn():
    stack = new_stack(new_app())
    with pytest.raises(ValueError, match=r"signing_profile_arn must be a profile ARN .*drop it"):
        NotationSigningProfile.from_signing_profile_arn(stack, "I", PROFILE_ARN + "/a1b2c3d4e5")


@pytest.mark.parametrize("bad", ["Team-A/*", "team a", "team//x", "", "x" * 257])
def test_rejects_repository_filter_when_it_is_not_an_ecr_name_pattern(bad):
    stack = new_stack(new_app())
    with pytest.raises(ValueError, match=r"a repository filter must be a lower-case repository name pattern"):
        SigningRule(profile=NotationSigningProfile(stack, "P"), repository_filters=[bad])


def test_rejects_repository_filters_when_given_a_string_instead_of_a_list():
    stack = new_stack(new_app())
    with pytest.raises(ValueError, match=r"repository_filters must be a list of strings, got the string 'team/\*'"):
        SigningRule(profile=NotationSigningProfile(stack, "P"), repository_filters="team/*")


def test_rejects_an_eleventh_rule_when_ten_are_declared():
    # Given ten rules
    stack = new_stack(new_app())
    profile = NotationSigningProfile(stack, "P")
    rules = RegistrySigningRules(
        stack, "Rules", rules=[SigningRule(profile=profile, repository_filters=[f"team{i}/*"]) for i in range(10)]
    )
    # When / Then
    with pytest.raises(ValueError, match=r"already hold 10 rules, the ECR maximum; merge rules"):
        rules.add_rule(SigningRule(profile=profile, repository_filters=["team10/*"]))


def test_rejects_profile_when_it_is_in_another_region():
    stack = new_stack(new_app())
    other = NotationSigningProfile.from_signing_profile_arn(
        stack, "Other", "arn:aws:signer:eu-west-1:111111111111:/signing-profiles/elsewhere"
    )
    with pytest.raises(ValueError, match=r"is in region eu-west-1 but the registry .* is in us-east-1; .*cannot sign across regions"):
        RegistrySigningRules(stack, "Rules", rules=[SigningRule(profile=other)])


def test_rejects_second_signing_configuration_when_both_target_one_environment():
    # Given two stacks in the same account and region, each with signing rules
    app = new_app()
    first, second = new_stack(app, "First"), new_stack(app, "Second")
    RegistrySigningRules(first, "Rules", rules=[SigningRule(profile=NotationSigningProfile(first, "P"))])
    RegistrySigningRules(second, "Rules", rules=[SigningRule(profile=NotationSigningProfile(second, "P"))])
    # When
    message = synth_error(app)
    # Then
    assert "Second/Rules and First/Rules both target account 111111111111, region us-east-1" in message
    assert "ECR keeps one signing configuration per registry" in message
    assert "add_rule() to First/Rules" in message


def test_accepts_one_signing_configuration_per_environment():
    # Given two accounts, one configuration each
    app = new_app()
    first = new_stack(app, "First")
    second = Stack(app, "Second", env=ENV_B)
    for stack in (first, second):
        RegistrySigningRules(stack, "Rules", rules=[SigningRule(profile=NotationSigningProfile(stack, "P"))])
    # When / Then: synth succeeds
    app.synth()


def test_rejects_signing_configuration_when_it_has_no_rule():
    app = new_app()
    RegistrySigningRules(new_stack(app), "Rules")
    assert "registry signing rules Stack/Rules have no rule; add_rule() at least one" in synth_error(app)


def test_rejects_two_environment_agnostic_signing_configurations():
    app = new_app()
    for name in ("A", "B"):
        stack = Stack(app, name, env=Environment())
        RegistrySigningRules(stack, "Rules", rules=[SigningRule(profile=NotationSigningProfile(stack, "P"))])
    assert "both target an environment-agnostic stack" in synth_error(app)


def test_rejects_signing_rules_when_a_raw_signing_configuration_targets_the_same_environment():
    # Regression: only other RegistrySigningRules were looked for, so an L1 CfnSigningConfiguration
    # declared later (here in another stack of the same account and region) went unnoticed.
    app = new_app()
    first, second = new_stack(app, "First"), new_stack(app, "Second")
    profile = NotationSigningProfile(first, "P")
    RegistrySigningRules(first, "Rules", rules=[SigningRule(profile=profile)])
    ecr.CfnSigningConfiguration(
        second, "Raw", rules=[ecr.CfnSigningConfiguration.RuleProperty(signing_profile_arn="arn:aws:signer:us-east-1:111111111111:/signing-profiles/other")]
    )
    message = synth_error(app)
    assert "registry signing rules First/Rules and Second/Raw both target account 111111111111, region us-east-1" in message
    assert "declare it once and add_rule() to First/Rules" in message
