"""The warm verdict cache and the ECS revision reader (botocore Stubber, documented shapes)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from image_verifier.errors import AwsUnavailableError
from image_verifier.aws_errors import AwsRefusedError
from image_verifier.handler.cache import VerdictCache
from image_verifier.handler.ecs import RevisionReader
from image_verifier.platform import Platform
from image_verifier.verdict import Outcome, Verdict
from tests.runtime.handler.hook_support import REVISION_ARN, TASK_DEFINITION_ARN, StubbedEcs

DIGEST = "sha256:" + "ab" * 32
ARM = Platform(os="linux", architecture="arm64")


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def _verdict(outcome: Outcome, image: str = "registry.example.com/app:v1", digest: str | None = DIGEST) -> Verdict:
    return Verdict(image=image, digest=digest, outcome=outcome, reasons=("because",))


def test_cache_returns_a_final_verdict_until_it_expires_under_the_new_tag():
    clock = Clock()
    cache = VerdictCache(ttl=300, rejection_ttl=30, max_entries=10, clock=clock)
    cache.put(_verdict(Outcome.VERIFIED), ARM, "sha256:policy")
    hit = cache.get("registry.example.com/app:v2", DIGEST, ARM, "sha256:policy")
    assert hit is not None and hit.image == "registry.example.com/app:v2" and hit.outcome is Outcome.VERIFIED
    clock.now = 301
    assert cache.get("registry.example.com/app:v2", DIGEST, ARM, "sha256:policy") is None


def test_cache_forgets_a_verdict_when_its_exemption_or_key_window_ends_before_the_ttl():
    # Given an exempt verdict whose exemption ends in 10 s, with a 300 s TTL
    clock = Clock()
    wall = datetime(2027, 1, 1, tzinfo=timezone.utc)
    cache = VerdictCache(ttl=300, rejection_ttl=30, max_entries=10, clock=clock, wall_clock=lambda: wall)
    exempt = replace(_verdict(Outcome.EXEMPT), valid_until=wall + timedelta(seconds=10))
    cache.put(exempt, ARM, "p")
    # When 9 s have passed it is still reused; Then at 10 s it is gone
    clock.now = 9
    assert cache.get("registry.example.com/app:v1", DIGEST, ARM, "p") is not None
    clock.now = 10
    assert cache.get("registry.example.com/app:v1", DIGEST, ARM, "p") is None
    # And a verdict already past its end is never stored
    cache.put(replace(exempt, valid_until=wall - timedelta(seconds=1)), ARM, "p")
    assert cache.get("registry.example.com/app:v1", DIGEST, ARM, "p") is None


def test_cache_keeps_rejections_briefly_and_unavailable_never():
    clock = Clock()
    cache = VerdictCache(ttl=300, rejection_ttl=30, max_entries=10, clock=clock)
    cache.put(_verdict(Outcome.REJECTED), ARM, "p")
    cache.put(_verdict(Outcome.UNAVAILABLE, image="registry.example.com/other:v1"), ARM, "p")
    assert len(cache) == 1
    clock.now = 31
    assert cache.get("registry.example.com/app:v1", DIGEST, ARM, "p") is None


def test_cache_misses_on_another_policy_platform_repository_or_a_tag_only_request():
    cache = VerdictCache(ttl=300, rejection_ttl=30, max_entries=10)
    cache.put(_verdict(Outcome.VERIFIED), ARM, "p")
    assert cache.get("registry.example.com/app:v1", DIGEST, ARM, "q") is None
    assert cache.get("registry.example.com/app:v1", DIGEST, Platform(os="linux", architecture="amd64"), "p") is None
    assert cache.get("registry.example.com/other:v1", DIGEST, ARM, "p") is None
    assert cache.get("registry.example.com/app:v1", None, ARM, "p") is None


def test_cache_misses_when_the_reference_pins_another_digest_than_ecs_runs():
    # Given a verified verdict for DIGEST
    cache = VerdictCache(ttl=300, rejection_ttl=30, max_entries=10)
    cache.put(_verdict(Outcome.VERIFIED), ARM, "p")
    # When a task definition pins another digest but ECS says it runs DIGEST
    pinned = "registry.example.com/app@sha256:" + "cd" * 32
    # Then the cache does not answer: the verifier refuses that mismatch, and the cache must agree
    assert cache.get(pinned, DIGEST, ARM, "p") is None
    assert cache.get("registry.example.com/app@" + DIGEST, DIGEST, ARM, "p") is not None


def test_cache_is_bounded():
    cache = VerdictCache(ttl=300, rejection_ttl=30, max_entries=2)
    for n in range(5):
        cache.put(_verdict(Outcome.VERIFIED, image=f"registry.example.com/app{n}:v1"), ARM, "p")
    assert len(cache) == 2


def test_reads_images_and_platform_and_caches_the_task_definition():
    ecs = StubbedEcs()
    ecs.revision([("app", "registry.example.com/app:v1", DIGEST), ("sidecar", "registry.example.com/s:v1", None)],
                 runtime_platform={"cpuArchitecture": "ARM64", "operatingSystemFamily": "LINUX"})
    ecs.revision([("app", "registry.example.com/app:v1", DIGEST)], describe_task_definition=False)
    reader = RevisionReader(lambda region: ecs.client)
    first = reader.read(REVISION_ARN, "us-east-1")
    assert first.platform == ARM and first.task_definition == TASK_DEFINITION_ARN
    assert [(i.container_name, i.digest) for i in first.images] == [("app", DIGEST), ("sidecar", None)]
    assert reader.read(REVISION_ARN, "us-east-1").platform == ARM  # no second DescribeTaskDefinition
    ecs.stubber.assert_no_pending_responses()


def test_reads_every_container_of_the_task_definition_even_when_the_revision_lists_fewer():
    # Given a revision whose containerImages leaves out a container its task definition runs
    ecs = StubbedEcs()
    ecs.revision([("app", "registry.example.com/app:v1", DIGEST)],
                 task_containers=[("app", "registry.example.com/app:v1"), ("sidecar", "registry.example.com/s:v1")])
    # When it is read
    revision = RevisionReader(lambda region: ecs.client).read(REVISION_ARN, "us-east-1")
    # Then the left-out container is verified too (by tag: ECS gave no digest for it)
    assert [(i.container_name, i.image, i.digest) for i in revision.images] == [
        ("app", "registry.example.com/app:v1", DIGEST), ("sidecar", "registry.example.com/s:v1", None)]


def test_reads_windows_tasks_as_windows_amd64():
    ecs = StubbedEcs()
    ecs.revision([("app", "registry.example.com/app:v1", DIGEST)],
                 runtime_platform={"cpuArchitecture": "X86_64", "operatingSystemFamily": "WINDOWS_SERVER_2022_CORE"})
    assert str(RevisionReader(lambda region: ecs.client).read(REVISION_ARN, "us-east-1").platform) == "windows/amd64"


@pytest.mark.parametrize(("queue", "message"), [
    ("missing", "did not describe"),
    ("error", "ThrottlingException: Rate exceeded"),
])
def test_reports_ecs_failures_as_unavailable(queue, message):
    ecs = StubbedEcs()
    getattr(ecs, queue)()
    with pytest.raises(AwsUnavailableError, match=message):
        RevisionReader(lambda region: ecs.client).read(REVISION_ARN, "us-east-1")


def test_rejects_revision_read_naming_the_code_when_ecs_denies_access():
    # Given a role without ecs:DescribeServiceRevisions: asking again will get the same answer
    ecs = StubbedEcs()
    ecs.error("AccessDeniedException", "not authorized to perform: ecs:DescribeServiceRevisions")
    # When / Then the read is refused (FAILED in every mode), not judged unavailable
    with pytest.raises(AwsRefusedError, match="AccessDeniedException: not authorized .*grant the admission"):
        RevisionReader(lambda region: ecs.client).read(REVISION_ARN, "us-east-1")
