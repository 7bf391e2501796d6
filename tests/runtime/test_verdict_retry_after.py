"""A throttling registry's Retry-After reaches the verdict, so the hook can call back no sooner."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from image_verifier.cosign.keys import CosignKeyResolver
from image_verifier.deadline import Deadline
from image_verifier.policy import Policy
from image_verifier.registry import RegistryThrottledError
from image_verifier.verdict import Outcome
from image_verifier.verifier import ImageRequest, ImageVerifier
from tests.support.cosign_material import KeyPair, cosign_policy

NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)
IMAGE = "ruled.example.com/app@sha256:" + "a" * 64


class _Throttling:
    """A registry that answers every call as a registry past its rate limit would."""

    def __init__(self, retry_after: float | None) -> None:
        self.retry_after = retry_after

    def bound(self, deadline: Deadline) -> _Throttling:
        return self

    def __getattr__(self, name: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            raise RegistryThrottledError(f"429 Too Many Requests ({name})", retry_after=self.retry_after)

        return call


def _verdict(retry_after: float | None):
    policy = Policy.from_json(cosign_policy({"ci": {"publicKeyPem": KeyPair.generate().public_pem}},
                                            images="ruled.example.com/**"))
    verifier = ImageVerifier(policy, registry=_Throttling(retry_after), cosign_keys=CosignKeyResolver(),
                             clock=lambda: NOW)
    [verdict] = verifier.decide([ImageRequest(image=IMAGE)], deadline=Deadline.after(5.0)).verdicts
    return verdict


def test_unavailable_verdict_carries_the_registrys_retry_after():
    # When the registry throttles and names a wait
    verdict = _verdict(12.0)
    # Then the verdict is unavailable and says how long to wait
    assert verdict.outcome is Outcome.UNAVAILABLE
    assert verdict.retry_after == 12.0


def test_unavailable_verdict_without_a_named_wait_has_no_retry_after():
    assert _verdict(None).retry_after is None
