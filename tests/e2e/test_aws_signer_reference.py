"""AWS Signer trusted out of the box: the shipped, pinned roots, and the reference app's own policy
judging AWS-Signer-shaped Notation signatures pushed to the real test registry.

The reference app trusts its supply chain's AWS Signer profile with no certificate argument. These
tests take the policy document that app synthesizes, stand the test PKI's root in for AWS's shipped
root (the only swap: AWS's root key is not ours to sign with), and verify real signature manifests.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from image_verifier.composition import build_verifier
from image_verifier.deadline import Deadline
from image_verifier.errors import PolicyError
from image_verifier.notation import awssigner
from image_verifier.oci import Descriptor
from image_verifier.policy import Policy
from image_verifier.registry import RegistryClient
from image_verifier.verifier import ImageRequest
from tests.support.images import PushedImage, push_image
from tests.support.notation_registry import push_notation_vector
from tests.support.notation_vectors import aws_signer_signature
from tests.support.pki import aws_signer_chain

REFERENCE_REPOSITORIES = ("reference/app", "reference/worker")  # SigningStack's chain, in order
REFERENCE_PROFILE_ARN = "arn:aws:signer:us-east-1:111111111111:/signing-profiles/reference_images"
OTHER_PROFILE_ARN = "arn:aws:signer:us-east-1:111111111111:/signing-profiles/other_team"
GOV_PROFILE_ARN = "arn:aws-us-gov:signer:us-gov-west-1:111111111111:/signing-profiles/gov_images"
CN_PROFILE_ARN = "arn:aws-cn:signer:cn-north-1:111111111111:/signing-profiles/cn_images"


def _fingerprint(pem: str) -> str:
    from cryptography import x509

    return hashlib.sha256(x509.load_pem_x509_certificate(pem.encode()).public_bytes(Encoding.DER)).hexdigest()


def _aws_document(*arns: str, **fields: Any) -> dict[str, Any]:
    return {"version": "1", "trustedSigners": [{"name": "ecr", "awsSigner": {"signingProfileArns": list(arns), **fields}}],
            "rules": [{"name": "all", "images": ["registry.example/**"], "anyOf": ["ecr"]}]}


# -- the shipped roots ------------------------------------------------------------------------------
@pytest.mark.parametrize(("partition", "fingerprint", "subject"), [
    ("aws", "90a87d0543c3f094dbff9589b6649affe2f3d6e0f308799be2258461c686473f", "AWS Signer Code Signing Root CA G1"),
    ("aws-us-gov", "673653ab76f41a10546cdeb4107ecd6df2c15c2c9a0d32ed97d271b4436fc3e8",
     "AWS Signer Code Signing GovCloud (US) Root CA G1"),
])
def test_ships_the_aws_signer_root_of_each_partition_pinned_by_fingerprint(partition, fingerprint, subject):
    # When
    pem = awssigner.shipped_root_pem(partition)
    # Then
    assert _fingerprint(pem) == fingerprint
    assert subject in pem or subject in _subject(pem)
    awssigner.check_pinned_root(pem)


def _subject(pem: str) -> str:
    from cryptography import x509

    return x509.load_pem_x509_certificate(pem.encode()).subject.rfc4514_string()


def test_rejects_the_shipped_root_when_the_file_does_not_have_the_pinned_fingerprint(monkeypatch):
    # Given a pin that the shipped file does not have (as if the file had been replaced)
    awssigner.shipped_root_pem.cache_clear()
    monkeypatch.setitem(awssigner.SHIPPED_ROOTS, "aws", ("aws-signer-notation-root.crt", "00" * 32))
    try:
        # When / Then
        with pytest.raises(ValueError, match="has SHA-256 90a87d05.*not the pinned 0000"):
            awssigner.shipped_root_pem("aws")
    finally:
        awssigner.shipped_root_pem.cache_clear()


def test_chooses_roots_by_the_partition_of_the_profile_arns():
    pems = awssigner.default_root_pems([REFERENCE_PROFILE_ARN, GOV_PROFILE_ARN, REFERENCE_PROFILE_ARN + "x"])
    assert [_fingerprint(p)[:8] for p in pems] == ["90a87d05", "673653ab"]


def test_loads_an_aws_signer_policy_without_root_certificates():
    policy = Policy.from_json(_aws_document(REFERENCE_PROFILE_ARN))
    assert policy.trusted_signers[0].trust.root_certificates == ()


def test_rejects_aws_cn_profile_when_no_root_is_given():
    with pytest.raises(PolicyError, match="signingProfileArns.*no AWS Signer root certificate is shipped for "
                                          "partition 'aws-cn'.*customRootCertificates"):
        Policy.from_json(_aws_document(CN_PROFILE_ARN))


def test_loads_aws_cn_profile_when_its_root_is_given_as_a_custom_root():
    root = aws_signer_chain().root.pem
    policy = Policy.from_json(_aws_document(CN_PROFILE_ARN, customRootCertificates=[root]))
    assert policy.trusted_signers[0].trust.custom_root_certificates == (root,)


# -- the reference app's policy against real signatures ------------------------------------------------
@pytest.fixture(scope="module")
def reference_policy(tmp_path_factory) -> tuple[dict[str, Any], dict[str, str]]:
    """The admission policy document the reference app builds, and its deploy-time variables."""
    from app import build_app

    app = build_app(outdir=str(tmp_path_factory.mktemp("cdk.out")))
    built = app.node.find_child("SignedImagesAdmission").admission.policy
    return built.document, dict(built.placeholders)


class _NotRevoked:
    def get_revocation_status(self, **kwargs: Any) -> dict[str, Any]:
        return {"revokedEntities": []}


class _CosignPublicKeys:
    """KMS GetPublicKey for the policy's cosign keys: keys that signed nothing here."""

    def get_public_key(self, *, KeyId: str) -> dict[str, Any]:
        key = ec.generate_private_key(ec.SECP256R1()).public_key()
        return {"KeyId": KeyId, "KeyUsage": "SIGN_VERIFY", "KeySpec": "ECC_NIST_P256",
                "SigningAlgorithms": ["ECDSA_SHA_256"],
                "PublicKey": key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)}


class _Aws:
    """AWS Signer (revocation: nothing revoked) and KMS (the cosign keys' public keys); nothing else."""

    def for_service(self, service: str):  # type: ignore[no-untyped-def]
        def client(region: str) -> Any:
            assert service in ("signer", "kms"), f"unexpected AWS call to {service} in {region}"
            return _NotRevoked() if service == "signer" else _CosignPublicKeys()

        return client


@pytest.fixture
def test_root_as_aws_root(monkeypatch):
    """Stand the test PKI's root in for the shipped AWS Signer root (file and pin), and return its chain."""
    chain = aws_signer_chain()
    monkeypatch.setattr(awssigner, "shipped_root_pem", lambda partition: chain.root.pem)
    monkeypatch.setattr(awssigner, "PINNED_ROOT_SHA256", frozenset({_fingerprint(chain.root.pem)}))
    return chain


def _deployed(document: dict[str, Any], placeholders: dict[str, str], registry_host: str) -> Policy:
    """The policy as the Lambda reads it: the profile variable holds the deployed profile's ARN, and the
    repository variables name the chain's repositories in the local registry (which holds the images)."""
    [aws] = [s["awsSigner"] for s in document["trustedSigners"] if "awsSigner" in s]
    assert set(aws) == {"signingProfileArns", "revocationCheck"}  # no certificate: the shipped root is used
    [ref] = aws["signingProfileArns"]
    # The chain's repositories, in order, travel as deploy-time variables (their URIs are imported).
    [rule] = document["rules"]
    images = {i["fromEnv"]: f"{registry_host}/{name}" for i, name in zip(rule["images"], REFERENCE_REPOSITORIES, strict=True)}
    assert all(name.startswith("ADMISSION_IMAGES_") for name in images), rule["images"]
    return Policy.from_json(document, environ={**placeholders, ref["fromEnv"]: REFERENCE_PROFILE_ARN, **images})


def _push_signed(registry, tag: str, *, profile_arn: str, chain) -> PushedImage:  # type: ignore[no-untyped-def]
    image = push_image(registry, "reference/app", tag, layer_bytes=tag.encode())
    subject = Descriptor(media_type=image.media_type, digest=image.digest, size=image.size)
    vector = aws_signer_signature(subject, chain=chain, profile_version_arn=profile_arn + "/a1b2C3d4E5",
                                  job_arn="arn:aws:signer:us-east-1:111111111111:/signing-jobs/" + "0" * 8 + "-1")
    push_notation_vector(registry, image, vector)
    return image


@pytest.mark.registry
@pytest.mark.parametrize(("profile_arn", "admitted"), [(REFERENCE_PROFILE_ARN, True), (OTHER_PROFILE_ARN, False)],
                         ids=["reference-profile", "another-profile"])
def test_reference_policy_admits_only_signatures_of_its_chains_profile(
        registry, reference_policy, test_root_as_aws_root, profile_arn, admitted):
    # Given an image of the reference repository signed the way AWS Signer signs (ES384 JWS, signing
    # authority, profile version and job attributes, a chain under the stand-in root)
    image = _push_signed(registry, f"v-{admitted}", profile_arn=profile_arn, chain=test_root_as_aws_root)
    policy = _deployed(*reference_policy, registry.host)
    verifier = build_verifier(policy, registry=RegistryClient(insecure_registries={registry.host}), aws=_Aws())

    # When the deployed function would judge it
    decision = verifier.decide([ImageRequest(image=str(image.tag_ref))], deadline=Deadline.after(20))

    # Then the chain's profile admits it, and another profile of the same account does not
    [verdict] = decision.verdicts
    assert decision.admitted is admitted, verdict
    if admitted:
        assert verdict.signers[0].identity == REFERENCE_PROFILE_ARN + "/a1b2C3d4E5"
    else:
        assert any("is not a trusted signing profile" in reason for reason in verdict.reasons), verdict.reasons
