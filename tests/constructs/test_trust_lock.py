"""The trust lock (signing-trust.lock.json): keys are retired, never removed; a changed key fails synth."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aws_cdk import App
from aws_cdk import aws_ecr as ecr

from constructs_lib import (
    CosignSigningKey,
    KeyState,
    NotationSigningProfile,
    SigningKeySpec,
)
from constructs_lib.admission import AdmissionController
from constructs_lib.admission.trust_lock import FILE_CONTEXT, UPDATE_CONTEXT
from tests.constructs.checks import new_stack, synth_error
from tests.constructs.test_admission import _root_pem

ECR = "111111111111.dkr.ecr.us-east-1.amazonaws.com"
TODAY = datetime.now(UTC).date().isoformat()


def _controller(lock: Path, *, update: bool = False, keys: tuple[tuple[str, KeyState], ...] = (("CiKey", KeyState.ACTIVE),),
                spec: SigningKeySpec = SigningKeySpec.ECC_NIST_P256, roots: tuple[str, ...] = ()):
    """An app whose controller trusts the named keys (and a profile with custom roots when `roots`)."""
    context: dict[str, Any] = {FILE_CONTEXT: str(lock)}
    if update:
        context[UPDATE_CONTEXT] = "true"
    app = App(analytics_reporting=False, context=context)
    stack = new_stack(app, "Deploy")
    signing_keys = [CosignSigningKey(stack, name, alias=f"alias/team/{name.lower()}", state=state, key_spec=spec)
                    for name, state in keys]
    profiles = [NotationSigningProfile(stack, "Profile", signing_profile_name="team_images")] if roots else []
    controller = AdmissionController(stack, "Admission", signing_keys=signing_keys, signing_profiles=profiles,
                                     custom_root_certificates=list(roots), revocation_check=False,
                                     repositories=[ecr.Repository(stack, "Repo", repository_name="team/app")])
    return app, controller


def _errors(controller) -> list[str]:
    return [str(e) for e in controller.node.validate()]


def _warnings(controller) -> list[str]:
    return [str(m.data) for m in controller.node.metadata if m.type == "aws:cdk:warning"]


def _lock(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def _entries(path: Path) -> dict[str, dict[str, Any]]:
    return {e["signer"]: e for e in _lock(path)["policies"]["Deploy/Admission"]}


def _edit(path: Path, signer: str, **fields: Any) -> None:
    lock = _lock(path)
    for entry in lock["policies"]["Deploy/Admission"]:
        if entry["signer"] == signer:
            entry.update(fields)
    path.write_text(json.dumps(lock))


# --- creating and checking ------------------------------------------------------------------------------

def test_update_writes_every_trusted_key_and_profile_with_its_first_seen_date(tmp_path):
    # Given no lock yet, and a synth asked to update it
    lock = tmp_path / "signing-trust.lock.json"
    _, controller = _controller(lock, update=True, keys=(("CiKey", KeyState.ACTIVE), ("OldKey", KeyState.RETIRED)),
                                roots=(_root_pem(),))
    # Then the lock records each key and profile, keyed by construct path (the ARNs are deploy-time tokens)
    assert _errors(controller) == []
    entries = _entries(lock)
    assert entries["CiKey"] == {"ref": "construct:Deploy/CiKey", "signer": "CiKey", "kind": "cosignKey",
                                "state": "active", "firstSeen": TODAY, "keySpec": "ECC_NIST_P256",
                                "breakGlass": False}
    assert entries["OldKey"]["state"] == "retired"
    assert entries["aws-signer"]["ref"] == "construct:Deploy/Profile"
    assert entries["aws-signer"]["publicKeyFingerprint"].startswith("sha256:")
    assert _lock(lock)["rotationPeriodDays"] == 365


def test_default_synth_only_checks_and_passes_when_nothing_changed(tmp_path):
    lock = tmp_path / "lock.json"
    _controller(lock, update=True)
    before = lock.read_text()
    _, controller = _controller(lock)
    assert _errors(controller) == [] and _warnings(controller) == []
    assert lock.read_text() == before


def test_warns_when_there_is_no_lock_file(tmp_path):
    _, controller = _controller(tmp_path / "missing.json")
    [warning] = _warnings(controller)
    assert "no trust lock" in warning and f"-c {UPDATE_CONTEXT}=true" in warning
    assert not (tmp_path / "missing.json").exists()


def test_warns_when_a_new_key_is_not_recorded_yet(tmp_path):
    lock = tmp_path / "lock.json"
    _controller(lock, update=True)
    _, controller = _controller(lock, keys=(("CiKey", KeyState.ACTIVE), ("NextKey", KeyState.ACTIVE)))
    assert _errors(controller) == []
    assert any("'NextKey'" in w and "not in lock.json yet" in w for w in _warnings(controller))


# --- removing, retiring, revoking ----------------------------------------------------------------------

def test_rejects_removed_key_when_the_lock_records_it_with_a_message_to_retire_it(tmp_path):
    # Given a lock that records two active keys
    lock = tmp_path / "signing-trust.lock.json"
    _controller(lock, update=True, keys=(("CiKey", KeyState.ACTIVE), ("OldKey", KeyState.ACTIVE)))
    # When the policy drops one of them
    app, _ = _controller(lock, keys=(("CiKey", KeyState.ACTIVE),))
    # Then synth fails, saying to retire it instead
    message = synth_error(app)
    assert "cosignKey signer 'OldKey' (construct:Deploy/OldKey) is recorded in signing-trust.lock.json" in message
    assert "no longer trusts it" in message and "retire it instead" in message and "KeyState.RETIRED" in message


def test_rejects_removed_key_even_when_asked_to_update_and_leaves_the_lock_unchanged(tmp_path):
    lock = tmp_path / "lock.json"
    _controller(lock, update=True, keys=(("CiKey", KeyState.ACTIVE), ("OldKey", KeyState.ACTIVE)))
    before = lock.read_text()
    _, controller = _controller(lock, update=True, keys=(("CiKey", KeyState.ACTIVE),))
    assert any("retire it instead" in e for e in _errors(controller))
    assert lock.read_text() == before


def test_retiring_a_key_passes_and_the_update_records_it(tmp_path):
    # Given a lock with an active key
    lock = tmp_path / "lock.json"
    _controller(lock, update=True, keys=(("CiKey", KeyState.ACTIVE), ("OldKey", KeyState.ACTIVE)))
    # When the key is retired (it stays in the policy: old signatures still verify)
    keys = (("CiKey", KeyState.ACTIVE), ("OldKey", KeyState.RETIRED))
    _, controller = _controller(lock, keys=keys)
    # Then synth passes, with a warning to record the change
    assert _errors(controller) == []
    assert any("'OldKey'" in w and "is now retired" in w for w in _warnings(controller))
    # And the update records the new state and when it changed, keeping the first-seen date
    _, controller = _controller(lock, update=True, keys=keys)
    assert _errors(controller) == []
    old = _entries(lock)["OldKey"]
    assert (old["state"], old["stateChanged"], old["firstSeen"]) == ("retired", TODAY, TODAY)


def test_a_key_revoked_in_the_lock_may_leave_the_policy(tmp_path):
    lock = tmp_path / "lock.json"
    _controller(lock, update=True, keys=(("CiKey", KeyState.ACTIVE), ("Leaked", KeyState.ACTIVE)))
    _edit(lock, "Leaked", state="revoked")  # the reviewed, by-hand step for a compromised key
    _, controller = _controller(lock, keys=(("CiKey", KeyState.ACTIVE),))
    assert _errors(controller) == []


def test_rejects_revoked_key_when_the_policy_trusts_it_again(tmp_path):
    lock = tmp_path / "lock.json"
    _controller(lock, update=True, keys=(("CiKey", KeyState.ACTIVE),))
    _edit(lock, "CiKey", state="revoked")
    _, controller = _controller(lock, keys=(("CiKey", KeyState.ACTIVE),))
    assert any("is revoked in lock.json" in e and "never trusted again" in e for e in _errors(controller))


# --- a changed key -------------------------------------------------------------------------------------

def test_rejects_changed_public_key_when_a_profiles_root_certificate_changes(tmp_path):
    lock = tmp_path / "lock.json"
    _controller(lock, update=True, roots=(_root_pem(),))
    _, controller = _controller(lock, roots=(_root_pem(),))  # another root under the same profile
    [error] = _errors(controller)
    assert "awsSigner signer 'aws-signer' (construct:Deploy/Profile)" in error
    assert "public key fingerprint changed" in error and "A changed key is a new key" in error


def test_rejects_changed_keyless_signer_when_its_identity_or_trusted_root_changes(tmp_path):
    # Given a controller trusting a keyless identity, recorded in the lock
    from constructs_lib.admission import KeylessIdentity
    from tests.support.sigstore_material import GITHUB_ISSUER, LocalSigstore

    root = json.dumps(LocalSigstore().trusted_root())

    def controller(subject: str, trusted_root: str):
        context: dict[str, Any] = {FILE_CONTEXT: str(lock)}
        if not lock.exists():
            context[UPDATE_CONTEXT] = "true"
        stack = new_stack(App(analytics_reporting=False, context=context), "Deploy")
        identity = KeylessIdentity(name="release", issuer=GITHUB_ISSUER, subject=subject, trusted_root=trusted_root)
        return AdmissionController(stack, "Admission", keyless_signers=[identity],
                                   repositories=[ecr.Repository(stack, "Repo", repository_name="team/app")])

    lock = tmp_path / "lock.json"
    assert _errors(controller("https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main", root)) == []
    assert _entries(lock)["release"]["kind"] == "cosignKeyless"
    # When the same name trusts another workflow, or another trusted root (another Fulcio)
    other_subject = controller("https://github.com/acme/app/.github/workflows/any.yml@refs/heads/main", root)
    other_root = controller("https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main",
                            json.dumps(LocalSigstore().trusted_root()))
    # Then synth fails: a changed identity is a new signer, added beside the old one, which is retired
    for changed in (other_subject, other_root):
        [error] = _errors(changed)
        assert "cosignKeyless signer 'release'" in error and "public key fingerprint changed" in error


def test_rejects_changed_key_when_the_key_spec_changes(tmp_path):
    # A new key spec replaces the KMS key in place: same construct, new public key
    lock = tmp_path / "lock.json"
    _controller(lock, update=True)
    _, controller = _controller(lock, spec=SigningKeySpec.ECC_NIST_P384)
    assert any("key spec (a new key) changed from ECC_NIST_P256 to ECC_NIST_P384" in e for e in _errors(controller))


# --- rotation and the file itself ----------------------------------------------------------------------

def test_warns_when_an_active_key_is_older_than_its_rotation_period(tmp_path):
    lock = tmp_path / "lock.json"
    _controller(lock, update=True, keys=(("CiKey", KeyState.ACTIVE), ("OldKey", KeyState.RETIRED)))
    _edit(lock, "CiKey", firstSeen="2020-01-01")
    _edit(lock, "OldKey", firstSeen="2020-01-01")
    _, controller = _controller(lock, keys=(("CiKey", KeyState.ACTIVE), ("OldKey", KeyState.RETIRED)))
    [warning] = _warnings(controller)
    assert "'CiKey'" in warning and "first seen on 2020-01-01" in warning and "rotate it" in warning


def test_rejects_lock_when_it_is_not_a_lock_file(tmp_path):
    lock = tmp_path / "lock.json"
    lock.write_text('{"version": 1, "policies": {"Deploy/Admission": [{"ref": "x"}]}}')
    _, controller = _controller(lock)
    [error] = _errors(controller)
    assert "cannot be read" in error and "rather than deleting it" in error


def test_reference_app_commits_a_lock_that_matches_its_policy(reference_app):
    # The committed signing-trust.lock.json (next to app.py) records the reference policy exactly
    app, _ = reference_app
    lock = json.loads((Path(__file__).resolve().parents[2] / "signing-trust.lock.json").read_text())
    signers = {e["signer"]: e for e in lock["policies"]["SignedImagesAdmission/Admission"]}
    assert signers["RetiredCosignKey"]["state"] == "retired" and signers["BreakGlassKey"]["breakGlass"] is True
    assert signers["aws-signer"]["kind"] == "awsSigner"
    [controller] = [c for c in app.node.find_all() if isinstance(c, AdmissionController)]
    assert _errors(controller) == [] and _warnings(controller) == []
