"""The reference app's admission stack: a BLUE_GREEN Fargate service behind the hook, clean for reviewers."""

from __future__ import annotations

import json

from image_verifier.policy import Policy
from tests.constructs.checks import lint_errors, nag_findings, resources


def _stack(reference_app):
    app, assembly = reference_app
    return app, assembly.get_stack_by_name("SignedImagesAdmission").template


def test_reference_service_is_blue_green_and_protected_at_pre_scale_up(reference_app):
    _, template = _stack(reference_app)
    [service] = resources(template, "AWS::ECS::Service").values()
    config = service["Properties"]["DeploymentConfiguration"]
    assert config["Strategy"] == "BLUE_GREEN"
    [hook] = config["LifecycleHooks"]
    assert hook["LifecycleStages"] == ["PRE_SCALE_UP"]
    [function_id] = [f for f in resources(template, "AWS::Lambda::Function") if f.startswith("Admission")]
    assert hook["HookTargetArn"] == {"Fn::GetAtt": [function_id, "Arn"]}


def test_reference_task_runs_an_image_of_the_signed_repository_on_arm64(reference_app):
    _, template = _stack(reference_app)
    [task] = resources(template, "AWS::ECS::TaskDefinition").values()
    assert task["Properties"]["RuntimePlatform"]["CpuArchitecture"] == "ARM64"
    image = json.dumps(task["Properties"]["ContainerDefinitions"][0]["Image"])
    assert "ImportValue" in image and ":1.0.0" in image  # the signing stack's repository, by tag


def test_reference_policy_trusts_the_cosign_retired_and_break_glass_keys(reference_app):
    app, _ = reference_app
    stack = app.node.find_child("SignedImagesAdmission")
    built = stack.admission.policy
    policy = Policy.from_json(built.document, environ=built.placeholders)
    states = {s.name: (s.trust.state.value, s.trust.break_glass) for s in policy.trusted_signers
              if s.kind.value == "cosignKey"}
    assert states == {"CosignKey": ("active", False), "RetiredCosignKey": ("retired", False),
                      "BreakGlassKey": ("active", True)}


def test_reference_policy_trusts_the_chains_aws_signer_profile_with_the_shipped_root(reference_app):
    # Given the reference app, whose admission controller trusts the signing stack's supply chain
    app, assembly = reference_app
    built = app.node.find_child("SignedImagesAdmission").admission.policy
    [aws] = [s for s in built.document["trustedSigners"] if "awsSigner" in s]
    # Then the profile ARN travels as a deploy-time variable that imports the signing stack's profile,
    # and no certificate is written: the verifier uses the shipped, pinned AWS Signer root
    [ref] = aws["awsSigner"]["signingProfileArns"]
    template = assembly.get_stack_by_name("SignedImagesAdmission").template
    [function] = [f for i, f in resources(template, "AWS::Lambda::Function").items() if i.startswith("Admission")]
    value = function["Properties"]["Environment"]["Variables"][ref["fromEnv"]]
    assert "SigningProfile" in json.dumps(value) and "Fn::ImportValue" in json.dumps(value)
    assert set(aws["awsSigner"]) == {"signingProfileArns", "revocationCheck"}
    assert aws["awsSigner"]["revocationCheck"] is True


def test_reference_admission_stack_is_clean_under_cdk_nag_and_cfn_lint(reference_app):
    app, template = _stack(reference_app)
    assert [f for f in nag_findings(app) if f.split(" at ")[1].startswith("SignedImagesAdmission/")] == []
    assert lint_errors(template) == []
