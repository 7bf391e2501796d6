"""cosign v3 signatures: a sigstore bundle (v0.3) stored as an OCI referrer of the image.

The bundle's DSSE envelope signs an in-toto Statement; its subject digest must be the image's.
Transparency-log entries in the bundle are not required (DESIGN §4: private KMS keys usually sign
without one) and are not trusted for anything.

A rule's `matchDockerReference` needs the signed content to name the repository. cosign v3 writes
the statement's subject with a digest (and the `-a` annotations) but no `name`
(`cmd/cosign/cli/sign/sign.go` `signDigestBundle`), so such a bundle cannot prove where the image
was meant to live, and under that rule it does not count (fail closed). A subject that does carry a
`name` (other producers) is compared like the legacy payload's `docker-reference`.
"""

from __future__ import annotations

from typing import Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec

from ..errors import InvalidReferenceError, SignatureIdentityError, SignatureIntegrityError
from .._json import strict_json_loads
from ..oci import Descriptor, Manifest
from ..policy.keys import hash_for
from .payload import check_required_annotations, decode_base64

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
_BUNDLE_PREFIX = "application/vnd.dev.sigstore.bundle"
IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
COSIGN_SIGN_PREDICATE = "https://sigstore.dev/cosign/sign/v1"
MAX_BUNDLE_BYTES = 1024 * 1024  # bundles with tlog proofs are a few KiB
MAX_DSSE_SIGNATURES = 8  # cosign writes one


def bundle_layer(manifest: Manifest) -> Descriptor | None:
    """The bundle layer of a referrer manifest, or None when it is not a sigstore bundle referrer."""
    layers = manifest.layers
    if len(layers) != 1 or not layers[0].media_type.startswith(_BUNDLE_PREFIX):
        return None
    return layers[0]


def pae(payload_type: str, body: bytes) -> bytes:
    """DSSE pre-authentication encoding: what the signature is over."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(body), body)


def verify_bundle(
    raw: bytes,
    *,
    key: ec.EllipticCurvePublicKey,
    subject_digest: str,
    required_annotations: Mapping[str, str] | None = None,
    expected_reference: str | None = None,
) -> Mapping[str, str]:
    """Verify a bundle for `subject_digest`; return the annotations of the matching subject.

    `expected_reference` (a rule's matchDockerReference): the subject's `name` must be that
    `registry/repository`; a subject without a name is refused (see the module docstring)."""
    bundle = strict_json_loads(raw, what="the sigstore bundle")
    if not isinstance(bundle, dict) or bundle.get("mediaType") != BUNDLE_MEDIA_TYPE:
        found = bundle.get("mediaType") if isinstance(bundle, dict) else None
        raise SignatureIntegrityError(f"unsupported sigstore bundle media type {found!r}; expected {BUNDLE_MEDIA_TYPE}")
    envelope = bundle.get("dsseEnvelope")
    if not isinstance(envelope, dict):
        raise SignatureIntegrityError("the bundle has no DSSE envelope (message signatures sign blobs, not images)")
    payload_type = envelope.get("payloadType")
    if payload_type != IN_TOTO_PAYLOAD_TYPE:
        raise SignatureIntegrityError(f"the DSSE payload type is {payload_type!r}, not {IN_TOTO_PAYLOAD_TYPE}")
    body = decode_base64(envelope.get("payload"), "the DSSE payload")
    signatures = envelope.get("signatures")
    if not isinstance(signatures, list) or not 1 <= len(signatures) <= MAX_DSSE_SIGNATURES:
        raise SignatureIntegrityError("the DSSE envelope must carry between 1 and 8 signatures")
    signed = pae(payload_type, body)
    for entry in signatures:
        signature = decode_base64(entry.get("sig") if isinstance(entry, dict) else None, "a DSSE signature")
        try:
            key.verify(signature, signed, ec.ECDSA(hash_for(key)))
            break
        except InvalidSignature:
            continue
    else:
        raise SignatureIntegrityError(f"the bundle's DSSE signature does not verify with this key for {subject_digest}")
    annotations = _subject_annotations(body, subject_digest, expected_reference)
    check_required_annotations(annotations, required_annotations or {})
    return annotations


def _subject_annotations(body: bytes, subject_digest: str, expected_reference: str | None) -> Mapping[str, str]:
    statement = strict_json_loads(body, what="the in-toto statement")
    if not isinstance(statement, dict) or statement.get("_type") != STATEMENT_TYPE:
        raise SignatureIntegrityError(f"the DSSE payload is not an in-toto {STATEMENT_TYPE} statement")
    if statement.get("predicateType") != COSIGN_SIGN_PREDICATE:
        raise SignatureIntegrityError(
            f"the statement's predicate is {statement.get('predicateType')!r}, not a cosign image signature"
        )
    algorithm, _, hex_digest = subject_digest.partition(":")
    subjects = statement.get("subject")
    for subject in subjects if isinstance(subjects, list) else []:
        digests = subject.get("digest") if isinstance(subject, dict) else None
        if isinstance(digests, dict) and digests.get(algorithm) == hex_digest:
            if expected_reference is not None:
                _check_subject_name(subject.get("name"), expected_reference)
            annotations = subject.get("annotations") or {}
            if not isinstance(annotations, dict):
                raise SignatureIntegrityError("the statement subject's annotations are not an object")
            return {k: v if isinstance(v, str) else str(v) for k, v in annotations.items()}
    raise SignatureIntegrityError(f"the statement does not name {subject_digest} as its subject (copied signature?)")


def _check_subject_name(name: object, expected_reference: str) -> None:
    if name is None:
        raise SignatureIdentityError(
            f"the rule requires the signature to name {expected_reference!r} (matchDockerReference), but this "
            "bundle's in-toto subject names no repository (cosign v3 signs only the digest); sign with cosign's "
            "legacy format (--new-bundle-format=false) or drop matchDockerReference from the rule"
        )
    from ..reference import ImageReference

    try:
        named = ImageReference.parse(name).name if isinstance(name, str) else None
    except InvalidReferenceError:
        named = None
    if named != expected_reference:
        raise SignatureIdentityError(f"the bundle's subject names {name!r}, but the rule requires {expected_reference!r}")
