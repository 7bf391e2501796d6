"""Signature manifests: both storage forms are accepted, anything else is refused before fetching a blob."""

from __future__ import annotations

import hashlib
import json

import pytest

from image_verifier.errors import HostileArtifactError, SignatureIntegrityError
from image_verifier.notation import MAX_ENVELOPE_BYTES, THUMBPRINT_ANNOTATION, signature_envelope_descriptor
from image_verifier.oci import Manifest
from tests.support import notation_vectors as nv
from tests.support import pki

_, SUBJECT = nv.image_subject("manifest")
CHAIN = pki.code_signing_chain("p256")


def _manifest(raw: bytes) -> Manifest:
    return Manifest.parse(digest="sha256:" + hashlib.sha256(raw).hexdigest(), raw=raw, content_type=None)


def _edited(change) -> Manifest:  # type: ignore[no-untyped-def]
    data = json.loads(nv.sign(SUBJECT, CHAIN).manifest)
    change(data)
    return _manifest(json.dumps(data).encode())


@pytest.mark.parametrize("media_type", [nv.JWS, nv.COSE])
def test_returns_the_envelope_layer_of_a_signature_manifest(media_type: str) -> None:
    # Given the manifest a vector builder makes (what notation pushes)
    vector = nv.sign(SUBJECT, CHAIN, media_type=media_type)
    manifest = _manifest(vector.manifest)

    # When
    layer = signature_envelope_descriptor(manifest, SUBJECT.digest)

    # Then
    assert layer.media_type == media_type
    assert layer.digest == "sha256:" + hashlib.sha256(vector.envelope).hexdigest()
    assert json.loads(manifest.annotations[THUMBPRINT_ANNOTATION]) == [hashlib.sha256(d).hexdigest() for d in CHAIN.ders]


def test_accepts_the_legacy_config_media_type_form() -> None:
    vector = nv.sign(SUBJECT, CHAIN)
    raw = nv.signature_manifest(vector.envelope, nv.JWS, SUBJECT, CHAIN, legacy=True)
    assert signature_envelope_descriptor(_manifest(raw), SUBJECT.digest).media_type == nv.JWS


def test_rejects_signature_manifest_when_subject_is_another_image() -> None:
    with pytest.raises(SignatureIntegrityError, match="refers to sha256:.*, not sha256:0000"):
        signature_envelope_descriptor(_manifest(nv.sign(SUBJECT, CHAIN).manifest), "sha256:" + "0" * 64)


def test_rejects_signature_manifest_when_subject_is_missing() -> None:
    with pytest.raises(SignatureIntegrityError, match="refers to no subject"):
        signature_envelope_descriptor(_edited(lambda d: d.pop("subject")), SUBJECT.digest)


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d.update(artifactType="application/vnd.dev.cosign.artifact.sig.v1+json"), "is not a Notary signature"),
    (lambda d: d["config"].update(mediaType="application/vnd.oci.image.config.v1+json"), "is not a Notary signature"),
    (lambda d: d.pop("artifactType"), "is not a Notary signature"),
    (lambda d: d["layers"].append(dict(d["layers"][0])), "has 2 layers"),
    (lambda d: d.update(layers=[]), "has 0 layers"),
    (lambda d: d["layers"][0].update(mediaType="application/octet-stream"), "unsupported media type 'application/octet-stream'"),
])
def test_rejects_signature_manifest_when_shape_is_wrong(change, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SignatureIntegrityError, match=message):
        signature_envelope_descriptor(_edited(change), SUBJECT.digest)


def test_rejects_signature_manifest_when_envelope_is_oversized() -> None:
    manifest = _edited(lambda d: d["layers"][0].update(size=MAX_ENVELOPE_BYTES + 1))
    with pytest.raises(HostileArtifactError, match="has an envelope of .* bytes"):
        signature_envelope_descriptor(manifest, SUBJECT.digest)
