"""Legacy cosign signatures: the `sha256-<hex>.sig` tag, one layer per signature.

Checks per layer, in order: the layer is a simple-signing payload; its signature annotation is
strict base64; the ECDSA signature verifies over the exact payload bytes (whose digest the registry
client already checked); only then is the payload parsed, and its manifest digest must be the one
being verified.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec

from ..errors import InvalidReferenceError, SignatureIdentityError, SignatureIntegrityError
from ..oci import Descriptor
from ..policy.keys import hash_for
from ..reference import ImageReference
from .payload import SimpleSigningPayload, check_required_annotations, decode_base64

SIMPLE_SIGNING_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
MAX_PAYLOAD_BYTES = 64 * 1024  # a simple-signing payload is a few hundred bytes plus annotations
MAX_SIGNATURE_B64 = 2048  # an ECDSA P-384 DER signature is at most 104 bytes


def signature_tag(digest: str) -> str:
    """The tag cosign stores legacy signatures under: `sha256:<hex>` -> `sha256-<hex>.sig`."""
    return digest.replace(":", "-", 1) + ".sig"


def layer_signature(layer: Descriptor) -> bytes:
    """The raw signature a `.sig` layer carries in its annotation."""
    if layer.media_type != SIMPLE_SIGNING_MEDIA_TYPE:
        raise SignatureIntegrityError(f"layer {layer.digest} has media type {layer.media_type!r}, not a cosign payload")
    encoded = layer.annotations.get(SIGNATURE_ANNOTATION)
    if not encoded:
        raise SignatureIntegrityError(f"layer {layer.digest} has no {SIGNATURE_ANNOTATION} annotation")
    if len(encoded) > MAX_SIGNATURE_B64:
        raise SignatureIntegrityError(f"the signature annotation of layer {layer.digest} is implausibly long")
    return decode_base64(encoded, f"the signature annotation of layer {layer.digest}")


def verify_simple_signing(
    *,
    payload: bytes,
    signature: bytes,
    key: ec.EllipticCurvePublicKey,
    subject_digest: str,
    required_annotations: dict[str, str] | None = None,
    expected_reference: str | None = None,
) -> SimpleSigningPayload:
    """Verify one legacy signature over `payload` for `subject_digest`; return the parsed payload."""
    try:
        key.verify(signature, payload, ec.ECDSA(hash_for(key)))
    except InvalidSignature as exc:
        raise SignatureIntegrityError(f"the cosign signature does not verify with this key for {subject_digest}") from exc
    parsed = SimpleSigningPayload.parse(payload)
    if parsed.manifest_digest != subject_digest:
        raise SignatureIntegrityError(
            f"the signature is for {parsed.manifest_digest}, not {subject_digest} (copied from another image?)"
        )
    if expected_reference is not None and _repository_name(parsed.docker_reference) != expected_reference:
        raise SignatureIdentityError(
            f"the signature names {parsed.docker_reference!r}, but the rule requires {expected_reference!r}"
        )
    check_required_annotations(parsed.annotations, required_annotations or {})
    return parsed


def _repository_name(reference: str) -> str | None:
    """`registry/repository` of a payload's docker-reference, normalized as image references are.

    cosign writes Docker Hub images as `index.docker.io/library/nginx`; skopeo adds a tag. Both
    name the same repository as `nginx`.
    """
    try:
        return ImageReference.parse(reference).name
    except InvalidReferenceError:
        return None
