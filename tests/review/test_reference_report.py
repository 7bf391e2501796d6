"""The reviewer's report on the reference app's cdk.out: every section present and correct.

Logical ids carry CDK hashes and other engineers change the constructs, so rows are found by
names and regular expressions, never by position or a whole-file snapshot.
"""

from __future__ import annotations

import re

import pytest
from image_verifier.review import build_report, gather_facts

from tests.review.report_helpers import NOW, row_with, sections

GITHUB_SUBJECTS = ("repo:example-org/signed-images-reference:ref:refs/heads/main",
                   "repo:example-org/signed-images-reference:environment:production")


@pytest.fixture(scope="module")
def report(reference_cdk_out) -> dict[str, str]:
    return sections(build_report(reference_cdk_out, now=NOW))


@pytest.fixture(scope="module")
def facts(reference_cdk_out):
    return gather_facts(reference_cdk_out, now=NOW)


def _key(facts, alias: str):
    [key] = [k for k in facts.keys if alias in k.aliases]
    return key


def test_report_has_every_section(report):
    # Then
    assert {"Who can sign", "Repositories and ECR signing rules", "ECS services", "Admission policies",
            "Break-glass path", "cdk-nag acknowledgements", "Trust flow"} <= set(report)


def test_only_the_named_ci_roles_can_sign_with_the_cosign_key(facts, report):
    # Given
    key = _key(facts, "alias/reference/cosign")
    # Then: both CI roles, named by logical id, pass the key policy and the explicit deny's exception
    signers = {s.role.ref.logical_id: s.verdict for s in key.signers}
    assert {re.sub(r"[0-9A-F]{8}$", "", k) for k in signers} == {"ImagesGitHubActionsRole", "ImagesCodeBuildRole"}
    assert set(signers.values()) == {"yes"}
    assert [d.sid for d in key.denies] == ["DenySignToEveryoneElse"]
    assert "aws:PrincipalArn" in key.denies[0].conditions[0]
    who = report["Who can sign"]
    assert "`kms:SigningAlgorithm` = `ECDSA_SHA_256`" in who
    assert re.search(r"DenySignToEveryoneElse: everyone \(`\*`\) unless ArnNotEquals `aws:PrincipalArn` = "
                     r"`ImagesGitHubActionsRole[0-9A-F]{8}`", who)


def test_retired_and_break_glass_keys_have_no_signer(facts):
    # Then
    key = _key(facts, "alias/reference/cosign-2024")
    assert key.signers == () and key.allows == ()
    assert [d.conditions for d in key.denies] == [()]
    # the break-glass key has one signer: the BreakGlassSigning workflow's signing function (issue 11)
    glass = _key(facts, "alias/break-glass/cosign")
    assert [s.role.ref.logical_id[:-8] for s in glass.signers] == ["BreakGlassSigningSignerRole"]


def test_github_role_trust_shows_the_sub_patterns_and_audience(report):
    # Given
    row = row_with(report["Who can sign"], "ImagesGitHubActionsRole", "OIDC provider")
    # Then
    assert "token.actions.githubusercontent.com" in row
    for subject in GITHUB_SUBJECTS:
        assert f"`{subject}` (StringEquals)" in row
    assert "`sts.amazonaws.com`" in row
    assert "kms:Sign" in row and "signer:SignPayload" in row and "ecr:PutImage" in row


def test_codebuild_role_trust_names_the_project(report):
    # Given
    row = row_with(report["Who can sign"], "ImagesCodeBuildRole", "codebuild.amazonaws.com")
    # Then
    assert "project/reference-image-build" in row and "`aws:SourceAccount` = `111111111111`" in row


def test_signing_profile_lists_who_may_sign_payloads(facts):
    # Given
    [profile] = facts.profiles
    # Then
    assert profile.platform == "Notation-OCI-SHA384-ECDSA"
    assert {re.sub(r"[0-9A-F]{8}$", "", r.ref.logical_id) for r, _ in profile.signers} == {
        "ImagesGitHubActionsRole", "ImagesCodeBuildRole"}


def test_both_repositories_are_signed_by_the_ecr_rule_with_the_reference_profile(facts, report):
    # Then
    repositories = {r.name: r for r in facts.repositories}
    assert set(repositories) == {"reference/app", "reference/worker"}
    for repository in repositories.values():
        [rule] = repository.rules
        assert rule.profile is not None and rule.profile.properties["ProfileName"] == "reference_images"
        assert set(rule.filters) == {"reference/app", "reference/worker"}
    section = report["Repositories and ECR signing rules"]
    assert "not signed on push" not in section
    assert "`reference/app`, `reference/worker`" in row_with(section, "(reference_images)", "| 1 |")


def test_the_sample_service_is_protected_before_scale_up_and_none_is_unprotected(facts, report):
    # Then
    [service] = facts.services
    assert service.protected and service.stages == ("PRE_SCALE_UP",)
    assert service.admission_hooks[0].admission.logical_id.startswith("Admission")
    section = report["ECS services"]
    assert "None: every ECS service is protected." in section
    assert re.search(r"`Service[0-9A-F]{8}` in SignedImagesAdmission .*\| PRE_SCALE_UP \|", section)


def test_admission_policy_resolves_its_signers_to_the_keys(facts, report):
    # Given
    [policy] = facts.policies
    signers = {s.name: s for s in policy.signers}
    # Then
    assert {n: (s.state, s.break_glass) for n, s in signers.items()}.items() >= {
        "CosignKey": ("active", False), "RetiredCosignKey": ("retired", False), "BreakGlassKey": ("active", True)}.items()
    assert [t.logical_id[:-8] for t in signers["CosignKey"].targets] == ["ImagesCosignKey"]
    assert signers["BreakGlassKey"].trusts == ("`<parameter BreakGlassKeyArn>`",)  # a deploy-time parameter
    assert "aws:asset:path" not in (policy.function.resource.get("Metadata") or {})  # found through the asset manifest
    [rule] = policy.rules
    assert set(rule.images) == {"111111111111.dkr.ecr.us-east-1.amazonaws.com/reference/app",
                                "111111111111.dkr.ecr.us-east-1.amazonaws.com/reference/worker"}
    assert policy.exemptions == ()
    section = report["Admission policies"]
    assert "failureMode `block`" in section and "`alias/reference/cosign`" in section


def test_break_glass_path_names_the_key_and_who_can_sign(report):
    # Given
    section = report["Break-glass path"]
    # Then
    assert re.search(r"`BreakGlassKey[0-9A-F]{8}` in SignedImagesBreakGlass", section)
    assert re.search(r"can sign: `BreakGlassSigningSignerRole[0-9A-F]{8}` in SignedImagesBreakGlass \(yes\)", section)
    assert "signer `BreakGlassKey` has breakGlass: true" in section


def test_nag_acknowledgements_carry_their_reasons_from_template_and_code(facts, report):
    # Then
    acknowledged = {(a.resource[:-8], a.rule): a for a in facts.acknowledgements if a.stack == "SignedImagesSigning"}
    github = acknowledged[("ImagesGitHubActionsRole", "AwsSolutions-IAM5[Resource::*]")]
    assert github.reason.startswith("ecr:GetAuthorizationToken supports no resource-level permission")
    assert set(github.where) == {"template", "code"}
    assert all(a.reason for a in facts.acknowledgements)
    assert "template metadata and in code (Validations.acknowledge)" in report["cdk-nag acknowledgements"]


def test_trust_flow_diagram_links_ci_key_registry_hook_and_service(report):
    # Given
    diagram = report["Trust flow"]
    nodes = {label: node for node, label in re.findall(r'^\s+(n\d+)\W+"([^"]+)"', diagram, re.MULTILINE)}
    edges = set(re.findall(r"(n\d+) -\.?->\|\"([^\"]+)\"\| (n\d+)", diagram))

    def node(pattern: str) -> str:
        [found] = [n for label, n in nodes.items() if re.fullmatch(pattern, label)]
        return found

    # Then
    assert "```mermaid" in diagram and "flowchart LR" in diagram
    role, key = node(r"CI: ImagesGitHubActionsRole\w+"), node("key: alias/reference/cosign")
    repo, hook, service = node("repo: reference/app"), node(r"admission hook: Admission\w+"), node(r"service: \w+")
    assert {(role, "kms:Sign", key), (role, "push", repo), (key, "trusted, active", hook),
            (repo, "images checked", hook), (hook, "PRE_SCALE_UP", service)} <= edges
