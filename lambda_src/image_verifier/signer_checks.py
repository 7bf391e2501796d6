"""Does the evidence for one digest hold a valid signature from one trusted signer?

Each check returns a `SignerMatch` or raises: `NoSignatureError` when nothing of the signer's kind
was found, another `VerificationError` (with every candidate's reason) when nothing verified, and
`UnavailableError` when evidence could not be read. At least one valid signature satisfies a signer.
"""

from __future__ import annotations

from datetime import datetime
from .cosign.bundle import BUNDLE_MEDIA_TYPE, MAX_BUNDLE_BYTES, bundle_layer, verify_bundle
from .cosign.keys import CosignKeyResolver, check_key_usable
from .cosign.payload import check_required_annotations
from .cosign.legacy import MAX_PAYLOAD_BYTES, layer_signature, signature_tag, verify_simple_signing
from .errors import NoSignatureError, PolicyError, UnavailableError, VerificationError
from .evidence import MAX_SIGNATURE_CANDIDATES, Evidence
from .notation.awssigner import RevocationChecker
from .notation import MAX_ENVELOPE_BYTES, NOTATION_ARTIFACT_TYPE, signature_envelope_descriptor, verify_notation
from .oci import OCI_EMPTY_CONFIG, Descriptor
from .policy import CosignKeyTrust, Rule, SignerKind, TrustedSigner
from .policy.keys import key_id
from .verdict import SignerMatch

MAX_REASONS = 4  # per signer, so a flood of bad signatures cannot flood the audit record


def _fail(signer: TrustedSigner, reasons: list[str]) -> VerificationError:
    shown = reasons[:MAX_REASONS] + ([f"and {len(reasons) - MAX_REASONS} more"] if len(reasons) > MAX_REASONS else [])
    return VerificationError(f"signer {signer.name!r}: " + "; ".join(shown))


def check_cosign(signer: TrustedSigner, rule: Rule, evidence: Evidence, keys: CosignKeyResolver,
                 now: datetime) -> SignerMatch:
    trust = signer.trust
    assert isinstance(trust, CosignKeyTrust)
    check_key_usable(signer.name, trust, now)
    key = keys.public_key(trust)
    match = lambda fmt, sig_digest: SignerMatch(  # noqa: E731 - a local constructor keeps the two paths alike
        signer=signer.name, kind=SignerKind.COSIGN_KEY.value, identity=trust.kms_key_arn or key_id(key),
        format=fmt, verified_digest=evidence.digest, break_glass=trust.break_glass, signature_digest=sig_digest)
    expected_reference = evidence.ref.name if rule.match_docker_reference else None
    reasons: list[str] = []

    # 1. the legacy `.sig` tag: cheapest, two requests per signature
    try:
        manifest = evidence.cosign_signatures()
    except VerificationError as exc:  # junk at the tag must not hide a bundle signature
        manifest = None
        reasons.append(f"{signature_tag(evidence.digest)}: {exc}")
    for index, layer in enumerate(manifest.layers[:MAX_SIGNATURE_CANDIDATES] if manifest else []):
        try:
            signature = layer_signature(layer)
            payload = evidence.blob(layer, max_bytes=MAX_PAYLOAD_BYTES)
            verify_simple_signing(payload=payload, signature=signature, key=key, subject_digest=evidence.digest,
                                  required_annotations=dict(rule.required_annotations),
                                  expected_reference=expected_reference)
            return match("cosign-legacy", manifest.digest)  # type: ignore[union-attr]
        except VerificationError as exc:
            reasons.append(f"{signature_tag(evidence.digest)} layer {index}: {exc}")

    # 2. cosign v3 sigstore bundles stored as referrers
    def may_be_bundle(d: Descriptor) -> bool:  # the tag-schema index may carry the config type instead
        return d.artifact_type in (None, BUNDLE_MEDIA_TYPE, OCI_EMPTY_CONFIG)

    referrers, problems = evidence.referrer_manifests(may_be_bundle)
    for referrer in referrers:
        try:
            layer = bundle_layer(referrer)
            if layer is None:
                continue  # another kind of referrer (an SBOM, a Notation signature)
            verify_bundle(evidence.blob(layer, max_bytes=MAX_BUNDLE_BYTES), key=key, subject_digest=evidence.digest,
                          required_annotations=rule.required_annotations)
            return match("cosign-bundle", referrer.digest)
        except VerificationError as exc:
            reasons.append(f"bundle {referrer.digest}: {exc}")
    reasons += problems

    if not reasons:
        raise NoSignatureError(
            f"signer {signer.name!r}: no cosign signature for {evidence.digest} (no {signature_tag(evidence.digest)} "
            "tag and no sigstore bundle referrer)"
        )
    raise _fail(signer, reasons)


def check_notation(signer: TrustedSigner, rule: Rule, evidence: Evidence, now: datetime,
                   revocation: RevocationChecker | None) -> SignerMatch:
    subject = evidence.subject_descriptor()
    reasons: list[str] = []
    candidates, problems = evidence.referrer_manifests(lambda d: d.artifact_type == NOTATION_ARTIFACT_TYPE)
    reasons += problems
    for manifest in candidates:
        try:
            layer = signature_envelope_descriptor(manifest, evidence.digest)
            result = verify_notation(envelope=evidence.blob(layer, max_bytes=MAX_ENVELOPE_BYTES),
                                     media_type=layer.media_type, subject=subject, trust=signer.trust,
                                     now=now, revocation=revocation, signer_name=signer.name)
            check_required_annotations(result.user_annotations, rule.required_annotations)
            fmt = "notation-jws" if layer.media_type == "application/jose+json" else "notation-cose"
            return SignerMatch(signer=signer.name, kind=signer.kind.value, identity=result.identity, format=fmt,
                               verified_digest=evidence.digest, signature_digest=manifest.digest)
        except VerificationError as exc:
            reasons.append(f"notation signature {manifest.digest}: {exc}")
        except (UnavailableError, PolicyError):
            raise  # not about this signature: the evidence or the policy itself
        except Exception as exc:  # noqa: BLE001 - a parser bug on one signature must not hide the others
            reasons.append(f"notation signature {manifest.digest}: could not be parsed ({type(exc).__name__})")
    if not reasons:
        raise NoSignatureError(f"signer {signer.name!r}: no Notation signature is associated with {evidence.digest}")
    raise _fail(signer, reasons)

