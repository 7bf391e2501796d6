"""Parallelism: every image of a decision is verified at once, up to MAX_PARALLEL_IMAGES (issue 13).

Real cosign-signed images in the real docker-registry, reached through `RoundRecorder`, which
numbers each batch of requests sent together. 64 images in one wave cost the rounds of one image;
in waves of 8 they would cost eight times as many. Structural assertions only, never wall time.
"""

from __future__ import annotations

import pytest

from image_verifier.composition import build_verifier
from image_verifier.deadline import Deadline
from image_verifier.policy import Policy
from image_verifier.registry import RegistryClient
from image_verifier.registry._transport import POOL_CONNECTIONS_PER_HOST
from image_verifier.verdict import Outcome
from image_verifier.verifier import MAX_PARALLEL_IMAGES, REQUESTS_AT_ONCE_PER_IMAGE, ImageRequest
from tests.support.cosign_material import KeyPair, cosign_policy, push_cosign_signed
from tests.support.images import unique_repository
from tests.support.round_recorder import RoundRecorder

IMAGES = 64


@pytest.fixture(scope="module")
def signed(registry):
    """64 cosign-signed images in one repository, and the key's policy material."""
    key = KeyPair.generate()
    return key, push_cosign_signed(registry, key, unique_repository("wave"), IMAGES)


def test_the_documented_bound_is_at_least_64_and_the_connection_pool_matches_it():
    assert MAX_PARALLEL_IMAGES >= 64
    assert POOL_CONNECTIONS_PER_HOST >= MAX_PARALLEL_IMAGES * REQUESTS_AT_ONCE_PER_IMAGE


def test_verifies_64_images_in_one_wave(registry, signed):
    # Given 64 signed images, referenced by digest through the round-counting proxy
    key, images = signed
    # 128 connections opened at once can stall a loaded 2-core machine for a while: a longer quiet
    # gap keeps one wave one round (it only slows the test, it cannot merge dependent requests)
    with RoundRecorder(registry.host, quiet=3.0) as proxy:
        policy = Policy.from_json(cosign_policy({"ci": {"publicKeyPem": key.public_pem}}, images=f"{proxy.host}/**"))
        client = RegistryClient(insecure_registries={proxy.host})
        requests = [ImageRequest(image=f"{proxy.host}/{i.repository}@{i.digest}") for i in images]
        # When they are verified in one decision
        decision = build_verifier(policy, registry=client).decide(requests, deadline=Deadline.after(60))
        # Then all are verified in the two rounds one image needs: 64 manifests and 64 .sig tags
        # together, then 64 payload blobs together
        assert [v.outcome for v in decision.verdicts] == [Outcome.VERIFIED] * IMAGES, decision.verdicts
        rounds = proxy.rounds()
        assert [len(r) for r in rounds] == [2 * IMAGES, IMAGES], [len(r) for r in rounds]
        assert proxy.max_in_flight >= 2 * IMAGES
        first_ports = proxy.client_ports()
        # And when the same (warm) client verifies them again, every request reuses a pooled connection
        proxy.reset()
        again = build_verifier(policy, registry=client).decide(requests, deadline=Deadline.after(60))
        assert again.admitted
        assert proxy.client_ports() <= first_ports
