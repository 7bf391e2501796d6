"""What both envelope formats (JWS, COSE) parse into, and the signed-attribute rules they share.

The JWS and COSE parsers only decode their format; every rule about the Notary signed attributes
(critical list, signing scheme, which times must or must not appear) lives here once, so the two
formats cannot drift apart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping, Sequence

from ..errors import SignatureIntegrityError
from .algorithms import Algorithm

PAYLOAD_CONTENT_TYPE = "application/vnd.cncf.notary.payload.v1+json"
SCHEME_X509 = "notary.x509"
SCHEME_SIGNING_AUTHORITY = "notary.x509.signingAuthority"
SIGNING_SCHEMES = (SCHEME_X509, SCHEME_SIGNING_AUTHORITY)

SIGNING_SCHEME = "io.cncf.notary.signingScheme"
SIGNING_TIME = "io.cncf.notary.signingTime"
AUTHENTIC_SIGNING_TIME = "io.cncf.notary.authenticSigningTime"
EXPIRY = "io.cncf.notary.expiry"
VERIFICATION_PLUGIN = "io.cncf.notary.verificationPlugin"
VERIFICATION_PLUGIN_MIN_VERSION = "io.cncf.notary.verificationPluginMinVersion"
TIMESTAMP_SIGNATURE = "io.cncf.notary.timestampSignature"
SIGNING_AGENT = "io.cncf.notary.signingAgent"
TIME_ATTRIBUTES = (SIGNING_TIME, AUTHENTIC_SIGNING_TIME, EXPIRY)
_KNOWN_ATTRIBUTES = frozenset({SIGNING_SCHEME, *TIME_ATTRIBUTES, VERIFICATION_PLUGIN, VERIFICATION_PLUGIN_MIN_VERSION})

MAX_CHAIN_CERTIFICATES = 10  # real chains have 2-4 certificates; bounds path building work
MAX_CRITICAL_ENTRIES = 64  # a real `crit` list has 2-7 entries

# SemVer 2.0.0, the syntax the spec gives for verificationPluginMinVersion.
_SEMVER_RE = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?\Z",
    re.ASCII,
)


@dataclass(frozen=True, kw_only=True)
class SignedAttributes:
    """The protected (signed) Notary attributes of an envelope, already checked against the spec rules."""

    signing_scheme: str
    signing_time: datetime | None = None  # notary.x509 only; claimed by the signer, never a trust input
    authentic_signing_time: datetime | None = None  # notary.x509.signingAuthority only
    expiry: datetime | None = None
    verification_plugin: str | None = None
    verification_plugin_min_version: str | None = None
    extended: Mapping[str, Any] = field(default_factory=dict)  # every other attribute, by name
    critical_extended: frozenset[str] = frozenset()  # names of extended attributes listed in `crit`


@dataclass(frozen=True, kw_only=True)
class Envelope:
    """A parsed signature envelope. Nothing in it is verified yet except its shape."""

    media_type: str
    algorithm: Algorithm  # as the envelope claims it; checked against the leaf key later
    payload: bytes
    signed_bytes: bytes  # exactly the bytes the signature covers
    signature: bytes  # raw: PSS bytes, or ECDSA r||s
    certificates: tuple[bytes, ...]  # DER, leaf first, root last
    attributes: SignedAttributes
    timestamp_token: bytes | None = None  # RFC 3161 TimeStampToken (DER), unprotected


def build_signed_attributes(*, named: Mapping[str, Any], critical: Sequence[str], content_type: object) -> SignedAttributes:
    """Apply the spec's rules to the protected attributes (times already decoded to datetimes).

    `named` holds every protected header that is not a registered JOSE/COSE header; `critical`
    holds the names listed in `crit` (registered names already rejected by the caller).
    """
    if content_type != PAYLOAD_CONTENT_TYPE:
        raise SignatureIntegrityError(f"unsupported payload content type {content_type!r}")
    crit = _critical_set(critical, named)
    scheme = named.get(SIGNING_SCHEME)
    if scheme is None or SIGNING_SCHEME not in crit:
        raise SignatureIntegrityError(f"{SIGNING_SCHEME} must be present and marked critical")
    if scheme not in SIGNING_SCHEMES:
        raise SignatureIntegrityError(f"unsupported signing scheme {scheme!r}")
    for name in TIME_ATTRIBUTES:
        if name in named and not isinstance(named[name], datetime):
            raise SignatureIntegrityError(f"{name} is not a time")
    required, forbidden = (SIGNING_TIME, AUTHENTIC_SIGNING_TIME)
    if scheme == SCHEME_SIGNING_AUTHORITY:
        required, forbidden = forbidden, required
    if required not in named:
        raise SignatureIntegrityError(f"signing scheme {scheme} requires {required}")
    if forbidden in named:
        raise SignatureIntegrityError(f"signing scheme {scheme} forbids {forbidden}")
    for name in (AUTHENTIC_SIGNING_TIME, EXPIRY, VERIFICATION_PLUGIN, VERIFICATION_PLUGIN_MIN_VERSION):
        if name in named and name not in crit:
            raise SignatureIntegrityError(f"{name} must be marked critical")
    signed_at = named.get(SIGNING_TIME) or named.get(AUTHENTIC_SIGNING_TIME)
    expiry = named.get(EXPIRY)
    if expiry is not None and expiry <= signed_at:
        raise SignatureIntegrityError(f"expiry {expiry.isoformat()} is not after the signing time {signed_at.isoformat()}")
    plugin, min_version = named.get(VERIFICATION_PLUGIN), named.get(VERIFICATION_PLUGIN_MIN_VERSION)
    if plugin is not None and (not isinstance(plugin, str) or not plugin):
        raise SignatureIntegrityError(f"{VERIFICATION_PLUGIN} is not a non-empty string")
    if min_version is not None:
        if plugin is None:
            raise SignatureIntegrityError(f"{VERIFICATION_PLUGIN_MIN_VERSION} without {VERIFICATION_PLUGIN}")
        if not isinstance(min_version, str) or not _SEMVER_RE.match(min_version):
            raise SignatureIntegrityError(f"{VERIFICATION_PLUGIN_MIN_VERSION} {min_version!r} is not a SemVer version")
    extended = {name: value for name, value in named.items() if name not in _KNOWN_ATTRIBUTES}
    return SignedAttributes(
        signing_scheme=scheme,
        signing_time=named.get(SIGNING_TIME),
        authentic_signing_time=named.get(AUTHENTIC_SIGNING_TIME),
        expiry=expiry,
        verification_plugin=plugin,
        verification_plugin_min_version=min_version,
        extended=extended,
        critical_extended=frozenset(name for name in crit if name in extended),
    )


def _critical_set(critical: Sequence[str], named: Mapping[str, Any]) -> frozenset[str]:
    if not critical:
        raise SignatureIntegrityError("the critical header list is missing or empty")
    if len(critical) > MAX_CRITICAL_ENTRIES:
        raise SignatureIntegrityError(f"the critical header list has more than {MAX_CRITICAL_ENTRIES} entries")
    crit = frozenset(critical)
    if len(crit) != len(critical):
        raise SignatureIntegrityError("the critical header list repeats an entry")
    for name in critical:
        if name not in named:
            raise SignatureIntegrityError(f"critical header {name!r} is not present in the protected header")
    return crit


def check_chain_shape(certificates: Sequence[object], *, what: str) -> None:
    """x5c / x5chain: a non-empty, bounded list (the type of each entry is checked by the caller)."""
    if not isinstance(certificates, list) or not certificates:
        raise SignatureIntegrityError(f"{what} is missing or not a non-empty array")
    if len(certificates) > MAX_CHAIN_CERTIFICATES:
        raise SignatureIntegrityError(f"{what} has more than {MAX_CHAIN_CERTIFICATES} certificates")
