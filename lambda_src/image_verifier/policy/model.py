"""The policy model: the one contract between the constructs, the Lambda and the CLI.

A `Policy` is a frozen tree of dataclasses. Build it from JSON with `Policy.from_json(raw)` (every
problem becomes a `PolicyError` naming the bad field) and write it back with `to_json()`.
The JSON shape is documented in docs/policy.md and published as `schema.json` beside this file.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from functools import cached_property
from typing import Any, Mapping

from .patterns import ImagePattern

POLICY_VERSION = "1"


class Mode(StrEnum):
    """What a `rejected` (failureMode) or `unavailable` (unavailableMode) verdict does."""

    BLOCK = "block"  # the deployment is refused
    AUDIT = "audit"  # the deployment goes ahead; the verdict is logged and counted


class KeyState(StrEnum):
    ACTIVE = "active"  # signatures verify
    RETIRED = "retired"  # signatures made with it still verify; KMS no longer lets anyone sign
    REVOKED = "revoked"  # nothing it signed verifies


class SignerKind(StrEnum):
    COSIGN_KEY = "cosignKey"
    AWS_SIGNER = "awsSigner"
    NOTATION_X509 = "notationX509"
    COSIGN_KEYLESS = "cosignKeyless"


@dataclass(frozen=True, kw_only=True)
class CosignKeyTrust:
    """A cosign signing key: a PEM public key, or a KMS key whose public key is fetched and cached."""

    public_key_pem: str | None = None
    kms_key_arn: str | None = None
    state: KeyState = KeyState.ACTIVE
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    break_glass: bool = False


@dataclass(frozen=True, kw_only=True)
class AwsSignerTrust:
    """AWS Signer (Notation, signing-authority scheme) signing profiles."""

    signing_profile_arns: tuple[str, ...]
    root_certificates: tuple[str, ...] = ()
    custom_root_certificates: tuple[str, ...] = ()
    revocation_check: bool = True
    # Per-step actions on top of level strict, as a Notary Project trust policy's `override`
    # (step name -> enforce | log | skip); validated by the loader (notation/levels.py).
    override: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class NotationX509Trust:
    """Notation signatures chaining to an organization's own X.509 roots."""

    root_certificates: tuple[str, ...]
    trusted_identities: tuple[str, ...]
    signing_scheme: str = "notary.x509"
    tsa_root_certificates: tuple[str, ...] = ()
    verification_level: str = "strict"
    verify_timestamp: str = "always"
    override: Mapping[str, str] = field(default_factory=dict)  # per-step actions over the level


@dataclass(frozen=True, kw_only=True)
class CosignKeylessTrust:
    """cosign keyless (Fulcio certificate + Rekor entry) for one OIDC identity, verified offline.

    Issuer and subject are each exact or a regular expression (fullmatch); `trusted_root` is
    Sigstore's trusted_root.json as canonical JSON text (cosign/keyless/trusted_root.py).
    """

    trusted_root: str
    issuer: str | None = None
    issuer_regexp: str | None = None
    subject: str | None = None
    subject_regexp: str | None = None
    ignore_sct: bool = False  # cosign --insecure-ignore-sct: for a private Fulcio without a CT log


SignerTrust = CosignKeyTrust | AwsSignerTrust | NotationX509Trust | CosignKeylessTrust

# What a Notation verification level below `strict` logs instead of enforcing (notation/levels.py).
LOGGED_FAILURES = {
    "permissive": "expired signatures, certificates outside their validity, failed timestamps and revocation failures",
    "audit": "untrusted roots and identities (anyone's signature verifies), expiry and revocation failures",
}


@dataclass(frozen=True, kw_only=True)
class TrustedSigner:
    """A named signer. Rules refer to signers by name."""

    name: str
    trust: SignerTrust

    @property
    def kind(self) -> SignerKind:
        if isinstance(self.trust, CosignKeyTrust):
            return SignerKind.COSIGN_KEY
        if isinstance(self.trust, AwsSignerTrust):
            return SignerKind.AWS_SIGNER
        if isinstance(self.trust, CosignKeylessTrust):
            return SignerKind.COSIGN_KEYLESS
        return SignerKind.NOTATION_X509

    @property
    def break_glass(self) -> bool:
        return isinstance(self.trust, CosignKeyTrust) and self.trust.break_glass


@dataclass(frozen=True, kw_only=True)
class Rule:
    """Images matching `images` need a valid signature from any (or all) of the named signers."""

    name: str
    images: tuple[ImagePattern, ...]
    any_of: tuple[str, ...] = ()
    all_of: tuple[str, ...] = ()
    required_annotations: Mapping[str, str] = field(default_factory=dict)
    match_docker_reference: bool = False

    @property
    def signer_names(self) -> tuple[str, ...]:
        return self.all_of or self.any_of

    @property
    def requires_all(self) -> bool:
        return bool(self.all_of)

    def precedence_for(self, name: str) -> tuple[int, int] | None:
        """The precedence of this rule's best pattern matching `name`, or None if none matches."""
        matching = [p.precedence for p in self.images if p.matches(name)]
        return max(matching) if matching else None


@dataclass(frozen=True, kw_only=True)
class Exemption:
    """Images that skip verification until `expires`, for a recorded reason."""

    images: tuple[ImagePattern, ...]
    reason: str
    expires: datetime
    digests: tuple[str, ...] = ()

    def applies_to(self, name: str, digest: str | None, now: datetime) -> bool:
        return self.names(name, now) and (not self.digests or (digest is not None and digest in self.digests))

    def names(self, name: str, now: datetime) -> bool:
        """Unexpired and a pattern matches `name`: the image may be exempt once its digest is known."""
        return now < self.expires and any(p.matches(name) for p in self.images)


@dataclass(frozen=True, kw_only=True)
class Policy:
    """A whole policy document. Images that match no rule are rejected."""

    trusted_signers: tuple[TrustedSigner, ...]
    rules: tuple[Rule, ...]
    exemptions: tuple[Exemption, ...] = ()
    failure_mode: Mode = Mode.BLOCK
    unavailable_mode: Mode = Mode.BLOCK
    version: str = POLICY_VERSION

    @classmethod
    def from_json(cls, raw: str | bytes | Mapping[str, Any], *, environ: Mapping[str, str] | None = None) -> Policy:
        """Parse and validate a policy document; `environ` resolves `{"fromEnv": "NAME"}` values."""
        from .codec import policy_from_json

        return policy_from_json(raw, environ=environ)

    def to_json(self) -> str:
        """The canonical JSON text (sorted keys, no white space): what `policy_hash` is taken over."""
        from .codec import policy_to_json

        return policy_to_json(self)

    @cached_property  # a frozen dataclass without __slots__ may cache: the tree never changes
    def policy_hash(self) -> str:
        return "sha256:" + hashlib.sha256(self.to_json().encode()).hexdigest()

    def signer(self, name: str) -> TrustedSigner:
        for signer in self.trusted_signers:
            if signer.name == name:
                return signer
        raise KeyError(name)

    def rule_for(self, name: str) -> Rule | None:
        """The rule that governs `registry/repository`: the highest-precedence match, else None.

        Loading refuses policies where two rules could match one image with equal precedence, so
        the answer never depends on the order of the rules.
        """
        best: tuple[tuple[int, int], Rule] | None = None
        for rule in self.rules:
            precedence = rule.precedence_for(name)
            if precedence is not None and (best is None or precedence > best[0]):
                best = (precedence, rule)
        return best[1] if best else None

    def exemption_for(self, name: str, digest: str | None, now: datetime) -> Exemption | None:
        for exemption in self.exemptions:
            if exemption.applies_to(name, digest, now):
                return exemption
        return None

    def may_exempt(self, name: str, digest: str | None, now: datetime) -> bool:
        """Could an exemption cover this image? Decided without I/O: with `digest` None (a tag not
        resolved yet) an exemption that pins digests still might, once the digest is known."""
        return any(e.names(name, now) and (digest is None or not e.digests or digest in e.digests)
                   for e in self.exemptions)

    @property
    def warnings(self) -> tuple[str, ...]:
        """Choices that weaken verification and must be visible: the CLI prints these, the handler logs them."""
        found = []
        for index, signer in enumerate(self.trusted_signers):
            trust = signer.trust
            if isinstance(trust, CosignKeylessTrust) and trust.ignore_sct:
                found.append(f"trustedSigners[{index}].cosignKeyless.ignoreSct: signer {signer.name!r} accepts "
                             "certificates that no certificate transparency log has seen (cosign "
                             "--insecure-ignore-sct)")
            if isinstance(trust, (CosignKeyTrust, CosignKeylessTrust)):
                continue
            from ..notation.levels import effective_level, weakened_steps  # here: cosign-only policies never load it

            level = trust.verification_level if isinstance(trust, NotationX509Trust) else "strict"
            kind = signer.kind.value
            if isinstance(trust, NotationX509Trust) and level != "strict" and not trust.override:
                found.append(f"trustedSigners[{index}].{kind}.verificationLevel: signer {signer.name!r} is at "
                             f"level {level!r}, which only logs {LOGGED_FAILURES[level]}; images it verifies are "
                             "admitted with warnings")
                continue
            weakened = weakened_steps(effective_level(level, trust.override))
            if isinstance(trust, AwsSignerTrust) and not trust.override:
                continue  # revocationCheck false is the documented AWS Signer choice, not a level
            if weakened:
                steps = ", ".join(f"{step}: {action}" for step, action in weakened.items())
                found.append(f"trustedSigners[{index}].{kind}.override: signer {signer.name!r} (level {level!r} "
                             f"with override) does not enforce {steps}; images it verifies are admitted with "
                             "warnings for the logged steps")
        return tuple(found)
