"""cosign signatures: the legacy `.sig` tag format and the v3 sigstore-bundle referrers."""

from __future__ import annotations

from .bundle import BUNDLE_MEDIA_TYPE, bundle_layer, verify_bundle
from .legacy import SIMPLE_SIGNING_MEDIA_TYPE, SIGNATURE_ANNOTATION, signature_tag, verify_simple_signing
from .payload import SimpleSigningPayload
from .keys import CosignKeyResolver, check_key_usable

__all__ = [
    "BUNDLE_MEDIA_TYPE",
    "CosignKeyResolver",
    "SIGNATURE_ANNOTATION",
    "SIMPLE_SIGNING_MEDIA_TYPE",
    "SimpleSigningPayload",
    "bundle_layer",
    "check_key_usable",
    "signature_tag",
    "verify_bundle",
    "verify_simple_signing",
]
