"""RFC 3161 timestamp countersignatures (`io.cncf.notary.timestampSignature`) for `notary.x509`.

A token is a CMS SignedData over a TSTInfo. It vouches for a time only if: its TSTInfo's
messageImprint is the hash of the envelope's raw signature bytes (with the hash of the signing
algorithm); its single signer is a TSA certificate with a critical timeStamping-only EKU, named
by the signing-certificate-v2 attribute; the signed attributes carry the right content type and
message digest and verify under that certificate; and the TSA chain ends in a policy TSA root and
is valid at genTime. TSA revocation is not checked (nothing is fetched at verification time).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Sequence

from asn1crypto import cms, tsp
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding

from ..errors import SignatureAuthenticityError, SignatureIntegrityError
from .certificates import (
    check_ca,
    check_chain_links,
    check_issued_by,
    check_tsa_leaf,
    describe,
    is_self_signed,
    load_chain,
    outside_validity,
    validity_text,
)
from .trust import chain_ends_in

MAX_TOKEN_BYTES = 64 * 1024  # a token with a 3-certificate chain is 3-8 KiB
MAX_TOKEN_CERTIFICATES = 10  # TSAs embed their chain, 1-4 certificates
BASELINE_TSA_POLICY = "0.4.0.2023.1.1"  # ETSI EN 319 422 baseline policy: accuracy defaults to 1 s
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {"sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}


class TimestampError(SignatureAuthenticityError):
    """The timestamp token does not authenticate a signing time."""


@dataclass(frozen=True, kw_only=True)
class VerifiedTimestamp:
    gen_time: datetime
    earliest: datetime  # genTime - accuracy
    latest: datetime  # genTime + accuracy
    tsa: str


def verify_timestamp(
    token: bytes, *, signature: bytes, hash_algorithm: hashes.HashAlgorithm, tsa_roots: Sequence[x509.Certificate]
) -> VerifiedTimestamp:
    """Verify a TimeStampToken over `signature`; raise TimestampError naming the failed check."""
    try:
        return _verify(token, signature, hash_algorithm, tsa_roots)
    except SignatureIntegrityError as exc:  # certificate rules of the TSA chain
        raise TimestampError(str(exc)) from exc
    except ValueError as exc:  # asn1crypto parses lazily: a malformed inner field fails where it is first read
        raise TimestampError(f"timestamp token is not a valid RFC 3161 token: {exc}") from exc


def _verify(
    token: bytes, signature: bytes, hash_algorithm: hashes.HashAlgorithm, tsa_roots: Sequence[x509.Certificate]
) -> VerifiedTimestamp:
    if len(token) > MAX_TOKEN_BYTES:
        raise TimestampError(f"timestamp token is larger than {MAX_TOKEN_BYTES} bytes")
    try:
        parts = _parse(token)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise TimestampError(f"timestamp token is not a valid RFC 3161 token: {exc}") from exc
    tst_info, tst_bytes, signer_info, certs = parts
    signer = _signer_certificate(signer_info, certs)
    check_tsa_leaf(signer)
    digest_name = signer_info["digest_algorithm"]["algorithm"].native
    if digest_name not in _HASHES:
        raise TimestampError(f"timestamp token uses unsupported digest {digest_name}")
    digest = _HASHES[digest_name]()
    signed_attrs = signer_info["signed_attrs"]
    if not signed_attrs:
        raise TimestampError("timestamp token has no signed attributes")
    attributes = _attributes(signed_attrs)
    if attributes.get("content_type") != "tst_info":
        raise TimestampError("timestamp token's content-type attribute is not TSTInfo")
    if not _equal(attributes.get("message_digest"), _hash(digest, tst_bytes)):
        raise TimestampError("timestamp token's message-digest attribute does not match its TSTInfo")
    _check_signing_certificate_v2(attributes.get("signing_certificate_v2"), signer)
    # The signature covers the DER SET OF the attributes, i.e. the [0] IMPLICIT contents re-tagged as SET.
    _verify_cms_signature(signer, signer_info, digest, b"\x31" + _der_length(len(signed_attrs.contents)) + signed_attrs.contents)
    tsa_chain = _tsa_chain(signer, certs, tsa_roots)
    imprint = tst_info["message_imprint"]
    if imprint["hash_algorithm"]["algorithm"].native != hash_algorithm.name:
        used = imprint["hash_algorithm"]["algorithm"].native
        raise TimestampError(f"timestamp messageImprint uses {used}, expected {hash_algorithm.name}")
    if not _equal(imprint["hashed_message"].native, _hash(hash_algorithm, signature)):
        raise TimestampError("timestamp messageImprint is not the hash of this signature")
    gen_time = _gen_time(tst_info)
    accuracy = _accuracy(tst_info)
    bad = outside_validity(tsa_chain, gen_time)
    if bad is not None:
        raise TimestampError(f"timestamping certificate {validity_text(bad)} was not valid at genTime {gen_time.isoformat()}")
    try:
        earliest, latest = gen_time - accuracy, gen_time + accuracy
    except OverflowError as exc:  # e.g. genTime 9999-12-31T23:59:59Z from a TSA certificate valid "forever"
        raise TimestampError(f"timestamp genTime {gen_time.isoformat()} plus its accuracy leaves the calendar") from exc
    return VerifiedTimestamp(gen_time=gen_time, earliest=earliest, latest=latest, tsa=describe(signer))


def _parse(token: bytes) -> tuple[Any, bytes, Any, list[x509.Certificate]]:
    info = cms.ContentInfo.load(token, strict=True)
    if info["content_type"].native != "signed_data":
        raise ValueError("not a CMS SignedData")
    signed = info["content"]
    encap = signed["encap_content_info"]
    if encap["content_type"].native != "tst_info":
        raise ValueError("the encapsulated content is not a TSTInfo")
    tst_bytes = encap["content"].contents
    tst_info = tsp.TSTInfo.load(tst_bytes, strict=True)
    if tst_info["version"].native != "v1":
        raise ValueError("TSTInfo version is not 1")
    signer_infos = signed["signer_infos"]
    if len(signer_infos) != 1:
        raise ValueError(f"expected exactly one signer, found {len(signer_infos)}")
    choices = signed["certificates"] or []
    if len(choices) > MAX_TOKEN_CERTIFICATES:
        raise ValueError(f"more than {MAX_TOKEN_CERTIFICATES} certificates")
    ders = [choice.chosen.dump() for choice in choices if choice.name == "certificate"]
    certs = load_chain(ders, what="timestamp token")  # SignatureIntegrityError becomes a TimestampError
    return tst_info, tst_bytes, signer_infos[0], certs


def _signer_certificate(signer_info: Any, certs: list[x509.Certificate]) -> x509.Certificate:
    sid = signer_info["sid"]
    for cert in certs:
        if sid.name == "issuer_and_serial_number":
            issuer_der = sid.chosen["issuer"].dump()
            if cert.serial_number == sid.chosen["serial_number"].native and cert.issuer.public_bytes() == issuer_der:
                return cert
        elif sid.name == "subject_key_identifier":
            try:
                ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
            except x509.ExtensionNotFound:
                continue
            if ski == sid.chosen.native:
                return cert
    raise TimestampError("timestamp token does not include its signer's certificate")


def _attributes(signed_attrs: Any) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for attribute in signed_attrs:
        name = attribute["type"].native
        if name in result:
            raise TimestampError(f"timestamp token repeats signed attribute {name}")
        values = attribute["values"]
        if len(values) != 1:
            raise TimestampError(f"timestamp signed attribute {name} must have exactly one value")
        result[name] = values[0] if name == "signing_certificate_v2" else values[0].native
    return result


def _check_signing_certificate_v2(value: Any, signer: x509.Certificate) -> None:
    if value is None:
        raise TimestampError("timestamp token lacks the signing-certificate-v2 attribute")
    ids = value["certs"]
    if not len(ids):
        raise TimestampError("signing-certificate-v2 names no certificate")
    first = ids[0]
    name = first["hash_algorithm"]["algorithm"].native
    if name not in _HASHES:
        raise TimestampError(f"signing-certificate-v2 uses unsupported hash {name}")
    der = signer.public_bytes(Encoding.DER)
    if not _equal(first["cert_hash"].native, _hash(_HASHES[name](), der)):
        raise TimestampError("signing-certificate-v2 does not name the certificate that signed the token")


def _verify_cms_signature(signer: x509.Certificate, signer_info: Any, digest: hashes.HashAlgorithm, data: bytes) -> None:
    algorithm = signer_info["signature_algorithm"]
    name = algorithm["algorithm"].native
    signature = signer_info["signature"].native
    key = signer.public_key()
    try:
        if isinstance(key, rsa.RSAPublicKey) and name in ("rsassa_pkcs1v15", f"{digest.name}_rsa"):
            key.verify(signature, data, padding.PKCS1v15(), digest)
        elif isinstance(key, rsa.RSAPublicKey) and name == "rsassa_pss":
            params = algorithm["parameters"]
            pss_hash = _HASHES.get(params["hash_algorithm"]["algorithm"].native)
            if pss_hash is None:
                raise TimestampError("timestamp token's RSASSA-PSS hash is unsupported")
            pss = padding.PSS(mgf=padding.MGF1(pss_hash()), salt_length=params["salt_length"].native)
            key.verify(signature, data, pss, pss_hash())
        elif isinstance(key, ec.EllipticCurvePublicKey) and name in ("ecdsa", f"{digest.name}_ecdsa"):
            key.verify(signature, data, ec.ECDSA(digest))
        else:
            raise TimestampError(f"timestamp token signature algorithm {name} does not fit the TSA key")
    except (InvalidSignature, UnsupportedAlgorithm, ValueError) as exc:
        raise TimestampError("timestamp token signature does not verify") from exc


def _tsa_chain(signer: x509.Certificate, certs: list[x509.Certificate], roots: Sequence[x509.Certificate]) -> list[x509.Certificate]:
    """Path from the TSA certificate to a self-signed certificate, then require it to be a policy TSA root."""
    chain = [signer]
    candidates = [*certs, *roots]
    while not is_self_signed(chain[-1]):
        if len(chain) > MAX_TOKEN_CERTIFICATES:
            raise TimestampError("timestamping certificate chain is too long")
        parent = next((c for c in candidates if c not in chain and check_issued_by(chain[-1], c)), None)
        if parent is None:
            raise TimestampError(f"no issuer found for timestamping certificate {describe(chain[-1])}")
        chain.append(parent)
    if not chain_ends_in(chain, roots):
        raise TimestampError(f"timestamping certificate chain does not end in a trusted TSA root ({describe(chain[-1])})")
    check_chain_links(chain, what="the timestamping certificate chain")
    for position, cert in enumerate(chain[1:], start=1):
        check_ca(cert, below=position - 1, what="the timestamping certificate chain", key_usage_required=False)
    return chain


def _accuracy(tst_info: Any) -> timedelta:
    accuracy = tst_info["accuracy"]
    if not accuracy.native:
        # RFC 3161 leaves a missing accuracy undefined; the ETSI baseline policy makes it 1 s.
        return timedelta(seconds=1) if tst_info["policy"].dotted == BASELINE_TSA_POLICY else timedelta(0)
    fields = accuracy.native
    seconds, millis, micros = fields.get("seconds") or 0, fields.get("millis") or 0, fields.get("micros") or 0
    # RFC 3161 §2.4.2: millis and micros are 1..999. A negative part would turn the window
    # [genTime - accuracy, genTime + accuracy] inside out, so that it proves validity at no time at all.
    if seconds < 0 or not 0 <= millis <= 999 or not 0 <= micros <= 999:
        raise TimestampError(f"timestamp accuracy {fields} is not a valid RFC 3161 accuracy")
    try:
        return timedelta(seconds=seconds, milliseconds=millis, microseconds=micros)
    except OverflowError as exc:
        raise TimestampError(f"timestamp accuracy {fields} is not a valid RFC 3161 accuracy: too large") from exc


def _gen_time(tst_info: Any) -> datetime:
    """genTime, which RFC 3161 §2.4.2 requires in UTC with a trailing "Z". A local time (no zone) reads as a
    naive datetime that cannot be compared with a validity period; an offset is refused, not converted."""
    field = tst_info["gen_time"]
    if not field.contents.endswith(b"Z"):
        raise TimestampError(f"timestamp genTime {field.contents.decode('ascii', 'replace')!r} is not UTC "
                             "(RFC 3161 requires a trailing Z)")
    return field.native


def _hash(algorithm: hashes.HashAlgorithm, data: bytes) -> bytes:
    hasher = hashes.Hash(algorithm)
    hasher.update(data)
    return hasher.finalize()


def _equal(a: object, b: bytes) -> bool:
    return isinstance(a, bytes) and hmac.compare_digest(a, b)


def _der_length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    encoded = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(encoded)]) + encoded

