"""Test PKI built with `cryptography`: keys, root → intermediate → leaf chains, TSA chains.

Everything is generated at test time. Keys are cached per (kind, role) because RSA-4096
generation is slow; certificates are cheap and built fresh so each test states what it needs.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=timezone.utc)
KEY_KINDS = ("rsa2048", "rsa3072", "rsa4096", "p256", "p384", "p521")
_CURVES = {"p256": ec.SECP256R1, "p384": ec.SECP384R1, "p521": ec.SECP521R1}
_HASH_FOR_KIND = {
    "rsa2048": hashes.SHA256, "rsa3072": hashes.SHA384, "rsa4096": hashes.SHA512,
    "p256": hashes.SHA256, "p384": hashes.SHA384, "p521": hashes.SHA512,
}
CODE_SIGNING_KEY_USAGE = dict(digital_signature=True)
CA_KEY_USAGE = dict(key_cert_sign=True, crl_sign=True)


@functools.lru_cache(maxsize=None)
def key(kind: str, role: str = "leaf") -> Any:
    """A private key of `kind` (see KEY_KINDS), the same one for the same role within a test run."""
    if kind.startswith("rsa"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(kind[3:]))
    return ec.generate_private_key(_CURVES[kind]())


def hash_for(kind: str) -> hashes.HashAlgorithm:
    return _HASH_FOR_KIND[kind]()


def name(common_name: str, *, organization: str = "Acme", country: str = "US", state: str = "WA",
         extra: Sequence[tuple[x509.ObjectIdentifier, str]] = ()) -> x509.Name:
    attributes = [
        x509.NameAttribute(NameOID.COUNTRY_NAME, country),
        x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, state),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
        *(x509.NameAttribute(oid, value) for oid, value in extra),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ]
    return x509.Name(attributes)


@dataclass(frozen=True)
class Issued:
    """A certificate with its private key."""

    cert: x509.Certificate
    key: Any

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def issue(
    *,
    subject: x509.Name,
    private_key: Any,
    issuer: Issued | None = None,
    ca: bool = False,
    path_length: int | None = None,
    not_before: datetime = NOW - timedelta(days=30),
    not_after: datetime = NOW + timedelta(days=365),
    key_usage: dict[str, bool] | None = None,
    key_usage_critical: bool = True,
    basic_constraints: bool = True,
    basic_constraints_critical: bool = True,
    eku: Sequence[x509.ObjectIdentifier] | None = None,
    eku_critical: bool = False,
    signature_hash: hashes.HashAlgorithm | None = None,
) -> Issued:
    """One certificate; self-signed when `issuer` is None. `key_usage=None` means the default for
    the role (CA: keyCertSign+cRLSign, leaf: digitalSignature); pass `{}` to omit the extension."""
    signer_key = issuer.key if issuer else private_key
    issuer_name = issuer.cert.subject if issuer else subject
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    if basic_constraints:
        builder = builder.add_extension(x509.BasicConstraints(ca=ca, path_length=path_length if ca else None),
                                        critical=basic_constraints_critical)
    usage = (CA_KEY_USAGE if ca else CODE_SIGNING_KEY_USAGE) if key_usage is None else key_usage
    if usage:
        flags = dict.fromkeys(("digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
                               "key_agreement", "key_cert_sign", "crl_sign"), False)
        flags.update(usage)
        builder = builder.add_extension(x509.KeyUsage(**flags, encipher_only=False, decipher_only=False),
                                        critical=key_usage_critical)
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=eku_critical)
    builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(private_key.public_key()), critical=False)
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), critical=False
        )
    if signature_hash is None:
        signature_hash = hashes.SHA384() if isinstance(signer_key, ec.EllipticCurvePrivateKey) else hashes.SHA256()
    return Issued(cert=builder.sign(signer_key, signature_hash), key=private_key)


@dataclass(frozen=True)
class Chain:
    """leaf → intermediates → root, as an envelope's x5c lists them."""

    leaf: Issued
    intermediates: tuple[Issued, ...]
    root: Issued
    key_kind: str = "p256"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def issued(self) -> list[Issued]:
        # A one-certificate chain (a self-signed leaf) is its own root and is listed once.
        return [self.leaf, *self.intermediates] + ([] if self.root is self.leaf else [self.root])

    @property
    def certs(self) -> list[x509.Certificate]:
        return [item.cert for item in self.issued]

    @property
    def ders(self) -> list[bytes]:
        return [item.der for item in self.issued]


def code_signing_chain(
    key_kind: str = "p256",
    *,
    leaf_subject: x509.Name | None = None,
    ca_kind: str | None = None,
    leaf_not_before: datetime = NOW - timedelta(days=30),
    leaf_not_after: datetime = NOW + timedelta(days=365),
    role_prefix: str = "",
    **leaf_options: Any,
) -> Chain:
    """root CA → intermediate CA → code-signing leaf with a `key_kind` key (CAs use `ca_kind`)."""
    ca_kind = ca_kind or ("p384" if key_kind.startswith("p") else "rsa2048")
    root = issue(subject=name(f"{role_prefix}Test Root CA"), private_key=key(ca_kind, role_prefix + "root"), ca=True,
                 not_before=NOW - timedelta(days=3650), not_after=NOW + timedelta(days=3650))
    intermediate = issue(subject=name(f"{role_prefix}Test Intermediate CA"), private_key=key(ca_kind, role_prefix + "int"),
                         issuer=root, ca=True, path_length=0,
                         not_before=NOW - timedelta(days=1000), not_after=NOW + timedelta(days=1000))
    leaf = issue(subject=leaf_subject or name("Test Signer"), private_key=key(key_kind, role_prefix + "leaf"),
                 issuer=intermediate, not_before=leaf_not_before, not_after=leaf_not_after,
                 eku=[ExtendedKeyUsageOID.CODE_SIGNING], **leaf_options)
    return Chain(leaf=leaf, intermediates=(intermediate,), root=root, key_kind=key_kind)


def tsa_chain(*, not_before: datetime = NOW - timedelta(days=3650), not_after: datetime = NOW + timedelta(days=3650),
              eku_critical: bool = True, key_kind: str = "p256") -> Chain:
    """root CA → TSA certificate (critical EKU timeStamping only)."""
    root = issue(subject=name("Test TSA Root"), private_key=key("p384", "tsa-root"), ca=True,
                 not_before=NOW - timedelta(days=7000), not_after=NOW + timedelta(days=7000))
    leaf = issue(subject=name("Test TSA"), private_key=key(key_kind, "tsa"), issuer=root,
                 not_before=not_before, not_after=not_after,
                 eku=[ExtendedKeyUsageOID.TIME_STAMPING], eku_critical=eku_critical)
    return Chain(leaf=leaf, intermediates=(), root=root, key_kind=key_kind)


def aws_signer_chain(*, signing_time: datetime = NOW - timedelta(days=1), region: str = "us-east-1") -> Chain:
    """Shaped like AWS Signer's: ES384 leaf (about 3 days) → regional CA → int CA → root."""
    root = issue(subject=x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
        x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "WA"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "AWS"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Cryptography"),
        x509.NameAttribute(NameOID.COMMON_NAME, "Test Signer Code Signing Root CA G1"),
    ]), private_key=key("p384", "aws-root"), ca=True,
        not_before=NOW - timedelta(days=3650), not_after=NOW + timedelta(days=36500))
    int_ca = issue(subject=name("Test Signer Code Signing Int CA G1", organization="AWS"),
                   private_key=key("p384", "aws-int"), issuer=root, ca=True, path_length=1,
                   not_before=NOW - timedelta(days=1500), not_after=NOW + timedelta(days=3000))
    regional = issue(subject=name(f"Test Signer {region} Code Signing CA G1", organization="AWS"),
                     private_key=key("p384", "aws-regional"), issuer=int_ca, ca=True, path_length=0,
                     not_before=NOW - timedelta(days=400), not_after=NOW + timedelta(days=400))
    leaf = issue(subject=name("AWS Signer", organization="AWS",
                              extra=[(NameOID.LOCALITY_NAME, "Seattle"), (NameOID.ORGANIZATIONAL_UNIT_NAME, "AWS Cryptography")]),
                 private_key=key("p384", "aws-leaf"), issuer=regional,
                 not_before=signing_time - timedelta(hours=12), not_after=signing_time + timedelta(days=2, hours=12),
                 eku=[ExtendedKeyUsageOID.CODE_SIGNING])
    return Chain(leaf=leaf, intermediates=(regional, int_ca), root=root, key_kind="p384")


def resigned_with_sha1(issued: Issued, issuer: Issued) -> Issued:
    """`issued`'s certificate re-signed by `issuer` with ECDSA-SHA1 (cryptography refuses to build one)."""
    from asn1crypto import x509 as asn1_x509

    from cryptography.hazmat.primitives.asymmetric.ec import ECDSA

    cert = asn1_x509.Certificate.load(issued.der)
    tbs = cert["tbs_certificate"]
    tbs["signature"] = {"algorithm": "sha1_ecdsa"}
    tbs_der = tbs.dump(force=True)
    signature = issuer.key.sign(tbs_der, ECDSA(hashes.SHA1()))
    rebuilt = asn1_x509.Certificate({"tbs_certificate": asn1_x509.TbsCertificate.load(tbs_der),
                                     "signature_algorithm": {"algorithm": "sha1_ecdsa"}, "signature_value": signature})
    return Issued(cert=x509.load_der_x509_certificate(rebuilt.dump()), key=issued.key)


def malformed_der(issued: Issued, *, version: int | None = None, key_algorithm: str | None = None) -> bytes:
    """`issued`'s DER with a TBS field broken the way hostile input breaks it: an X.509 `version`
    outside v1-v3, or an unknown public-key algorithm OID (the signature is left as it was)."""
    from asn1crypto import x509 as asn1_x509

    cert = asn1_x509.Certificate.load(issued.der)
    tbs = cert["tbs_certificate"]
    if version is not None:
        tbs["version"] = version
    if key_algorithm is not None:
        tbs["subject_public_key_info"]["algorithm"]["algorithm"] = key_algorithm
    rebuilt = asn1_x509.Certificate({"tbs_certificate": asn1_x509.TbsCertificate.load(tbs.dump(force=True)),
                                     "signature_algorithm": cert["signature_algorithm"],
                                     "signature_value": cert["signature_value"]})
    return rebuilt.dump()
