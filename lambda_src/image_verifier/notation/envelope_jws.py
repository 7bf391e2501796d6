"""Parse a Notary JWS envelope (`application/jose+json`): flattened JSON serialization only.

Strict on purpose: exactly the four top-level members, base64url without padding and with no
stray bits, duplicate JSON keys rejected (a second `alg` must not win), registered headers never
listed as critical, RFC 3339 times with an offset.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import datetime
from typing import Any

from ..errors import HostileArtifactError, SignatureIntegrityError
from .._json import strict_json_loads
from .algorithms import Algorithm
from .envelope import (
    SIGNING_AGENT,
    TIME_ATTRIBUTES,
    TIMESTAMP_SIGNATURE,
    Envelope,
    build_signed_attributes,
    check_chain_shape,
)

JWS_MEDIA_TYPE = "application/jose+json"
_TOP_LEVEL = frozenset({"payload", "protected", "header", "signature"})
# RFC 7515 §4.1 registered header names: never extended attributes, never allowed in `crit`.
_REGISTERED = frozenset({"alg", "jku", "jwk", "kid", "x5u", "x5c", "x5t", "x5t#S256", "typ", "cty", "crit"})
_B64URL_RE = re.compile(r"^[A-Za-z0-9_-]*\Z")
_B64STD_RE = re.compile(r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?\Z")
_RFC3339_RE = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})\Z",
    re.ASCII,
)


def parse_jws(data: bytes) -> Envelope:
    """Parse (not verify) a JWS envelope; raise SignatureIntegrityError on any deviation."""
    top = _json(data, "the JWS envelope")
    if not isinstance(top, dict) or set(top) != _TOP_LEVEL:
        keys = sorted(top) if isinstance(top, dict) else type(top).__name__
        raise SignatureIntegrityError(f"JWS envelope must have exactly payload, protected, header, signature; got {keys}")
    protected_b64, payload_b64, signature_b64 = top["protected"], top["payload"], top["signature"]
    protected = _json(b64url_decode(protected_b64, "protected"), "the JWS protected header")
    if not isinstance(protected, dict):
        raise SignatureIntegrityError("the JWS protected header is not a JSON object")
    payload = b64url_decode(payload_b64, "payload")
    signature = b64url_decode(signature_b64, "signature")
    crit = protected.get("crit")
    if not isinstance(crit, list) or not all(isinstance(name, str) for name in crit):
        raise SignatureIntegrityError("the JWS crit header is missing or not an array of strings")
    listed_registered = sorted(set(crit) & _REGISTERED)
    if listed_registered:
        raise SignatureIntegrityError(f"the JWS crit header lists registered headers {listed_registered}")
    named = {name: value for name, value in protected.items() if name not in _REGISTERED}
    for name in TIME_ATTRIBUTES:
        if name in named:
            named[name] = parse_rfc3339(named[name], name)
    attributes = build_signed_attributes(named=named, critical=crit, content_type=protected.get("cty"))
    header = top["header"]
    if not isinstance(header, dict):
        raise SignatureIntegrityError("the JWS unprotected header is not a JSON object")
    x5c = header.get("x5c")
    check_chain_shape(x5c, what="x5c")
    certificates = tuple(b64std_decode(cert, f"x5c[{i}]") for i, cert in enumerate(x5c))
    token = header.get(TIMESTAMP_SIGNATURE)
    if SIGNING_AGENT in header and not isinstance(header[SIGNING_AGENT], str):
        raise SignatureIntegrityError(f"{SIGNING_AGENT} is not a string")
    return Envelope(
        media_type=JWS_MEDIA_TYPE,
        algorithm=Algorithm.from_jws(protected.get("alg")),
        payload=payload,
        # The signing input is the two members exactly as they appear in the envelope.
        signed_bytes=f"{protected_b64}.{payload_b64}".encode("ascii"),
        signature=signature,
        certificates=certificates,
        attributes=attributes,
        timestamp_token=None if token is None else b64std_decode(token, TIMESTAMP_SIGNATURE),
    )


def _json(raw: bytes, what: str) -> Any:
    try:
        return strict_json_loads(raw, what=what)
    except HostileArtifactError as exc:
        raise SignatureIntegrityError(str(exc)) from exc


def b64url_decode(value: object, what: str) -> bytes:
    """base64url without padding, rejecting `=`, other alphabets and non-zero trailing bits."""
    if not isinstance(value, str) or not _B64URL_RE.match(value) or len(value) % 4 == 1:
        raise SignatureIntegrityError(f"JWS {what} is not unpadded base64url")
    decoded = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    if base64.urlsafe_b64encode(decoded).rstrip(b"=").decode("ascii") != value:
        raise SignatureIntegrityError(f"JWS {what} is not canonical base64url")
    return decoded


def b64std_decode(value: object, what: str) -> bytes:
    """Standard padded base64 (x5c, timestamp token), canonical form only."""
    if not isinstance(value, str) or not value or not _B64STD_RE.match(value):
        raise SignatureIntegrityError(f"{what} is not standard base64")
    try:
        decoded = base64.b64decode(value, validate=True)
    except binascii.Error as exc:
        raise SignatureIntegrityError(f"{what} is not standard base64") from exc
    if base64.b64encode(decoded).decode("ascii") != value:
        raise SignatureIntegrityError(f"{what} is not canonical base64")
    return decoded


def parse_rfc3339(value: object, what: str) -> datetime:
    """A full RFC 3339 date-time with an explicit offset, e.g. `2023-06-27T13:30:33+08:00`."""
    match = _RFC3339_RE.match(value) if isinstance(value, str) else None
    if not match:
        raise SignatureIntegrityError(f"{what} {value!r} is not an RFC 3339 time with an offset")
    date, clock, fraction, offset = match.groups()
    micro = (fraction or "").ljust(6, "0")[:6]  # sub-microsecond digits cannot matter here
    offset = "+00:00" if offset in ("Z", "z") else offset
    try:
        return datetime.fromisoformat(f"{date}T{clock}.{micro}{offset}")
    except ValueError as exc:
        raise SignatureIntegrityError(f"{what} {value!r} is not a valid time") from exc
