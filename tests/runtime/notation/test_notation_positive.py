"""Valid Notary signatures verify: every algorithm, both envelopes, both signing schemes, TSA, AWS Signer."""

from __future__ import annotations

from datetime import timedelta

import pytest

from image_verifier.notation import verify_notation
from tests.support import notation_vectors as nv
from tests.support import pki

_, SUBJECT = nv.image_subject()


@pytest.mark.parametrize("media_type", [nv.JWS, nv.COSE])
@pytest.mark.parametrize("key_kind", pki.KEY_KINDS)
def test_verifies_each_algorithm_in_each_envelope(key_kind: str, media_type: str) -> None:
    # Given a chain whose leaf key selects the algorithm (PS256/384/512, ES256/384/512)
    chain = pki.code_signing_chain(key_kind)
    vector = nv.sign(SUBJECT, chain, media_type=media_type, annotations={"io.acme.commit": "abc123"})

    # When
    result = verify_notation(envelope=vector.envelope, media_type=media_type, subject=SUBJECT,
                             trust=nv.x509_trust(chain), now=pki.NOW)

    # Then
    assert result.identity == "C=US, ST=WA, O=Acme, CN=Test Signer"
    assert result.signing_scheme == "notary.x509"
    assert result.signing_time is None  # notary.x509 without a TSA proves no signing time
    assert result.user_annotations == {"io.acme.commit": "abc123"}
    assert result.warnings == ()


@pytest.mark.parametrize("media_type", [nv.JWS, nv.COSE])
def test_verifies_signing_authority_scheme_at_the_authentic_signing_time(media_type: str) -> None:
    # Given a signing-authority signature whose leaf has expired since it signed
    signed_at = pki.NOW - timedelta(days=40)
    chain = pki.code_signing_chain("p384", leaf_not_before=signed_at - timedelta(days=1),
                                   leaf_not_after=signed_at + timedelta(days=3))
    vector = nv.sign(SUBJECT, chain, media_type=media_type, scheme="notary.x509.signingAuthority",
                     signing_time=signed_at)
    trust = nv.x509_trust(chain, signing_scheme="notary.x509.signingAuthority")

    # When
    result = verify_notation(envelope=vector.envelope, media_type=media_type, subject=SUBJECT, trust=trust, now=pki.NOW)

    # Then validity is judged at the authentic signing time, not now
    assert result.signing_scheme == "notary.x509.signingAuthority"
    assert result.signing_time == signed_at


@pytest.mark.parametrize("media_type", [nv.JWS, nv.COSE])
def test_verifies_timestamped_signature_whose_leaf_has_expired(media_type: str) -> None:
    # Given a leaf that expired yesterday, and a TSA token from while it was valid
    chain = pki.code_signing_chain("p384", leaf_not_after=pki.NOW - timedelta(days=1))
    tsa = pki.tsa_chain()
    stamped_at = pki.NOW - timedelta(days=10)
    vector = nv.sign(SUBJECT, chain, media_type=media_type, signing_time=stamped_at,
                     timestamp=lambda signature: nv.timestamp_token(signature, tsa=tsa, gen_time=stamped_at))
    trust = nv.x509_trust(chain, tsa_root_certificates=(tsa.root.pem,), verify_timestamp="afterCertExpiry")

    # When
    result = verify_notation(envelope=vector.envelope, media_type=media_type, subject=SUBJECT, trust=trust, now=pki.NOW)

    # Then the timestamp stands in for "now"
    assert result.signing_time == stamped_at


def test_verifies_trusted_identity_as_subset_of_the_leaf_subject() -> None:
    # Given identities that name more of the subject, in another order, with escapes
    chain = pki.code_signing_chain("p256", leaf_subject=pki.name("Build, Team", organization="Acme Corp"))
    vector = nv.sign(SUBJECT, chain)
    trust = nv.x509_trust(chain, identities=("x509.subject: O=Other, C=US, ST=WA",
                                             "x509.subject: CN=Build\\, Team , O=Acme Corp,ST=WA,C=US"))

    # When
    result = verify_notation(envelope=vector.envelope, media_type=nv.JWS, subject=SUBJECT, trust=trust, now=pki.NOW)

    # Then the identity renders in the same syntax, so it can be pasted into a policy
    assert result.identity == "C=US, ST=WA, O=Acme Corp, CN=Build\\, Team"


@pytest.mark.parametrize("profile", [nv.PROFILE_ARN, nv.PROFILE_VERSION_ARN, nv.PROFILE_ARN.upper().replace("ARN:AWS", "arn:aws")])
def test_verifies_aws_signer_signature_by_profile_or_profile_version(profile: str) -> None:
    # Given an AWS-Signer-shaped signature (ES384, 4 certificates, plugin and Signer attributes)
    vector = nv.aws_signer_signature(SUBJECT)
    assert len(vector.chain.certs) == 4

    # When
    result = verify_notation(envelope=vector.envelope, media_type=nv.JWS, subject=SUBJECT,
                             trust=nv.aws_trust(vector.chain, profiles=(profile,)), now=pki.NOW)

    # Then the identity is the signed profile version, and the signing time is authentic
    assert result.identity == nv.PROFILE_VERSION_ARN
    assert result.signing_time == pki.NOW - timedelta(days=1)


def test_verifies_aws_signer_signature_long_after_its_leaf_expired() -> None:
    # Given a Signer signature made 300 days ago (its leaf lived three days)
    signed_at = pki.NOW - timedelta(days=300)
    vector = nv.aws_signer_signature(SUBJECT, signing_time=signed_at)
    assert vector.chain.leaf.cert.not_valid_after_utc < pki.NOW

    # When
    result = verify_notation(envelope=vector.envelope, media_type=nv.JWS, subject=SUBJECT,
                             trust=nv.aws_trust(vector.chain), now=pki.NOW)

    # Then
    assert result.signing_time == signed_at


def test_returns_payload_annotations_for_required_annotation_rules() -> None:
    # Given
    chain = pki.code_signing_chain("p256")
    vector = nv.sign(SUBJECT, chain, media_type=nv.COSE, annotations={"io.acme.commit": "f00d", "team": "payments"})

    # When
    result = verify_notation(envelope=vector.envelope, media_type=nv.COSE, subject=SUBJECT,
                             trust=nv.x509_trust(chain, identities=("*",)), now=pki.NOW)

    # Then
    assert dict(result.user_annotations) == {"io.acme.commit": "f00d", "team": "payments"}
