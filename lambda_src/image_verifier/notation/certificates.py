"""Certificate rules of the Notary spec: chain structure, code-signing leaf, CA and TSA certificates.

Only basicConstraints, keyUsage and extendedKeyUsage are evaluated, as the spec says; other
extensions are ignored. Validity periods are not checked here (they are judged at a point in time
chosen by the signing scheme, see `verify.py`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from ..errors import SignatureIntegrityError

_ANY_EKU = x509.ObjectIdentifier("2.5.29.37.0")
_FORBIDDEN_CODE_SIGNING_EKUS = {
    _ANY_EKU: "anyExtendedKeyUsage",
    ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth",
    ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth",
    ExtendedKeyUsageOID.EMAIL_PROTECTION: "emailProtection",
    ExtendedKeyUsageOID.TIME_STAMPING: "timeStamping",
}
# encipherOnly/decipherOnly are only meaningful with keyAgreement, which is already refused.
_FORBIDDEN_LEAF_KEY_USAGES = ("key_encipherment", "data_encipherment", "key_agreement", "key_cert_sign", "crl_sign")
_WEAK_HASHES = (hashes.SHA1, hashes.MD5)


def load_chain(ders: Sequence[bytes], *, what: str = "certificate chain") -> list[x509.Certificate]:
    """Parse DER certificates completely now: `cryptography` defers the names and the key, and a
    hostile certificate must fail here as an integrity error, not later as a stray exception."""
    chain = []
    for der in ders:
        try:
            cert = x509.load_der_x509_certificate(der)
            cert.subject, cert.issuer, cert.public_key()  # noqa: B018 - parsed for their errors
        except (ValueError, TypeError, x509.InvalidVersion, UnsupportedAlgorithm) as exc:
            raise SignatureIntegrityError(f"{what} holds a certificate that is not valid DER: {exc}") from exc
        chain.append(cert)
    return chain


def describe(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string() or "<empty subject>"


def is_self_signed(cert: x509.Certificate) -> bool:
    if cert.subject != cert.issuer:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True


def check_issued_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    """True when `parent`'s name and key issued `child` (signature checked), False otherwise."""
    try:
        child.verify_directly_issued_by(parent)
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True


def check_signing_chain(chain: Sequence[x509.Certificate]) -> None:
    """The envelope's chain: complete, ordered leaf → root, self-signed root, spec rules per certificate."""
    check_chain_links(chain, what="the signing certificate chain")
    check_code_signing_leaf(chain[0])
    for position, cert in enumerate(chain[1:], start=1):
        check_ca(cert, below=position - 1, what="the signing certificate chain")


def check_chain_links(chain: Sequence[x509.Certificate], *, what: str) -> None:
    for cert in chain:
        algorithm = _signature_hash(cert)
        if algorithm is None or isinstance(algorithm, _WEAK_HASHES):
            name = algorithm.name if algorithm else "no hash"
            raise SignatureIntegrityError(f"{what}: certificate {describe(cert)} is signed with {name}")
        _check_key_strength(cert, what)
    for position, (child, parent) in enumerate(zip(chain, chain[1:], strict=False)):
        if is_self_signed(child):
            raise SignatureIntegrityError(f"{what}: certificate {position} ({describe(child)}) is self-signed but not last")
        if not check_issued_by(child, parent):
            raise SignatureIntegrityError(
                f"{what}: certificate {position} ({describe(child)}) was not issued by the next one ({describe(parent)})"
            )
    if not is_self_signed(chain[-1]):
        raise SignatureIntegrityError(f"{what} does not end in a self-signed root ({describe(chain[-1])})")


def _signature_hash(cert: x509.Certificate) -> hashes.HashAlgorithm | None:
    try:
        return cert.signature_hash_algorithm
    except UnsupportedAlgorithm:
        return None


def _check_key_strength(cert: x509.Certificate, what: str) -> None:
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < 2048:
        raise SignatureIntegrityError(f"{what}: certificate {describe(cert)} has a {key.key_size}-bit RSA key")
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.key_size < 256:
        raise SignatureIntegrityError(f"{what}: certificate {describe(cert)} has a {key.curve.key_size}-bit EC key")
    if not isinstance(key, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey)):
        raise SignatureIntegrityError(f"{what}: certificate {describe(cert)} has an unsupported {type(key).__name__}")


def _extension(cert: x509.Certificate, kind: type) -> x509.Extension | None:
    try:
        return cert.extensions.get_extension_for_class(kind)
    except x509.ExtensionNotFound:
        return None
    except ValueError as exc:  # duplicate or malformed extensions
        raise SignatureIntegrityError(f"certificate {describe(cert)} has malformed extensions: {exc}") from exc


def check_code_signing_leaf(cert: x509.Certificate) -> None:
    what = f"signing certificate {describe(cert)}"
    usage = _extension(cert, x509.KeyUsage)
    if usage is None or not usage.critical:
        raise SignatureIntegrityError(f"{what} must have a critical keyUsage extension")
    if not usage.value.digital_signature:
        raise SignatureIntegrityError(f"{what}: keyUsage lacks digitalSignature")
    bad = [name for name in _FORBIDDEN_LEAF_KEY_USAGES if getattr(usage.value, name)]
    if bad:
        raise SignatureIntegrityError(f"{what}: keyUsage must not include {', '.join(bad)}")
    constraints = _extension(cert, x509.BasicConstraints)
    if constraints is not None and constraints.value.ca:
        raise SignatureIntegrityError(f"{what} is a CA certificate (basicConstraints cA=true)")
    eku = _extension(cert, x509.ExtendedKeyUsage)
    if eku is not None:
        forbidden = [name for oid, name in _FORBIDDEN_CODE_SIGNING_EKUS.items() if oid in eku.value]
        if forbidden:
            raise SignatureIntegrityError(f"{what}: extendedKeyUsage must not include {', '.join(forbidden)}")


def check_ca(cert: x509.Certificate, *, below: int, what: str, key_usage_required: bool = True) -> None:
    """A CA certificate with `below` CA certificates between it and the leaf."""
    name = f"{what}: CA certificate {describe(cert)}"
    constraints = _extension(cert, x509.BasicConstraints)
    if constraints is None or not constraints.critical or not constraints.value.ca:
        raise SignatureIntegrityError(f"{name} must have critical basicConstraints with cA=true")
    path_length = constraints.value.path_length
    if path_length is not None and below > path_length:
        raise SignatureIntegrityError(f"{name} allows {path_length} CA certificates below it, found {below}")
    usage = _extension(cert, x509.KeyUsage)
    if usage is None:
        if key_usage_required:
            raise SignatureIntegrityError(f"{name} must have a critical keyUsage extension")
        return
    if key_usage_required and not usage.critical:
        raise SignatureIntegrityError(f"{name} must have a critical keyUsage extension")
    if not usage.value.key_cert_sign:
        raise SignatureIntegrityError(f"{name}: keyUsage lacks keyCertSign")


def check_tsa_leaf(cert: x509.Certificate) -> None:
    what = f"timestamping certificate {describe(cert)}"
    eku = _extension(cert, x509.ExtendedKeyUsage)
    if eku is None or not eku.critical or list(eku.value) != [ExtendedKeyUsageOID.TIME_STAMPING]:
        raise SignatureIntegrityError(f"{what} must have a critical extendedKeyUsage of only timeStamping")
    usage = _extension(cert, x509.KeyUsage)
    if usage is not None and not usage.value.digital_signature:
        raise SignatureIntegrityError(f"{what}: keyUsage lacks digitalSignature")
    constraints = _extension(cert, x509.BasicConstraints)
    if constraints is not None and constraints.value.ca:
        raise SignatureIntegrityError(f"{what} is a CA certificate")


def outside_validity(chain: Sequence[x509.Certificate], start: datetime, end: datetime | None = None) -> x509.Certificate | None:
    """The first certificate whose validity does not cover [start, end] (end defaults to start)."""
    end = start if end is None else end
    for cert in chain:
        if start < cert.not_valid_before_utc or end > cert.not_valid_after_utc:
            return cert
    return None


def validity_text(cert: x509.Certificate) -> str:
    return f"{describe(cert)} (valid {cert.not_valid_before_utc.isoformat()} to {cert.not_valid_after_utc.isoformat()})"
