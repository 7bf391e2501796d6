"""Trust: roots, certificate rules, trusted identities, expiry and validity periods."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from image_verifier.errors import (
    SignatureAuthenticityError,
    SignatureExpiredError,
    SignatureIdentityError,
    SignatureIntegrityError,
)
from image_verifier.notation import parse_root_certificates, parse_trusted_identities, parse_trusted_identity, verify_notation
from tests.support import notation_vectors as nv
from tests.support import pki

_, SUBJECT = nv.image_subject("trust")


def _verify(vector: nv.SignedVector, trust, now=pki.NOW):  # type: ignore[no-untyped-def]
    return verify_notation(envelope=vector.envelope, media_type=vector.media_type, subject=SUBJECT, trust=trust,
                           now=now, signer_name="corp")


def _chain_with_leaf(**leaf_options: object) -> pki.Chain:
    """A p256 chain whose leaf is built with `leaf_options` (EKU, key usage, CA flag...)."""
    chain = pki.code_signing_chain("p256")
    eku = leaf_options.pop("eku", [ExtendedKeyUsageOID.CODE_SIGNING])
    leaf = pki.issue(subject=pki.name("Odd Leaf"), private_key=chain.leaf.key, issuer=chain.intermediates[0],
                     eku=eku, **leaf_options)  # type: ignore[arg-type]
    return pki.Chain(leaf=leaf, intermediates=chain.intermediates, root=chain.root, key_kind="p256")


def test_rejects_signature_when_chain_ends_in_another_root() -> None:
    # Given a signature from one PKI and a signer trusting another
    chain = pki.code_signing_chain("p256")
    other = pki.code_signing_chain("p256", role_prefix="Other ")

    # When / Then
    with pytest.raises(SignatureAuthenticityError,
                       match='^authenticity: certificate chain does not end in a trusted root of signer "corp"'):
        _verify(nv.sign(SUBJECT, chain), nv.x509_trust(other))


def test_rejects_signing_authority_signature_when_signer_uses_the_ca_scheme() -> None:
    # Given an SA signature verified against a CA-scheme signer (a CA-issued user posing as an SA)
    chain = pki.code_signing_chain("p256")
    vector = nv.sign(SUBJECT, chain, scheme="notary.x509.signingAuthority")

    # When / Then
    with pytest.raises(SignatureAuthenticityError, match="signing scheme notary.x509.signingAuthority is not notary.x509"):
        _verify(vector, nv.x509_trust(chain))


def test_rejects_signature_when_no_trusted_identity_matches() -> None:
    chain = pki.code_signing_chain("p256")
    trust = nv.x509_trust(chain, identities=("x509.subject: C=US, ST=WA, O=Acme, CN=Release Signer",
                                             "x509.subject: C=US, ST=OR, O=Acme"))
    with pytest.raises(SignatureIdentityError,
                       match="^authenticity: signing certificate subject 'C=US, ST=WA, O=Acme, CN=Test Signer' matches no trusted identity"):
        _verify(nv.sign(SUBJECT, chain), trust)


def test_rejects_signature_when_identity_value_differs_only_in_case() -> None:
    chain = pki.code_signing_chain("p256")
    with pytest.raises(SignatureIdentityError, match="matches no trusted identity"):
        _verify(nv.sign(SUBJECT, chain), nv.x509_trust(chain, identities=("x509.subject: C=US, ST=WA, O=ACME",)))


@pytest.mark.parametrize("rdns", [
    # O twice: the trusted "O=Acme" is one of two organizations the subject names
    [[(NameOID.COUNTRY_NAME, "US")], [(NameOID.STATE_OR_PROVINCE_NAME, "WA")], [(NameOID.ORGANIZATION_NAME, "Evil")],
     [(NameOID.ORGANIZATION_NAME, "Acme")], [(NameOID.COMMON_NAME, "Test Signer")]],
    # a multi-valued RDN "O=Acme+CN=Test Signer"
    [[(NameOID.COUNTRY_NAME, "US")], [(NameOID.STATE_OR_PROVINCE_NAME, "WA")],
     [(NameOID.ORGANIZATION_NAME, "Acme"), (NameOID.COMMON_NAME, "Test Signer")]],
])
def test_rejects_signature_when_leaf_subject_is_ambiguous(rdns: list) -> None:  # type: ignore[type-arg]
    # Given a leaf whose subject repeats an attribute type or has a multi-valued RDN, which
    # notation refuses to match against x509.subject identities (it cannot say which value is meant)
    leaf_subject = x509.Name([x509.RelativeDistinguishedName([x509.NameAttribute(oid, value) for oid, value in rdn])
                              for rdn in rdns])
    chain = pki.code_signing_chain("p256", leaf_subject=leaf_subject)
    vector = nv.sign(SUBJECT, chain)

    # When / Then a DN identity never matches it
    with pytest.raises(SignatureIdentityError, match="matches no trusted identity .*(repeats|multi-valued)"):
        _verify(vector, nv.x509_trust(chain, identities=("x509.subject: C=US, ST=WA, O=Acme",)))
    # ...while '*' (which matches no DN) still accepts it
    assert _verify(vector, nv.x509_trust(chain, identities=("*",))).signing_scheme == "notary.x509"


@pytest.mark.parametrize("media_type", [nv.JWS, nv.COSE])
def test_rejects_signature_when_expired(media_type: str) -> None:
    chain = pki.code_signing_chain("p256")
    vector = nv.sign(SUBJECT, chain, media_type=media_type, signing_time=pki.NOW - timedelta(days=2),
                     expiry=pki.NOW - timedelta(days=1))
    with pytest.raises(SignatureExpiredError, match="^expiry: the signature expired at 2026-05-31T12:00:00"):
        _verify(vector, nv.x509_trust(chain))


def test_rejects_signature_when_expiry_is_not_after_signing_time() -> None:
    chain = pki.code_signing_chain("p256")
    vector = nv.sign(SUBJECT, chain, signing_time=pki.NOW, expiry=pki.NOW)
    with pytest.raises(SignatureIntegrityError, match="is not after the signing time"):
        _verify(vector, nv.x509_trust(chain))


def test_rejects_signing_authority_signature_when_certificate_expired_at_signing_time() -> None:
    # Given an authentic signing time after the leaf's notAfter
    chain = pki.code_signing_chain("p256", leaf_not_after=pki.NOW - timedelta(days=5))
    vector = nv.sign(SUBJECT, chain, scheme="notary.x509.signingAuthority", signing_time=pki.NOW - timedelta(days=1))
    trust = nv.x509_trust(chain, signing_scheme="notary.x509.signingAuthority")

    # When / Then
    with pytest.raises(SignatureExpiredError, match="^authenticTimestamp: certificate .*CN=Test Signer.* was not valid at the authentic signing time"):
        _verify(vector, trust)


def test_rejects_signing_authority_signature_when_signed_before_the_certificate_was_issued() -> None:
    chain = pki.code_signing_chain("p256", leaf_not_before=pki.NOW - timedelta(days=1))
    vector = nv.sign(SUBJECT, chain, scheme="notary.x509.signingAuthority", signing_time=pki.NOW - timedelta(days=2))
    with pytest.raises(SignatureExpiredError, match="was not valid at the authentic signing time"):
        _verify(vector, nv.x509_trust(chain, signing_scheme="notary.x509.signingAuthority"))


def test_rejects_x509_signature_when_leaf_has_expired_and_no_tsa_is_configured() -> None:
    chain = pki.code_signing_chain("p256", leaf_not_after=pki.NOW - timedelta(days=1))
    with pytest.raises(SignatureExpiredError, match="^authenticTimestamp: certificate .* is not valid now"):
        _verify(nv.sign(SUBJECT, chain, signing_time=pki.NOW - timedelta(days=3)), nv.x509_trust(chain))


@pytest.mark.parametrize(("eku", "name"), [
    (ExtendedKeyUsageOID.SERVER_AUTH, "serverAuth"),
    (ExtendedKeyUsageOID.CLIENT_AUTH, "clientAuth"),
    (ExtendedKeyUsageOID.TIME_STAMPING, "timeStamping"),
    (ExtendedKeyUsageOID.EMAIL_PROTECTION, "emailProtection"),
    (ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE, "anyExtendedKeyUsage"),
])
def test_rejects_signature_when_leaf_has_a_forbidden_eku(eku, name: str) -> None:  # type: ignore[no-untyped-def]
    chain = _chain_with_leaf(eku=[ExtendedKeyUsageOID.CODE_SIGNING, eku])
    with pytest.raises(SignatureIntegrityError, match=f"^integrity: signing certificate .* extendedKeyUsage must not include {name}"):
        _verify(nv.sign(SUBJECT, chain), nv.x509_trust(chain))


def test_accepts_leaf_without_eku() -> None:
    chain = _chain_with_leaf(eku=None)
    assert _verify(nv.sign(SUBJECT, chain), nv.x509_trust(chain)).identity.endswith("CN=Odd Leaf")


def test_rejects_signature_when_leaf_is_a_ca() -> None:
    chain = _chain_with_leaf(ca=True, key_usage={"digital_signature": True})
    with pytest.raises(SignatureIntegrityError, match=r"is a CA certificate \(basicConstraints cA=true\)"):
        _verify(nv.sign(SUBJECT, chain), nv.x509_trust(chain))


@pytest.mark.parametrize(("options", "message"), [
    ({"key_usage": {}}, "must have a critical keyUsage extension"),
    ({"key_usage_critical": False}, "must have a critical keyUsage extension"),
    ({"key_usage": {"content_commitment": True}}, "keyUsage lacks digitalSignature"),
    ({"key_usage": {"digital_signature": True, "key_encipherment": True}}, "keyUsage must not include key_encipherment"),
])
def test_rejects_signature_when_leaf_key_usage_is_wrong(options: dict, message: str) -> None:  # type: ignore[type-arg]
    chain = _chain_with_leaf(**options)
    with pytest.raises(SignatureIntegrityError, match=message):
        _verify(nv.sign(SUBJECT, chain), nv.x509_trust(chain))


def test_rejects_signature_when_a_certificate_is_signed_with_sha1() -> None:
    # Given a leaf re-signed by its (ECDSA) intermediate with SHA-1
    chain = pki.code_signing_chain("p256")
    leaf = pki.resigned_with_sha1(chain.leaf, chain.intermediates[0])
    chain = pki.Chain(leaf=leaf, intermediates=chain.intermediates, root=chain.root, key_kind="p256")

    # When / Then
    with pytest.raises(SignatureIntegrityError, match="certificate CN=Test Signer.* is signed with sha1"):
        _verify(nv.sign(SUBJECT, chain), nv.x509_trust(chain))


def test_rejects_signature_when_intermediate_breaks_path_length() -> None:
    # Given root → int (pathLen 0) → second int → leaf
    chain = pki.code_signing_chain("p256")
    second = pki.issue(subject=pki.name("Second Int"), private_key=pki.key("p256", "int2"), issuer=chain.intermediates[0], ca=True)
    leaf = pki.issue(subject=pki.name("Deep Leaf"), private_key=chain.leaf.key, issuer=second)
    deep = pki.Chain(leaf=leaf, intermediates=(second, chain.intermediates[0]), root=chain.root, key_kind="p256")

    # When / Then
    with pytest.raises(SignatureIntegrityError, match="allows 0 CA certificates below it, found 1"):
        _verify(nv.sign(SUBJECT, deep), nv.x509_trust(deep))


def test_rejects_signature_when_intermediate_lacks_basic_constraints() -> None:
    root = pki.issue(subject=pki.name("R"), private_key=pki.key("p384", "root"), ca=True)
    intermediate = pki.issue(subject=pki.name("I"), private_key=pki.key("p384", "int"), issuer=root, ca=True,
                             basic_constraints=False)
    leaf = pki.issue(subject=pki.name("L"), private_key=pki.key("p256"), issuer=intermediate)
    chain = pki.Chain(leaf=leaf, intermediates=(intermediate,), root=root, key_kind="p256")
    with pytest.raises(SignatureIntegrityError, match="must have critical basicConstraints with cA=true"):
        _verify(nv.sign(SUBJECT, chain), nv.x509_trust(chain))


def test_accepts_a_single_self_signed_code_signing_certificate() -> None:
    # Given a one-certificate chain (allowed by the spec; it must meet the leaf rules)
    leaf = pki.issue(subject=pki.name("Solo"), private_key=pki.key("p256", "solo"), eku=[ExtendedKeyUsageOID.CODE_SIGNING])
    chain = pki.Chain(leaf=leaf, intermediates=(), root=leaf, key_kind="p256")
    vector = nv.sign(SUBJECT, chain)
    assert len(chain.ders) == 1

    # When
    result = _verify(vector, nv.x509_trust(chain))

    # Then
    assert result.identity.endswith("CN=Solo")


def test_parses_trusted_identities_with_escapes_and_aliases() -> None:
    dn = parse_trusted_identity("x509.subject: C=US, S=WA, O=Acme\\, Inc., OU=\\ padded\\ , CN=caf\\C3\\A9")
    assert dn == (
        (NameOID.COUNTRY_NAME.dotted_string, "US"),
        (NameOID.STATE_OR_PROVINCE_NAME.dotted_string, "WA"),
        (NameOID.ORGANIZATION_NAME.dotted_string, "Acme, Inc."),
        (NameOID.ORGANIZATIONAL_UNIT_NAME.dotted_string, " padded "),
        (NameOID.COMMON_NAME.dotted_string, "café"),
    )
    assert parse_trusted_identity("*") is None


@pytest.mark.parametrize(("entry", "message"), [
    ("C=US, ST=WA, O=Acme", "must be '\\*' or start with 'x509.subject:'"),
    ("x509.subject: C=US, O=Acme", "must contain C, ST and O \\(missing ST\\)"),
    ("x509.subject: C=US, ST=WA, O=Acme, O=Other", "attribute O appears twice"),
    ("x509.subject: C=US, ST=WA, O=Acme+CN=x", "multi-valued RDNs"),
    ("x509.subject: C=US, ST=WA, O=Acme, XX=1", "unsupported attribute type 'XX'"),
    ("x509.subject: C=US, ST=WA, O=", "empty attribute value"),
    ("x509.subject: C=US, ST=WA, O=#0403", "hex-encoded or quoted"),
    ("x509.subject: C=US, ST=WA, O=A\\q", "invalid escape"),
    ("x509.subject: C=US, ST=WA, Acme", "without '='"),
])
def test_rejects_trusted_identity_when_malformed(entry: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_trusted_identity(entry)


@pytest.mark.parametrize(("entries", "message"), [
    (("*", "x509.subject: C=US, ST=WA, O=Acme"), "cannot be combined"),
    (("x509.subject: C=US, ST=WA, O=Acme", "x509.subject: O=Acme, ST=WA, C=US, CN=x"), "overlap"),
    ((), "must not be empty"),
])
def test_rejects_trusted_identity_list_when_ambiguous(entries: tuple[str, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_trusted_identities(entries)


def test_rejects_root_certificate_when_not_self_signed_or_not_pem() -> None:
    chain = pki.code_signing_chain("p256")
    with pytest.raises(ValueError, match="entry 0: CN=Test Intermediate CA.* is not a self-signed root"):
        parse_root_certificates([chain.intermediates[0].pem])
    with pytest.raises(ValueError, match="entry 1 is not a PEM certificate"):
        parse_root_certificates([chain.root.pem, "MIIB..."])
    with pytest.raises(ValueError, match="entry 0 is not a valid PEM certificate"):
        parse_root_certificates(["-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"])
    assert len(parse_root_certificates([chain.root.pem + chain.root.pem])) == 2
