"""Issue 9, class 5: an allOf rule counts one signature, and one key, once.

Signatures are real (cosign legacy signatures made with `sign_image`, Notation JWS envelopes from
tests/support) and live in the real test registry; KMS is a small explicit fake that returns a
public key for an ARN, as `kms:GetPublicKey` does.
"""

from __future__ import annotations

from typing import Any

from image_verifier.cosign.keys import CosignKeyResolver
from image_verifier.cosign.sign import PemSigner, sign_image
from image_verifier.deadline import Deadline
from image_verifier.oci import Descriptor
from image_verifier.policy import Policy
from image_verifier.signer_checks import distinct_assignment
from image_verifier.verdict import Outcome, SignerMatch, Verdict
from image_verifier.verifier import ImageRequest, ImageVerifier
from tests.support.cosign_material import KeyPair, cosign_policy
from tests.support.images import PushedImage, push_image, unique_repository
from tests.support.notation_registry import push_notation_vector
from tests.support.notation_vectors import SignedVector
from tests.support.notation_vectors import sign as notation_sign
from tests.support.pki import Chain, code_signing_chain

ARN = "arn:aws:kms:us-east-1:111111111111:key/0a1b2c3d-1111-2222-3333-444455556666"
# One multi-region key has one key id and one key material in every region it is replicated to.
MRK_US = "arn:aws:kms:us-east-1:111111111111:key/mrk-1234abcd12ab34cd56ef1234567890ab"
MRK_EU = "arn:aws:kms:eu-west-1:111111111111:key/mrk-1234abcd12ab34cd56ef1234567890ab"
IDENTITY = "x509.subject: C=US, ST=WA, O=Acme"


class FakeKms:
    """`kms:GetPublicKey` for a fixed set of ARNs, counting calls."""

    def __init__(self, keys: dict[str, KeyPair]) -> None:
        self.keys = keys
        self.calls: list[str] = []

    def get_public_key(self, *, KeyId: str) -> dict[str, Any]:
        self.calls.append(KeyId)
        return {"KeyId": KeyId, "PublicKey": self.keys[KeyId].public_der, "KeyUsage": "SIGN_VERIFY",
                "KeySpec": "ECC_NIST_P256", "SigningAlgorithms": ["ECDSA_SHA_256"]}


def cosign_signed_image(registry, registry_client, *keys: KeyPair) -> PushedImage:
    """A new image with one legacy cosign signature per key (cosign appends them to one `.sig` manifest)."""
    image = push_image(registry, unique_repository(), "v1")
    for key in keys:
        sign_image(registry_client.bound(Deadline.after(30)), image.ref, PemSigner(key.private_pem))
    return image


def push_notation_signature(registry, image: PushedImage, chain: Chain, *, vector: SignedVector | None = None
                            ) -> PushedImage:
    """A real Notation JWS signature of `image` by `chain`'s leaf (or `vector`), listed in the referrers tag schema."""
    subject = Descriptor(media_type=image.media_type, digest=image.digest, size=image.size)
    return push_notation_vector(registry, image, vector or notation_sign(subject, chain))


def notation_policy(registry_host: str, chain: Chain, names: list[str], **policy_extra: Any) -> dict[str, Any]:
    """notationX509 signers named `names`, all on `chain`'s root and identity, under one allOf rule."""
    return {
        "version": "1",
        "trustedSigners": [{"name": name, "notationX509": {"rootCertificates": [chain.root.pem],
                                                           "trustedIdentities": [IDENTITY]}} for name in names],
        "rules": [{"name": "two-parties", "images": [f"{registry_host}/**"], "allOf": names}],
        **policy_extra,
    }


def _verify(registry_client, document: dict[str, Any], image: PushedImage, kms: FakeKms | None = None) -> Verdict:
    policy = Policy.from_json(document)
    keys = CosignKeyResolver((lambda region: kms) if kms else None)
    verifier = ImageVerifier(policy, registry=registry_client, cosign_keys=keys)
    [verdict] = verifier.decide([ImageRequest(image=str(image.ref))], deadline=Deadline.after(30)).verdicts
    return verdict


def test_rejects_all_of_when_one_key_is_named_by_its_kms_arn_and_by_its_pem(registry, registry_client):
    # Given one key, named twice (KMS ARN and PEM), and an image it signed twice (two distinct signatures)
    key = KeyPair.generate()
    image = cosign_signed_image(registry, registry_client, key, key)
    document = cosign_policy({"release": {"kmsKeyArn": ARN}, "security": {"publicKeyPem": key.public_pem}},
                             images=f"{registry.host}/**", all_of=["release", "security"])
    # When an allOf of both names is verified
    verdict = _verify(registry_client, document, image, FakeKms({ARN: key}))
    # Then one key is one party: rejected, saying so
    assert verdict.outcome is Outcome.REJECTED, verdict
    assert "the same public key" in " ".join(verdict.reasons)
    assert "distinct key" in " ".join(verdict.reasons)


def test_rejects_all_of_when_two_arns_name_one_multi_region_key(registry, registry_client):
    key = KeyPair.generate()
    image = cosign_signed_image(registry, registry_client, key)
    document = cosign_policy({"us": {"kmsKeyArn": MRK_US}, "eu": {"kmsKeyArn": MRK_EU}},
                             images=f"{registry.host}/**", all_of=["us", "eu"])
    kms = FakeKms({MRK_US: key, MRK_EU: key})
    verdict = _verify(registry_client, document, image, kms)
    assert verdict.outcome is Outcome.REJECTED, verdict
    assert "the same" in " ".join(verdict.reasons)
    assert sorted(kms.calls) == sorted([MRK_US, MRK_EU])  # both ARNs were resolved: compared by material


def test_rejects_all_of_when_two_notation_signers_rest_on_one_root_and_one_signature(registry, registry_client):
    # Given two notationX509 signers with one root and identity, and one Notation signature
    chain = code_signing_chain("p256", role_prefix="allof-")
    image = push_image(registry, unique_repository(), "v1")
    push_notation_signature(registry, image, chain)
    # When an allOf of both is verified
    verdict = _verify(registry_client, notation_policy(registry.host, chain, ["team-a", "team-b"]), image)
    # Then the one signature counts once
    assert verdict.outcome is Outcome.REJECTED, verdict
    assert "the same signature" in " ".join(verdict.reasons)


def test_admits_all_of_when_two_genuinely_different_keys_signed(registry, registry_client):
    first, second = KeyPair.generate(), KeyPair.generate()
    image = cosign_signed_image(registry, registry_client, first, second)
    document = cosign_policy({"release": {"kmsKeyArn": ARN}, "security": {"publicKeyPem": second.public_pem}},
                             images=f"{registry.host}/**", all_of=["release", "security"])
    verdict = _verify(registry_client, document, image, FakeKms({ARN: first}))
    assert verdict.outcome is Outcome.VERIFIED, verdict
    assert [m.signer for m in verdict.signers] == ["release", "security"]
    # one signature manifest (cosign appends layers), two signatures, two keys
    assert verdict.signers[0].signature_digest == verdict.signers[1].signature_digest
    assert verdict.signers[0].signature_sha256 != verdict.signers[1].signature_sha256
    assert verdict.signers[0].key_fingerprint != verdict.signers[1].key_fingerprint


def test_admits_all_of_when_a_cosign_key_and_a_notation_signature_are_both_present(registry, registry_client):
    key = KeyPair.generate()
    chain = code_signing_chain("p256", role_prefix="mixed-")
    image = cosign_signed_image(registry, registry_client, key)
    push_notation_signature(registry, image, chain)
    document = notation_policy(registry.host, chain, ["corp"])
    document["trustedSigners"].append({"name": "ci", "cosignKey": {"publicKeyPem": key.public_pem}})
    document["rules"][0]["allOf"] = ["corp", "ci"]
    verdict = _verify(registry_client, document, image)
    assert verdict.outcome is Outcome.VERIFIED, verdict
    assert {m.format for m in verdict.signers} == {"cosign-legacy", "notation-jws"}


def _match(signer: str, signature: str, key: str) -> SignerMatch:
    return SignerMatch(signer=signer, kind="cosignKey", identity=key, format="cosign-legacy",
                       verified_digest="sha256:" + "0" * 64, signature_sha256=signature, key_fingerprint=key)


def test_finds_a_distinct_assignment_whatever_the_order_of_signers_and_signatures():
    # Given signer a, whose first valid signature is the only one signer b accepts
    a = [_match("a", "sig1", "key1"), _match("a", "sig2", "key2")]
    b = [_match("b", "sig1", "key1")]
    # When the assignment is searched, Then a takes sig2 so that b can take sig1
    chosen, reasons = distinct_assignment(["a", "b"], [a, b])
    assert chosen is not None and reasons == []
    assert [m.signature_sha256 for m in chosen] == ["sig2", "sig1"]


def test_rejects_assignment_when_material_is_shared_through_a_chain_of_matches():
    # sig1/key1 and sig2/key1 share a key: whatever a and b pick, they rest on key1
    chosen, reasons = distinct_assignment(["a", "b"], [[_match("a", "sig1", "key1")], [_match("b", "sig2", "key1")]])
    assert chosen is None
    assert "signer 'b'" in reasons[0] and "the same public key (key1)" in reasons[0]
