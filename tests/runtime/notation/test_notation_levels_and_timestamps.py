"""Verification levels (strict / permissive / audit) and RFC 3161 timestamp countersignatures."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography import x509

from image_verifier.errors import SignatureAuthenticityError, SignatureExpiredError, SignatureIntegrityError
from image_verifier.notation import level_named, verify_notation
from image_verifier.notation.levels import AUDIT, PERMISSIVE, STRICT, Action, Step
from tests.support import notation_vectors as nv
from tests.support import pki

_, SUBJECT = nv.image_subject("levels")
CHAIN = pki.code_signing_chain("p384")
OTHER = pki.code_signing_chain("p384", role_prefix="Other ")


def _verify(vector: nv.SignedVector, trust):  # type: ignore[no-untyped-def]
    return verify_notation(envelope=vector.envelope, media_type=vector.media_type, subject=SUBJECT, trust=trust, now=pki.NOW)


def _expired() -> nv.SignedVector:
    return nv.sign(SUBJECT, CHAIN, signing_time=pki.NOW - timedelta(days=2), expiry=pki.NOW - timedelta(days=1))


def test_level_tables_enforce_integrity_everywhere() -> None:
    assert all(level[Step.INTEGRITY] is Action.ENFORCE for level in (STRICT, PERMISSIVE, AUDIT))
    assert PERMISSIVE[Step.AUTHENTICITY] is Action.ENFORCE and PERMISSIVE[Step.EXPIRY] is Action.LOG
    assert AUDIT[Step.AUTHENTICITY] is Action.LOG
    with pytest.raises(ValueError, match="verification level must be one of strict, permissive, audit, got 'skip'"):
        level_named("skip")


def test_accepts_expired_signature_with_a_warning_when_permissive() -> None:
    result = _verify(_expired(), nv.x509_trust(CHAIN, verification_level="permissive"))
    assert result.warnings == ("expiry: the signature expired at 2026-05-31T12:00:00+00:00",)


def test_rejects_expired_signature_when_strict() -> None:
    with pytest.raises(SignatureExpiredError, match="^expiry: "):
        _verify(_expired(), nv.x509_trust(CHAIN, verification_level="strict"))


def test_rejects_untrusted_root_when_permissive() -> None:
    with pytest.raises(SignatureAuthenticityError, match="^authenticity: certificate chain does not end in a trusted root"):
        _verify(nv.sign(SUBJECT, CHAIN), nv.x509_trust(OTHER, verification_level="permissive"))


def test_accepts_untrusted_root_and_identity_with_warnings_when_audit() -> None:
    # Given a signature from another PKI, under audit
    trust = nv.x509_trust(OTHER, verification_level="audit", identities=("x509.subject: C=US, ST=WA, O=Elsewhere",))

    # When
    result = _verify(_expired(), trust)

    # Then every non-integrity failure is logged, in step order
    assert [w.split(":")[0] for w in result.warnings] == ["authenticity", "authenticity", "expiry"]


@pytest.mark.parametrize("media_type", [nv.JWS, nv.COSE])
def test_rejects_tampered_signature_when_audit(media_type: str) -> None:
    # Given a signature for another image: integrity cannot be logged away
    vector = nv.sign(SUBJECT, CHAIN, media_type=media_type, payload=nv.payload_for(SUBJECT, digest="sha256:" + "1" * 64))
    with pytest.raises(SignatureIntegrityError, match="^integrity: the signature is for digest"):
        _verify(vector, nv.x509_trust(CHAIN, verification_level="audit"))


# --- timestamps -------------------------------------------------------------------------------

TSA = pki.tsa_chain()
STAMPED_AT = pki.NOW - timedelta(days=10)
EXPIRED_LEAF = pki.code_signing_chain("p384", leaf_not_after=pki.NOW - timedelta(days=1))


def _stamped(chain: pki.Chain = EXPIRED_LEAF, **token_options: object) -> nv.SignedVector:
    gen_time = token_options.pop("gen_time", STAMPED_AT)
    tsa = token_options.pop("tsa", TSA)
    return nv.sign(SUBJECT, chain, signing_time=STAMPED_AT,
                   timestamp=lambda signature: nv.timestamp_token(signature, tsa=tsa, gen_time=gen_time, **token_options))


def _tsa_trust(chain: pki.Chain = EXPIRED_LEAF, **fields: object):  # type: ignore[no-untyped-def]
    return nv.x509_trust(chain, tsa_root_certificates=(TSA.root.pem,), **fields)


def test_verifies_timestamp_when_verify_timestamp_is_always_and_leaf_is_valid() -> None:
    result = _verify(_stamped(CHAIN), _tsa_trust(CHAIN))
    assert result.signing_time == STAMPED_AT


def test_verifies_timestamp_with_the_root_embedded_in_the_token() -> None:
    assert _verify(_stamped(include_root=True), _tsa_trust()).signing_time == STAMPED_AT


def test_ignores_timestamp_when_after_cert_expiry_and_leaf_is_valid() -> None:
    # Given a broken token that is not needed: the leaf is still valid now
    vector = _stamped(CHAIN, imprint=b"\x00" * 48)
    assert _verify(vector, _tsa_trust(CHAIN, verify_timestamp="afterCertExpiry")).signing_time is None


def test_rejects_signature_when_timestamp_is_required_but_absent() -> None:
    vector = nv.sign(SUBJECT, EXPIRED_LEAF, signing_time=STAMPED_AT)
    with pytest.raises(SignatureAuthenticityError, match="^authenticTimestamp: the signature has no timestamp countersignature"):
        _verify(vector, _tsa_trust())


def test_rejects_timestamp_when_message_imprint_is_not_the_signature_hash() -> None:
    with pytest.raises(SignatureAuthenticityError, match="messageImprint is not the hash of this signature"):
        _verify(_stamped(imprint=b"\x00" * 48), _tsa_trust())


def test_rejects_timestamp_when_imprint_uses_another_hash_than_the_signature_algorithm() -> None:
    with pytest.raises(SignatureAuthenticityError, match="messageImprint uses sha256, expected sha384"):
        _verify(_stamped(hash_name="sha256"), _tsa_trust())


def test_rejects_timestamp_when_tsa_root_is_not_trusted() -> None:
    with pytest.raises(SignatureAuthenticityError, match="no issuer found for timestamping certificate"):
        _verify(_stamped(), nv.x509_trust(EXPIRED_LEAF, tsa_root_certificates=(OTHER.root.pem,)))


def test_rejects_timestamp_when_gen_time_is_after_the_leaf_expired() -> None:
    with pytest.raises(SignatureExpiredError, match="^authenticTimestamp: certificate .*CN=Test Signer.* was not valid at the timestamp"):
        _verify(_stamped(gen_time=pki.NOW - timedelta(hours=1)), _tsa_trust())


def test_rejects_timestamp_when_accuracy_reaches_past_the_leaf_validity() -> None:
    # Given genTime 30 s before the leaf expired, but an accuracy of 60 s
    gen_time = EXPIRED_LEAF.leaf.cert.not_valid_after_utc - timedelta(seconds=30)
    with pytest.raises(SignatureExpiredError, match="was not valid at the timestamp"):
        _verify(_stamped(gen_time=gen_time, accuracy_seconds=60), _tsa_trust())


def test_rejects_timestamp_when_signing_certificate_v2_is_missing() -> None:
    with pytest.raises(SignatureAuthenticityError, match="lacks the signing-certificate-v2 attribute"):
        _verify(_stamped(signing_certificate_v2=False), _tsa_trust())


def test_rejects_timestamp_when_tsa_eku_is_not_critical() -> None:
    tsa = pki.tsa_chain(eku_critical=False)
    with pytest.raises(SignatureAuthenticityError, match="must have a critical extendedKeyUsage of only timeStamping"):
        _verify(_stamped(tsa=tsa), _tsa_trust())


def test_rejects_timestamp_when_tsa_certificate_was_not_valid_at_gen_time() -> None:
    tsa = pki.tsa_chain(not_before=pki.NOW - timedelta(days=5))
    with pytest.raises(SignatureAuthenticityError, match="timestamping certificate .* was not valid at genTime"):
        _verify(_stamped(tsa=tsa), _tsa_trust())


def test_rejects_timestamp_when_token_is_garbage() -> None:
    vector = nv.sign(SUBJECT, EXPIRED_LEAF, signing_time=STAMPED_AT, timestamp=lambda signature: b"\x30\x03\x02\x01\x01")
    with pytest.raises(SignatureAuthenticityError, match="not a valid RFC 3161 token"):
        _verify(vector, _tsa_trust())


def test_rejects_timestamp_when_it_carries_a_certificate_with_an_invalid_version() -> None:
    # Given a token (unsigned header data) holding a certificate the X.509 parser refuses
    vector = _stamped(extra_certificates=(pki.malformed_der(TSA.leaf, version=7),))

    # When / Then it is a timestamp failure, not a stray parser exception
    with pytest.raises(SignatureAuthenticityError, match="^authenticTimestamp: timestamp token holds a certificate that is not valid"):
        _verify(vector, _tsa_trust())


def test_rejects_timestamp_when_the_tsa_key_algorithm_is_unknown() -> None:
    # Given a token signed for a TSA certificate whose key algorithm OID nobody knows
    broken = x509.load_der_x509_certificate(pki.malformed_der(TSA.leaf, key_algorithm="1.2.3.4.5"))
    tsa = pki.Chain(leaf=pki.Issued(cert=broken, key=TSA.leaf.key), intermediates=(), root=TSA.root, key_kind=TSA.key_kind)

    # When / Then
    with pytest.raises(SignatureAuthenticityError, match="^authenticTimestamp: timestamp"):
        _verify(_stamped(tsa=tsa), _tsa_trust())


def test_accepts_failed_timestamp_with_a_warning_when_permissive() -> None:
    result = _verify(_stamped(imprint=b"\x00" * 48), _tsa_trust(verification_level="permissive"))
    assert result.signing_time is None
    assert result.warnings == ("authenticTimestamp: timestamp messageImprint is not the hash of this signature",)


def test_verifies_timestamp_from_an_rsa_tsa() -> None:
    tsa = pki.tsa_chain(key_kind="rsa2048")
    trust = nv.x509_trust(EXPIRED_LEAF, tsa_root_certificates=(tsa.root.pem,))
    assert _verify(_stamped(tsa=tsa), trust).signing_time == STAMPED_AT
