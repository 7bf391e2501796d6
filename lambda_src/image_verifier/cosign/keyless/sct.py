"""The certificate transparency proof embedded in a Fulcio leaf (RFC 6962 §3.2, precertificate SCTs).

Fulcio logs every certificate it issues to a CT log before handing it out, and embeds the log's
signed certificate timestamp (SCT): so a certificate that was never made public cannot verify.
The SCT signs the precertificate's TBS (the leaf's TBS without the SCT extension) and the hash of
the issuer's public key; `cryptography` exposes both.
"""

from __future__ import annotations

import hashlib
import struct
from datetime import datetime, timedelta, timezone

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.certificate_transparency import LogEntryType, SignatureAlgorithm

from ...errors import SignatureAuthenticityError
from .trusted_root import TrustedRoot

_SCT_V1 = 0
_CERTIFICATE_TIMESTAMP = 0  # SignatureType.certificate_timestamp
_PRECERT_ENTRY = 1  # LogEntryType.precert_entry
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def verify_embedded_sct(leaf: x509.Certificate, issuer: x509.Certificate, root: TrustedRoot) -> str:
    """Verify one embedded SCT of `leaf` against a ctlog of the trusted root; return the log's URL or id."""
    try:
        scts = leaf.extensions.get_extension_for_class(x509.PrecertificateSignedCertificateTimestamps).value
    except x509.ExtensionNotFound as exc:
        raise SignatureAuthenticityError(
            "the signing certificate carries no signed certificate timestamp (SCT), so it was never shown to be "
            "in a certificate transparency log; set ignoreSct only for a private Fulcio without CT") from exc
    except ValueError as exc:  # a malformed SCT list
        raise SignatureAuthenticityError(f"the signing certificate's SCT list cannot be parsed: {exc}") from exc
    issuer_key_hash = hashlib.sha256(
        issuer.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    ).digest()
    problems = []
    for sct in scts:
        log = root.ctlog(sct.log_id)
        if log is None:
            problems.append(f"an SCT from CT log {sct.log_id.hex()}, which the trusted root does not list")
            continue
        moment = sct.timestamp.replace(tzinfo=timezone.utc)
        if not log.validity.contains(moment):
            problems.append(f"an SCT from CT log {sct.log_id.hex()} at {moment.isoformat()}, outside the key's "
                            f"validity ({log.validity})")
            continue
        if sct.entry_type is not LogEntryType.PRE_CERTIFICATE or sct.signature_algorithm is not SignatureAlgorithm.ECDSA:
            problems.append(f"an SCT from CT log {sct.log_id.hex()} of a kind not supported here")
            continue
        signed = _signed_data(sct, issuer_key_hash, leaf.tbs_precertificate_bytes)
        try:
            log.key.verify(sct.signature, signed, ec.ECDSA(sct.signature_hash_algorithm))
        except InvalidSignature:
            problems.append(f"an SCT from CT log {sct.log_id.hex()} whose signature does not verify")
            continue
        return log.base_url or sct.log_id.hex()
    raise SignatureAuthenticityError("no embedded SCT verifies against a CT log of the trusted root: "
                                     + "; ".join(problems or ["the SCT list is empty"]))


def _signed_data(sct: x509.certificate_transparency.SignedCertificateTimestamp, issuer_key_hash: bytes,
                 tbs: bytes) -> bytes:
    """RFC 6962 §3.2 `digitally-signed` input for a precertificate entry."""
    # Integer arithmetic: a float round trip can lose the last millisecond, and the signature with it.
    milliseconds = (sct.timestamp.replace(tzinfo=timezone.utc) - _EPOCH) // timedelta(milliseconds=1)
    extensions = sct.extension_bytes
    return (struct.pack(">BBQH", _SCT_V1, _CERTIFICATE_TIMESTAMP, milliseconds, _PRECERT_ENTRY) + issuer_key_hash
            + len(tbs).to_bytes(3, "big") + tbs + struct.pack(">H", len(extensions)) + extensions)
