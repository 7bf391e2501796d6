"""AWS Signer: profile identities, the pinned root, and revocation through GetRevocationStatus (Stubber)."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Iterator

import boto3
import pytest
from botocore.stub import Stubber

from image_verifier.errors import (
    AwsUnavailableError,
    PolicyError,
    SignatureIdentityError,
    SignatureIntegrityError,
    SignatureRevokedError,
)
from image_verifier.notation import (
    AWS_SIGNER_ROOT_SHA256,
    SignerRevocationChecker,
    check_pinned_root,
    parse_signing_profile_arn,
    verify_notation,
)
from image_verifier.notation.awssigner import certificate_hashes, profile_matches
from image_verifier.policy import AwsSignerTrust
from tests.support import notation_vectors as nv
from tests.support import pki

_, SUBJECT = nv.image_subject("aws")
SIGNED_AT = pki.NOW - timedelta(days=1)


@pytest.fixture
def signer_client() -> Iterator[tuple[object, Stubber]]:
    client = boto3.client("signer", region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def _expected_request(chain: pki.Chain) -> dict[str, object]:
    def tbs(cert) -> str:  # type: ignore[no-untyped-def]
        return hashlib.sha384(cert.tbs_certificate_bytes).hexdigest()

    certs = chain.certs
    return {
        "signatureTimestamp": SIGNED_AT,
        "platformId": "Notation-OCI-SHA384-ECDSA",
        "profileVersionArn": nv.PROFILE_VERSION_ARN,
        "jobArn": nv.JOB_ARN,
        # leaf+regional, regional+int, int+root, root+root
        "certificateHashes": [tbs(certs[0]) + tbs(certs[1]), tbs(certs[1]) + tbs(certs[2]),
                              tbs(certs[2]) + tbs(certs[3]), tbs(certs[3]) + tbs(certs[3])],
    }


def _verify(vector: nv.SignedVector, client: object, **trust_fields: object):  # type: ignore[no-untyped-def]
    trust = nv.aws_trust(vector.chain, revocation_check=True, **trust_fields)
    return verify_notation(envelope=vector.envelope, media_type=vector.media_type, subject=SUBJECT, trust=trust,
                           now=pki.NOW, revocation=SignerRevocationChecker(lambda region: client))


def test_checks_revocation_with_the_exact_documented_request(signer_client) -> None:  # type: ignore[no-untyped-def]
    # Given a Signer signature and a GetRevocationStatus that reports nothing revoked
    client, stubber = signer_client
    vector = nv.aws_signer_signature(SUBJECT, signing_time=SIGNED_AT)
    stubber.add_response("get_revocation_status", {"revokedEntities": []}, _expected_request(vector.chain))

    # When
    result = _verify(vector, client)

    # Then (the Stubber has checked the request shape and every parameter)
    assert result.identity == nv.PROFILE_VERSION_ARN


def test_asks_the_region_of_the_signing_profile() -> None:
    # Given
    asked: list[str] = []

    class Client:
        def get_revocation_status(self, **kwargs: object) -> dict[str, object]:
            return {"revokedEntities": []}

    def client_for(region: str) -> Client:
        asked.append(region)
        return Client()

    vector = nv.aws_signer_signature(SUBJECT, signing_time=SIGNED_AT)
    checker = SignerRevocationChecker(client_for)

    # When verified twice with the same checker
    for _ in range(2):
        verify_notation(envelope=vector.envelope, media_type=nv.JWS, subject=SUBJECT,
                        trust=nv.aws_trust(vector.chain, revocation_check=True), now=pki.NOW, revocation=checker)

    # Then one call, to us-east-1 ("not revoked" is remembered for the checker's lifetime)
    assert asked == ["us-east-1"]


@pytest.mark.parametrize(("revoked", "message"), [
    (nv.PROFILE_VERSION_ARN, "signing profile version .* is revoked"),
    (nv.JOB_ARN, "signing job .* is revoked"),
])
def test_rejects_signature_when_profile_or_job_is_revoked(signer_client, revoked: str, message: str) -> None:  # type: ignore[no-untyped-def]
    # Given
    client, stubber = signer_client
    vector = nv.aws_signer_signature(SUBJECT, signing_time=SIGNED_AT)
    stubber.add_response("get_revocation_status", {"revokedEntities": [revoked]}, _expected_request(vector.chain))

    # When / Then
    with pytest.raises(SignatureRevokedError, match="^revocation: " + message):
        _verify(vector, client)


def test_rejects_signature_when_a_certificate_is_revoked(signer_client) -> None:  # type: ignore[no-untyped-def]
    # Given
    client, stubber = signer_client
    vector = nv.aws_signer_signature(SUBJECT, signing_time=SIGNED_AT)
    request = _expected_request(vector.chain)
    stubber.add_response("get_revocation_status", {"revokedEntities": [request["certificateHashes"][1]]}, request)

    # When / Then
    with pytest.raises(SignatureRevokedError, match="certificate .*Code Signing CA G1.* is revoked"):
        _verify(vector, client)


def test_reports_unavailable_when_get_revocation_status_fails(signer_client) -> None:  # type: ignore[no-untyped-def]
    # Given
    client, stubber = signer_client
    vector = nv.aws_signer_signature(SUBJECT, signing_time=SIGNED_AT)
    stubber.add_client_error("get_revocation_status", service_error_code="TooManyRequestsException",
                             http_status_code=429, expected_params=_expected_request(vector.chain))

    # When / Then
    with pytest.raises(AwsUnavailableError, match="^revocation: signer:GetRevocationStatus failed"):
        _verify(vector, client)


def test_skips_revocation_when_the_signer_turns_it_off() -> None:
    # Given no checker at all
    vector = nv.aws_signer_signature(SUBJECT, signing_time=SIGNED_AT)

    # When
    result = verify_notation(envelope=vector.envelope, media_type=nv.JWS, subject=SUBJECT,
                             trust=nv.aws_trust(vector.chain, revocation_check=False), now=pki.NOW)

    # Then
    assert result.warnings == ()


def test_rejects_signature_when_profile_is_not_trusted() -> None:
    # Given a version of another profile ("ProdImagesX" must not match "ProdImages" by prefix)
    vector = nv.aws_signer_signature(SUBJECT, profile_version_arn=nv.PROFILE_ARN + "X/a1b2C3d4E5")

    # When / Then
    with pytest.raises(SignatureIdentityError, match="^authenticity: signing profile version .*ProdImagesX.* is not a trusted"):
        verify_notation(envelope=vector.envelope, media_type=nv.JWS, subject=SUBJECT,
                        trust=nv.aws_trust(vector.chain), now=pki.NOW)


def test_rejects_signature_when_profile_version_differs_from_the_trusted_version() -> None:
    # Given
    vector = nv.aws_signer_signature(SUBJECT)

    # When / Then
    with pytest.raises(SignatureIdentityError, match="is not a trusted signing profile"):
        verify_notation(envelope=vector.envelope, media_type=nv.JWS, subject=SUBJECT,
                        trust=nv.aws_trust(vector.chain, profiles=(nv.PROFILE_ARN + "/ZZZZZZZZZZ",)), now=pki.NOW)


def test_rejects_unknown_verification_plugin_when_signer_is_aws() -> None:
    # Given
    vector = nv.aws_signer_signature(SUBJECT, extra={"io.cncf.notary.verificationPlugin": "com.example.plugin"})

    # When / Then
    with pytest.raises(SignatureIntegrityError, match="verification plugin 'com.example.plugin' is not supported"):
        verify_notation(envelope=vector.envelope, media_type=nv.JWS, subject=SUBJECT,
                        trust=nv.aws_trust(vector.chain), now=pki.NOW)


def test_rejects_aws_signer_signature_when_signer_is_notation_x509() -> None:
    # Given the AWS plugin attributes, but a plain x509 signer (which runs no plugin logic)
    vector = nv.aws_signer_signature(SUBJECT)
    trust = nv.x509_trust(vector.chain, identities=("*",), signing_scheme="notary.x509.signingAuthority")

    # When / Then
    with pytest.raises(SignatureIntegrityError, match="^integrity: verification plugin .* is not supported"):
        verify_notation(envelope=vector.envelope, media_type=nv.JWS, subject=SUBJECT, trust=trust, now=pki.NOW)


def test_rejects_aws_signer_signature_when_the_profile_attribute_is_not_critical() -> None:
    # Given
    chain = pki.aws_signer_chain(signing_time=SIGNED_AT)
    extra, critical = nv.aws_signer_attributes()
    vector = nv.sign(SUBJECT, chain, scheme="notary.x509.signingAuthority", signing_time=SIGNED_AT, extra=extra,
                     extra_critical=tuple(c for c in critical if c != "com.amazonaws.signer.signingProfileVersion"))

    # When / Then
    with pytest.raises(SignatureIntegrityError, match="needs a critical com.amazonaws.signer.signingProfileVersion"):
        verify_notation(envelope=vector.envelope, media_type=nv.JWS, subject=SUBJECT, trust=nv.aws_trust(chain), now=pki.NOW)


def test_rejects_notary_x509_scheme_when_signer_is_aws() -> None:
    # Given a CA-scheme signature carrying the Signer attributes
    chain = pki.aws_signer_chain(signing_time=SIGNED_AT)
    extra, critical = nv.aws_signer_attributes()
    vector = nv.sign(SUBJECT, chain, extra=extra, extra_critical=critical)

    # When / Then
    with pytest.raises(Exception, match="^authenticity: signing scheme notary.x509 is not notary.x509.signingAuthority"):
        verify_notation(envelope=vector.envelope, media_type=nv.JWS, subject=SUBJECT, trust=nv.aws_trust(chain), now=pki.NOW)


def test_rejects_non_aws_certificate_given_as_the_pinned_root() -> None:
    # Given a test root passed as rootCertificates (the pinned field)
    chain = pki.aws_signer_chain()

    # When / Then
    with pytest.raises(ValueError, match=f"is not the AWS Signer root certificate \\(SHA-256 {AWS_SIGNER_ROOT_SHA256}\\)"):
        check_pinned_root(chain.root.pem)
    with pytest.raises(ValueError, match="put other roots in customRootCertificates"):
        check_pinned_root(chain.root.cert)


def test_rejects_non_aws_root_at_verification_when_given_as_rootCertificates() -> None:
    # Given a trust built without the policy loader
    vector = nv.aws_signer_signature(SUBJECT)
    trust = AwsSignerTrust(signing_profile_arns=(nv.PROFILE_ARN,), root_certificates=(vector.chain.root.pem,),
                           revocation_check=False)

    # When / Then
    with pytest.raises(PolicyError, match="rootCertificates: .* is not the AWS Signer root"):
        verify_notation(envelope=vector.envelope, media_type=nv.JWS, subject=SUBJECT, trust=trust, now=pki.NOW)


def test_matches_profiles_case_insensitively_and_versions_exactly() -> None:
    version = nv.PROFILE_VERSION_ARN
    assert profile_matches(nv.PROFILE_ARN, version)
    assert profile_matches(nv.PROFILE_ARN.replace("ProdImages", "prodimages"), version)
    assert profile_matches(version.lower(), version)
    assert not profile_matches(nv.PROFILE_ARN + "2", version)
    assert not profile_matches(nv.PROFILE_ARN + "/OtherVer01", version)


def test_rejects_signing_profile_arn_when_malformed() -> None:
    assert parse_signing_profile_arn(nv.PROFILE_ARN) == nv.PROFILE_ARN
    assert parse_signing_profile_arn(nv.PROFILE_VERSION_ARN) == nv.PROFILE_VERSION_ARN
    for bad in ("*", "arn:aws:signer:us-east-1:123:/signing-profiles/x", nv.JOB_ARN, nv.PROFILE_ARN + "/v/extra",
                nv.PROFILE_ARN + "\n", nv.PROFILE_VERSION_ARN + "\n"):
        with pytest.raises(ValueError, match="is not a signing profile ARN"):
            parse_signing_profile_arn(bad)


def test_builds_certificate_hashes_leaf_to_root_with_the_root_paired_with_itself() -> None:
    chain = pki.aws_signer_chain()
    hashes = certificate_hashes(chain.certs)
    assert len(hashes) == 4 and all(len(h) == 192 for h in hashes)
    assert hashes[3][:96] == hashes[3][96:] == hashes[2][96:]
