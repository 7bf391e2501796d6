"""The `cosignKeyless` signer in the policy: loading, validation errors with field paths, files, round trip."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from image_verifier.errors import PolicyError
from image_verifier.policy import CosignKeylessTrust, Policy, SignerKind
from image_verifier.policy.files import load_policy_file
from tests.support.sigstore_material import GITHUB_ISSUER, WORKFLOW, LocalSigstore, keyless_signer


@pytest.fixture(scope="module")
def sigstore() -> LocalSigstore:
    return LocalSigstore()


def document(body: dict[str, Any]) -> dict[str, Any]:
    return {"version": "1", "trustedSigners": [{"name": "release", "cosignKeyless": body}],
            "rules": [{"name": "apps", "images": ["registry.local/**"], "anyOf": ["release"]}]}


def test_loads_a_keyless_signer_and_writes_it_back_unchanged(sigstore):
    # Given a policy with a keyless signer (exact issuer, subject regexp)
    policy = Policy.from_json(document(keyless_signer(sigstore.trusted_root(), subjectRegExp=r"https://github\.com/.*")))
    # Then it is a cosignKeyless signer, and its JSON reads back to the same policy (and hash)
    signer = policy.signer("release")
    assert signer.kind is SignerKind.COSIGN_KEYLESS
    assert isinstance(signer.trust, CosignKeylessTrust) and signer.trust.issuer == GITHUB_ISSUER
    again = Policy.from_json(policy.to_json())
    assert again == policy and again.policy_hash == policy.policy_hash
    assert policy.warnings == ()


def test_rejects_policy_when_the_trusted_root_has_no_ctlogs(sigstore):
    body = keyless_signer(sigstore.trusted_root(ctlogs=False))
    with pytest.raises(PolicyError, match=r"lists no ctlogs.*'ignoreSct': true") as caught:
        Policy.from_json(document(body))
    assert caught.value.path == "trustedSigners[0].cosignKeyless.trustedRoot"


def test_accepts_a_trusted_root_without_ctlogs_when_scts_are_ignored_and_says_so(sigstore):
    policy = Policy.from_json(document(keyless_signer(sigstore.trusted_root(ctlogs=False), ignoreSct=True)))
    assert policy.signer("release").trust.ignore_sct is True  # type: ignore[union-attr]
    # the weaker choice is announced, as verification levels are (the CLI prints Policy.warnings)
    assert policy.warnings == ("trustedSigners[0].cosignKeyless.ignoreSct: signer 'release' accepts certificates "
                               "that no certificate transparency log has seen (cosign --insecure-ignore-sct)",)


def test_rejects_policy_when_subject_and_subject_regexp_are_both_given(sigstore):
    body = keyless_signer(sigstore.trusted_root()) | {"subjectRegExp": ".*"}
    with pytest.raises(PolicyError, match="give exactly one of 'subject' or 'subjectRegExp'") as caught:
        Policy.from_json(document(body))
    assert caught.value.path == "trustedSigners[0].cosignKeyless"


def test_rejects_policy_when_the_issuer_is_missing(sigstore):
    body = keyless_signer(sigstore.trusted_root())
    del body["issuer"]
    with pytest.raises(PolicyError, match="give exactly one of 'issuer' or 'issuerRegExp'"):
        Policy.from_json(document(body))


def test_rejects_policy_when_the_subject_regexp_does_not_compile(sigstore):
    body = keyless_signer(sigstore.trusted_root(), subjectRegExp="https://github.com/(acme")
    with pytest.raises(PolicyError, match="not a valid regular expression") as caught:
        Policy.from_json(document(body))
    assert caught.value.path == "trustedSigners[0].cosignKeyless.subjectRegExp"


def test_rejects_policy_when_a_log_id_is_not_the_hash_of_its_key(sigstore):
    root = sigstore.trusted_root()
    root["tlogs"][0]["logId"]["keyId"] = root["ctlogs"][0]["logId"]["keyId"]
    with pytest.raises(PolicyError, match="is not the SHA-256 of publicKey.rawBytes") as caught:
        Policy.from_json(document(keyless_signer(root)))
    assert caught.value.path == "trustedSigners[0].cosignKeyless.trustedRoot.tlogs[0].logId.keyId"


def test_rejects_policy_when_the_trusted_root_is_not_one(sigstore):
    root = sigstore.trusted_root() | {"mediaType": "application/json"}
    with pytest.raises(PolicyError, match="is this Sigstore's trusted_root.json") as caught:
        Policy.from_json(document(keyless_signer(root)))
    assert caught.value.path == "trustedSigners[0].cosignKeyless.trustedRoot.mediaType"


def test_rejects_policy_when_a_ca_certificate_is_not_der(sigstore):
    root = sigstore.trusted_root()
    root["certificateAuthorities"][0]["certChain"]["certificates"][1]["rawBytes"] = "bm90IGEgY2VydA=="
    with pytest.raises(PolicyError, match="not a DER certificate") as caught:
        Policy.from_json(document(keyless_signer(root)))
    assert caught.value.path.endswith("trustedRoot.certificateAuthorities[0].certChain.certificates[1].rawBytes")


def test_loads_the_trusted_root_file_relative_to_the_policy_file(sigstore, tmp_path: Path):
    # Given trusted_root.json in a folder beside the policy, named by trustedRootFile
    (tmp_path / "sigstore").mkdir()
    (tmp_path / "sigstore" / "trusted_root.json").write_text(json.dumps(sigstore.trusted_root()))
    body = keyless_signer(sigstore.trusted_root())
    body.pop("trustedRoot")
    body["trustedRootFile"] = "sigstore/trusted_root.json"
    (tmp_path / "policy.json").write_text(json.dumps(document(body)))
    # When the policy file is loaded
    policy = load_policy_file(tmp_path / "policy.json")
    # Then the file's root is inlined, as if written in the policy
    assert policy == Policy.from_json(document(keyless_signer(sigstore.trusted_root())))
    assert policy.signer("release").trust.subject == WORKFLOW  # type: ignore[union-attr]


def test_rejects_policy_file_when_the_trusted_root_file_is_missing(sigstore, tmp_path: Path):
    body = keyless_signer(sigstore.trusted_root())
    body.pop("trustedRoot")
    body["trustedRootFile"] = "missing.json"
    (tmp_path / "policy.json").write_text(json.dumps(document(body)))
    with pytest.raises(PolicyError, match="cannot read 'missing.json'") as caught:
        load_policy_file(tmp_path / "policy.json")
    assert caught.value.path == "trustedSigners[0].cosignKeyless.trustedRootFile"


def test_rejects_policy_file_when_the_trusted_root_file_has_duplicate_keys(sigstore, tmp_path: Path):
    (tmp_path / "root.json").write_text('{"mediaType": "a", "mediaType": "b"}')
    body = keyless_signer(sigstore.trusted_root())
    body.pop("trustedRoot")
    body["trustedRootFile"] = "root.json"
    (tmp_path / "policy.json").write_text(json.dumps(document(body)))
    with pytest.raises(PolicyError, match="'root.json': the key 'mediaType' appears twice"):
        load_policy_file(tmp_path / "policy.json")


def test_shipped_schema_accepts_the_keyless_signer_the_loader_writes(sigstore):
    schema = json.loads(resources.files("image_verifier.policy").joinpath("schema.json").read_text())
    written = Policy.from_json(document(keyless_signer(sigstore.trusted_root()))).to_json()
    jsonschema.validate(json.loads(written), schema)
    body = keyless_signer(sigstore.trusted_root())
    body.pop("trustedRoot")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document(body), schema)


def test_review_report_names_the_keyless_identity(sigstore):
    # Given the reviewer's reading of a policy document with a keyless signer
    from image_verifier.review.policy import _Reader

    body = keyless_signer(sigstore.trusted_root(), subjectRegExp=r"https://github\.com/acme/.*")
    signer = _Reader(None, None, {}).signer({"name": "release", "cosignKeyless": body})
    # Then the report says which identity it trusts, not an unknown kind
    assert signer.kind == "cosignKeyless"
    assert signer.trusts == (rf"`~ https://github\.com/acme/.*` from `{GITHUB_ISSUER}` (Fulcio certificate, Rekor entry)",)
