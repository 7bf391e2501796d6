"""Verification levels as tables, per-step overrides, and the one place where a failed step is judged.

A step either passes or produces a `Failure` carrying the exception it would raise. `StepLog.judge`
looks the step up in the effective level (the level's table with the policy's `override` applied):
ENFORCE raises, LOG records the failure and goes on. A step whose action is SKIP is not run at all.
Integrity is ENFORCE at every level: the trust-policy spec lets no level or override change it.

Every step's outcome (passed, failed but logged, skipped, not checked) is recorded in spec order,
named as the spec names the steps, so that the verdict can say exactly what was enforced.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType
from typing import Any, Mapping

from ..errors import ImageVerifierError


class Step(Enum):
    INTEGRITY = "integrity"
    AUTHENTICITY = "authenticity"
    EXPIRY = "expiry"
    AUTHENTIC_TIMESTAMP = "authenticTimestamp"
    REVOCATION = "revocation"


class Action(Enum):
    ENFORCE = "enforce"
    LOG = "log"
    SKIP = "skip"


ENFORCE, LOG, SKIP = Action.ENFORCE, Action.LOG, Action.SKIP
INTEGRITY, AUTHENTICITY, EXPIRY = Step.INTEGRITY, Step.AUTHENTICITY, Step.EXPIRY
AUTHENTIC_TIMESTAMP, REVOCATION = Step.AUTHENTIC_TIMESTAMP, Step.REVOCATION
# The order of the spec's table (integrity, authenticity, authentic timestamp, expiry, revocation).
SPEC_ORDER = (INTEGRITY, AUTHENTICITY, AUTHENTIC_TIMESTAMP, EXPIRY, REVOCATION)

Level = Mapping[Step, Action]
STRICT: Level = MappingProxyType(
    {INTEGRITY: ENFORCE, AUTHENTICITY: ENFORCE, AUTHENTIC_TIMESTAMP: ENFORCE, EXPIRY: ENFORCE, REVOCATION: ENFORCE}
)
PERMISSIVE: Level = MappingProxyType(
    {INTEGRITY: ENFORCE, AUTHENTICITY: ENFORCE, AUTHENTIC_TIMESTAMP: LOG, EXPIRY: LOG, REVOCATION: LOG}
)
AUDIT: Level = MappingProxyType(
    {INTEGRITY: ENFORCE, AUTHENTICITY: LOG, AUTHENTIC_TIMESTAMP: LOG, EXPIRY: LOG, REVOCATION: LOG}
)
LEVELS: Mapping[str, Level] = MappingProxyType({"strict": STRICT, "permissive": PERMISSIVE, "audit": AUDIT})

# trust-store-trust-policy.md, "Custom Verification Level": the keys `override` may hold and the
# values each may take. Integrity is absent on purpose: it can never be overridden.
OVERRIDABLE: Mapping[Step, tuple[Action, ...]] = MappingProxyType({
    AUTHENTICITY: (ENFORCE, LOG),
    AUTHENTIC_TIMESTAMP: (ENFORCE, LOG),
    EXPIRY: (ENFORCE, LOG),
    REVOCATION: (ENFORCE, LOG, SKIP),
})
_STEPS_BY_NAME = {step.value: step for step in Step}


def level_named(name: str) -> Level:
    """The table for a policy's `verificationLevel`; ValueError for anything else (`skip` included:
    a signer that verifies nothing is not a signer)."""
    try:
        return LEVELS[name]
    except KeyError:
        raise ValueError(f"verification level must be one of {', '.join(LEVELS)}, got {name!r}") from None


def override_entry(key: str, value: object) -> tuple[Step, Action]:
    """One `override` entry checked against the spec's rules; ValueError says what is allowed."""
    step = _STEPS_BY_NAME.get(key)
    if step is INTEGRITY:
        raise ValueError("integrity can never be overridden: a signature that does not verify is never accepted")
    if step is None:
        allowed = ", ".join(s.value for s in OVERRIDABLE)
        raise ValueError(f"unknown verification step {key!r}; override may name {allowed}")
    choices = OVERRIDABLE[step]
    action = next((a for a in choices if a.value == value), None)
    if action is None:
        raise ValueError(f"{key} may be overridden to {' or '.join(a.value for a in choices)}, got {value!r}")
    return step, action


def effective_level(name: str, override: Mapping[str, str] | None = None) -> Level:
    """The level's table with `override` applied (ValueError for a bad level or override entry)."""
    table = dict(level_named(name))
    for key, value in (override or {}).items():
        step, action = override_entry(key, value)
        table[step] = action
    return MappingProxyType(table)


def weakened_steps(level: Level) -> dict[str, str]:
    """The steps a level does not enforce, by spec name: what a policy warning must list."""
    return {step.value: level[step].value for step in SPEC_ORDER if level[step] is not ENFORCE}


@dataclass(frozen=True)
class Failure:
    """A step that did not pass, with the error that enforcing it raises."""

    step: Step
    error: ImageVerifierError


@dataclass(frozen=True, kw_only=True)
class StepOutcome:
    """What happened to one verification step of one signature.

    `outcome` is `passed`; `failed` (only ever with action `log`: an enforced failure rejects the
    signature instead); `skipped` (the policy's action is `skip`); or `notChecked` (this verifier
    does not perform the step, `message` says why).
    """

    step: Step
    action: Action
    outcome: str
    message: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step.value, "action": self.action.value, "outcome": self.outcome, "message": self.message}

    def text(self) -> str:
        """One line for people: `expiry=log:failed (the signature expired at ...)`."""
        return f"{self.step.value}={self.action.value}:{self.outcome}" + (f" ({self.message})" if self.message else "")


class StepLog:
    """Runs the judgement of each step under one effective level and records every outcome."""

    def __init__(self, level: Level) -> None:
        self.level = level
        self._outcomes: dict[Step, StepOutcome] = {}
        self._warnings: list[str] = []

    def action(self, step: Step) -> Action:
        return ENFORCE if step is INTEGRITY else self.level.get(step, ENFORCE)

    def should_run(self, step: Step, *, why_skipped: str | None = None) -> bool:
        """False (and the step recorded as skipped) when the policy skips it."""
        if self.action(step) is not SKIP:
            return True
        self._outcomes[step] = StepOutcome(step=step, action=SKIP, outcome="skipped", message=why_skipped)
        return False

    def judge(self, failure: Failure) -> None:
        """Raise the failure's error (message prefixed by its step) if enforced, else record it."""
        message = f"{failure.step.value}: {failure.error}"
        action = self.action(failure.step)
        if action is ENFORCE:
            raise type(failure.error)(message) from failure.error
        if action is SKIP:
            return
        earlier = self._outcomes.get(failure.step)
        text = str(failure.error) if earlier is None or earlier.message is None else f"{earlier.message}; {failure.error}"
        self._outcomes[failure.step] = StepOutcome(step=failure.step, action=action, outcome="failed", message=text)
        self._warnings.append(message)

    def passed(self, step: Step) -> None:
        self._outcomes.setdefault(step, StepOutcome(step=step, action=self.action(step), outcome="passed"))

    def not_checked(self, step: Step, why: str) -> None:
        self._outcomes[step] = StepOutcome(step=step, action=self.action(step), outcome="notChecked", message=why)

    @property
    def warnings(self) -> tuple[str, ...]:
        """The logged failures, `step: message`, in the order they happened."""
        return tuple(self._warnings)

    @property
    def outcomes(self) -> tuple[StepOutcome, ...]:
        return tuple(self._outcomes[step] for step in SPEC_ORDER if step in self._outcomes)

