"""Sigstore's `trusted_root.json`: the Fulcio CAs, Rekor and CT log keys a keyless signature rests on.

The user supplies the file (for the public-good instance, `cosign trusted-root create` or the TUF
repository's `trusted_root.json`; for a private instance, their own). Nothing is fetched: the
verifier trusts exactly what the file names, each entry within its `validFor` window.

Shape (protobuf JSON, `dev.sigstore.trustedroot.v1.TrustedRoot`):
`certificateAuthorities[].certChain.certificates[].rawBytes` (base64 DER, issuing CA first, root
last) with `validFor {start, end}`; `tlogs[]` and `ctlogs[]` with `publicKey {rawBytes (DER SPKI),
keyDetails, validFor}` and `logId.keyId` (base64 of SHA-256 over the DER SPKI);
`timestampAuthorities[]` (RFC 3161 TSAs; read, not used: see docs/policy.md).
Every problem is a `TrustedRootError` naming the field, e.g. `tlogs[0].logId.keyId`.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

MEDIA_TYPE_PREFIX = "application/vnd.dev.sigstore.trustedroot"
MAX_ENTRIES = 32  # the public-good root lists a handful of CAs and logs; keeps a hostile file cheap
MAX_CHAIN = 8  # Fulcio chains are 2-3 certificates
_KEY_DETAILS = {"PKIX_ECDSA_P256_SHA_256": "secp256r1", "PKIX_ECDSA_P384_SHA_384": "secp384r1",
                "PKIX_ECDSA_P521_SHA_512": "secp521r1"}


class TrustedRootError(ValueError):
    """The trusted root is malformed; `path` names the field inside it."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


@dataclass(frozen=True, kw_only=True)
class Validity:
    start: datetime | None
    end: datetime | None

    def contains(self, moment: datetime) -> bool:
        return (self.start is None or self.start <= moment) and (self.end is None or moment <= self.end)

    def __str__(self) -> str:
        return f"{_iso(self.start) or '-inf'} .. {_iso(self.end) or 'now'}"


@dataclass(frozen=True, kw_only=True)
class CertificateAuthority:
    """A Fulcio instance: its chain (issuing CA first, root last) and when it issued certificates."""

    uri: str
    chain: tuple[x509.Certificate, ...]
    validity: Validity


@dataclass(frozen=True, kw_only=True)
class TransparencyLog:
    """A Rekor or CT log key, named by its log id (SHA-256 of the DER SubjectPublicKeyInfo)."""

    base_url: str
    log_id: bytes
    key: ec.EllipticCurvePublicKey
    validity: Validity


@dataclass(frozen=True, kw_only=True)
class TrustedRoot:
    certificate_authorities: tuple[CertificateAuthority, ...]
    tlogs: tuple[TransparencyLog, ...]
    ctlogs: tuple[TransparencyLog, ...]
    timestamp_authorities: int  # counted only: RFC 3161 timestamps are not verified (docs/policy.md)

    @classmethod
    def from_document(cls, document: Any) -> TrustedRoot:
        """Parse a trusted root already read as JSON (TrustedRootError on any problem)."""
        if not isinstance(document, dict):
            raise TrustedRootError("", "expected the trusted_root.json object")
        media_type = document.get("mediaType")
        if not isinstance(media_type, str) or not media_type.startswith(MEDIA_TYPE_PREFIX):
            raise TrustedRootError("mediaType", f"expected {MEDIA_TYPE_PREFIX}+json;version=0.1, got {media_type!r}; "
                                                "is this Sigstore's trusted_root.json?")
        authorities = tuple(_authority(item, f"certificateAuthorities[{i}]")
                            for i, item in enumerate(_list(document, "certificateAuthorities", required=True)))
        tlogs = tuple(_log(item, f"tlogs[{i}]") for i, item in enumerate(_list(document, "tlogs", required=True)))
        ctlogs = tuple(_log(item, f"ctlogs[{i}]") for i, item in enumerate(_list(document, "ctlogs", required=False)))
        tsas = _list(document, "timestampAuthorities", required=False)
        return cls(certificate_authorities=authorities, tlogs=tlogs, ctlogs=ctlogs, timestamp_authorities=len(tsas))

    def tlog(self, log_id: bytes) -> TransparencyLog | None:
        return next((log for log in self.tlogs if log.log_id == log_id), None)

    def ctlog(self, log_id: bytes) -> TransparencyLog | None:
        return next((log for log in self.ctlogs if log.log_id == log_id), None)


@functools.lru_cache(maxsize=16)
def trusted_root_from_text(text: str) -> TrustedRoot:
    """The parsed root of a policy's canonical trusted-root text, parsed once per warm Lambda."""
    return TrustedRoot.from_document(json.loads(text))


def canonical_text(document: Any) -> str:
    """The form the policy model keeps (and hashes): sorted keys, no white space."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"))


def _list(document: dict[str, Any], key: str, *, required: bool) -> list[Any]:
    value = document.get(key, [])
    if not isinstance(value, list):
        raise TrustedRootError(key, "expected a list")
    if required and not value:
        raise TrustedRootError(key, "the trusted root must list at least one entry here")
    if len(value) > MAX_ENTRIES:
        raise TrustedRootError(key, f"more than {MAX_ENTRIES} entries")
    return value


def _authority(item: Any, path: str) -> CertificateAuthority:
    if not isinstance(item, dict):
        raise TrustedRootError(path, "expected an object")
    chain_node = item.get("certChain")
    certificates = chain_node.get("certificates") if isinstance(chain_node, dict) else None
    if not isinstance(certificates, list) or not 1 <= len(certificates) <= MAX_CHAIN:
        raise TrustedRootError(f"{path}.certChain.certificates", f"expected 1 to {MAX_CHAIN} certificates")
    chain = []
    for index, entry in enumerate(certificates):
        where = f"{path}.certChain.certificates[{index}].rawBytes"
        raw = _base64(entry.get("rawBytes") if isinstance(entry, dict) else None, where)
        try:
            chain.append(x509.load_der_x509_certificate(raw))
        except ValueError as exc:
            raise TrustedRootError(where, f"not a DER certificate: {exc}") from exc
    return CertificateAuthority(uri=str(item.get("uri", "")), chain=tuple(chain),
                                validity=_validity(item.get("validFor"), f"{path}.validFor"))


def _log(item: Any, path: str) -> TransparencyLog:
    if not isinstance(item, dict):
        raise TrustedRootError(path, "expected an object")
    key_node = item.get("publicKey")
    if not isinstance(key_node, dict):
        raise TrustedRootError(f"{path}.publicKey", "expected an object with rawBytes, keyDetails and validFor")
    details = key_node.get("keyDetails")
    if details not in _KEY_DETAILS:
        raise TrustedRootError(f"{path}.publicKey.keyDetails", f"unsupported key type {details!r}; this verifier reads "
                                                               f"{', '.join(sorted(_KEY_DETAILS))}")
    der = _base64(key_node.get("rawBytes"), f"{path}.publicKey.rawBytes")
    try:
        key = serialization.load_der_public_key(der)
    except ValueError as exc:
        raise TrustedRootError(f"{path}.publicKey.rawBytes", f"not a DER SubjectPublicKeyInfo: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != _KEY_DETAILS[details]:
        raise TrustedRootError(f"{path}.publicKey.rawBytes", f"the key is not the {details} key keyDetails names")
    log_id_node = item.get("logId")
    log_id = _base64(log_id_node.get("keyId") if isinstance(log_id_node, dict) else None, f"{path}.logId.keyId")
    # Rekor (v1) and RFC 6962 CT logs both name themselves by this hash; a mismatch means the
    # entry was edited by hand, and trusting the stated id would let entries name another key.
    if log_id != hashlib.sha256(der).digest():
        raise TrustedRootError(f"{path}.logId.keyId", "is not the SHA-256 of publicKey.rawBytes (the log's id)")
    return TransparencyLog(base_url=str(item.get("baseUrl", "")), log_id=log_id, key=key,
                           validity=_validity(key_node.get("validFor"), f"{path}.publicKey.validFor"))


def _validity(node: Any, path: str) -> Validity:
    if node is None:
        return Validity(start=None, end=None)
    if not isinstance(node, dict):
        raise TrustedRootError(path, "expected an object with start (and optionally end)")
    return Validity(start=_time(node.get("start"), f"{path}.start"), end=_time(node.get("end"), f"{path}.end"))


def _time(value: Any, path: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00")) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise TrustedRootError(path, f"{value!r} is not an RFC 3339 time, e.g. '2022-04-13T20:06:15.000Z'")
    return parsed


def _base64(value: Any, path: str) -> bytes:
    if not isinstance(value, str) or not value:
        raise TrustedRootError(path, "expected a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise TrustedRootError(path, "not valid base64") from exc


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None
