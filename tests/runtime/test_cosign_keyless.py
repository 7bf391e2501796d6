"""cosign keyless verification, offline, against a local Fulcio, CT log and Rekor made by the test.

Each test spoils one part of an otherwise valid signature (the identity, the times, the log's
proofs, the SCT, the chain, the payload) and expects that one check to refuse it.
"""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from image_verifier.cosign.keyless.rekor import merkle_root_matches
from image_verifier.cosign.keyless.verify import (
    CERTIFICATE_ANNOTATION,
    REKOR_BUNDLE_ANNOTATION,
    verify_bundle_keyless,
    verify_legacy_keyless,
)
from image_verifier.cosign.payload import SimpleSigningPayload
from image_verifier.errors import (
    SignatureAuthenticityError,
    SignatureExpiredError,
    SignatureIdentityError,
    SignatureIntegrityError,
)
from image_verifier.policy import CosignKeylessTrust, Policy
from tests.support.cosign_material import in_toto_statement
from tests.support.sigstore_material import (
    GITHUB_ISSUER,
    WORKFLOW,
    KeylessSignature,
    LocalSigstore,
    Log,
    audit_path,
    hashedrekord_body,
    keyless_signer,
    merkle_root,
    sign_bundle,
    sign_legacy,
    with_entry,
)

DIGEST = "sha256:" + "ab" * 32
OTHER_DIGEST = "sha256:" + "cd" * 32


@pytest.fixture(scope="module")
def sigstore() -> LocalSigstore:
    return LocalSigstore()


def trust_for(sigstore: LocalSigstore, *, root: dict[str, Any] | None = None, **identity: Any) -> CosignKeylessTrust:
    """The signer as the policy loader builds it (so the tests exercise the real parsing too)."""
    document = {"version": "1", "rules": [{"name": "r", "images": ["registry.local/**"], "anyOf": ["gh"]}],
                "trustedSigners": [{"name": "gh", "cosignKeyless": keyless_signer(root or sigstore.trusted_root(),
                                                                                  **identity)}]}
    trust = Policy.from_json(document).signer("gh").trust
    assert isinstance(trust, CosignKeylessTrust)
    return trust


def payload_for(digest: str = DIGEST) -> bytes:
    return SimpleSigningPayload(docker_reference="registry.local/app", manifest_digest=digest).to_bytes()


def verify_legacy(sigstore: LocalSigstore, signature, trust: CosignKeylessTrust | None = None,
                  annotations: dict[str, str] | None = None, digest: str = DIGEST):
    return verify_legacy_keyless(annotations=annotations or signature.legacy_annotations(sigstore),
                                 payload=signature.payload, signature=signature.signature,
                                 trust=trust or trust_for(sigstore), subject_digest=digest)


# -- what verifies ----------------------------------------------------------------------------------

def test_verifies_legacy_signature_by_the_trusted_workflow(sigstore):
    # Given a keyless .sig layer: Fulcio leaf for the release workflow, hashedrekord entry with a SET
    signature = sign_legacy(sigstore, payload_for())
    # When it is verified offline
    result = verify_legacy(sigstore, signature)
    # Then the identity and the log's signing time are reported
    assert (result.issuer, result.subject) == (GITHUB_ISSUER, WORKFLOW)
    assert int(result.signed_at.timestamp()) == signature.entry.integrated_time
    assert result.log_index == signature.entry.log_index


def test_verifies_bundle_with_set_and_inclusion_proof(sigstore):
    # Given a v3 bundle whose dsse entry carries a SET and an inclusion proof with a signed checkpoint
    signature = sign_bundle(sigstore, in_toto_statement(DIGEST))
    # When it is verified
    result = verify_bundle_keyless(signature.bundle(), trust=trust_for(sigstore), subject_digest=DIGEST)
    # Then it verifies for the workflow identity
    assert result.subject == WORKFLOW


def test_verifies_when_subject_regexp_fullmatches_the_workflow_ref(sigstore):
    signature = sign_legacy(sigstore, payload_for())
    trust = trust_for(sigstore, subjectRegExp=r"https://github\.com/acme/app/\.github/workflows/release\.yml@refs/.*",
                      issuerRegExp=r"https://token\.actions\.githubusercontent\.com")
    assert verify_legacy(sigstore, signature, trust).subject == WORKFLOW


@pytest.mark.parametrize("extensions", [("v1",), ("v2",)])
def test_reads_the_issuer_from_either_fulcio_extension(sigstore, extensions):
    # Given leaves with only the deprecated raw extension, or only the DER UTF8String one
    signature = sign_legacy(sigstore, payload_for(), issuer_extensions=extensions)
    # Then both name the issuer
    assert verify_legacy(sigstore, signature).issuer == GITHUB_ISSUER


def test_verifies_an_email_identity(sigstore):
    signature = sign_legacy(sigstore, payload_for(), subject="release@acme.example", issuer="https://accounts.local")
    trust = trust_for(sigstore, subject="release@acme.example", issuer="https://accounts.local")
    assert verify_legacy(sigstore, signature, trust).subject == "release@acme.example"


def test_accepts_a_leaf_without_sct_when_the_policy_ignores_scts(sigstore):
    signature = sign_legacy(sigstore, payload_for(), sct=False)
    trust = trust_for(sigstore, root=sigstore.trusted_root(ctlogs=False), ignoreSct=True)
    assert verify_legacy(sigstore, signature, trust).subject == WORKFLOW


# -- identity ---------------------------------------------------------------------------------------

def test_rejects_signature_when_the_oidc_issuer_differs(sigstore):
    signature = sign_legacy(sigstore, payload_for(), issuer="https://gitlab.local")
    with pytest.raises(SignatureIdentityError, match="OIDC issuer 'https://gitlab.local' is not the trusted one"):
        verify_legacy(sigstore, signature)


def test_rejects_signature_when_the_subject_regexp_only_matches_a_prefix(sigstore):
    # Given a fork's workflow whose ref starts like the trusted one: fullmatch, not search
    fork = "https://github.com/acme/app-fork/.github/workflows/release.yml@refs/heads/main"
    signature = sign_legacy(sigstore, payload_for(), subject=fork)
    trust = trust_for(sigstore, subjectRegExp=r"https://github\.com/acme/app")
    with pytest.raises(SignatureIdentityError, match="does not match the policy's subject matching"):
        verify_legacy(sigstore, signature, trust)


def test_rejects_signature_when_the_subject_is_another_workflow(sigstore):
    other = "https://github.com/acme/app/.github/workflows/pr.yml@refs/pull/7/merge"
    signature = sign_legacy(sigstore, payload_for(), subject=other)
    with pytest.raises(SignatureIdentityError, match="pr.yml"):
        verify_legacy(sigstore, signature)


def test_rejects_signature_when_the_leaf_has_no_issuer_extension(sigstore):
    signature = sign_legacy(sigstore, payload_for(), issuer_extensions=())
    with pytest.raises(SignatureIdentityError, match="no Fulcio OIDC issuer extension"):
        verify_legacy(sigstore, signature)


# -- times ------------------------------------------------------------------------------------------

def test_rejects_signature_when_the_certificate_expired_at_the_integrated_time(sigstore):
    # Given a leaf that lived 10 minutes an hour ago, and a log entry made now
    signature = sign_legacy(sigstore, payload_for(), not_before=sigstore.now - timedelta(hours=1))
    # Then the signature was made outside the certificate's lifetime
    with pytest.raises(SignatureExpiredError, match="signed outside the certificate's lifetime"):
        verify_legacy(sigstore, signature)


def test_rejects_signature_when_the_ca_was_not_trusted_at_the_signing_time(sigstore):
    root = sigstore.trusted_root(ca_valid_for=(sigstore.now - timedelta(days=30), sigstore.now - timedelta(days=1)))
    signature = sign_legacy(sigstore, payload_for())
    with pytest.raises(SignatureAuthenticityError, match="does not chain to a certificate authority"):
        verify_legacy(sigstore, signature, trust_for(sigstore, root=root))


# -- the transparency log ---------------------------------------------------------------------------

def test_rejects_signature_when_the_set_does_not_verify(sigstore):
    # Given an entry whose integrated time was moved after the log signed it
    signature = with_entry(sign_legacy(sigstore, payload_for()), integrated_time=int(sigstore.now.timestamp()) - 30)
    with pytest.raises(SignatureAuthenticityError, match="signed entry timestamp .* does not verify"):
        verify_legacy(sigstore, signature)


def test_rejects_signature_when_the_log_id_is_not_in_the_trusted_root(sigstore):
    # Given a signature logged by another Rekor (its own key and log id)
    other = LocalSigstore(now=sigstore.now, ctlog=sigstore.ctlog)
    other.root, other.intermediate, other.intermediate_key = sigstore.root, sigstore.intermediate, sigstore.intermediate_key
    signature = sign_legacy(other, payload_for())
    with pytest.raises(SignatureAuthenticityError, match="which the trusted root does not list"):
        verify_legacy(sigstore, signature)


def test_rejects_signature_when_the_entry_records_another_signature(sigstore):
    # Given a valid entry of another signing, attached to this signature
    signature = sign_legacy(sigstore, payload_for())
    other = sign_legacy(sigstore, payload_for())
    spliced = with_entry(signature, **{k: getattr(other.entry, k) for k in ("body", "log_index", "set", "proof")})
    with pytest.raises(SignatureIntegrityError, match="records another signature"):
        verify_legacy(sigstore, spliced)


def test_rejects_signature_when_the_legacy_layer_has_no_rekor_bundle(sigstore):
    signature = sign_legacy(sigstore, payload_for())
    annotations = signature.legacy_annotations(sigstore)
    del annotations[REKOR_BUNDLE_ANNOTATION]
    with pytest.raises(SignatureAuthenticityError, match="needs its transparency-log entry"):
        verify_legacy(sigstore, signature, annotations=annotations)


def test_rejects_bundle_when_the_inclusion_proof_is_bad(sigstore):
    # Given a bundle whose audit path has one hash flipped
    signature = sign_bundle(sigstore, in_toto_statement(DIGEST))
    bundle = json.loads(signature.bundle())
    proof = bundle["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]
    first = bytearray(base64.b64decode(proof["hashes"][0]))
    first[0] ^= 1
    proof["hashes"][0] = base64.b64encode(bytes(first)).decode()
    with pytest.raises(SignatureAuthenticityError, match="inclusion proof .* does not lead to the root hash"):
        verify_bundle_keyless(json.dumps(bundle).encode(), trust=trust_for(sigstore), subject_digest=DIGEST)


def test_rejects_bundle_when_the_checkpoint_is_signed_by_another_key(sigstore):
    signature = sign_bundle(sigstore, in_toto_statement(DIGEST))
    bundle = json.loads(signature.bundle())
    proof = bundle["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]
    note, _, _ = proof["checkpoint"]["envelope"].partition("\n\n")
    forged = ec.generate_private_key(ec.SECP256R1()).sign((note + "\n").encode(), ec.ECDSA(hashes.SHA256()))
    hint = sigstore.rekor.log_id[:4]
    proof["checkpoint"]["envelope"] = f"{note}\n\n\u2014 rekor.local {base64.b64encode(hint + forged).decode()}\n"
    with pytest.raises(SignatureAuthenticityError, match="no signature on the checkpoint verifies"):
        verify_bundle_keyless(json.dumps(bundle).encode(), trust=trust_for(sigstore), subject_digest=DIGEST)


def test_rejects_bundle_when_its_entry_has_only_an_inclusion_proof(sigstore):
    # An inclusion proof does not sign the integrated time: the signing time would be unverified
    signature = sign_bundle(sigstore, in_toto_statement(DIGEST))
    with pytest.raises(SignatureAuthenticityError, match="has no signed entry timestamp"):
        verify_bundle_keyless(signature.bundle(with_set=False), trust=trust_for(sigstore), subject_digest=DIGEST)


def test_rejects_bundle_when_it_has_no_tlog_entry(sigstore):
    signature = sign_bundle(sigstore, in_toto_statement(DIGEST))
    bundle = json.loads(signature.bundle())
    bundle["verificationMaterial"]["tlogEntries"] = []
    with pytest.raises(SignatureAuthenticityError, match="carries no transparency-log entry"):
        verify_bundle_keyless(json.dumps(bundle).encode(), trust=trust_for(sigstore), subject_digest=DIGEST)


# -- the certificate: SCT and chain -----------------------------------------------------------------

def test_rejects_signature_when_the_sct_is_missing(sigstore):
    signature = sign_legacy(sigstore, payload_for(), sct=False)
    with pytest.raises(SignatureAuthenticityError, match="carries no signed certificate timestamp"):
        verify_legacy(sigstore, signature)


def test_rejects_signature_when_the_sct_signature_is_bad(sigstore):
    signature = sign_legacy(sigstore, payload_for(), tamper_sct=True)
    with pytest.raises(SignatureAuthenticityError, match="whose signature does not verify"):
        verify_legacy(sigstore, signature)


def test_rejects_signature_when_the_sct_is_from_an_unlisted_ct_log(sigstore):
    signature = sign_legacy(sigstore, payload_for(), sct_log=Log(origin="ct.elsewhere"))
    with pytest.raises(SignatureAuthenticityError, match="which the trusted root does not list"):
        verify_legacy(sigstore, signature)


def test_rejects_signature_when_the_leaf_chains_to_an_untrusted_ca(sigstore):
    # Given a leaf from another CA (with a valid SCT and a valid entry in the trusted log)
    rogue = LocalSigstore(now=sigstore.now, rekor=sigstore.rekor, ctlog=sigstore.ctlog)
    signature = sign_legacy(rogue, payload_for())
    with pytest.raises(SignatureAuthenticityError, match="does not chain to a certificate authority"):
        verify_legacy(sigstore, signature)


# -- the signature and the payload ------------------------------------------------------------------

def test_rejects_signature_when_the_payload_names_another_digest(sigstore):
    signature = sign_legacy(sigstore, payload_for(OTHER_DIGEST))
    with pytest.raises(SignatureIntegrityError, match="copied from another image"):
        verify_legacy(sigstore, signature)


def test_rejects_bundle_when_the_statement_names_another_digest(sigstore):
    signature = sign_bundle(sigstore, in_toto_statement(OTHER_DIGEST))
    with pytest.raises(SignatureIntegrityError, match="does not name .* as its subject"):
        verify_bundle_keyless(signature.bundle(), trust=trust_for(sigstore), subject_digest=DIGEST)


def test_rejects_signature_when_the_payload_was_signed_by_another_key(sigstore):
    # Given a logged entry for the certificate, but a signature by a key the certificate does not hold
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = sigstore.issue(ec.generate_private_key(ec.SECP256R1()))
    payload = payload_for()
    forged = key.sign(payload, ec.ECDSA(hashes.SHA256()))
    entry = sigstore.log(hashedrekord_body(payload=payload, signature=forged, certificate=certificate))
    signature = KeylessSignature(payload=payload, signature=forged, certificate=certificate, entry=entry)
    with pytest.raises(SignatureIntegrityError, match="does not verify with this key"):
        verify_legacy(sigstore, signature)


def test_rejects_layer_when_it_has_no_certificate(sigstore):
    signature = sign_legacy(sigstore, payload_for())
    annotations = signature.legacy_annotations(sigstore)
    del annotations[CERTIFICATE_ANNOTATION]
    with pytest.raises(SignatureAuthenticityError, match="signed with a key, not keyless"):
        verify_legacy(sigstore, signature, annotations=annotations)


# -- the Merkle audit path --------------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(size=st.integers(min_value=1, max_value=70), data=st.data())
def test_every_audit_path_of_a_tree_leads_to_its_root_and_a_flipped_bit_does_not(size, data):
    # Given a tree of `size` leaves and the audit path of one of them
    leaves = [bytes([i % 256]) * 32 for i in range(size)]
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    root, path = merkle_root(leaves), audit_path(index, leaves)
    # Then the path leads to the root, and not with a hash too many, from another index or with a changed
    # hash (the tree size itself is bound by the signed checkpoint, not by the path)
    assert merkle_root_matches(index, size, leaves[index], tuple(path), root)
    assert not merkle_root_matches(index, size, leaves[index], (*path, root), root)
    if size > 1:
        assert not merkle_root_matches((index + 1) % size, size, leaves[index], tuple(path), root)
        position = data.draw(st.integers(min_value=0, max_value=len(path) - 1))
        flipped = list(path)
        flipped[position] = bytes([path[position][0] ^ 1]) + path[position][1:]
        assert not merkle_root_matches(index, size, leaves[index], tuple(flipped), root)


def test_rejects_candidate_as_unparsable_when_a_check_raises_an_unexpected_error():
    # Given a check that fails the way a parser bug would (not one of our errors)
    from image_verifier.cosign.keyless.matches import _one_candidate

    def broken():
        raise KeyError("rawBytes")

    # Then that candidate is refused with a reason, so the walk goes on to the others
    with pytest.raises(SignatureIntegrityError, match="could not be parsed \\(KeyError"):
        _one_candidate(broken)


def test_verifies_a_leaf_issued_by_the_root_of_a_ca_chain_directly(sigstore):
    # Given a Fulcio whose root issues leaves itself (its chain in the trusted root is root only)
    signature = sign_legacy(sigstore, payload_for(), ca=(sigstore.root, sigstore.root_key))
    trust = trust_for(sigstore, root=sigstore.trusted_root(ca_chain=[sigstore.root]))
    # Then the leaf chains (and its SCT names the root's key as the issuer key)
    assert verify_legacy(sigstore, signature, trust).subject == WORKFLOW
