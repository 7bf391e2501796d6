"""Issue 9, class 4a: the rule (and exemption) lookup comes before any registry call.

An image that no rule and no exemption names is rejected without contacting its registry: a
registry that does not answer must not turn "no rule" into `unavailable`, which
`unavailableMode: audit` would admit, and the Lambda must never contact hosts the policy does not name.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from image_verifier.cosign.keys import CosignKeyResolver
from image_verifier.deadline import Deadline
from image_verifier.errors import RegistryUnavailableError
from image_verifier.policy import Policy
from image_verifier.verdict import Outcome
from image_verifier.verifier import ImageRequest, ImageVerifier
from tests.support.cosign_material import KeyPair, cosign_policy

NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)
DIGEST = "sha256:" + "a" * 64
OTHER_DIGEST = "sha256:" + "b" * 64


class _DownAndCounting:
    """A registry that records every call and answers none of them (as an unreachable host would)."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def bound(self, deadline: Deadline) -> _DownAndCounting:
        return self

    def __getattr__(self, name: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            raise RegistryUnavailableError(f"registry did not answer ({name})")

        return call


def _policy(*, exemptions: list[dict[str, Any]] | None = None, unavailable_mode: str = "audit") -> Policy:
    document = cosign_policy({"ci": {"publicKeyPem": KeyPair.generate().public_pem}}, images="ruled.example.com/**")
    document["unavailableMode"] = unavailable_mode
    if exemptions:
        document["exemptions"] = exemptions
    return Policy.from_json(document)


def _decide(policy: Policy, request: ImageRequest) -> tuple[Any, _DownAndCounting]:
    registry = _DownAndCounting()
    verifier = ImageVerifier(policy, registry=registry, cosign_keys=CosignKeyResolver(), clock=lambda: NOW)
    return verifier.decide([request], deadline=Deadline.after(5.0)), registry


@pytest.mark.parametrize("image", ["unruled.example.com/app:v1", f"unruled.example.com/app@{DIGEST}",
                                   "ruled.example.com.evil.io/app:v1", "nginx:latest"])
def test_rejects_image_without_any_registry_request_when_no_rule_or_exemption_names_it(image):
    # Given a policy whose unavailableMode is audit, and a registry that would not answer
    policy = _policy(unavailable_mode="audit")
    # When an image that no rule names is verified
    decision, registry = _decide(policy, ImageRequest(image=image))
    # Then it is rejected before any registry call, and the audit mode for outages does not admit it
    [verdict] = decision.verdicts
    assert registry.calls == []
    assert verdict.outcome is Outcome.REJECTED, verdict
    assert "no rule matches" in verdict.reasons[0]
    assert "add a rule (or an exemption)" in verdict.reasons[0]
    assert not decision.admitted


def test_rejects_image_without_registry_request_when_ecs_digest_is_not_the_one_exemption_pins():
    # Given an exemption pinning one digest, and ECS running another digest of that repository
    future = (NOW + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    policy = _policy(exemptions=[{"images": ["vendor.example.com/agent"], "digests": [DIGEST],
                                  "reason": "TICKET-1: vendor agent, owner platform", "expires": future}])
    # When it is verified
    decision, registry = _decide(policy, ImageRequest(image="vendor.example.com/agent:v1", digest=OTHER_DIGEST))
    # Then no exemption can cover it, so nothing is fetched and it is rejected
    assert registry.calls == []
    assert decision.verdicts[0].outcome is Outcome.REJECTED


def test_rejects_image_without_registry_request_when_its_only_exemption_has_expired():
    past = (NOW - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    policy = _policy(exemptions=[{"images": ["vendor.example.com/agent"], "reason": "TICKET-2: expired, owner x",
                                  "expires": past}])
    decision, registry = _decide(policy, ImageRequest(image="vendor.example.com/agent:v1"))
    assert registry.calls == []
    assert decision.verdicts[0].outcome is Outcome.REJECTED


def test_contacts_registry_when_an_exemption_pinning_digests_names_the_image_by_tag():
    # Given an exemption that pins digests: only the registry can say what the tag is
    future = (NOW + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    policy = _policy(exemptions=[{"images": ["vendor.example.com/agent"], "digests": [DIGEST],
                                  "reason": "TICKET-3: vendor agent, owner platform", "expires": future}])
    # When the tag is verified and the registry does not answer
    decision, registry = _decide(policy, ImageRequest(image="vendor.example.com/agent:v1"))
    # Then the registry the exemption names was asked, and the outcome is honestly unavailable
    assert registry.calls == ["resolve"]
    assert decision.verdicts[0].outcome is Outcome.UNAVAILABLE


def test_contacts_registry_when_a_rule_names_the_image():
    decision, registry = _decide(_policy(unavailable_mode="block"), ImageRequest(image="ruled.example.com/app:v1"))
    assert registry.calls == ["resolve"]
    assert decision.verdicts[0].outcome is Outcome.UNAVAILABLE
    assert not decision.admitted


def test_exempts_image_with_a_warning_when_an_exemption_without_digests_names_it_and_the_registry_is_down():
    # Given an exemption for a repository (no pinned digests), and a registry that does not answer
    future = (NOW + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    policy = _policy(exemptions=[{"images": ["vendor.example.com/agent"], "reason": "TICKET-4: vendor agent, owner x",
                                  "expires": future}], unavailable_mode="block")
    # When its tag is verified
    decision, registry = _decide(policy, ImageRequest(image="vendor.example.com/agent:v1"))
    # Then it is exempt, and the verdict warns that nobody knows which digest ran
    [verdict] = decision.verdicts
    assert registry.calls == ["resolve"]
    assert verdict.outcome is Outcome.EXEMPT and decision.admitted and decision.admitted_with_warnings == 1
    assert verdict.warnings and verdict.warnings[0].startswith("admitted without knowing which digest runs")
