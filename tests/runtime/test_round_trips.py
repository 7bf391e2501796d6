"""Round trips: once the digest is known, independent requests go out together (issue 13).

Real images and real signatures in the real docker-registry, reached through `RoundRecorder`, a
proxy that numbers each batch of requests sent together (a round). The assertions are structural:
which requests, how many, in how many dependent rounds; never wall time.
"""

from __future__ import annotations

from typing import Any

import pytest

from image_verifier.composition import build_verifier
from image_verifier.cosign.sign import PemSigner, sign_image
from image_verifier.deadline import Deadline
from image_verifier.oci import Descriptor
from image_verifier.policy import Policy
from image_verifier.registry import RegistryClient, referrers_tag
from image_verifier.registry.referrers import API_MEMORY_SECONDS, ReferrersApiMemory
from image_verifier.verdict import Outcome
from image_verifier.verifier import ImageRequest
from tests.support.cosign_material import KeyPair, cosign_policy
from tests.support.images import PushedImage, push_image, unique_repository
from tests.support.notation_registry import push_notation_vector
from tests.support.notation_vectors import sign
from tests.support.pki import code_signing_chain
from tests.support.round_recorder import RoundRecorder

IDENTITY = "x509.subject: C=US, ST=WA, O=Acme"


@pytest.fixture(scope="module")
def key() -> KeyPair:
    return KeyPair.generate()


@pytest.fixture(scope="module")
def chain() -> Any:
    return code_signing_chain("p256")


@pytest.fixture
def proxy(registry):
    with RoundRecorder(registry.host) as recorder:
        yield recorder


def _cosign_signed(registry, key: KeyPair, repo: str, tag: str) -> PushedImage:
    image = push_image(registry, repo, tag, layer_bytes=f"{repo}-{tag}".encode())
    writer = RegistryClient(insecure_registries={registry.host}).bound(Deadline.after(30))
    sign_image(writer, image.ref, PemSigner(key.private_pem))
    return image


def _notation_signed(registry, chain: Any, repo: str, tag: str) -> PushedImage:
    image = push_image(registry, repo, tag, layer_bytes=f"{repo}-{tag}".encode())
    push_notation_vector(registry, image, sign(Descriptor(media_type=image.media_type, digest=image.digest,
                                                          size=image.size), chain))
    return image


def _policy(host: str, *, cosign: KeyPair | None = None, notation: Any = None) -> Policy:
    signers: list[dict[str, Any]] = []
    if cosign is not None:
        signers.append({"name": "ci", "cosignKey": {"publicKeyPem": cosign.public_pem}})
    if notation is not None:
        signers.append({"name": "corp", "notationX509": {"rootCertificates": [notation.root.pem],
                                                         "trustedIdentities": [IDENTITY]}})
    return Policy.from_json({"version": "1", "trustedSigners": signers, "rules": [
        {"name": "signed", "images": [f"{host}/**"], "anyOf": [s["name"] for s in signers]}]})


def _via(proxy: RoundRecorder, image: PushedImage, *, by_tag: bool = False) -> str:
    at = f":{image.ref.tag}" if by_tag else f"@{image.digest}"
    return f"{proxy.host}/{image.repository}{at}"


def _decide(client: RegistryClient, policy: Policy, images: list[str]):
    return build_verifier(policy, registry=client).decide([ImageRequest(image=i) for i in images],
                                                          deadline=Deadline.after(30))


def test_cosign_by_digest_costs_two_rounds_and_two_requests_beside_the_manifest(registry, proxy, key):
    # Given a cosign-signed image, referenced by digest through the round-counting proxy
    image = _cosign_signed(registry, key, unique_repository("rt"), "v1")
    client = RegistryClient(insecure_registries={proxy.host})
    # When it is verified
    decision = _decide(client, _policy(proxy.host, cosign=key), [_via(proxy, image)])
    # Then round 1 sends the manifest and the .sig tag together, round 2 the payload blob
    assert decision.verdicts[0].outcome is Outcome.VERIFIED, decision.verdicts[0]
    rounds = proxy.rounds()
    repo = image.repository
    assert rounds[0] == sorted([f"GET /v2/{repo}/manifests/{image.digest}",
                                f"GET /v2/{repo}/manifests/{image.digest.replace(':', '-')}.sig"]), rounds
    assert len(rounds) == 2 and len(rounds[1]) == 1 and rounds[1][0].startswith(f"GET /v2/{repo}/blobs/"), rounds
    assert client.request_count == 3


def test_cosign_by_tag_costs_two_rounds_after_resolution(registry, proxy, key):
    # Given a cosign-signed image referenced by tag
    image = _cosign_signed(registry, key, unique_repository("rt"), "v1")
    # When it is verified
    decision = _decide(RegistryClient(insecure_registries={proxy.host}), _policy(proxy.host, cosign=key),
                       [_via(proxy, image, by_tag=True)])
    # Then: resolution, then the .sig tag, then the blob
    assert decision.verdicts[0].outcome is Outcome.VERIFIED, decision.verdicts[0]
    rounds = proxy.rounds()
    assert [len(r) for r in rounds] == [1, 1, 1], rounds
    assert rounds[0] == [f"GET /v2/{image.repository}/manifests/v1"]


def test_notation_by_digest_costs_three_rounds_and_remembers_that_the_registry_has_no_referrers_api(
        registry, proxy, chain):
    # Given two Notation-signed images (docker-registry 2.8: no referrers API, the tag schema lists them)
    repo = unique_repository("rt")
    first, second = (_notation_signed(registry, chain, repo, tag) for tag in ("v1", "v2"))
    client = RegistryClient(insecure_registries={proxy.host})
    policy = _policy(proxy.host, notation=chain)
    # When the first is verified
    decision = _decide(client, policy, [_via(proxy, first)])
    # Then round 1 sends the manifest, the referrers API call and the referrers tag together;
    # round 2 the signature manifest; round 3 the envelope
    assert decision.verdicts[0].outcome is Outcome.VERIFIED, decision.verdicts[0]
    rounds = proxy.rounds()
    assert rounds[0] == sorted([f"GET /v2/{repo}/manifests/{first.digest}",
                                f"GET /v2/{repo}/referrers/{first.digest}",
                                f"GET /v2/{repo}/manifests/{referrers_tag(first.digest)}"]), rounds
    assert [len(r) for r in rounds] == [3, 1, 1], rounds
    # And when the second is verified by the same (warm) client, the API is not asked again:
    # three requests once the digest is known (tag, signature manifest, envelope), in three rounds
    proxy.reset()
    decision = _decide(client, policy, [_via(proxy, second)])
    assert decision.verdicts[0].outcome is Outcome.VERIFIED, decision.verdicts[0]
    rounds = proxy.rounds()
    assert rounds[0] == sorted([f"GET /v2/{repo}/manifests/{second.digest}",
                                f"GET /v2/{repo}/manifests/{referrers_tag(second.digest)}"]), rounds
    assert [len(r) for r in rounds] == [2, 1, 1], rounds


def test_sends_the_manifest_the_sig_tag_and_both_referrers_lookups_together_for_a_mixed_rule(
        registry, proxy, key, chain):
    # Given a cosign-signed image and a rule that accepts cosign or Notation
    image = _cosign_signed(registry, key, unique_repository("rt"), "v1")
    # When it is verified by digest
    decision = _decide(RegistryClient(insecure_registries={proxy.host}), _policy(proxy.host, cosign=key, notation=chain),
                       [_via(proxy, image)])
    # Then the four lookups that only need the digest form one round
    assert decision.verdicts[0].outcome is Outcome.VERIFIED, decision.verdicts[0]
    rounds = proxy.rounds()
    assert len(rounds[0]) == 4 and len(rounds) == 2, rounds


def test_exempt_pinned_digest_reads_only_the_manifest(registry, proxy, key):
    # Given an image exempted by its digest
    image = push_image(registry, unique_repository("rt"), "v1")
    document = cosign_policy({"ci": {"publicKeyPem": key.public_pem}}, images=f"{proxy.host}/**")
    document["exemptions"] = [{"images": [f"{proxy.host}/{image.repository}"], "digests": [image.digest],
                               "reason": "vendor image", "expires": "2099-01-01T00:00:00Z"}]
    # When it is verified by digest
    decision = _decide(RegistryClient(insecure_registries={proxy.host}), Policy.from_json(document), [_via(proxy, image)])
    # Then no signature lookup was sent
    assert decision.verdicts[0].outcome is Outcome.EXEMPT, decision.verdicts[0]
    assert proxy.rounds() == [[f"GET /v2/{image.repository}/manifests/{image.digest}"]]


def test_forgets_a_missing_referrers_api_after_a_while():
    # Given a memory that saw a registry answer 404 on the referrers API
    now = [1000.0]
    memory = ReferrersApiMemory(clock=lambda: now[0])
    memory.remember("https://registry.example.com", has_api=False)
    # When / Then it is believed for API_MEMORY_SECONDS, then asked again
    assert memory.lacks_api("https://registry.example.com")
    assert not memory.lacks_api("https://other.example.com")
    now[0] += API_MEMORY_SECONDS + 1
    assert not memory.lacks_api("https://registry.example.com")
