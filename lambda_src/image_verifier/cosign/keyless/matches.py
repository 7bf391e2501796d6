"""Does the evidence for one digest hold a valid keyless signature of one `cosignKeyless` signer?

The same walk as `signer_checks.cosign_matches` (the `.sig` layers first, then the v3 bundle
referrers; every candidate's failure kept as a reason), with the keyless checks of verify.py in
place of a fixed key. Imported only when a policy has a keyless signer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

from ...errors import NoSignatureError, PolicyError, UnavailableError, VerificationError
from ...evidence import MAX_SIGNATURE_CANDIDATES, Evidence
from ...oci import OCI_EMPTY_CONFIG, Descriptor
from ...policy import CosignKeylessTrust, Rule, SignerKind, TrustedSigner
from ...policy.keys import key_id
from ...verdict import SignerMatch
from ..bundle import BUNDLE_MEDIA_TYPE, MAX_BUNDLE_BYTES, bundle_layer
from ..legacy import MAX_PAYLOAD_BYTES, layer_signature, signature_tag
from .verify import KeylessResult, verify_bundle_keyless, verify_legacy_keyless

MAX_REASONS = 4  # as signer_checks: a flood of bad signatures cannot flood the audit record


def keyless_matches(signer: TrustedSigner, rule: Rule, evidence: Evidence) -> Iterator[SignerMatch]:
    """Every valid keyless signature of `signer` on `evidence.digest`; raises when there is none."""
    trust = signer.trust
    assert isinstance(trust, CosignKeylessTrust)
    reasons: list[str] = []
    found = 0
    expected_reference = evidence.ref.name if rule.match_docker_reference else None

    def match(fmt: str, signature_digest: str, signed: bytes, result: KeylessResult) -> SignerMatch:
        return SignerMatch(signer=signer.name, kind=SignerKind.COSIGN_KEYLESS.value, identity=result.identity,
                           format=fmt, verified_digest=evidence.digest, signature_digest=signature_digest,
                           signature_sha256="sha256:" + hashlib.sha256(signed).hexdigest(),
                           key_fingerprint=key_id(result.key))

    # 1. the legacy `.sig` tag, as cosign v2 `sign` (keyless) writes it
    try:
        manifest = evidence.cosign_signatures()
    except VerificationError as exc:  # junk at the tag must not hide a bundle signature
        manifest = None
        reasons.append(f"{signature_tag(evidence.digest)}: {exc}")
    for index, layer in enumerate(manifest.layers[:MAX_SIGNATURE_CANDIDATES] if manifest else []):
        try:
            signature = layer_signature(layer)
            payload = evidence.blob(layer, max_bytes=MAX_PAYLOAD_BYTES)
            result = verify_legacy_keyless(
                annotations=layer.annotations, payload=payload, signature=signature, trust=trust,
                subject_digest=evidence.digest, required_annotations=rule.required_annotations,
                expected_reference=expected_reference)
        except VerificationError as exc:
            reasons.append(f"{signature_tag(evidence.digest)} layer {index}: {exc}")
            continue
        except (UnavailableError, PolicyError):
            raise  # not about this signature: the evidence or the policy itself
        except Exception as exc:  # noqa: BLE001 - a parser bug on one certificate must not hide the others
            reasons.append(f"{signature_tag(evidence.digest)} layer {index}: could not be parsed ({type(exc).__name__})")
            continue
        found += 1
        yield match("cosign-legacy", manifest.digest, signature, result)  # type: ignore[union-attr]

    # 2. cosign v3 sigstore bundles stored as referrers
    def may_be_bundle(d: Descriptor) -> bool:  # the tag-schema index may carry the config type instead
        return d.artifact_type in (None, BUNDLE_MEDIA_TYPE, OCI_EMPTY_CONFIG)

    referrers, problems = evidence.referrer_manifests(may_be_bundle)
    for referrer in referrers:
        try:
            layer = bundle_layer(referrer)
            if layer is None:
                continue  # another kind of referrer (an SBOM, a Notation signature)
            bundle = evidence.blob(layer, max_bytes=MAX_BUNDLE_BYTES)
            result = verify_bundle_keyless(bundle, trust=trust, subject_digest=evidence.digest,
                                           required_annotations=rule.required_annotations,
                                           expected_reference=expected_reference)
        except VerificationError as exc:
            reasons.append(f"bundle {referrer.digest}: {exc}")
            continue
        except (UnavailableError, PolicyError):
            raise
        except Exception as exc:  # noqa: BLE001 - as above
            reasons.append(f"bundle {referrer.digest}: could not be parsed ({type(exc).__name__})")
            continue
        found += 1
        yield match("cosign-bundle", referrer.digest, bundle, result)
    reasons += problems

    if found:
        return
    if not reasons:
        raise NoSignatureError(f"signer {signer.name!r}: no cosign signature for {evidence.digest} (no "
                               f"{signature_tag(evidence.digest)} tag and no sigstore bundle referrer)")
    shown = reasons[:MAX_REASONS] + ([f"and {len(reasons) - MAX_REASONS} more"] if len(reasons) > MAX_REASONS else [])
    raise VerificationError(f"signer {signer.name!r}: " + "; ".join(shown))
