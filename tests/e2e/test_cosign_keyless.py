"""cosign keyless end to end: keyless signatures made by a local Sigstore, stored in a real registry the
way cosign stores them (a `.sig` layer with certificate and Rekor bundle annotations; a v3 bundle
referrer), verified by the CLI offline against a trusted_root.json beside the policy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from image_verifier.cosign.payload import SimpleSigningPayload
from tests.support.cosign_material import KeyPair, in_toto_statement, push_bundle_referrer
from tests.support.images import push_image, unique_repository
from tests.support.sigstore_material import (
    GITHUB_ISSUER,
    WORKFLOW,
    LocalSigstore,
    keyless_signer,
    push_keyless_sig,
    sign_bundle,
    sign_legacy,
)

from .cli_helpers import sign, verify, write_policy

pytestmark = pytest.mark.registry


@pytest.fixture(scope="module")
def sigstore() -> LocalSigstore:
    return LocalSigstore()


def keyless_policy(tmp_path: Path, registry_host: str, sigstore: LocalSigstore, *, extra_signers: dict[str, Any] | None = None,
                   all_of: list[str] | None = None, rule_extra: dict[str, Any] | None = None, **identity: Any) -> Path:
    """A policy file whose keyless signer reads trusted_root.json from beside it (trustedRootFile)."""
    (tmp_path / "trusted_root.json").write_text(json.dumps(sigstore.trusted_root()))
    body = keyless_signer(sigstore.trusted_root(), **identity)
    body.pop("trustedRoot")
    body["trustedRootFile"] = "trusted_root.json"
    rule: dict[str, Any] = {"name": "release", "images": [f"{registry_host}/**"]}
    rule.update({"allOf": all_of} if all_of else {"anyOf": ["release"]})
    rule.update(rule_extra or {})
    return write_policy(tmp_path, {"version": "1", "rules": [rule], "trustedSigners": [
        {"name": "release", "cosignKeyless": body}, *({"name": n, **b} for n, b in (extra_signers or {}).items())]})


def simple_signing(image) -> bytes:
    return SimpleSigningPayload(docker_reference=image.ref.name, manifest_digest=image.digest).to_bytes()


def test_admits_image_when_signed_keyless_at_the_sig_tag(registry, tmp_path, sigstore):
    # Given an image whose .sig layer carries a Fulcio certificate and a Rekor bundle (cosign v2 keyless)
    image = push_image(registry, unique_repository(), "v1")
    push_keyless_sig(registry, image, [(sign_legacy(sigstore, simple_signing(image)), sigstore)])
    # When the CLI verifies it by tag, offline
    result = verify(registry.host, keyless_policy(tmp_path, registry.host, sigstore), str(image.tag_ref))
    # Then it is admitted by the keyless signer, with the workflow identity in the verdict
    assert result.code == 0, result
    [verdict] = result.verdicts
    assert verdict["outcome"] == "verified" and verdict["digest"] == image.digest
    [match] = verdict["signers"]
    assert match["kind"] == "cosignKeyless" and match["format"] == "cosign-legacy"
    assert match["identity"] == f"{WORKFLOW} (issuer {GITHUB_ISSUER})"


def test_admits_image_when_signed_keyless_as_a_v3_bundle_referrer(registry, tmp_path, sigstore):
    # Given a cosign v3 bundle referrer (certificate, dsse entry with SET and inclusion proof)
    image = push_image(registry, unique_repository(), "v1")
    push_bundle_referrer(registry, image, sign_bundle(sigstore, in_toto_statement(image.digest)).bundle())
    # When it is verified with a subject regular expression over the workflow ref
    policy = keyless_policy(tmp_path, registry.host, sigstore,
                            subjectRegExp=r"https://github\.com/acme/app/\.github/workflows/release\.yml@refs/heads/.+")
    result = verify(registry.host, policy, str(image.ref))
    # Then the bundle verifies
    assert result.code == 0, result
    assert result.verdicts[0]["signers"][0]["format"] == "cosign-bundle"


def test_rejects_image_when_signed_keyless_by_another_workflow(registry, tmp_path, sigstore):
    # Given an image signed keyless by a pull-request workflow of the same repository
    image = push_image(registry, unique_repository(), "v1")
    pull_request = "https://github.com/acme/app/.github/workflows/pr.yml@refs/pull/9/merge"
    push_keyless_sig(registry, image, [(sign_legacy(sigstore, simple_signing(image), subject=pull_request), sigstore)])
    # When it is verified against the release workflow
    result = verify(registry.host, keyless_policy(tmp_path, registry.host, sigstore), str(image.ref))
    # Then it is rejected, and the reason names the identity found
    assert result.code == 1, result
    [verdict] = result.verdicts
    assert verdict["outcome"] == "rejected"
    assert "pr.yml@refs/pull/9/merge" in verdict["reasons"][0] and "does not match" in verdict["reasons"][0]


def test_rejects_image_when_its_keyless_signature_was_copied_from_another_image(registry, tmp_path, sigstore):
    # Given image B carrying the keyless signature made for image A
    repo = unique_repository()
    signed = push_image(registry, repo, "a", layer_bytes=b"a")
    other = push_image(registry, repo, "b", layer_bytes=b"b")
    push_keyless_sig(registry, other, [(sign_legacy(sigstore, simple_signing(signed)), sigstore)])
    # Then B is rejected: the payload names A's digest
    result = verify(registry.host, keyless_policy(tmp_path, registry.host, sigstore), str(other.ref))
    assert result.code == 1
    assert "copied from another image" in result.verdicts[0]["reasons"][0]


def test_all_of_a_key_and_a_keyless_identity_needs_both_signatures(registry, tmp_path, sigstore, key: KeyPair,
                                                                   key_file):
    # Given a rule that wants the CI key and the release workflow, and an image signed with the key only
    image = push_image(registry, unique_repository(), "v1")
    assert sign(registry.host, key_file, str(image.ref)).code == 0
    policy = keyless_policy(tmp_path, registry.host, sigstore, all_of=["release", "ci"],
                            extra_signers={"ci": {"cosignKey": {"publicKeyPem": key.public_pem}}})
    # Then it is rejected for the missing keyless signature
    assert verify(registry.host, policy, str(image.ref)).code == 1
    # When the workflow's keyless signature is added beside the key's (as a v3 bundle referrer)
    push_bundle_referrer(registry, image, sign_bundle(sigstore, in_toto_statement(image.digest)).bundle())
    result = verify(registry.host, policy, str(image.ref))
    # Then both signers are satisfied, each by its own signature
    assert result.code == 0, result
    assert sorted(m["kind"] for m in result.verdicts[0]["signers"]) == ["cosignKey", "cosignKeyless"]


def test_cli_process_admits_a_keyless_image_offline(registry, tmp_path, sigstore):
    # Given a keyless-signed image and the policy with its trusted_root.json beside it
    image = push_image(registry, unique_repository(), "v1")
    push_keyless_sig(registry, image, [(sign_legacy(sigstore, simple_signing(image)), sigstore)])
    policy = keyless_policy(tmp_path, registry.host, sigstore)
    # When `python -m image_verifier verify --policy ... --json` runs as its own process
    done = subprocess.run([sys.executable, "-m", "image_verifier", "verify", "--policy", str(policy),
                           "--insecure-registry", registry.host, "--json", str(image.ref)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          env={**os.environ, "AWS_EC2_METADATA_DISABLED": "true"})
    # Then it exits 0 with one verified verdict by the keyless signer
    assert done.returncode == 0, done.stdout + done.stderr
    verdict = json.loads(done.stdout.splitlines()[0])
    assert verdict["outcome"] == "verified" and verdict["signers"][0]["kind"] == "cosignKeyless"


def test_match_docker_reference_applies_to_keyless_signatures(registry, tmp_path, sigstore):
    # Given one image signed keyless for another repository (.sig), and one with a cosign v3 bundle (no name)
    relocated = push_image(registry, unique_repository(), "v1", layer_bytes=b"relocated")
    elsewhere = SimpleSigningPayload(docker_reference=f"{registry.host}/elsewhere",
                                     manifest_digest=relocated.digest).to_bytes()
    push_keyless_sig(registry, relocated, [(sign_legacy(sigstore, elsewhere), sigstore)])
    bundled = push_image(registry, unique_repository(), "v1", layer_bytes=b"bundled")
    push_bundle_referrer(registry, bundled, sign_bundle(sigstore, in_toto_statement(bundled.digest)).bundle())
    policy = keyless_policy(tmp_path, registry.host, sigstore, rule_extra={"matchDockerReference": True})
    # When both are verified under a rule that binds the repository
    result = verify(registry.host, policy, str(relocated.ref), str(bundled.ref))
    # Then neither is admitted, each for its own reason
    assert result.code == 1, result
    first, second = result.verdicts
    assert "but the rule requires" in first["reasons"][0]
    assert "matchDockerReference" in second["reasons"][0]
