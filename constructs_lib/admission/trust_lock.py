"""An append-only record of what each admission policy trusts: ``signing-trust.lock.json``.

Rotation is where signing rollouts break: a key removed from the policy breaks every deployment of
an image it signed. The lock, committed next to the app, records every key and profile each
policy trusts (reference, signer name, kind, key spec, public key fingerprint where synth knows it,
state, first-seen date). The default synth only *checks* it:

- a recorded key or profile missing from the policy fails synth (retire the key instead; a
  compromised one is marked ``revoked`` in the lock, by hand and reviewed, and only then removed);
- a recorded public key fingerprint or key spec that changed fails synth (a new key is a new signer);
- a revoked key trusted again fails synth;
- new signers, state changes (active → retired) and active keys older than the rotation period
  (``rotationPeriodDays``, default 365) are warnings.

``cdk synth -c signed-images:update-trust-lock=true`` (or ``SIGNED_IMAGES_UPDATE_TRUST_LOCK=true``)
writes the lock: it adds new signers with today's date and records state changes, and never drops
or rewrites an entry (the errors above still fail). ``-c signed-images:trust-lock-file=PATH`` names
another file (relative to the directory ``cdk`` runs the app in). docs/operations.md has the runbook.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from aws_cdk import Annotations, Token
from constructs import IConstruct

from .._tree import add_validation

LOCK_FILE = "signing-trust.lock.json"
UPDATE_CONTEXT = "signed-images:update-trust-lock"
FILE_CONTEXT = "signed-images:trust-lock-file"
UPDATE_ENV = "SIGNED_IMAGES_UPDATE_TRUST_LOCK"
LOCK_VERSION = 1
DEFAULT_ROTATION_DAYS = 365
WARNING_ID = "signed-images:TrustLock"
_UPDATE_HINT = f"cdk synth -c {UPDATE_CONTEXT}=true"


@dataclass(frozen=True, kw_only=True)
class TrustEntry:
    """One trusted key or profile of one policy, as the lock file records it."""

    ref: str  # the key or profile ARN, or construct:<path> when the ARN is only known at deploy time
    signer: str
    kind: str  # cosignKey | awsSigner | notationX509 | cosignKeyless
    state: str  # active | retired | revoked
    first_seen: str  # YYYY-MM-DD
    key_spec: str | None = None
    public_key_fingerprint: str | None = None  # sha256:... where synth knows the key (PEM keys, roots)
    break_glass: bool = False
    state_changed: str | None = None

    def to_json(self) -> dict[str, Any]:
        names = {"first_seen": "firstSeen", "key_spec": "keySpec", "public_key_fingerprint": "publicKeyFingerprint",
                 "break_glass": "breakGlass", "state_changed": "stateChanged"}
        return {names.get(k, k): v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_json(cls, raw: Any, where: str) -> TrustEntry:
        if not isinstance(raw, dict) or not all(isinstance(raw.get(k), str) for k in ("ref", "signer", "kind",
                                                                                      "state", "firstSeen")):
            raise ValueError(f"{where} must be an object with string ref, signer, kind, state and firstSeen")
        if raw["state"] not in ("active", "retired", "revoked"):
            raise ValueError(f"{where}.state must be active, retired or revoked, got {raw['state']!r}")
        date.fromisoformat(raw["firstSeen"])
        return cls(ref=raw["ref"], signer=raw["signer"], kind=raw["kind"], state=raw["state"],
                   first_seen=raw["firstSeen"], key_spec=raw.get("keySpec"),
                   public_key_fingerprint=raw.get("publicKeyFingerprint"), break_glass=bool(raw.get("breakGlass")),
                   state_changed=raw.get("stateChanged"))

    @property
    def label(self) -> str:
        return f"{self.kind} signer {self.signer!r} ({self.ref})"


@dataclass(frozen=True, kw_only=True)
class Comparison:
    errors: tuple[str, ...]
    warnings: tuple[str, ...]  # advice shown at every synth (rotation overdue)
    unrecorded: tuple[str, ...]  # differences an update records (new signers, state changes)
    merged: tuple[TrustEntry, ...]  # what the lock holds after an update


def compare(locked: list[TrustEntry], current: list[TrustEntry], *, policy: str, lock_file: str, today: date,
            rotation_days: int = DEFAULT_ROTATION_DAYS) -> Comparison:
    """Judge the policy's signers against the lock: errors fail synth, warnings are shown, merged is the update."""
    errors: list[str] = []
    warnings: list[str] = []
    unrecorded: list[str] = []
    merged: list[TrustEntry] = []
    now = {e.ref: e for e in current}
    for old in locked:
        new = now.pop(old.ref, None)
        if new is None:
            merged.append(old)
            if old.state != "revoked":
                errors.append(
                    f"{old.label} is recorded in {lock_file} for admission policy {policy} as {old.state}, but the "
                    "policy no longer trusts it: removing a key breaks every deployment of an image it signed. Keep "
                    "it and retire it instead (state=KeyState.RETIRED on the key: nobody can sign, old signatures "
                    "still verify; a signing profile stays in signing_profiles). Only a compromised key leaves the "
                    f"policy: set its state to \"revoked\" in {lock_file} (a reviewed change), then remove it")
            continue
        changed = [f"its {what} changed from {a} to {b or 'none'}" for what, a, b in (
            ("public key fingerprint", old.public_key_fingerprint, new.public_key_fingerprint),
            ("key spec (a new key)", old.key_spec, new.key_spec)) if a is not None and a != b]
        if changed:
            errors.append(f"{old.label} in admission policy {policy}: {' and '.join(changed)}. A changed key is a new "
                          "key: add it as a new signer (a new key and alias), move signing to it, and retire this one; "
                          f"never reuse an entry of {lock_file}")
        if old.state == "revoked" and new.state != "revoked":
            errors.append(f"{old.label} is revoked in {lock_file}, and admission policy {policy} trusts it again as "
                          f"{new.state}: a revoked key is never trusted again; sign with a new key")
        elif new.state != old.state:
            unrecorded.append(f"{old.label} in admission policy {policy} is now {new.state} ({lock_file} says "
                            f"{old.state}); record it with `{_UPDATE_HINT}` and commit {lock_file}")
        if new.kind == "cosignKey" and new.state == "active":
            age = today - date.fromisoformat(old.first_seen)
            if age > timedelta(days=rotation_days):
                warnings.append(f"{old.label} in admission policy {policy} is active and was first seen on "
                                f"{old.first_seen}, {age.days} days ago, longer than its rotation period "
                                f"({rotation_days} days): rotate it (a new key and alias, then retire this one; see "
                                "docs/operations.md, key rotation)")
        merged.append(replace(old, signer=new.signer, state=old.state if old.state == "revoked" else new.state,
                              key_spec=old.key_spec or new.key_spec, break_glass=new.break_glass,
                              public_key_fingerprint=old.public_key_fingerprint or new.public_key_fingerprint,
                              state_changed=today.isoformat() if new.state != old.state and old.state != "revoked"
                              else old.state_changed))
    for new in now.values():
        unrecorded.append(f"{new.label} of admission policy {policy} is not in {lock_file} yet; record it with "
                        f"`{_UPDATE_HINT}` and commit {lock_file}")
        merged.append(replace(new, first_seen=today.isoformat()))
    return Comparison(errors=tuple(errors), warnings=tuple(warnings), unrecorded=tuple(unrecorded),
                      merged=tuple(merged))


# --- the policy's signers ------------------------------------------------------------------------------

def policy_entries(controller: Any, today: date) -> list[TrustEntry]:
    """The trusted keys and profiles of a controller's policy, in document order."""
    keys = iter(controller.signing_keys)
    entries: list[TrustEntry] = []
    for signer in controller.policy.document["trustedSigners"]:
        name = signer["name"]
        if "cosignKey" in signer:
            body = signer["cosignKey"]
            common = {"signer": name, "kind": "cosignKey", "state": body.get("state", "active"),
                      "first_seen": today.isoformat(), "break_glass": bool(body.get("breakGlass"))}
            if "kmsKeyArn" in body:
                key = next(keys)
                entries.append(TrustEntry(ref=_ref(key.key_arn, key), key_spec=key.key_spec.value, **common))
            else:  # a PEM public key: synth knows it
                entries.append(TrustEntry(ref=f"signer:{name}", public_key_fingerprint=pem_fingerprint(
                    body["publicKeyPem"]), **common))
        elif "awsSigner" in signer:
            body = signer["awsSigner"]
            roots = roots_fingerprint([*body.get("rootCertificates", ()), *body.get("customRootCertificates", ())])
            for profile in controller.signing_profiles:
                entries.append(TrustEntry(ref=_ref(profile.signing_profile_arn, profile), signer=name,
                                          kind="awsSigner", state="active", first_seen=today.isoformat(),
                                          public_key_fingerprint=roots))
        elif "cosignKeyless" in signer:
            # No key to pin: the identity (issuer, subject) and the trusted root are what is trusted, so
            # changing either is a new signer, like a changed public key.
            entries.append(TrustEntry(ref=f"signer:{name}", signer=name, kind="cosignKeyless", state="active",
                                      first_seen=today.isoformat(),
                                      public_key_fingerprint=document_fingerprint(signer["cosignKeyless"])))
        else:
            kind = next(k for k in signer if k != "name")
            roots = roots_fingerprint(signer[kind].get("rootCertificates", ()))
            entries.append(TrustEntry(ref=f"signer:{name}", signer=name, kind=kind, state="active",
                                      first_seen=today.isoformat(), public_key_fingerprint=roots))
    return entries


def _ref(arn: str, construct: IConstruct) -> str:
    return f"construct:{construct.node.path}" if Token.is_unresolved(arn) else arn


def pem_fingerprint(pem: str) -> str:
    """sha256: of the DER SubjectPublicKeyInfo of a PEM public key."""
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_public_key(pem.encode())
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(der).hexdigest()


def document_fingerprint(document: Any) -> str:
    """sha256: of a JSON document in canonical form (sorted keys, no spaces)."""
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def roots_fingerprint(pems: Any) -> str | None:
    """sha256: over the sorted SHA-256 fingerprints of the root certificates; None when none are named
    (the AWS Signer roots shipped with the package, pinned by fingerprint there)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    found = sorted(hashlib.sha256(x509.load_pem_x509_certificate(p.encode()).public_bytes(
        serialization.Encoding.DER)).hexdigest() for p in pems)
    return "sha256:" + hashlib.sha256(",".join(found).encode()).hexdigest() if found else None


# --- the file and the controller's hook ----------------------------------------------------------------

def register_trust_lock(controller: Any) -> None:
    """Check (or, when asked, update) the lock for this controller's policy; errors fail synth."""
    node = controller.node
    lock_path = Path(str(node.try_get_context(FILE_CONTEXT) or LOCK_FILE))
    if not lock_path.is_absolute():
        lock_path = Path.cwd() / lock_path
    update = str(node.try_get_context(UPDATE_CONTEXT) or os.environ.get(UPDATE_ENV, "")).lower() in ("true", "1")
    today = datetime.now(UTC).date()
    policy = node.path
    try:
        lock = read_lock(lock_path)
    except ValueError as exc:
        message = str(exc)
        add_validation(controller, lambda: [message])
        return
    if lock is None and not update:
        Annotations.of(controller).add_warning_v2(
            WARNING_ID, f"no trust lock at {lock_path}: nothing stops a key from leaving admission policy {policy} "
                        f"unnoticed; create it with `{_UPDATE_HINT}` and commit it next to the app")
        return
    lock = lock or {"version": LOCK_VERSION, "rotationPeriodDays": DEFAULT_ROTATION_DAYS, "policies": {}}
    locked = lock["policies"].get(policy, [])
    result = compare(locked, policy_entries(controller, today), policy=policy, lock_file=lock_path.name, today=today,
                     rotation_days=lock["rotationPeriodDays"])
    if result.errors:
        errors = list(result.errors)
        add_validation(controller, lambda: errors)
        return
    if update:
        lock["policies"][policy] = list(result.merged)
        write_lock(lock_path, lock)
    for warning in result.warnings if update else result.warnings + result.unrecorded:
        Annotations.of(controller).add_warning_v2(WARNING_ID, warning)


def read_lock(path: Path) -> dict[str, Any] | None:
    """The lock with its entries parsed, or None when the file does not exist; ValueError names the problem."""
    if not path.exists():
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(raw, dict) or raw.get("version") != LOCK_VERSION or not isinstance(raw.get("policies"), dict):
            raise ValueError(f"it must be an object with version {LOCK_VERSION} and a policies object")
        rotation = raw.get("rotationPeriodDays", DEFAULT_ROTATION_DAYS)
        if isinstance(rotation, bool) or not isinstance(rotation, int) or rotation < 1:
            raise ValueError(f"rotationPeriodDays must be a whole number of days, got {rotation!r}")
        policies = {name: [TrustEntry.from_json(e, f"policies[{name!r}][{i}]") for i, e in enumerate(entries)]
                    for name, entries in raw["policies"].items()}
    except ValueError as exc:
        raise ValueError(f"trust lock {path} cannot be read: {exc}; fix it by hand (it is committed: see its "
                         "history) rather than deleting it") from exc
    return {**raw, "rotationPeriodDays": rotation, "policies": policies}


def write_lock(path: Path, lock: dict[str, Any]) -> None:
    document = {
        "comment": "Append-only: what each admission policy trusts. Checked at every synth; written only with "
                   f"`{_UPDATE_HINT}`. Never delete an entry: retire the key (docs/operations.md).",
        "version": LOCK_VERSION,
        "rotationPeriodDays": lock["rotationPeriodDays"],
        "policies": {name: [e.to_json() for e in entries] for name, entries in sorted(lock["policies"].items())},
    }
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    temporary.replace(path)
