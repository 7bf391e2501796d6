"""Property-based tests over cosign signatures: the legacy simple-signing payload and its `.sig` layer
(`cosign/legacy.py`, `cosign/payload.py`) and cosign v3 sigstore bundles (`cosign/bundle.py`),
always through the real verification functions with a real P-256 key.

What is signed, and so what a mutation may leave admitted:
- legacy: the exact payload bytes (the blob the layer's digest names). Any change to them, or to
  the signature bytes, must be refused; nothing in the payload is outside the signature.
- bundle: the DSSE pre-authentication encoding of `payloadType` and the base64-decoded `payload`.
  The rest of the bundle (the key hint, `keyid`, JSON whitespace, unknown members) is not signed,
  so an edit there may still verify; an admitted bundle must carry the same payload type and body
  (decoded by a plain reader) as the one that was signed.
A payload re-signed after a structural change (a value replaced, a key duplicated or re-spelled)
does verify, so the parser alone decides: it must refuse, or read exactly what a plain reader reads.
Every refusal is a `VerificationError` with a reason; no other exception escapes.
"""

from __future__ import annotations

import base64
import json
from typing import Any, Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from image_verifier.cosign.bundle import IN_TOTO_PAYLOAD_TYPE, verify_bundle
from image_verifier.cosign.legacy import SIGNATURE_ANNOTATION, SIMPLE_SIGNING_MEDIA_TYPE, layer_signature, verify_simple_signing
from image_verifier.cosign.payload import SimpleSigningPayload
from image_verifier.errors import SignatureIntegrityError, VerificationError
from image_verifier.oci import Descriptor
from tests.support.cosign_material import KeyPair, in_toto_statement, sigstore_bundle
from tests.support.hostile_bytes import byte_edits, encode, json_replacements
from tests.support.images import build_image, sha256_digest
from tests.support.json_mutations import SPELLINGS, at, object_paths, respell, with_member

KEY = KeyPair.generate()
OTHER_KEY = KeyPair.generate()
_, IMAGE = build_image(layer_bytes=b"cosign-properties")
DIGEST = sha256_digest(IMAGE)
OTHER_DIGEST = sha256_digest(IMAGE + b" ")
REFERENCE = "registry.example.com/apps/web"
SHA = "0123456789abcdef0123456789abcdef01234567"
REQUIRED = {"git-sha": "[0-9a-f]{40}"}
PAYLOAD = SimpleSigningPayload(docker_reference=REFERENCE, manifest_digest=DIGEST, annotations={"git-sha": SHA}).to_bytes()
SIGNATURE = KEY.sign(PAYLOAD)
STATEMENT = in_toto_statement(DIGEST, {"git-sha": SHA})
BUNDLE = sigstore_bundle(KEY, STATEMENT)
nearly_right = st.sampled_from([DIGEST, OTHER_DIGEST, DIGEST.upper(), DIGEST.partition(":")[2], OTHER_DIGEST.partition(":")[2],
                                "cosign container image signature", REFERENCE, "docker.io/library/nginx", SHA, SHA.upper(),
                                IN_TOTO_PAYLOAD_TYPE, "https://in-toto.io/Statement/v1", {"sha256": DIGEST.partition(":")[2]},
                                [], {}, None, 1, True, ""])


def _budget(examples: int) -> settings:
    """Each property's share of the file's few-second budget; the fuzz profile multiplies it (tests/conftest.py)."""
    return settings(max_examples=examples)


def _verdict(verify: Callable[[], Any]) -> Any | None:
    """The verification's result, or None when refused; a refusal must say why, and nothing else may escape."""
    try:
        return verify()
    except VerificationError as exc:
        assert str(exc).strip(), "a refusal without a reason"
        return None


def _legacy(payload: bytes, signature: bytes = SIGNATURE, key: KeyPair = KEY) -> Any | None:
    return _verdict(lambda: verify_simple_signing(payload=payload, signature=signature, key=key.private.public_key(),
                                                  subject_digest=DIGEST, required_annotations=REQUIRED,
                                                  expected_reference=REFERENCE))


def _bundle(raw: bytes, key: KeyPair = KEY) -> Any | None:
    return _verdict(lambda: verify_bundle(raw, key=key.private.public_key(), subject_digest=DIGEST,
                                          required_annotations=REQUIRED))


def test_the_seeds_verify() -> None:
    # The unspoiled artifacts are admitted, so every refusal below is the mutation's doing.
    assert _legacy(PAYLOAD).manifest_digest == DIGEST
    assert _bundle(BUNDLE) == {"git-sha": SHA}


# ---- legacy simple signing -------------------------------------------------------------------


@_budget(200)
@given(payload=byte_edits(PAYLOAD))
def test_property_an_edited_legacy_payload_is_never_admitted(payload: bytes) -> None:
    # Given the signed payload with any byte-level edit (every payload byte is signed) / When / Then
    assert _legacy(payload) is None


@_budget(200)
@given(signature=byte_edits(SIGNATURE))
def test_property_an_edited_legacy_signature_is_never_admitted(signature: bytes) -> None:
    assert _legacy(PAYLOAD, signature) is None


@_budget(150)
@given(encoded=byte_edits(base64.b64encode(SIGNATURE)))
def test_property_an_edited_signature_annotation_is_refused_or_never_admitted(encoded: bytes) -> None:
    # Given the `.sig` layer with its signature annotation edited (text, possibly not even base64)
    layer = Descriptor(media_type=SIMPLE_SIGNING_MEDIA_TYPE, digest=sha256_digest(PAYLOAD), size=len(PAYLOAD),
                       annotations={SIGNATURE_ANNOTATION: encoded.decode("latin-1")})
    # When the layer's signature is read, Then it is refused, or it is the signed one (a neutral base64 spelling)
    signature = _verdict(lambda: layer_signature(layer))
    if signature is not None and _legacy(PAYLOAD, signature) is not None:
        assert signature == SIGNATURE


@_budget(200)
@given(document=json_replacements(json.loads(PAYLOAD), nearly_right))
def test_property_a_re_signed_mutated_payload_is_refused_or_read_as_written(document: Any) -> None:
    # Given a payload changed anywhere and signed again by the trusted key (a compromised CI job, say)
    payload = encode(document)
    # When verified
    parsed = _legacy(payload, KEY.sign(payload))
    # Then, if admitted, a plain reader sees the same digest, reference and annotation the verifier used
    if parsed is not None:
        assert document["critical"]["image"]["docker-manifest-digest"] == DIGEST == parsed.manifest_digest
        assert document["critical"]["identity"]["docker-reference"] == parsed.docker_reference
        signed_sha = document["optional"]["git-sha"]
        assert (signed_sha if isinstance(signed_sha, str) else json.dumps(signed_sha)) == parsed.annotations["git-sha"]


@_budget(150)
@given(data=st.data(), how=st.sampled_from(SPELLINGS))
def test_property_a_re_signed_payload_with_a_folded_or_duplicate_key_is_refused(data: st.DataObject, how: str) -> None:
    # Given a payload with one more member that Go's decoder reads as an existing key, signed again
    document = json.loads(PAYLOAD)
    path = data.draw(st.sampled_from([p for p in object_paths(document) if at(document, p)]))
    key = data.draw(st.sampled_from(sorted(at(document, path))))
    payload = with_member(document, path, respell(key, how), OTHER_DIGEST)
    # When / Then: refused (Go would read OTHER_DIGEST where this reader might read DIGEST)
    with pytest.raises(VerificationError, match="simple-signing payload"):
        verify_simple_signing(payload=payload, signature=KEY.sign(payload), key=KEY.private.public_key(),
                              subject_digest=DIGEST)


def test_rejects_legacy_signature_when_made_by_another_key() -> None:
    with pytest.raises(SignatureIntegrityError, match=f"^the cosign signature does not verify with this key for {DIGEST}$"):
        verify_simple_signing(payload=PAYLOAD, signature=OTHER_KEY.sign(PAYLOAD), key=KEY.private.public_key(),
                              subject_digest=DIGEST)


# ---- sigstore bundles ------------------------------------------------------------------------


def _signed_parts(raw: bytes) -> tuple[Any, bytes] | None:
    """(payloadType, decoded body) of a bundle as a plain reader sees them, or None if it cannot."""
    try:
        envelope = json.loads(raw)["dsseEnvelope"]
        return envelope["payloadType"], base64.b64decode(envelope["payload"])
    except (ValueError, KeyError, TypeError):
        return None


@_budget(250)
@given(raw=byte_edits(BUNDLE))
def test_property_an_edited_bundle_is_admitted_only_when_the_signed_parts_are_unchanged(raw: bytes) -> None:
    # Given the bundle's bytes with any edit; When verified
    admitted = _bundle(raw)
    # Then an admitted bundle still carries exactly the signed payload type and body
    if admitted is not None:
        assert _signed_parts(raw) == (IN_TOTO_PAYLOAD_TYPE, STATEMENT)
        assert admitted == {"git-sha": SHA}


@_budget(200)
@given(statement=byte_edits(STATEMENT))
def test_property_a_bundle_whose_statement_was_edited_is_never_admitted(statement: bytes) -> None:
    # Given the bundle with its statement edited and re-encoded, but not signed again / When / Then
    document = json.loads(BUNDLE)
    document["dsseEnvelope"]["payload"] = base64.b64encode(statement).decode()
    assert _bundle(encode(document)) is None


@_budget(250)
@given(document=json_replacements(json.loads(BUNDLE), nearly_right))
def test_property_a_mutated_bundle_document_is_admitted_only_with_the_signed_parts(document: Any) -> None:
    # Given the bundle with one value replaced, deleted or added anywhere (signatures included)
    raw = encode(document)
    # When / Then
    if _bundle(raw) is not None:
        assert _signed_parts(raw) == (IN_TOTO_PAYLOAD_TYPE, STATEMENT)


@_budget(200)
@given(statement=json_replacements(json.loads(STATEMENT), nearly_right))
def test_property_a_re_signed_mutated_statement_never_admits_another_subject(statement: Any) -> None:
    # Given a statement changed anywhere and signed again by the trusted key
    body = encode(statement)
    # When verified
    admitted = _bundle(sigstore_bundle(KEY, body))
    # Then, if admitted, a plain reader finds our digest among the subjects, with the annotation the verifier used
    if admitted is not None:
        hex_digest = DIGEST.partition(":")[2]
        matching = [s for s in statement["subject"] if isinstance(s, dict) and isinstance(s.get("digest"), dict)
                    and s["digest"].get("sha256") == hex_digest]
        assert matching and str(matching[0]["annotations"]["git-sha"]) == admitted["git-sha"]


def test_rejects_bundle_when_signed_by_another_key() -> None:
    with pytest.raises(SignatureIntegrityError, match=f"^the bundle's DSSE signature does not verify with this key for {DIGEST}$"):
        verify_bundle(sigstore_bundle(OTHER_KEY, STATEMENT), key=KEY.private.public_key(), subject_digest=DIGEST)
