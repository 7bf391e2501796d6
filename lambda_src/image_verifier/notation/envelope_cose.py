"""Parse a Notary COSE_Sign1 envelope (`application/cose`), with the strict decoder in `cbor`.

Layout: tag 18 around [protected bstr, unprotected map, payload bstr, signature bstr]. The
signature covers Sig_structure built from the protected bytes *as received* (never re-encoded).
Times must be tag-1 epoch integers and x5chain an array in the unprotected map, as notation does.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from ..errors import SignatureIntegrityError
from . import cbor
from .algorithms import Algorithm
from .envelope import (
    SIGNING_AGENT,
    TIME_ATTRIBUTES,
    TIMESTAMP_SIGNATURE,
    Envelope,
    build_signed_attributes,
    check_chain_shape,
)

COSE_MEDIA_TYPE = "application/cose"
COSE_SIGN1_TAG = 18
_ALG, _CRIT, _CONTENT_TYPE, _X5CHAIN = 1, 2, 3, 33
_EPOCH_TAG = 1
_RESERVED_CRITICAL = range(0, 9)  # RFC 9052: labels 0-8 must not be listed as critical
_MAX_EPOCH = 253402300799  # 9999-12-31T23:59:59Z, the last second datetime can hold


def parse_cose(data: bytes) -> Envelope:
    """Parse (not verify) a COSE_Sign1 envelope; raise SignatureIntegrityError on any deviation."""
    message = _decode(data, "the COSE envelope")
    if not isinstance(message, cbor.Tag) or message.number != COSE_SIGN1_TAG:
        raise SignatureIntegrityError("the COSE envelope is not a tagged COSE_Sign1 (tag 18)")
    body = message.value
    if not isinstance(body, list) or len(body) != 4:
        raise SignatureIntegrityError("COSE_Sign1 must be an array of four items")
    protected_bytes, unprotected, payload, signature = body
    if not all(isinstance(item, bytes) for item in (protected_bytes, payload, signature)):
        raise SignatureIntegrityError("COSE_Sign1 protected header, payload and signature must be byte strings")
    if not isinstance(unprotected, dict):
        raise SignatureIntegrityError("the COSE unprotected header is not a map")
    protected = _decode(protected_bytes, "the COSE protected header")
    if not isinstance(protected, dict):
        raise SignatureIntegrityError("the COSE protected header is not a map")
    crit = protected.get(_CRIT)
    if not isinstance(crit, list):
        raise SignatureIntegrityError("the COSE crit header is missing or not an array")
    for label in crit:
        if type(label) not in (int, str):
            raise SignatureIntegrityError(f"the COSE crit header lists {label!r}, which is not a label")
        if type(label) is int:
            # RFC 9052 forbids listing labels 0-8; any other integer label we would have to understand.
            why = "reserved" if label in _RESERVED_CRITICAL else "unsupported"
            raise SignatureIntegrityError(f"the COSE crit header lists {why} label {label}")
    named = {label: value for label, value in protected.items() if isinstance(label, str)}
    for name in TIME_ATTRIBUTES:
        if name in named:
            named[name] = _epoch_time(named[name], name)
    attributes = build_signed_attributes(named=named, critical=crit, content_type=protected.get(_CONTENT_TYPE))
    chain = unprotected.get(_X5CHAIN)
    check_chain_shape(chain, what="x5chain (unprotected label 33)")
    if not all(isinstance(cert, bytes) and cert for cert in chain):
        raise SignatureIntegrityError("x5chain entries must be non-empty byte strings")
    token = unprotected.get(TIMESTAMP_SIGNATURE)
    if token is not None and not (isinstance(token, bytes) and token):
        raise SignatureIntegrityError(f"{TIMESTAMP_SIGNATURE} is not a byte string")
    if SIGNING_AGENT in unprotected and not isinstance(unprotected[SIGNING_AGENT], str):
        raise SignatureIntegrityError(f"{SIGNING_AGENT} is not a text string")
    return Envelope(
        media_type=COSE_MEDIA_TYPE,
        algorithm=Algorithm.from_cose(protected.get(_ALG)),
        payload=payload,
        signed_bytes=sig_structure(protected_bytes, payload),
        signature=signature,
        certificates=tuple(chain),
        attributes=attributes,
        timestamp_token=token,
    )


def sig_structure(protected_bytes: bytes, payload: bytes) -> bytes:
    """To-be-signed bytes of COSE_Sign1 (RFC 9052 §4.4) with empty external AAD."""
    return cbor.dumps(["Signature1", protected_bytes, b"", payload])


def _decode(data: bytes, what: str) -> Any:
    try:
        return cbor.loads(data)
    except cbor.CborError as exc:
        raise SignatureIntegrityError(f"{what} is not valid CBOR: {exc}") from exc


def _epoch_time(value: object, what: str) -> datetime:
    if not isinstance(value, cbor.Tag) or value.number != _EPOCH_TAG:
        raise SignatureIntegrityError(f"{what} must be a tag-1 epoch time, got {value!r}")
    seconds = value.value
    if type(seconds) is not int or not 0 <= seconds <= _MAX_EPOCH:
        raise SignatureIntegrityError(f"{what} is not an integer epoch time in range")
    return datetime.fromtimestamp(seconds, tz=timezone.utc)
