"""cosign keyless signatures, verified offline against a user-supplied Sigstore trusted root.

Steps, for a legacy `.sig` layer or a v3 bundle alike (what `cosign verify --certificate-identity
... --certificate-oidc-issuer ...` checks, minus any network call):

1. the signing certificate names the policy's identity: its Fulcio OIDC issuer extension and one
   of its URI/email SANs match (exact, or a regular expression over the whole value);
2. a Rekor entry for this signature: its signed entry timestamp verifies with the log key the
   entry's log id names (and its inclusion proof and checkpoint, when present); the entry records
   this signature, this certificate and the hash of what was signed;
3. the certificate chains to a trusted-root CA, every certificate valid at the entry's integrated
   time (the signing time: Fulcio leaves live ten minutes);
4. an embedded SCT verifies against a trusted-root CT log (unless the policy says `ignoreSct`);
5. the signature verifies with the certificate's key over the payload, and the payload names the
   image digest (the same checks as for key-signed signatures: legacy.py, bundle.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Mapping

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ...errors import SignatureAuthenticityError, SignatureIntegrityError, VerificationError
from ..._json import strict_json_loads
from ...policy.keys import COSIGN_CURVES
from ...policy.model import CosignKeylessTrust
from ..bundle import verify_bundle
from ..legacy import verify_simple_signing
from ..payload import decode_base64
from .fulcio import certificate_identity, check_identity, load_leaf, verify_chain
from .rekor import TlogEntry, check_dsse, check_hashedrekord, entry_from_bundle, entry_from_legacy_bundle, verify_entry
from .sct import verify_embedded_sct
from .trusted_root import trusted_root_from_text

CERTIFICATE_ANNOTATION = "dev.sigstore.cosign/certificate"
CHAIN_ANNOTATION = "dev.sigstore.cosign/chain"  # not trusted: only the trusted root's chains count
REKOR_BUNDLE_ANNOTATION = "dev.sigstore.cosign/bundle"
MAX_TLOG_ENTRIES = 8  # cosign writes one


@dataclass(frozen=True, kw_only=True)
class KeylessResult:
    """Who signed (as the certificate says) and when (as the log says)."""

    issuer: str
    subject: str
    signed_at: datetime
    log_index: int
    key: ec.EllipticCurvePublicKey

    @property
    def identity(self) -> str:
        return f"{self.subject} (issuer {self.issuer})"


def verify_legacy_keyless(*, annotations: Mapping[str, str], payload: bytes, signature: bytes,
                          trust: CosignKeylessTrust, subject_digest: str,
                          required_annotations: Mapping[str, str] | None = None,
                          expected_reference: str | None = None) -> KeylessResult:
    """Verify one `.sig` layer signed keyless: its certificate and Rekor bundle annotations."""
    pem = annotations.get(CERTIFICATE_ANNOTATION)
    if not pem:
        raise SignatureAuthenticityError(f"the layer has no {CERTIFICATE_ANNOTATION} annotation (signed with a key, "
                                         "not keyless)")
    leaf = load_leaf(pem.encode(), der=False)
    rekor = annotations.get(REKOR_BUNDLE_ANNOTATION)
    if not rekor:
        raise SignatureAuthenticityError(f"the layer has no {REKOR_BUNDLE_ANNOTATION} annotation: a keyless signature "
                                         "needs its transparency-log entry (offline verification cannot search Rekor)")
    entry = entry_from_legacy_bundle(rekor)
    result = _verify_certificate(leaf, [entry], trust, lambda e: check_hashedrekord(
        e, signature=signature, certificate_der=_der(leaf), payload=payload))
    verify_simple_signing(payload=payload, signature=signature, key=result.key, subject_digest=subject_digest,
                          required_annotations=dict(required_annotations or {}), expected_reference=expected_reference)
    return result


def verify_bundle_keyless(raw: bytes, *, trust: CosignKeylessTrust, subject_digest: str,
                          required_annotations: Mapping[str, str] | None = None,
                          expected_reference: str | None = None) -> KeylessResult:
    """Verify a cosign v3 sigstore bundle whose verification material is a Fulcio certificate."""
    bundle = strict_json_loads(raw, what="the sigstore bundle")
    material = bundle.get("verificationMaterial") if isinstance(bundle, dict) else None
    if not isinstance(material, dict):
        raise SignatureIntegrityError("the bundle has no verificationMaterial")
    leaf = load_leaf(_certificate_bytes(material), der=True)
    entries = material.get("tlogEntries")
    if not isinstance(entries, list) or not 1 <= len(entries) <= MAX_TLOG_ENTRIES:
        raise SignatureAuthenticityError("the bundle carries no transparency-log entry: a keyless signature needs one")
    envelope = bundle.get("dsseEnvelope")
    signatures = envelope.get("signatures") if isinstance(envelope, dict) else None
    if not isinstance(signatures, list) or len(signatures) != 1 or not isinstance(signatures[0], dict):
        raise SignatureIntegrityError("a keyless bundle's DSSE envelope must carry exactly one signature")
    signature = decode_base64(signatures[0].get("sig"), "the DSSE signature")
    payload = decode_base64(envelope.get("payload"), "the DSSE payload")  # type: ignore[union-attr]
    result = _verify_certificate(leaf, [entry_from_bundle(e) for e in entries], trust, lambda e: check_dsse(
        e, signature=signature, certificate_der=_der(leaf), payload=payload))
    verify_bundle(raw, key=result.key, subject_digest=subject_digest, required_annotations=required_annotations,
                  expected_reference=expected_reference)
    return result


def _verify_certificate(leaf: x509.Certificate, entries: list[TlogEntry], trust: CosignKeylessTrust,
                        records_this_signature: Callable[[TlogEntry], None]) -> KeylessResult:
    """Steps 1-4: identity, a log entry for this signature, the chain at the signing time, the SCT."""
    identity = certificate_identity(leaf)
    subject = check_identity(identity, trust)
    key = leaf.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name not in COSIGN_CURVES:
        raise SignatureIntegrityError("the signing certificate's key is not ECDSA P-256/P-384, the keys supported here")
    root = trusted_root_from_text(trust.trusted_root)
    failures: list[VerificationError] = []
    for entry in entries:
        try:
            verify_entry(entry, root)
            records_this_signature(entry)
        except VerificationError as exc:
            failures.append(exc)
            continue
        issuer = verify_chain(leaf, root, entry.time)
        if not trust.ignore_sct:
            verify_embedded_sct(leaf, issuer, root)
        return KeylessResult(issuer=identity.issuer, subject=subject, signed_at=entry.time, log_index=entry.log_index,
                             key=key)
    if len(failures) == 1:
        raise failures[0]
    raise SignatureAuthenticityError("no transparency-log entry of the signature verifies: "
                                     + "; ".join(map(str, failures)))


def _certificate_bytes(material: dict[str, object]) -> bytes:
    """v0.3 bundles carry the leaf alone (`certificate`); v0.1/v0.2 a chain whose first entry is the leaf."""
    single = material.get("certificate")
    if isinstance(single, dict):
        return decode_base64(single.get("rawBytes"), "the bundle's certificate")
    chain = material.get("x509CertificateChain")
    certificates = chain.get("certificates") if isinstance(chain, dict) else None
    if isinstance(certificates, list) and certificates and isinstance(certificates[0], dict):
        return decode_base64(certificates[0].get("rawBytes"), "the bundle's certificate")
    raise SignatureAuthenticityError("the bundle carries no signing certificate (signed with a key, not keyless)")


def _der(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.DER)

