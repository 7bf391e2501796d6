"""The verifier's orchestration: deadlines, error classes, index handling."""

from __future__ import annotations

import time
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError

from image_verifier.cosign.keys import CosignKeyResolver
from image_verifier.deadline import Deadline
from image_verifier.errors import RegistryUnavailableError
from image_verifier.oci import OCI_INDEX, OCI_MANIFEST, Manifest
from image_verifier.platform import Platform
from image_verifier.policy import Policy
from image_verifier.verdict import Outcome
from image_verifier.verifier import ImageRequest, ImageVerifier
from tests.support.cosign_material import KeyPair, cosign_policy
from tests.support.images import canonical_json, push_image, sha256_digest, unique_repository

KMS_ARN = "arn:aws:kms:us-east-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab"
STALL_SECONDS = 4.0


class _StalledKms:
    """A KMS client stuck in a call that ignores the decision's deadline (botocore's own timeouts)."""

    def get_public_key(self, *, KeyId: str) -> dict[str, Any]:
        time.sleep(STALL_SECONDS)
        raise EndpointConnectionError(endpoint_url="https://kms.us-east-1.amazonaws.com")


@pytest.mark.parametrize("count", [1, 3])
def test_reports_unavailable_within_deadline_when_a_kms_call_overruns_it(registry, registry_client, count):
    # Given images whose rule needs a KMS key, and a KMS that does not answer
    repo = unique_repository()
    images = [push_image(registry, repo, f"v{i}", layer_bytes=f"kms{i}".encode()) for i in range(count)]
    policy = Policy.from_json(cosign_policy({"ci": {"kmsKeyArn": KMS_ARN}}, images=f"{registry.host}/**"))
    verifier = ImageVerifier(policy, registry=registry_client,
                             cosign_keys=CosignKeyResolver(lambda region: _StalledKms()))
    # When they are verified with one second
    started = time.monotonic()
    decision = verifier.decide([ImageRequest(image=str(i.ref)) for i in images], deadline=Deadline.after(1.0))
    elapsed = time.monotonic() - started
    # Then the decision comes in time, each image unavailable, and none admitted
    assert elapsed < 2.5, elapsed
    assert [v.outcome for v in decision.verdicts] == [Outcome.UNAVAILABLE] * count
    assert all("deadline" in v.reasons[0] for v in decision.verdicts)
    assert [v.image for v in decision.verdicts] == [str(i.ref) for i in images]
    assert not decision.admitted


def _manifest(document: dict[str, Any]) -> Manifest:
    raw = canonical_json(document)
    return Manifest.parse(digest=sha256_digest(raw), raw=raw, content_type=None)


class _IndexThenOutage:
    """A registry that serves one index, then fails every other read as unreachable."""

    def __init__(self, index: Manifest) -> None:
        self.index = index

    def bound(self, deadline: Deadline) -> _IndexThenOutage:
        return self

    def resolve(self, ref: Any) -> Manifest:
        return self.index

    def get_manifest(self, ref: Any, digest: str) -> Manifest:
        raise RegistryUnavailableError(f"registry.example.com did not answer in time while fetching {digest}")

    def find_tag(self, ref: Any, tag: str) -> Manifest | None:
        raise RegistryUnavailableError("registry.example.com did not answer in time")

    def get_blob(self, *args: Any, **kwargs: Any) -> bytes:
        raise RegistryUnavailableError("registry.example.com did not answer in time")

    def referrers(self, *args: Any, **kwargs: Any) -> list[Any]:
        raise RegistryUnavailableError("registry.example.com did not answer in time")


def test_reports_unavailable_not_an_internal_error_when_platform_manifest_cannot_be_fetched():
    # Given an index whose platform manifest the registry cannot serve in time
    platform_manifest = _manifest({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": []})
    index = _manifest({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": platform_manifest.digest,
         "size": platform_manifest.size, "platform": {"os": "linux", "architecture": "amd64"}}]})
    policy = Policy.from_json(cosign_policy({"ci": {"publicKeyPem": KeyPair.generate().public_pem}},
                                            images="registry.example.com/**"))
    verifier = ImageVerifier(policy, registry=_IndexThenOutage(index), cosign_keys=CosignKeyResolver())
    # When it is verified for that platform
    decision = verifier.decide([ImageRequest(image="registry.example.com/app:v1", platform=Platform.parse("linux/amd64"))],
                               deadline=Deadline.after(5.0))
    # Then the verdict is unavailable (unavailableMode decides), not a rejection for an "internal error"
    [verdict] = decision.verdicts
    assert verdict.outcome is Outcome.UNAVAILABLE, verdict
    assert "did not answer in time" in verdict.reasons[0]
    assert "internal error" not in verdict.reasons[0]
