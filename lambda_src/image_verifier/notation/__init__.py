"""Notary Project (Notation) signature verification, as a pure library (no I/O but the optional
AWS Signer revocation call through an injected client).

Example::

    from image_verifier.notation import signature_envelope_descriptor, verify_notation

    layer = signature_envelope_descriptor(signature_manifest, image.digest)
    envelope = registry.get_blob(ref, layer, max_bytes=MAX_ENVELOPE_BYTES)
    result = verify_notation(envelope=envelope, media_type=layer.media_type, subject=image.descriptor,
                             trust=signer.aws_signer, now=datetime.now(timezone.utc),
                             revocation=SignerRevocationChecker(lambda region: boto3.client("signer", region_name=region)))
    result.identity  # the signing profile version ARN, or the leaf subject DN

See docs/notation.md for what is verified, in which order, and what is not supported.
"""

from __future__ import annotations

from .awssigner import (
    AWS_SIGNER_ROOT_SHA256,
    RevocationChecker,
    SignerClient,
    SignerRevocationChecker,
    check_pinned_root,
    parse_signing_profile_arn,
)
from .identity import parse_trusted_identities, parse_trusted_identity
from .levels import level_named
from .manifest import (
    ENVELOPE_MEDIA_TYPES,
    MAX_ENVELOPE_BYTES,
    NOTATION_ARTIFACT_TYPE,
    THUMBPRINT_ANNOTATION,
    signature_envelope_descriptor,
)
from .trust import parse_root_certificates
from .verify import NotationVerification, verify_notation

__all__ = [
    "AWS_SIGNER_ROOT_SHA256",
    "ENVELOPE_MEDIA_TYPES",
    "MAX_ENVELOPE_BYTES",
    "NOTATION_ARTIFACT_TYPE",
    "THUMBPRINT_ANNOTATION",
    "NotationVerification",
    "RevocationChecker",
    "SignerClient",
    "SignerRevocationChecker",
    "check_pinned_root",
    "level_named",
    "parse_root_certificates",
    "parse_signing_profile_arn",
    "parse_trusted_identities",
    "parse_trusted_identity",
    "signature_envelope_descriptor",
    "verify_notation",
]
