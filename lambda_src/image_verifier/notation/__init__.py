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

The names below are imported on first use (PEP 562): the policy model imports a few parsers from
the submodules, and a cosign-only run must not pay for the envelope parsers, the timestamp code
(asn1crypto) or botocore.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

# public name -> the submodule that defines it
_EXPORTS = {
    "AWS_SIGNER_ROOT_SHA256": ".awssigner",
    "RevocationChecker": ".awssigner",
    "SignerClient": ".awssigner",
    "SignerRevocationChecker": ".awssigner",
    "check_pinned_root": ".awssigner",
    "parse_signing_profile_arn": ".awssigner",
    "parse_trusted_identities": ".identity",
    "parse_trusted_identity": ".identity",
    "level_named": ".levels",
    "ENVELOPE_MEDIA_TYPES": ".manifest",
    "MAX_ENVELOPE_BYTES": ".manifest",
    "NOTATION_ARTIFACT_TYPE": ".manifest",
    "THUMBPRINT_ANNOTATION": ".manifest",
    "signature_envelope_descriptor": ".manifest",
    "parse_root_certificates": ".trust",
    "NotationVerification": ".verify",
    "verify_notation": ".verify",
}
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

if TYPE_CHECKING:
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


__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
