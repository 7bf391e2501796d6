"""Verdicts: what the verifier concluded about one image, and the decision over all of them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from .policy import Mode, Policy

if TYPE_CHECKING:  # the notation package imports the policy package; only the type is needed here
    from .notation.levels import StepOutcome


class Outcome(StrEnum):
    VERIFIED = "verified"  # a trusted signature satisfied the rule
    EXEMPT = "exempt"  # an unexpired exemption covers the image
    REJECTED = "rejected"  # the signature evidence is absent or bad
    UNAVAILABLE = "unavailable"  # the evidence could not be read (registry/AWS down, deadline)


@dataclass(frozen=True, kw_only=True)
class SignerMatch:
    """The signer that satisfied (part of) a rule, and what it verified."""

    signer: str
    kind: str  # cosignKey | awsSigner | notationX509
    identity: str  # key id, profile-version ARN or certificate subject
    format: str  # cosign-legacy | cosign-bundle | notation-jws | notation-cose
    verified_digest: str  # the manifest or index digest the signature covers
    break_glass: bool = False
    signature_digest: str | None = None  # the signature manifest that carried it
    # What the signature *is*, so that one signature (or one key) under two names counts once:
    signature_sha256: str | None = None  # sha256: of the signature bytes (legacy, Notation) or of the bundle
    key_fingerprint: str | None = None  # sha256: of the DER SubjectPublicKeyInfo that verified it
    warnings: tuple[str, ...] = ()  # failures the signer's verification level logs instead of enforcing
    # Notation signers: each verification step's action (enforce/log/skip) and outcome, named and
    # ordered as the Notary Project trust-policy spec names them. Empty for cosign signers.
    steps: tuple[StepOutcome, ...] = ()

    def shares_material_with(self, other: SignerMatch) -> str | None:
        """Why `other` is not independent evidence (same signature, same key), or None if it is."""
        shared = []
        if self.signature_sha256 is not None and self.signature_sha256 == other.signature_sha256:
            shared.append(f"the same signature ({self.signature_sha256})")
        if self.key_fingerprint is not None and self.key_fingerprint == other.key_fingerprint:
            shared.append(f"the same public key ({self.key_fingerprint})")
        return " and ".join(shared) or None

    def to_json(self) -> dict[str, Any]:
        return {
            "signer": self.signer,
            "kind": self.kind,
            "identity": self.identity,
            "format": self.format,
            "verifiedDigest": self.verified_digest,
            "breakGlass": self.break_glass,
            "signatureDigest": self.signature_digest,
            "signatureSha256": self.signature_sha256,
            "keyFingerprint": self.key_fingerprint,
            "warnings": list(self.warnings),
            "steps": [step.to_json() for step in self.steps],
        }


@dataclass(frozen=True, kw_only=True)
class Verdict:
    image: str  # as given (tag or digest form)
    digest: str | None  # what was verified; None only when the image could not be resolved
    outcome: Outcome
    reasons: tuple[str, ...] = ()
    rule: str | None = None
    signers: tuple[SignerMatch, ...] = ()
    platform_digest: str | None = None  # the platform manifest chosen from an index, if any
    exemption: str | None = None  # the exemption's reason when outcome is EXEMPT
    # When the verdict stops being true by itself (an exemption expires, a key's window ends):
    # whoever keeps verdicts (the Lambda's cache) must not reuse it past this time.
    valid_until: datetime | None = None
    # Failures that were logged, not enforced (a Notation signer at level permissive or audit):
    # the image was admitted *with* these, and every reader of the verdict must see them.
    warnings: tuple[str, ...] = ()
    # For an UNAVAILABLE verdict: how long a throttling registry asked us to wait (Retry-After, in
    # seconds), so the hook can call back no sooner; None when nobody said.
    retry_after: float | None = None

    @property
    def break_glass(self) -> bool:
        return any(s.break_glass for s in self.signers)

    def to_json(self) -> dict[str, Any]:
        return {
            "image": self.image,
            "digest": self.digest,
            "platformDigest": self.platform_digest,
            "outcome": self.outcome.value,
            "reasons": list(self.reasons),
            "rule": self.rule,
            "signer": ", ".join(s.signer for s in self.signers) or None,
            "signers": [s.to_json() for s in self.signers],
            "breakGlass": self.break_glass,
            "exemption": self.exemption,
            "validUntil": self.valid_until.isoformat() if self.valid_until else None,
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True, kw_only=True)
class Decision:
    """All verdicts of one admission decision, judged under the policy's two modes."""

    verdicts: tuple[Verdict, ...]
    failure_mode: Mode
    unavailable_mode: Mode
    policy_hash: str

    @classmethod
    def judge(cls, verdicts: tuple[Verdict, ...], policy: Policy) -> Decision:
        return cls(verdicts=verdicts, failure_mode=policy.failure_mode,
                   unavailable_mode=policy.unavailable_mode, policy_hash=policy.policy_hash)

    @property
    def admitted(self) -> bool:
        """Fail closed: an empty decision is not an admission."""
        return bool(self.verdicts) and not self.blocked_by_rejection and not self.blocked_by_unavailable

    @property
    def blocked_by_rejection(self) -> bool:
        """A rejected image stops the deployment (failureMode is block): no retry can change that."""
        return self.failure_mode is Mode.BLOCK and self.count(Outcome.REJECTED) > 0

    @property
    def blocked_by_unavailable(self) -> bool:
        """An unavailable image stops the deployment (unavailableMode is block), for now."""
        return self.unavailable_mode is Mode.BLOCK and self.count(Outcome.UNAVAILABLE) > 0

    @property
    def admitted_with_warnings(self) -> int:
        """Images admitted (verified or exempt) with warnings: a logged, not enforced, failure."""
        return sum(1 for v in self.verdicts if v.outcome in (Outcome.VERIFIED, Outcome.EXEMPT) and v.warnings)

    def count(self, outcome: Outcome) -> int:
        return sum(1 for v in self.verdicts if v.outcome is outcome)
