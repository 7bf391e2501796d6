"""429/503: honour Retry-After while the deadline allows, back off with jitter, else fail at once (issue 13)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from image_verifier.deadline import Deadline
from image_verifier.errors import RegistryUnavailableError
from image_verifier.oci import OCI_MANIFEST
from image_verifier.reference import ImageReference
from image_verifier.registry import MAX_THROTTLE_ATTEMPTS, RegistryClient, RegistryThrottledError
from image_verifier.registry._retry import (
    BACKOFF_CAP_SECONDS,
    BACKOFF_INITIAL_SECONDS,
    MAX_RETRY_AFTER_SECONDS,
    backoff_seconds,
    parse_retry_after,
)
from tests.support.fake_registry import FakeRegistry, RecordedRequest, Reply
from tests.support.images import build_image, sha256_digest


class Answers:
    """Serves the given replies in order (the last one forever) and notes when each request came."""

    def __init__(self, *replies: Reply) -> None:
        self._replies = list(replies)
        self.times: list[float] = []

    def __call__(self, request: RecordedRequest) -> Reply:
        self.times.append(time.monotonic())
        return self._replies.pop(0) if len(self._replies) > 1 else self._replies[0]

    def gaps(self) -> list[float]:
        return [b - a for a, b in zip(self.times, self.times[1:], strict=False)]


def manifest_reply() -> tuple[Reply, str]:
    _, raw = build_image()
    return Reply(body=raw, headers={"Content-Type": OCI_MANIFEST}), sha256_digest(raw)


def throttled(retry_after: str | None = None, status: int = 429) -> Reply:
    return Reply(status=status, body=b"slow down", headers={"Retry-After": retry_after} if retry_after else {})


def resolve(fake: FakeRegistry, seconds: float):
    client = RegistryClient(insecure_registries={fake.host})
    return client.bound(Deadline.after(seconds)).resolve(ImageReference.parse(f"{fake.host}/app:v1"))


def http_date(seconds_from_now: float) -> str:
    return format_datetime(datetime.now(UTC) + timedelta(seconds=seconds_from_now), usegmt=True)


def test_waits_as_long_as_retry_after_says_when_the_deadline_allows(fake_registry):
    # Given: 429 with Retry-After: 1, then the manifest
    ok, digest = manifest_reply()
    answers = Answers(throttled("1"), ok)
    fake_registry.route("GET", "/v2/app/manifests/v1", answers)
    # When
    manifest = resolve(fake_registry, 10)
    # Then: the retry came no sooner than the registry asked
    assert manifest.digest == digest
    assert len(answers.times) == 2
    assert answers.gaps()[0] >= 1.0


def test_waits_until_an_http_date_retry_after_when_the_deadline_allows(fake_registry):
    # Given: Retry-After as an HTTP-date about two seconds ahead (whole seconds: at least one left)
    ok, digest = manifest_reply()
    answers = Answers(throttled(http_date(2.0), status=503), ok)
    fake_registry.route("GET", "/v2/app/manifests/v1", answers)
    # When
    manifest = resolve(fake_registry, 10)
    # Then
    assert manifest.digest == digest
    assert answers.gaps()[0] >= 0.9


def test_rejects_at_once_with_retry_after_when_waiting_would_pass_the_deadline(fake_registry):
    # Given: the registry asks for 30 s and the decision has 2 s
    answers = Answers(throttled("30"))
    fake_registry.route("GET", "/v2/app/manifests/v1", answers)
    started = time.monotonic()
    # When
    with pytest.raises(RegistryThrottledError, match="HTTP 429") as caught:
        resolve(fake_registry, 2.0)
    # Then: no wait was started, and the hook can ask ECS to call back after what the registry said
    assert time.monotonic() - started < 0.5
    assert caught.value.retry_after == 30.0
    assert isinstance(caught.value, RegistryUnavailableError)
    assert len(answers.times) == 1
    assert "Retry-After: 30 s" in str(caught.value) and "deadline" in str(caught.value)


def test_rejects_at_once_with_the_seconds_of_an_http_date_when_it_is_past_the_deadline(fake_registry):
    # Given
    fake_registry.route("GET", "/v2/app/manifests/v1", throttled(http_date(120)))
    # When / Then
    with pytest.raises(RegistryThrottledError, match="waiting would pass the verification deadline") as caught:
        resolve(fake_registry, 3.0)
    assert 117 <= caught.value.retry_after <= 120


def test_backs_off_exponentially_when_the_registry_keeps_answering_503_without_retry_after(fake_registry):
    # Given
    answers = Answers(throttled(status=503))
    fake_registry.route("GET", "/v2/app/manifests/v1", answers)
    # When
    with pytest.raises(RegistryThrottledError, match=f"HTTP 503: slow down to .* {MAX_THROTTLE_ATTEMPTS} times") as caught:
        resolve(fake_registry, 20)
    # Then: each pause is at least half of its doubling ceiling (equal jitter)
    assert len(answers.times) == MAX_THROTTLE_ATTEMPTS
    for attempt, gap in enumerate(answers.gaps()):
        assert gap >= BACKOFF_INITIAL_SECONDS * 2 ** attempt / 2
    assert caught.value.retry_after is None


def test_rejects_without_retrying_when_a_push_is_throttled(fake_registry):
    # Given: a PUT is not idempotent in general: never repeated behind the caller's back
    answers = Answers(throttled("1"))
    fake_registry.route("PUT", "/v2/app/manifests/v1", answers)
    session = RegistryClient(insecure_registries={fake_registry.host}).bound(Deadline.after(10))
    # When / Then
    with pytest.raises(RegistryThrottledError, match="retry later") as caught:
        session.put_manifest(ImageReference.parse(f"{fake_registry.host}/app:v1"), "v1", b"{}", OCI_MANIFEST)
    assert caught.value.retry_after == 1.0
    assert len(answers.times) == 1


@pytest.mark.parametrize(("value", "expected"), [
    ("5", 5.0), (" 7 ", 7.0), ("0", 0.0), ("99999999", MAX_RETRY_AFTER_SECONDS),
    ("soon", None), ("-3", None), ("1.5", None), ("", None), (None, None),
])
def test_reads_retry_after_as_delta_seconds_or_nothing(value, expected):
    # Given / When / Then: anything but delta-seconds or an HTTP-date is no hint at all
    assert parse_retry_after(value) == expected


def test_reads_retry_after_http_dates_relative_to_now_and_never_negative():
    # Given
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    # When / Then
    assert parse_retry_after("Thu, 01 Jan 2026 12:00:30 GMT", now=lambda: now) == 30.0
    assert parse_retry_after("Thu, 01 Jan 2026 11:00:00 GMT", now=lambda: now) == 0.0


def test_caps_the_backoff_and_keeps_it_between_half_and_all_of_its_ceiling():
    # Given / When
    lowest = [backoff_seconds(n, jitter=lambda low, high: low) for n in range(10)]
    highest = [backoff_seconds(n, jitter=lambda low, high: high) for n in range(10)]
    # Then
    assert highest[:3] == [BACKOFF_INITIAL_SECONDS, 2 * BACKOFF_INITIAL_SECONDS, 4 * BACKOFF_INITIAL_SECONDS]
    assert max(highest) == BACKOFF_CAP_SECONDS
    assert all(low == high / 2 for low, high in zip(lowest, highest, strict=True))
