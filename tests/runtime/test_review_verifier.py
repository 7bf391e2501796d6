"""Review findings on the verifier's orchestration: deadlines, error classes, index handling."""

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
