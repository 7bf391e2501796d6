"""Attacks on the admission hook with real artifacts in the real test registry (issue 9).

Class 1 through the hook: someone who can push (but holds no trusted key) publishes an index whose
first entry is an unsigned image under a platform spelling containerd normalizes to the task's
platform (`x86_64`, `AMD64`, `Linux`, an empty `os`, `aarch64`), and whose second entry is a
signed image under the exact spelling. containerd runs the first; the hook must refuse the
revision, whether ECS gives the digest or only the tag (PRE_SCALE_UP).

Throttling through the hook: a registry that answers 429 with a `Retry-After` the deadline cannot
wait for makes the image `unavailable`; the hook defers with a `callBackDelay` that covers the
wait, bounded so that a hostile registry cannot park the deployment.
"""

from __future__ import annotations

import pytest

from image_verifier.oci import OCI_INDEX
from tests.runtime.handler.hook_support import StubbedEcs, admission_handler, hook_event
from tests.support.cosign_material import KeyPair, cosign_policy
from tests.support.fake_registry import Reply
from tests.support.images import index_json, push_image, push_manifest, unique_repository

from .cli_helpers import sign

pytestmark = pytest.mark.registry

AMD64_TASK = {"cpuArchitecture": "X86_64", "operatingSystemFamily": "LINUX"}
ARM64_TASK = {"cpuArchitecture": "ARM64", "operatingSystemFamily": "LINUX"}


@pytest.mark.parametrize(("platform", "spelling", "runtime_platform"), [
    ("linux/amd64", {"os": "linux", "architecture": "x86_64"}, AMD64_TASK),
    ("linux/amd64", {"os": "linux", "architecture": "AMD64"}, AMD64_TASK),
    ("linux/amd64", {"os": "Linux", "architecture": "amd64"}, AMD64_TASK),
    ("linux/amd64", {"os": "", "architecture": "amd64"}, AMD64_TASK),
    ("linux/arm64", {"os": "linux", "architecture": "aarch64"}, ARM64_TASK),
])
@pytest.mark.parametrize("ecs_gives_digest", [False, True])
def test_rejects_revision_when_an_unsigned_entry_precedes_the_signed_one_under_another_spelling(
        registry, key, key_file, platform, spelling, runtime_platform, ecs_gives_digest):
    # Given an unsigned image listed first under a spelling containerd normalizes to the task's platform,
    # and a signed image listed second under the exact spelling; the index itself is not signed
    repo = unique_repository("hostile")
    unsigned = push_image(registry, repo, None, layer_bytes=b"unsigned " + repr(spelling).encode(), platform=platform)
    signed = push_image(registry, repo, None, layer_bytes=b"signed " + repr(spelling).encode(), platform=platform)
    assert sign(registry.host, key_file, str(signed.ref)).code == 0
    raw = index_json([unsigned.descriptor(platform=spelling), signed.descriptor()])
    index = push_manifest(registry, repo, "hostile", raw, OCI_INDEX)
    ecs = StubbedEcs()
    ecs.revision([("app", str(index.tag_ref), index.digest if ecs_gives_digest else None)],
                 runtime_platform=runtime_platform)
    policy = cosign_policy({"ci": {"publicKeyPem": key.public_pem}}, images=f"{registry.host}/**")
    admission = admission_handler(policy, ecs, insecure_registries=[registry.host])
    # When ECS calls the hook for the revision
    response = admission.handle(hook_event())
    # Then it is refused, and the record names the unsigned manifest the runtime would run
    assert response == {"hookStatus": "FAILED"}
    [record] = admission.audit_records()
    [entry] = record["images"]
    assert entry["outcome"] == "rejected" and entry["digest"] == index.digest
    assert unsigned.digest in " ".join(entry["reasons"]) or entry["platformDigest"] == unsigned.digest
    assert record["reason"].startswith("app: rejected")


@pytest.mark.parametrize(("retry_after", "delay"), [("90", 90), ("1000000000", 300)])
def test_defers_for_as_long_as_a_throttling_registry_asks_up_to_the_bound(fake_registry, retry_after, delay):
    # Given a registry that answers every manifest request 429 with Retry-After longer than the deadline
    for method in ("GET", "HEAD"):
        fake_registry.route(method, "/v2/team/app/manifests/v1",
                            Reply(status=429, headers={"Retry-After": retry_after}, body=b"slow down"))
    image = f"{fake_registry.host}/team/app:v1"
    ecs = StubbedEcs()
    ecs.revision([("app", image, None)])
    policy = cosign_policy({"ci": {"publicKeyPem": KeyPair.generate().public_pem}}, images=f"{fake_registry.host}/**")
    admission = admission_handler(policy, ecs, insecure_registries=[fake_registry.host])
    # When ECS calls the hook
    response = admission.handle(hook_event())
    # Then it defers, asking ECS to call again no sooner than the registry asked (at most the bound)
    assert response["hookStatus"] == "IN_PROGRESS" and response["callBackDelay"] == delay
    record = admission.audit_records()[0]
    assert record["images"][0]["outcome"] == "unavailable"
    assert record["retryAfter"] >= delay and record["callBackDelay"] == delay  # (the client caps what it believes)
