"""The walk over one digest's cosign signatures, shared by key signers and keyless signers.

First the legacy `sha256-<hex>.sig` layers (cheapest: two requests per signature), then the cosign
v3 sigstore bundles stored as referrers (read only when asked for, so an image signed the classic
way costs no speculative requests). Each candidate is checked by the caller's function; a candidate
that fails adds its reason and the walk goes on, since one junk signature must not hide a valid one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from ..errors import VerificationError
from ..evidence import MAX_SIGNATURE_CANDIDATES, Evidence
from ..oci import OCI_EMPTY_CONFIG, Descriptor
from .bundle import BUNDLE_MEDIA_TYPE, MAX_BUNDLE_BYTES, bundle_layer
from .legacy import MAX_PAYLOAD_BYTES, layer_signature, signature_tag

R = TypeVar("R")


@dataclass(frozen=True, kw_only=True)
class Verified(Generic[R]):
    """A candidate that the caller's check accepted."""

    format: str  # cosign-legacy | cosign-bundle
    carrier: str  # the digest of the manifest that carried it
    signed: bytes  # what identifies the signature: its bytes (legacy) or the whole bundle
    result: R  # what the check returned


def verified_cosign_signatures(evidence: Evidence, reasons: list[str], *,
                               legacy: Callable[[Descriptor, bytes, bytes], R],
                               bundle: Callable[[bytes], R]) -> Iterator[Verified[R]]:
    """Yield every candidate that `legacy(layer, payload, signature)` or `bundle(raw)` accepts.

    The checks raise VerificationError to refuse a candidate; its reason is appended to `reasons`
    (as are problems reading the `.sig` tag or a referrer). Other errors propagate.
    """
    try:
        manifest = evidence.cosign_signatures()
    except VerificationError as exc:  # junk at the tag must not hide a bundle signature
        manifest = None
        reasons.append(f"{signature_tag(evidence.digest)}: {exc}")
    for index, layer in enumerate(manifest.layers[:MAX_SIGNATURE_CANDIDATES] if manifest else []):
        try:
            signature = layer_signature(layer)
            result = legacy(layer, evidence.blob(layer, max_bytes=MAX_PAYLOAD_BYTES), signature)
        except VerificationError as exc:
            reasons.append(f"{signature_tag(evidence.digest)} layer {index}: {exc}")
            continue
        yield Verified(format="cosign-legacy", carrier=manifest.digest, signed=signature,  # type: ignore[union-attr]
                       result=result)

    def may_be_bundle(d: Descriptor) -> bool:  # the tag-schema index may carry the config type instead
        return d.artifact_type in (None, BUNDLE_MEDIA_TYPE, OCI_EMPTY_CONFIG)

    referrers, problems = evidence.referrer_manifests(may_be_bundle)
    for referrer in referrers:
        try:
            layer = bundle_layer(referrer)
            if layer is None:
                continue  # another kind of referrer (an SBOM, a Notation signature)
            raw = evidence.blob(layer, max_bytes=MAX_BUNDLE_BYTES)
            result = bundle(raw)
        except VerificationError as exc:
            reasons.append(f"bundle {referrer.digest}: {exc}")
            continue
        yield Verified(format="cosign-bundle", carrier=referrer.digest, signed=raw, result=result)
    reasons += problems
