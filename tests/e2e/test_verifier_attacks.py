"""Issue 9 regressions through the real test registry, via the CLI (`verify --json` and the human
output) and the verifier API: 4a (an image no rule names is rejected before any registry call, so
`unavailableMode: audit` cannot admit it), 4c (logged Notation failures are visible) and 5 (one
signature, or one key, counts once for allOf).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from image_verifier.composition import AwsClients
from image_verifier.cosign.keys import CosignKeyResolver
from image_verifier.deadline import Deadline
from image_verifier.policy import Policy
from image_verifier.verifier import ImageRequest, ImageVerifier
from tests.runtime.test_all_of_distinct import ARN, MRK_EU, MRK_US, FakeKms, notation_policy, push_notation_signature
from tests.support.cosign_material import KeyPair, cosign_policy
from tests.support.images import push_image, unique_repository
from tests.support.pki import code_signing_chain

from .cli_helpers import run_cli, sign, verify, write_policy

pytestmark = pytest.mark.registry


class _CountingSessions:
    """The real registry client, keeping each decision's session so a test can count its requests."""

    def __init__(self, client) -> None:
        self._client = client
        self.sessions: list = []

    def bound(self, deadline: Deadline):
        session = self._client.bound(deadline)
        self.sessions.append(session)
        return session


# -- 4a: rule lookup before I/O -------------------------------------------------------------------

def test_rejects_image_no_rule_names_without_a_registry_request_when_unavailable_mode_is_audit(registry, registry_client):
    # Given a real image in the registry, and an audit-for-outages policy whose only rule names another registry
    image = push_image(registry, unique_repository(), "v1")
    document = cosign_policy({"ci": {"publicKeyPem": KeyPair.generate().public_pem}}, images="elsewhere.example.com/**")
    document["unavailableMode"] = "audit"
    sessions = _CountingSessions(registry_client)
    verifier = ImageVerifier(Policy.from_json(document), registry=sessions, cosign_keys=CosignKeyResolver())
    # When it is verified by tag through the API
    decision = verifier.decide([ImageRequest(image=str(image.tag_ref))], deadline=Deadline.after(30))
    # Then it is rejected and the registry saw no request at all
    [verdict] = decision.verdicts
    assert verdict.outcome.value == "rejected" and not decision.admitted
    assert "add a rule (or an exemption)" in verdict.reasons[0]
    assert [s.request_count for s in sessions.sessions] == [0], [s.request_log for s in sessions.sessions]


def test_cli_rejects_image_of_an_unreachable_registry_no_rule_names_when_unavailable_mode_is_audit(tmp_path):
    # Given a registry that is down (nothing listens on the port) and a policy that audits outages
    document = cosign_policy({"ci": {"publicKeyPem": KeyPair.generate().public_pem}}, images="elsewhere.example.com/**")
    document["unavailableMode"] = "audit"
    policy = write_policy(tmp_path, document)
    # When an image of that registry is verified, with the module entry point as a pipeline runs it
    completed = subprocess.run(
        [sys.executable, "-m", "image_verifier", "verify", "--policy", str(policy), "--insecure-registry",
         "127.0.0.1:9", "--json", "127.0.0.1:9/team/app:v1"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )
    # Then it is rejected (exit 1), not judged unavailable and admitted by the audit mode (exit 0)
    assert completed.returncode == 1, completed
    [verdict] = [json.loads(line) for line in completed.stdout.splitlines()]
    assert verdict["outcome"] == "rejected"
    assert "no rule matches 127.0.0.1:9/team/app" in verdict["reasons"][0]


# -- 4c: logged failures are visible --------------------------------------------------------------

def test_cli_shows_warnings_when_an_audit_level_signer_admits_a_signature_from_an_untrusted_root(registry, tmp_path):
    # Given an image signed under a PKI the policy does not trust, and an audit policy at level audit
    trusted = code_signing_chain("p256", role_prefix="attack-trusted-")
    stranger = code_signing_chain("p256", role_prefix="attack-stranger-")
    image = push_image(registry, unique_repository(), "v1")
    push_notation_signature(registry, image, stranger)
    document = notation_policy(registry.host, trusted, ["corp"], failureMode="audit")
    document["trustedSigners"][0]["notationX509"]["verificationLevel"] = "audit"
    policy = write_policy(tmp_path, document)
    # When it is verified, as JSON and for a person
    as_json = verify(registry.host, policy, str(image.ref))
    for_people = run_cli("verify", "--policy", str(policy), "--insecure-registry", registry.host, str(image.ref))
    # Then the admission shows what was not enforced, in both, and the policy's choice is announced
    assert as_json.code == 0, as_json
    [verdict] = as_json.verdicts
    assert verdict["outcome"] == "verified"
    assert any("does not end in a trusted root" in w for w in verdict["warnings"]), verdict
    assert "WARNING (logged, not enforced): signer 'corp': authenticity:" in for_people.out
    assert "verificationLevel: signer 'corp' is at level 'audit'" in for_people.err


def test_cli_rejects_policy_when_a_signer_is_at_audit_level_and_failure_mode_blocks(registry, tmp_path):
    document = notation_policy(registry.host, code_signing_chain("p256", role_prefix="attack-policy-"), ["corp"])
    document["trustedSigners"][0]["notationX509"]["verificationLevel"] = "audit"
    result = verify(registry.host, write_policy(tmp_path, document), f"{registry.host}/any/app:v1")
    assert result.code == 2
    assert "trustedSigners[0].notationX509.verificationLevel" in result.out + result.err
    assert "set failureMode to 'audit'" in result.out + result.err


# -- 5: one signature, one key, counts once -------------------------------------------------------

@pytest.fixture
def kms(monkeypatch) -> FakeKms:
    """The CLI's KMS clients, answered by a fake that maps ARNs to public keys."""
    fake = FakeKms({})
    monkeypatch.setattr(AwsClients, "client", lambda self, service, region: fake)
    return fake


def _signed(registry, tmp_path: Path, *keys: KeyPair):
    image = push_image(registry, unique_repository(), "v1")
    for index, key in enumerate(keys):
        key_file = tmp_path / f"signer-{index}.key"
        key_file.write_bytes(key.private_pem)
        assert sign(registry.host, key_file, str(image.ref)).code == 0
    return image


def _all_of(registry, tmp_path: Path, signers: dict[str, dict[str, str]]) -> Path:
    return write_policy(tmp_path, cosign_policy(signers, images=f"{registry.host}/**", all_of=list(signers)))


def test_cli_rejects_all_of_when_one_key_is_named_by_kms_arn_and_by_pem(registry, tmp_path, kms):
    key = KeyPair.generate()
    kms.keys[ARN] = key
    image = _signed(registry, tmp_path, key, key)  # two signatures, one key
    result = verify(registry.host, _all_of(registry, tmp_path, {"release": {"kmsKeyArn": ARN},
                                                                "security": {"publicKeyPem": key.public_pem}}),
                    str(image.ref))
    assert result.code == 1, result
    assert "the same public key" in result.verdicts[0]["reasons"][0]


def test_cli_rejects_all_of_when_two_arns_name_one_multi_region_key(registry, tmp_path, kms):
    key = KeyPair.generate()
    kms.keys.update({MRK_US: key, MRK_EU: key})
    image = _signed(registry, tmp_path, key)
    result = verify(registry.host, _all_of(registry, tmp_path, {"us": {"kmsKeyArn": MRK_US}, "eu": {"kmsKeyArn": MRK_EU}}),
                    str(image.ref))
    assert result.code == 1, result
    assert "already counted for signer 'us'" in result.verdicts[0]["reasons"][0]


def test_cli_rejects_all_of_when_two_notation_signers_rest_on_one_root_and_one_signature(registry, tmp_path):
    chain = code_signing_chain("p256", role_prefix="attack-allof-")
    image = push_image(registry, unique_repository(), "v1")
    push_notation_signature(registry, image, chain)
    result = verify(registry.host, write_policy(tmp_path, notation_policy(registry.host, chain, ["a", "b"])),
                    str(image.ref))
    assert result.code == 1, result
    assert "the same signature" in result.verdicts[0]["reasons"][0]


def test_cli_admits_all_of_when_two_different_keys_signed(registry, tmp_path, kms):
    first, second = KeyPair.generate(), KeyPair.generate()
    kms.keys[ARN] = first
    image = _signed(registry, tmp_path, first, second)
    result = verify(registry.host, _all_of(registry, tmp_path, {"release": {"kmsKeyArn": ARN},
                                                                "security": {"publicKeyPem": second.public_pem}}),
                    str(image.ref))
    assert result.code == 0, result
    signers = result.verdicts[0]["signers"]
    assert [s["signer"] for s in signers] == ["release", "security"]
    assert signers[0]["keyFingerprint"] != signers[1]["keyFingerprint"]
