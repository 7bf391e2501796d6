"""The reviewer's report on a small user-style app: a named CI role, an exemption, an unprotected service."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from image_verifier.review import build_report, gather_facts

from tests.review import user_app
from tests.review.report_helpers import NOW, row_with, sections


@pytest.fixture(scope="module")
def report(user_cdk_out) -> dict[str, str]:
    return sections(build_report(user_cdk_out, now=NOW))


@pytest.fixture(scope="module")
def facts(user_cdk_out):
    return gather_facts(user_cdk_out, now=NOW)


def test_named_ci_role_can_sign_and_its_github_sub_pattern_is_shown(facts, report):
    # Given
    [key] = facts.keys
    # Then
    assert key.aliases == (user_app.KEY_ALIAS,)
    assert [(s.role.ref.properties.get("RoleName"), s.verdict) for s in key.signers] == [(user_app.ROLE_NAME, "yes")]
    row = row_with(report["Who can sign"], f"({user_app.ROLE_NAME})", "OIDC provider")
    assert f"`{user_app.SUB_PATTERN}` (StringLike)" in row  # StringLike: the * is a wildcard
    assert "`sts.amazonaws.com` (StringEquals)" in row
    assert "kms:Sign" in row and "ecr:PutImage" in row


def test_repository_without_signing_rule_is_reported_as_not_signed_on_push(report):
    # Given
    section = report["Repositories and ECR signing rules"]
    # Then
    assert "No `AWS::ECR::SigningConfiguration`" in section
    assert "**not signed on push**" in row_with(section, f"`{user_app.REPOSITORY}`")


def test_protected_and_unprotected_services_are_told_apart(facts, report):
    # Then
    by_name = {re.sub(r"Service[0-9A-F]{8}$", "", s.ref.logical_id): s for s in facts.services}
    assert by_name["Checkout"].protected and by_name["Checkout"].stages == ("PRE_SCALE_UP",)
    assert not by_name["Reports"].protected and by_name["Reports"].hooks == ()
    section = report["ECS services"]
    protected, _, unprotected = section.partition("### NOT protected")
    assert re.search(r"`CheckoutService[0-9A-F]{8}` in PaymentsStack .*\| PRE_SCALE_UP \|", protected)
    assert "ReportsService" not in protected
    assert re.search(r"`ReportsService[0-9A-F]{8}` in PaymentsStack .*\| no lifecycle hook \|", unprotected)
    assert f"/{user_app.REPOSITORY}:2.0.0" in unprotected


def test_exemption_is_listed_with_reason_and_expiry(facts, report):
    # Given
    [policy] = facts.policies
    [exemption] = policy.exemptions
    # Then
    assert "aws:asset:path" in policy.function.resource["Metadata"]  # found the way a CLI synth records it
    assert exemption.images == (user_app.EXEMPT_IMAGE,)
    assert exemption.reason == user_app.EXEMPTION_REASON
    assert exemption.expires == user_app.EXEMPTION_EXPIRES and exemption.expired is False
    row = row_with(report["Admission policies"], user_app.EXEMPT_IMAGE)
    assert user_app.EXEMPTION_REASON in row and user_app.EXEMPTION_EXPIRES in row and "| active |" in row


def test_exemption_past_its_expiry_is_reported_as_expired(user_cdk_out):
    # Given: the same assembly, read the day after the exemption ended
    later = datetime(2031, 7, 1, tzinfo=UTC)
    # When
    section = sections(build_report(user_cdk_out, now=later))["Admission policies"]
    # Then
    assert "EXPIRED (no longer exempt)" in row_with(section, user_app.EXEMPT_IMAGE)


def test_admission_policy_trusts_the_key_by_its_logical_id_and_alias(report):
    # Given
    row = row_with(report["Admission policies"], "| PaymentsKey |")
    # Then
    assert re.search(r"`PaymentsKey[0-9A-F]{8}` in PaymentsStack", row) and f"`{user_app.KEY_ALIAS}`" in row
    assert "333333333333.dkr.ecr.eu-west-1.amazonaws.com/payments/api" in report["Admission policies"]


def test_acknowledgement_applied_in_code_is_reported_with_its_reason(facts, report):
    # Then: this app does not write suppressions to the template; the reason comes from the metadata
    [ack] = [a for a in facts.acknowledgements if a.reason == user_app.ROLE_ACK_REASON]
    assert ack.where == ("code",) and ack.rule == "AwsSolutions-IAM5[Resource::*]"
    assert re.fullmatch(r"CiRole[0-9A-F]{8}", ack.resource)
    assert "in code (Validations.acknowledge)" in row_with(report["cdk-nag acknowledgements"], user_app.ROLE_ACK_REASON)


def test_no_break_glass_key_is_said_plainly(report):
    # Then
    assert "No break-glass key" in report["Break-glass path"]


def test_trust_flow_draws_the_unprotected_service_dashed(report):
    # Given
    diagram = report["Trust flow"]
    [reports_node] = re.findall(r'^\s+(n\d+)\["service: ReportsService\w+"\]', diagram, re.MULTILINE)
    # Then
    assert re.search(rf'-\.->\|"no hook"\| {reports_node}$', diagram, re.MULTILINE)
    assert re.search(rf"^\s+class .*\b{reports_node}\b.* unprotected$", diagram, re.MULTILINE)
