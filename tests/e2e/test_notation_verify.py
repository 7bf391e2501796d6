"""Notation signatures end to end: real signature manifests in the real registry, verified by the CLI.

docker-registry 2.8 has no referrers API, so signatures are listed in the referrers tag schema
(`sha256-<hex>`), as notation does against such registries; the fake registry covers the API.
"""

from __future__ import annotations

import json
import boto3
import pytest
from botocore.stub import ANY, Stubber

from image_verifier.composition import AwsClients, build_verifier
from image_verifier.deadline import Deadline
from image_verifier.oci import OCI_INDEX, OCI_MANIFEST, Descriptor
from image_verifier.policy import Policy
from image_verifier.registry import RegistryClient
from image_verifier.verifier import ImageRequest
from tests.support.cosign_material import KeyPair
from tests.support.fake_registry import Reply
from tests.support.images import (
    PushedImage,
    canonical_json,
    empty_config,
    push_image,
    unique_repository,
)
from tests.support.notation_registry import push_notation_vector
from tests.support.notation_vectors import (
    COSE,
    JWS,
    NOTARY,
    PROFILE_ARN,
    SignedVector,
    aws_signer_signature,
    sign,
)
from tests.support.pki import code_signing_chain

from .cli_helpers import verify, write_policy

pytestmark = pytest.mark.registry
IDENTITY = "x509.subject: C=US, ST=WA, O=Acme"


def _subject(image: PushedImage) -> Descriptor:
    return Descriptor(media_type=image.media_type, digest=image.digest, size=image.size)


def _x509_policy(tmp_path, registry, chain, **rule_extra):
    document = {
        "version": "1",
        "trustedSigners": [{"name": "corp", "notationX509": {"rootCertificates": [chain.root.pem],
                                                             "trustedIdentities": [IDENTITY]}}],
        "rules": [{"name": "signed", "images": [f"{registry.host}/**"], "anyOf": ["corp"], **rule_extra}],
    }
    return write_policy(tmp_path, document)


@pytest.fixture(scope="module")
def chain():
    return code_signing_chain("p256")


@pytest.mark.parametrize("media_type", [JWS, COSE])
@pytest.mark.parametrize("legacy", [False, True], ids=["artifactType-form", "config-form"])
def test_admits_image_when_notation_signature_chains_to_trusted_root(registry, tmp_path, chain, media_type, legacy):
    # Given an image with a Notation signature (JWS or COSE, either manifest shape)
    image = push_image(registry, unique_repository(), "v1")
    push_notation_vector(registry, image, sign(_subject(image), chain, media_type=media_type), legacy=legacy)
    # When it is verified by tag
    result = verify(registry.host, _x509_policy(tmp_path, registry, chain), str(image.tag_ref))
    # Then it is admitted, with the leaf subject as the identity
    assert result.code == 0, result
    [verdict] = result.verdicts
    assert verdict["signers"][0]["format"] == ("notation-jws" if media_type == JWS else "notation-cose")
    assert "Test Signer" in verdict["signers"][0]["identity"]


def test_rejects_image_saying_authenticity_failed_when_root_is_not_trusted(registry, tmp_path, chain):
    image = push_image(registry, unique_repository(), "v1")
    push_notation_vector(registry, image, sign(_subject(image), code_signing_chain("p256", role_prefix="other-")))
    result = verify(registry.host, _x509_policy(tmp_path, registry, chain), str(image.ref))
    assert result.code == 1
    assert "authenticity:" in result.verdicts[0]["reasons"][0]


def test_rejects_image_when_trusted_identity_does_not_match(registry, tmp_path, chain):
    image = push_image(registry, unique_repository(), "v1")
    push_notation_vector(registry, image, sign(_subject(image), chain))
    document = json.loads(_x509_policy(tmp_path, registry, chain).read_text())
    document["trustedSigners"][0]["notationX509"]["trustedIdentities"] = ["x509.subject: C=US, ST=WA, O=Other"]
    result = verify(registry.host, write_policy(tmp_path, document), str(image.ref))
    assert result.code == 1
    assert "trusted identit" in result.verdicts[0]["reasons"][0]


def test_rejects_image_saying_integrity_failed_when_signature_names_another_image(registry, tmp_path, chain):
    # Given a valid signature of image B, attached (as a referrer) to image A
    repo = unique_repository()
    image = push_image(registry, repo, "a", layer_bytes=b"a")
    other = push_image(registry, repo, "b", layer_bytes=b"b")
    vector = sign(_subject(other), chain)
    push_notation_vector(registry, image, SignedVector(**{**vector.__dict__, "subject": _subject(image)}))
    # When / Then
    result = verify(registry.host, _x509_policy(tmp_path, registry, chain), str(image.ref))
    assert result.code == 1
    assert "integrity:" in result.verdicts[0]["reasons"][0]


def test_rejects_image_when_notation_annotation_is_required_and_absent(registry, tmp_path, chain):
    image = push_image(registry, unique_repository(), "v1")
    push_notation_vector(registry, image, sign(_subject(image), chain, annotations={"buildId": "17"}))
    policy = _x509_policy(tmp_path, registry, chain, requiredAnnotations={"buildId": "[0-9]+", "git-sha": ".+"})
    result = verify(registry.host, policy, str(image.ref))
    assert result.code == 1
    assert "'git-sha'" in result.verdicts[0]["reasons"][0]


def _aws_policy(tmp_path, registry, vector, revocation=True):
    document = {
        "version": "1",
        "trustedSigners": [{"name": "ecr-signing", "awsSigner": {
            "signingProfileArns": [PROFILE_ARN], "customRootCertificates": [vector.chain.root.pem],
            "revocationCheck": revocation}}],
        "rules": [{"name": "signed", "images": [f"{registry.host}/**"], "anyOf": ["ecr-signing"]}],
    }
    return write_policy(tmp_path, document)


@pytest.fixture
def signer_stub(monkeypatch):
    """A real boto3 signer client behind botocore's Stubber, handed to the CLI's composition root."""
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    client = boto3.client("signer", region_name="us-east-1")
    monkeypatch.setattr(AwsClients, "client", lambda self, service, region: client)
    with Stubber(client) as stubber:
        yield stubber


def _revocation_request() -> dict:
    return {"signatureTimestamp": ANY, "platformId": "Notation-OCI-SHA384-ECDSA",
            "profileVersionArn": PROFILE_ARN + "/a1b2C3d4E5", "jobArn": ANY, "certificateHashes": ANY}


@pytest.mark.parametrize(("revoked", "code"), [([], 0), (["arn:aws:signer:us-east-1:123456789012:/signing-profiles/ProdImages/a1b2C3d4E5"], 1)])
def test_aws_signer_signature_is_judged_by_revocation_status(registry, tmp_path, signer_stub, revoked, code):
    # Given an AWS-Signer-shaped signature (ES384, signing authority, 4 certificates)
    image = push_image(registry, unique_repository(), "v1")
    vector = aws_signer_signature(_subject(image))
    push_notation_vector(registry, image, vector)
    signer_stub.add_response("get_revocation_status", {"revokedEntities": revoked}, _revocation_request())
    # When it is verified with revocation checking on
    result = verify(registry.host, _aws_policy(tmp_path, registry, vector), str(image.ref))
    # Then GetRevocationStatus decides
    assert result.code == code, result
    if revoked:
        assert "revoked" in result.verdicts[0]["reasons"][0]
    else:
        assert result.verdicts[0]["signers"][0]["identity"].endswith("/a1b2C3d4E5")
    signer_stub.assert_no_pending_responses()


def test_reports_unavailable_when_revocation_status_cannot_be_read(registry, tmp_path, signer_stub):
    image = push_image(registry, unique_repository(), "v1")
    vector = aws_signer_signature(_subject(image))
    push_notation_vector(registry, image, vector)
    signer_stub.add_client_error("get_revocation_status", "ThrottlingException", "slow down", 429)
    result = verify(registry.host, _aws_policy(tmp_path, registry, vector), str(image.ref))
    assert result.code == 3
    assert result.verdicts[0]["outcome"] == "unavailable"


def test_admits_when_cosign_is_missing_but_notation_satisfies_an_any_of_rule(registry, tmp_path, chain):
    image = push_image(registry, unique_repository(), "v1")
    push_notation_vector(registry, image, sign(_subject(image), chain))
    document = json.loads(_x509_policy(tmp_path, registry, chain).read_text())
    document["trustedSigners"].append({"name": "ci", "cosignKey": {"publicKeyPem": KeyPair.generate().public_pem}})
    document["rules"][0]["anyOf"] = ["ci", "corp"]
    result = verify(registry.host, write_policy(tmp_path, document), str(image.ref))
    assert result.code == 0, result
    assert result.verdicts[0]["signer"] == "corp"


def test_finds_signature_listed_only_by_the_referrers_api(fake_registry, chain):
    # Given a registry whose referrers API lists a signature that no tag-schema index mentions
    image_manifest = canonical_json({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                                     "config": empty_config().descriptor(), "layers": []})
    image_digest = fake_registry.add_manifest("app", image_manifest, OCI_MANIFEST, tags=["v1"])
    subject = Descriptor(media_type=OCI_MANIFEST, digest=image_digest, size=len(image_manifest))
    vector = sign(subject, chain)
    fake_registry.add_blob("app", vector.envelope)
    signature_digest = fake_registry.add_manifest("app", vector.manifest, OCI_MANIFEST)
    listing = canonical_json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": signature_digest, "size": len(vector.manifest), "artifactType": NOTARY}]})
    fake_registry.route("GET", f"/v2/app/referrers/{image_digest}", Reply(body=listing, headers={"Content-Type": OCI_INDEX}))
    policy = Policy.from_json({
        "version": "1",
        "trustedSigners": [{"name": "corp", "notationX509": {"rootCertificates": [chain.root.pem],
                                                             "trustedIdentities": [IDENTITY]}}],
        "rules": [{"name": "signed", "images": [f"{fake_registry.host}/**"], "anyOf": ["corp"]}],
    })
    verifier = build_verifier(policy, registry=RegistryClient(insecure_registries={fake_registry.host}))
    # When
    decision = verifier.decide([ImageRequest(image=f"{fake_registry.host}/app:v1")], deadline=Deadline.after(20))
    # Then
    assert decision.admitted, decision.verdicts
    assert decision.verdicts[0].signers[0].signature_digest == signature_digest
