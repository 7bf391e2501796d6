"""Fulcio leaf certificates: who they name, and whether they chain to a trusted CA at signing time.

A Fulcio leaf is short-lived (10 minutes): it is judged at the signing time the transparency log
vouches for, never at the verifier's clock. Only the chains in the user's trusted root count; a
chain that travels with the signature (the legacy `dev.sigstore.cosign/chain` annotation) is
ignored, as sigstore-go ignores it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import ExtendedKeyUsageOID

from ...errors import (
    SignatureAuthenticityError,
    SignatureExpiredError,
    SignatureIdentityError,
    SignatureIntegrityError,
)
from ...policy.model import CosignKeylessTrust
from .trusted_root import TrustedRoot

# Fulcio's OIDC issuer: 1.1 holds the raw issuer string (deprecated), 1.8 a DER UTF8String.
OIDC_ISSUER_V1 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
OIDC_ISSUER_V2 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
MAX_CERTIFICATE_BYTES = 16 * 1024  # a Fulcio leaf is about 1 KiB; its SANs and extensions are small


@dataclass(frozen=True, kw_only=True)
class CertificateIdentity:
    issuer: str
    subjects: tuple[str, ...]  # every URI and email SAN


def load_leaf(data: bytes, *, der: bool) -> x509.Certificate:
    if len(data) > MAX_CERTIFICATE_BYTES:
        raise SignatureIntegrityError(f"the signing certificate is larger than {MAX_CERTIFICATE_BYTES} bytes")
    try:
        return x509.load_der_x509_certificate(data) if der else x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        raise SignatureIntegrityError(f"the signing certificate cannot be parsed: {exc}") from exc


def certificate_identity(leaf: x509.Certificate) -> CertificateIdentity:
    """The OIDC issuer (Fulcio extension) and the subject alternative names of a leaf."""
    try:
        sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound as exc:
        raise SignatureIdentityError("the signing certificate has no subject alternative name (not a Fulcio "
                                     "certificate?)") from exc
    subjects = tuple(sans.get_values_for_type(x509.UniformResourceIdentifier)) + tuple(
        sans.get_values_for_type(x509.RFC822Name))
    issuers = {_issuer_extension(leaf, oid) for oid in (OIDC_ISSUER_V2, OIDC_ISSUER_V1)} - {None}
    if not issuers:
        raise SignatureIdentityError("the signing certificate has no Fulcio OIDC issuer extension "
                                     f"({OIDC_ISSUER_V2.dotted_string} or {OIDC_ISSUER_V1.dotted_string})")
    if len(issuers) > 1:  # Fulcio writes the same issuer in both; two answers are a forgery or a bug
        raise SignatureIdentityError(f"the signing certificate names two OIDC issuers: {sorted(issuers)}")
    return CertificateIdentity(issuer=issuers.pop(), subjects=subjects)  # type: ignore[arg-type]


def check_identity(identity: CertificateIdentity, expected: CosignKeylessTrust) -> str:
    """The matching subject, or a SignatureIdentityError saying what the certificate names instead.

    Regular expressions must match the whole value (`re.fullmatch`): cosign's
    `--certificate-identity-regexp` is a Go regexp that matches anywhere unless anchored, which
    is a classic way to trust `https://github.com/evil/acme-fork/...` by accident.
    """
    if not _matches(identity.issuer, expected.issuer, expected.issuer_regexp):
        raise SignatureIdentityError(f"the certificate's OIDC issuer {identity.issuer!r} is not the trusted one "
                                     f"(policy: {describe(expected)})")
    for subject in identity.subjects:
        if _matches(subject, expected.subject, expected.subject_regexp):
            return subject
    raise SignatureIdentityError(f"the certificate's identity {', '.join(map(repr, identity.subjects)) or '(none)'} "
                                 f"does not match the policy's {describe(expected)}")


def describe(trust: CosignKeylessTrust) -> str:
    """The accepted identity in words, for reasons and the review report."""
    issuer = repr(trust.issuer) if trust.issuer is not None else f"matching {trust.issuer_regexp!r}"
    subject = repr(trust.subject) if trust.subject is not None else f"matching {trust.subject_regexp!r}"
    return f"subject {subject} from issuer {issuer}"


def _matches(value: str, exact: str | None, regexp: str | None) -> bool:
    if exact is not None:
        return value == exact
    return regexp is not None and re.fullmatch(regexp, value) is not None


def verify_chain(leaf: x509.Certificate, root: TrustedRoot, at: datetime) -> x509.Certificate:
    """The trusted-root certificate that issued `leaf`, with it and every certificate above it in its
    CA's chain (and the leaf) valid at `at`, the signing time.

    A CA's `certChain` lists the issuing CA first and the root last; as in sigstore-go, any of its
    certificates may be the leaf's issuer (a root that issues leaves itself, or a deeper intermediate).
    """
    _check_leaf_usage(leaf)
    if not _valid_at(leaf, at):
        raise SignatureExpiredError(
            f"the signing certificate is valid {_window(leaf)}, but the transparency log recorded the signature "
            f"at {at.isoformat()}; it was signed outside the certificate's lifetime")
    tried = []
    for authority in root.certificate_authorities:
        for position, issuer in enumerate(authority.chain):
            try:
                leaf.verify_directly_issued_by(issuer)
            except (ValueError, TypeError, InvalidSignature):
                continue
            if not authority.validity.contains(at):
                tried.append(f"{authority.uri or issuer.subject.rfc4514_string()} (trusted for {authority.validity})")
                break
            expired = [c for c in authority.chain[position:] if not _valid_at(c, at)]
            if expired:
                tried.append(f"{expired[0].subject.rfc4514_string()} is valid {_window(expired[0])}")
                break
            return issuer
    detail = f": {'; '.join(tried)}" if tried else ""
    raise SignatureAuthenticityError(
        f"the signing certificate (issuer {leaf.issuer.rfc4514_string()}) does not chain to a certificate authority "
        f"of the trusted root valid at {at.isoformat()}{detail}")


def _check_leaf_usage(leaf: x509.Certificate) -> None:
    try:
        constraints = leaf.extensions.get_extension_for_class(x509.BasicConstraints).value
        if constraints.ca:
            raise SignatureAuthenticityError("the signing certificate is a CA certificate, not a Fulcio leaf")
    except x509.ExtensionNotFound:
        pass
    try:
        usages = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound as exc:
        raise SignatureAuthenticityError("the signing certificate has no extended key usage (Fulcio sets "
                                         "codeSigning)") from exc
    if ExtendedKeyUsageOID.CODE_SIGNING not in usages:
        raise SignatureAuthenticityError("the signing certificate is not for code signing (extended key usage)")


def _issuer_extension(leaf: x509.Certificate, oid: x509.ObjectIdentifier) -> str | None:
    try:
        raw = leaf.extensions.get_extension_for_oid(oid).value
    except x509.ExtensionNotFound:
        return None
    value = raw.value if isinstance(raw, x509.UnrecognizedExtension) else b""
    if oid == OIDC_ISSUER_V2:
        value = _der_utf8_string(value)
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SignatureIdentityError(f"the certificate's OIDC issuer ({oid.dotted_string}) is not UTF-8") from exc


def _der_utf8_string(data: bytes) -> bytes:
    """The contents of a DER UTF8String (tag 12), with short or long-form length."""
    if len(data) < 2 or data[0] != 0x0C:
        raise SignatureIdentityError("the certificate's OIDC issuer extension is not a DER UTF8String")
    length, offset = data[1], 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 2 or len(data) < 2 + count:
            raise SignatureIdentityError("the certificate's OIDC issuer extension has a bad DER length")
        length, offset = int.from_bytes(data[2:2 + count], "big"), 2 + count
    if len(data) != offset + length:
        raise SignatureIdentityError("the certificate's OIDC issuer extension has a bad DER length")
    return data[offset:]


def _valid_at(certificate: x509.Certificate, at: datetime) -> bool:
    return certificate.not_valid_before_utc <= at <= certificate.not_valid_after_utc


def _window(certificate: x509.Certificate) -> str:
    return f"from {certificate.not_valid_before_utc.isoformat()} to {certificate.not_valid_after_utc.isoformat()}"
