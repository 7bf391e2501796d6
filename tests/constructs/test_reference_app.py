"""The reference app meets issue 2's acceptance: the signing resources exist, and it is clean."""

from __future__ import annotations

from aws_cdk.assertions import Match, Template

from tests.constructs.checks import assert_clean, resources


def _template(reference_app, name: str) -> Template:
    app, _assembly = reference_app
    return Template.from_stack(app.node.find_child(name))


def test_reference_app_is_clean_under_cdk_nag_and_cfn_lint(reference_app):
    # Given the synthesized reference app
    app, assembly = reference_app
    # Then
    assert {s.stack_name for s in assembly.stacks} == {"SignedImagesSigning", "SignedImagesBreakGlass", "SignedImagesAdmission"}
    assert_clean(app, assembly)


def test_signing_stack_has_notation_profile_and_signing_rules(reference_app):
    # Given
    template = _template(reference_app, "SignedImagesSigning")
    # Then
    template.has_resource_properties(
        "AWS::Signer::SigningProfile",
        {"PlatformId": "Notation-OCI-SHA384-ECDSA", "SignatureValidityPeriod": {"Type": "MONTHS", "Value": 135}},
    )
    template.resource_count_is("AWS::ECR::SigningConfiguration", 1)
    template.has_resource_properties(
        "AWS::ECR::SigningConfiguration",
        {
            "Rules": [
                {
                    "SigningProfileArn": {"Fn::GetAtt": [Match.string_like_regexp("^ImagesSigningProfile"), "Arn"]},
                    "RepositoryFilters": [
                        {"Filter": "reference/app", "FilterType": "WILDCARD_MATCH"},
                        {"Filter": "reference/worker", "FilterType": "WILDCARD_MATCH"},
                    ],
                }
            ]
        },
    )


def test_signing_stack_repositories_are_immutable_and_scanned(reference_app):
    # Given
    template = _template(reference_app, "SignedImagesSigning")
    # Then
    template.resource_count_is("AWS::ECR::Repository", 2)
    template.all_resources_properties(
        "AWS::ECR::Repository",
        {
            "ImageScanningConfiguration": {"ScanOnPush": True},
            "ImageTagMutability": "IMMUTABLE_WITH_EXCLUSION",
            "ImageTagMutabilityExclusionFilters": [
                {"ImageTagMutabilityExclusionFilterType": "WILDCARD", "ImageTagMutabilityExclusionFilterValue": "sha256-*"}
            ],
        },
    )


def test_signing_stack_has_p256_sign_verify_keys_retained(reference_app):
    # Given
    template = _template(reference_app, "SignedImagesSigning")
    # Then
    template.resource_count_is("AWS::KMS::Key", 2)
    template.all_resources(
        "AWS::KMS::Key",
        {
            "Properties": Match.object_like({"KeySpec": "ECC_NIST_P256", "KeyUsage": "SIGN_VERIFY"}),
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
        },
    )
    template.has_resource_properties("AWS::KMS::Alias", {"AliasName": "alias/reference/cosign"})


def test_github_role_trust_is_bound_to_the_repository(reference_app):
    # Given
    template = _template(reference_app, "SignedImagesSigning")
    # Then
    template.resource_count_is("AWS::IAM::OIDCProvider", 1)
    template.has_resource_properties(
        "AWS::IAM::Role",
        {
            "AssumeRolePolicyDocument": {
                "Statement": [
                    {
                        "Action": "sts:AssumeRoleWithWebIdentity",
                        "Effect": "Allow",
                        "Principal": {"Federated": {"Ref": Match.string_like_regexp("OidcProvider")}},
                        "Condition": {
                            "StringEquals": {
                                "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
                                "token.actions.githubusercontent.com:sub": [
                                    "repo:example-org/signed-images-reference:ref:refs/heads/main",
                                    "repo:example-org/signed-images-reference:environment:production",
                                ],
                            }
                        },
                    }
                ]
            }
        },
    )


def test_break_glass_key_lives_alone_in_its_own_account(reference_app):
    # Given
    app, assembly = reference_app
    stack = assembly.get_stack_by_name("SignedImagesBreakGlass")
    # Then
    assert stack.environment.account == "222222222222"
    # the key and its two-person workflow (issue 11); the workflow's signing function is the only signer
    assert {"AWS::KMS::Key", "AWS::KMS::Alias", "AWS::StepFunctions::StateMachine"} <= {
        r["Type"] for r in stack.template["Resources"].values()}
    key = next(iter(resources(stack.template, "AWS::KMS::Key").values()))
    assert key["Properties"]["KeySpec"] == "ECC_NIST_P256"
    assert "break-glass" in key["Properties"]["Description"]


def test_reference_ci_roles_push_and_so_sign_through_the_profile_and_the_admission_account_reads_the_key(reference_app):
    # Given the signing stack of the reference app (ECR managed signing signs with the pusher's identity)
    app, assembly = reference_app
    template = assembly.get_stack_by_name("SignedImagesSigning").template
    profile_id = next(iter(resources(template, "AWS::Signer::SigningProfile")))
    granted = {}
    for policy in resources(template, "AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            for role in policy["Properties"]["Roles"]:
                granted.setdefault(role["Ref"], []).append((actions, statement["Resource"]))
    # Then each CI role may push to the repositories and call signer:SignPayload on the chain's profile
    ci_roles = [r for r in granted if "GitHubActionsRole" in r or "CodeBuildRole" in r]
    assert len(ci_roles) == 2
    for role in ci_roles:
        assert any("ecr:PutImage" in actions for actions, _ in granted[role])
        assert (["signer:SignPayload"], {"Fn::GetAtt": [profile_id, "Arn"]}) in granted[role]
    # and the policies of the cosign key and the retired key let the admission account read their public keys
    # (the key policies do not delegate to IAM, so the hook's own permission would not be enough)
    keys = resources(template, "AWS::KMS::Key").values()
    assert len(keys) == 2
    for key in keys:
        assert any("kms:GetPublicKey" in s["Action"] and "111111111111" in str(s["Principal"])
                   for s in key["Properties"]["KeyPolicy"]["Statement"] if s["Effect"] == "Allow")
