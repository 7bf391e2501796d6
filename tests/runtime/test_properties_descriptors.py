"""Property-based tests over OCI descriptors, manifests and indexes (`image_verifier/oci.py`), and the
two readers that pick a signature layer out of a manifest (Notary, cosign bundle).

Seeds are real documents made by the test helpers: a one-layer image manifest, an index of two
platform manifests, a Notary signature manifest and a cosign bundle referrer. Each example replaces,
deletes or adds one value anywhere in a seed (random JSON, or a value that is nearly right: a
negative or boolean size, an upper-case or short digest, an empty media type), or edits its bytes.

Properties: the only exception that escapes is our `HostileArtifactError` (or, for the signature
readers, another `VerificationError`) and it says what was wrong; and whatever is accepted reads
exactly as a plain JSON reader (Go's, for documents with no ambiguous keys) would read it.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from image_verifier.cosign.bundle import BUNDLE_MEDIA_TYPE, COSIGN_SIGN_PREDICATE, bundle_layer
from image_verifier.errors import HostileArtifactError, VerificationError
from image_verifier.notation.manifest import signature_envelope_descriptor
from image_verifier.oci import OCI_EMPTY_CONFIG, OCI_MANIFEST, Descriptor, Manifest
from image_verifier.reference import is_digest
from tests.support import notation_vectors as nv
from tests.support import pki
from tests.support.hostile_bytes import byte_edits, encode, json_replacements, json_values
from tests.support.images import Blob, build_image, canonical_json, empty_config, index_json, sha256_digest

_, IMAGE_MANIFEST = build_image(layer_bytes=b"properties")
_, ARM_MANIFEST = build_image(layer_bytes=b"properties-arm", platform="linux/arm64")
INDEX = index_json([
    {"mediaType": OCI_MANIFEST, "digest": sha256_digest(IMAGE_MANIFEST), "size": len(IMAGE_MANIFEST),
     "platform": {"os": "linux", "architecture": "amd64"}},
    {"mediaType": OCI_MANIFEST, "digest": sha256_digest(ARM_MANIFEST), "size": len(ARM_MANIFEST),
     "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
], annotations={"org.opencontainers.image.ref.name": "v1"})
_, SUBJECT = nv.image_subject("descriptor-properties")
NOTARY_MANIFEST = nv.sign(SUBJECT, pki.code_signing_chain("p256", role_prefix="descriptors-")).manifest
BUNDLE_MANIFEST = canonical_json({
    "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": BUNDLE_MEDIA_TYPE,
    "config": empty_config().descriptor(), "layers": [Blob(data=b"{}", media_type=BUNDLE_MEDIA_TYPE).descriptor()],
    "subject": {"mediaType": SUBJECT.media_type, "digest": SUBJECT.digest, "size": SUBJECT.size},
    "annotations": {"dev.sigstore.bundle.predicateType": COSIGN_SIGN_PREDICATE},
})
SEEDS = {"image": IMAGE_MANIFEST, "index": INDEX, "notary": NOTARY_MANIFEST, "bundle": BUNDLE_MANIFEST}
DESCRIPTOR = json.loads(INDEX)["manifests"][0]

# Nearly right values: each breaks one rule of a descriptor or manifest field.
nearly_right = st.sampled_from([
    -1, 0, True, False, 1.0, 2**63, 2**64 + 1, "3", None, "", [], {},
    "sha256:" + "A" * 64, "sha256:" + "a" * 63, "sha512:" + "a" * 64, "md5:" + "a" * 32, "sha256:" + "g" * 64,
    "SHA256:" + "a" * 64, " sha256:" + "a" * 64, SUBJECT.digest, OCI_MANIFEST, OCI_EMPTY_CONFIG, BUNDLE_MEDIA_TYPE,
    nv.NOTARY, nv.JWS, "application/vnd.oci.image.index.v1+json", {"a": 1}, {"a": None}, ["x"], {"os": 1},
    {"os": "linux", "architecture": ["amd64"]},
])


def _budget(examples: int) -> settings:
    """Each property's share of the file's few-second budget; the fuzz profile multiplies it (tests/conftest.py)."""
    return settings(max_examples=examples)


def _refusal(call: Any, *args: Any, **kwargs: Any) -> tuple[Any, Exception | None]:
    """Call; our refusal must carry a reason, and any other exception fails the property."""
    try:
        return call(*args, **kwargs), None
    except HostileArtifactError as exc:
        assert str(exc).strip(), "a refusal without a reason"
        return None, exc


def _read_everything(manifest: Manifest) -> None:
    """Every accessor either answers or refuses with our error: the caller may touch any of them."""
    for name in ("is_index", "size", "descriptor", "artifact_type", "config", "layers", "manifests", "subject",
                 "annotations"):
        _refusal(getattr, manifest, name)


def _read_as_written_or_refused(raw: Any, where: str) -> None:
    """A descriptor read exactly as a plain reader reads `raw`, or a refusal that names `where`."""
    descriptor, refusal = _refusal(Descriptor.from_json, raw, where=where)
    if refusal is not None:
        assert where in str(refusal)
        return
    assert descriptor.media_type == raw["mediaType"] and descriptor.digest == raw["digest"]
    assert descriptor.size == raw["size"] and type(descriptor.size) is int and descriptor.size >= 0
    assert is_digest(descriptor.digest)
    assert dict(descriptor.annotations) == raw.get("annotations", {})
    assert descriptor.platform == (raw.get("platform") or None)


@_budget(150)
@given(raw=json_values)
def test_property_any_json_value_is_a_descriptor_or_a_reasoned_refusal(raw: Any) -> None:
    # Given any JSON value, When read as a descriptor, Then a descriptor or HostileArtifactError naming it
    _read_as_written_or_refused(raw, "the descriptor")


@_budget(250)
@given(document=json_replacements(DESCRIPTOR, nearly_right))
def test_property_a_mutated_descriptor_is_read_as_written_or_refused(document: Any) -> None:
    # Given a real index entry with one value replaced, deleted or added
    # When read, Then it is refused with its position, or read exactly as a plain reader reads it
    _read_as_written_or_refused(document, "manifests[0]")


@_budget(200)
@given(data=st.data(), seed=st.sampled_from(sorted(SEEDS)))
def test_property_a_mutated_manifest_is_parsed_as_written_or_refused(data: st.DataObject, seed: str) -> None:
    # Given a real manifest or index with one value replaced, deleted or added
    document = data.draw(json_replacements(json.loads(SEEDS[seed]), nearly_right))
    raw = encode(document)
    # When parsed (the digest is the one the client checked: of these bytes)
    manifest, refusal = _refusal(Manifest.parse, digest=sha256_digest(raw), raw=raw, content_type=None)
    # Then refused with the digest named, or parsed to exactly the document, and every field readable or refused
    if refusal is not None:
        assert sha256_digest(raw) in str(refusal)
        return
    assert manifest.data == document and manifest.raw == raw
    _read_everything(manifest)


@_budget(200)
@given(data=st.data(), seed=st.sampled_from(sorted(SEEDS)))
def test_property_edited_manifest_bytes_are_parsed_as_written_or_refused(data: st.DataObject, seed: str) -> None:
    # Given the bytes of a real manifest with one byte-level edit
    raw = data.draw(byte_edits(SEEDS[seed]))
    content_type = data.draw(st.sampled_from([None, OCI_MANIFEST, "text/plain"]))
    # When parsed
    manifest, _ = _refusal(Manifest.parse, digest=sha256_digest(raw), raw=raw, content_type=content_type)
    # Then anything accepted is what a plain reader reads, and every field is readable or refused
    if manifest is not None:
        assert manifest.data == json.loads(raw)
        _read_everything(manifest)


@_budget(200)
@given(data=st.data(), seed=st.sampled_from(["notary", "bundle"]))
def test_property_a_mutated_signature_manifest_never_yields_a_layer_for_another_subject(data: st.DataObject,
                                                                                        seed: str) -> None:
    # Given a real signature manifest (Notary, or a cosign bundle referrer) with one value changed
    document = data.draw(json_replacements(json.loads(SEEDS[seed]), nearly_right))
    raw = encode(document)
    manifest, refusal = _refusal(Manifest.parse, digest=sha256_digest(raw), raw=raw, content_type=None)
    if refusal is not None:
        return
    # When its signature layer is picked out
    try:
        layer = signature_envelope_descriptor(manifest, SUBJECT.digest) if seed == "notary" else bundle_layer(manifest)
    except VerificationError as exc:
        # Then a refusal says why
        assert str(exc).strip()
        return
    # Or the layer is the manifest's one layer, and (Notary) the manifest names our subject
    assert layer is None or [layer] == manifest.layers
    if seed == "notary":
        assert manifest.subject is not None and manifest.subject.digest == SUBJECT.digest


@pytest.mark.parametrize("size", [-1, True, 1.5, "12"])
def test_rejects_descriptor_when_size_is_not_a_natural_number(size: Any) -> None:
    # Given an index entry whose size Go would not read as the uint64 it is
    document = {**DESCRIPTOR, "size": size}
    # When / Then
    with pytest.raises(HostileArtifactError, match=r"^manifests\[0\] has an invalid size"):
        Descriptor.from_json(document, where="manifests[0]")
