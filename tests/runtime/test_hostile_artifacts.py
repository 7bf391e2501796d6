"""Hostile registry content: junk in one place must not crash or hide evidence elsewhere."""

from __future__ import annotations

import pytest

from image_verifier.cosign.legacy import signature_tag
from image_verifier.deadline import Deadline
from image_verifier.errors import HostileArtifactError
from image_verifier.composition import build_verifier
from image_verifier.oci import OCI_EMPTY_CONFIG, OCI_MANIFEST, Manifest
from image_verifier.policy import Policy
from image_verifier.verdict import Outcome, Verdict
from image_verifier.verifier import ImageRequest
from tests.support.cosign_material import KeyPair, add_to_referrers_tag, cosign_policy, in_toto_statement, push_bundle_referrer, sigstore_bundle
from tests.support.images import canonical_json, empty_config, push_blob, push_image, push_manifest, sha256_digest, unique_repository

DEPTH = 5000  # Go's JSON decoder (the registry) accepts 10000 levels; Python's recursion limit is 1000


def _deeply_nested_manifest() -> bytes:
    """A valid OCI manifest with an unknown field nested DEPTH levels deep (registries ignore unknown fields)."""
    config = canonical_json({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": empty_config().descriptor(),
                             "layers": []})
    return config[:-1] + b',"x":' + b"[" * DEPTH + b"]" * DEPTH + b"}"


def test_rejects_manifest_with_a_reason_when_its_json_is_nested_too_deeply():
    raw = _deeply_nested_manifest()
    with pytest.raises(HostileArtifactError, match="is not valid JSON"):
        Manifest.parse(digest=sha256_digest(raw), raw=raw, content_type=OCI_MANIFEST)


def test_admits_bundle_signed_image_when_a_deeply_nested_sig_manifest_is_pushed_beside_it(registry, registry_client):
    # Given an image signed with a cosign v3 bundle, and junk pushed at its legacy `.sig` tag
    key = KeyPair.generate()
    image = push_image(registry, unique_repository(), "v1")
    push_bundle_referrer(registry, image, sigstore_bundle(key, in_toto_statement(image.digest)))
    push_blob(registry, image.repository, empty_config().data)
    push_manifest(registry, image.repository, signature_tag(image.digest), _deeply_nested_manifest(), OCI_MANIFEST)
    # When it is verified
    verdict = _verify_with(key, registry, registry_client, image)
    # Then the junk is not evidence, and the bundle still verifies
    assert verdict.outcome is Outcome.VERIFIED, verdict
    assert verdict.signers[0].format == "cosign-bundle"


def test_rejects_blob_when_a_second_descriptor_understates_the_size_of_a_cached_blob(registry, registry_client):
    # Given a 100 KiB blob, read once as a bundle (limit 1 MiB) and cached for the decision
    from image_verifier.cosign.bundle import MAX_BUNDLE_BYTES
    from image_verifier.cosign.legacy import MAX_PAYLOAD_BYTES
    from image_verifier.evidence import Evidence
    from image_verifier.oci import Descriptor

    image = push_image(registry, unique_repository(), "v1")
    data = b"x" * (100 * 1024)
    digest = push_blob(registry, image.repository, data)
    session = registry_client.bound(Deadline.after(30))
    evidence = Evidence(session, image.ref, session.resolve(image.ref))
    honest = Descriptor(media_type="application/octet-stream", digest=digest, size=len(data))
    assert evidence.blob(honest, max_bytes=MAX_BUNDLE_BYTES) == data
    # When another descriptor names the same digest with a size under the payload limit (64 KiB)
    understated = Descriptor(media_type="application/octet-stream", digest=digest, size=10)
    # Then the cache does not hand out more bytes than that descriptor (and its limit) allow
    with pytest.raises(HostileArtifactError, match="more than the limit of 10"):
        evidence.blob(understated, max_bytes=MAX_PAYLOAD_BYTES)


def test_admits_bundle_signed_image_when_a_junk_referrer_is_listed_beside_the_bundle(registry, registry_client):
    # Given an image signed with a cosign v3 bundle, and a junk manifest listed as another referrer
    key = KeyPair.generate()
    image = push_image(registry, unique_repository(), "v1")
    push_blob(registry, image.repository, empty_config().data)
    junk = _deeply_nested_manifest()
    pushed = push_manifest(registry, image.repository, sha256_digest(junk), junk, OCI_MANIFEST)
    add_to_referrers_tag(registry, image, pushed, artifact_type=OCI_EMPTY_CONFIG)
    push_bundle_referrer(registry, image, sigstore_bundle(key, in_toto_statement(image.digest)))
    # When it is verified
    verdict = _verify_with(key, registry, registry_client, image)
    # Then the junk referrer does not hide the valid bundle
    assert verdict.outcome is Outcome.VERIFIED, verdict
    assert verdict.signers[0].format == "cosign-bundle"


@pytest.mark.parametrize("raw", ['\ufeff{"a": 1}'.encode(), '{"a": 1}'.encode("utf-16"), b'{"a": "\xff"}'])
def test_rejects_json_when_it_is_not_plain_utf8(raw):
    from image_verifier.oci import strict_json_loads

    with pytest.raises(HostileArtifactError, match="not valid JSON"):
        strict_json_loads(raw, what="the payload")


@pytest.mark.parametrize("annotations", [[], "", 0, False])
def test_rejects_descriptor_when_annotations_are_not_a_map(annotations):
    from image_verifier.oci import Descriptor

    raw = {"mediaType": OCI_MANIFEST, "digest": "sha256:" + "a" * 64, "size": 1, "annotations": annotations}
    with pytest.raises(HostileArtifactError, match="not a string map"):
        Descriptor.from_json(raw)


def test_a_signature_that_crashes_the_notation_parser_is_one_failed_candidate(monkeypatch):
    # Given two Notation signature candidates, the first of which makes the verifier raise a bug
    from image_verifier import signer_checks
    from image_verifier.errors import VerificationError

    calls = []

    def flaky_verify(**kwargs):
        calls.append(kwargs)
        raise KeyError("a parser bug")

    monkeypatch.setattr(signer_checks, "verify_notation", flaky_verify)
    monkeypatch.setattr(signer_checks, "signature_envelope_descriptor", lambda manifest, digest: manifest.layers[0])

    class _Evidence:
        digest = "sha256:" + "b" * 64

        def subject_descriptor(self):
            return None

        def referrer_manifests(self, accept):
            return [_manifest("c"), _manifest("d")], []

        def blob(self, descriptor, *, max_bytes):
            return b"{}"

    from image_verifier.policy import NotationX509Trust, Rule, TrustedSigner

    signer = TrustedSigner(name="corp", trust=NotationX509Trust(root_certificates=(), trusted_identities=("*",)))
    rule = Rule(name="r", images=(), any_of=("corp",))
    # When / Then: both candidates are tried, and the bug is a reason, not an exception
    with pytest.raises(VerificationError, match="could not be parsed \\(KeyError\\)"):
        signer_checks.check_notation(signer, rule, _Evidence(), now=None, revocation=None)
    assert len(calls) == 2


def _manifest(fill: str) -> Manifest:
    layer = {"mediaType": "application/jose+json", "digest": "sha256:" + fill * 64, "size": 2}
    raw = canonical_json({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": [layer],
                          "config": {"mediaType": OCI_EMPTY_CONFIG, "digest": "sha256:" + "e" * 64, "size": 2}})
    return Manifest.parse(digest=sha256_digest(raw), raw=raw, content_type=OCI_MANIFEST)


def _verify_with(key: KeyPair, registry, registry_client, image) -> Verdict:
    """Verify `image` under a policy that trusts `key` for everything in the test registry."""
    policy = Policy.from_json(cosign_policy({"ci": {"publicKeyPem": key.public_pem}}, images=f"{registry.host}/**"))
    [verdict] = build_verifier(policy, registry=registry_client).decide([ImageRequest(image=str(image.ref))],
                                                                        deadline=Deadline.after(30)).verdicts
    return verdict
