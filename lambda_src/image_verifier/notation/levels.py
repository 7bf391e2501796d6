"""Verification levels as tables, and the one place where a failed step is judged.

A step either passes or produces a `Failure` carrying the exception it would raise. `judge` looks
the step up in the level's table: ENFORCE raises, LOG turns it into a warning, SKIP ignores it.
Integrity is ENFORCE at every level (the spec allows no override).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType
from typing import Mapping

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


ENFORCE, LOG = Action.ENFORCE, Action.LOG
INTEGRITY, AUTHENTICITY, EXPIRY = Step.INTEGRITY, Step.AUTHENTICITY, Step.EXPIRY
AUTHENTIC_TIMESTAMP, REVOCATION = Step.AUTHENTIC_TIMESTAMP, Step.REVOCATION

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


def level_named(name: str) -> Level:
    """The table for a policy's `verificationLevel`; ValueError for anything else (`skip` included:
    a signer that verifies nothing is not a signer)."""
    try:
        return LEVELS[name]
    except KeyError:
        raise ValueError(f"verification level must be one of {', '.join(LEVELS)}, got {name!r}") from None


@dataclass(frozen=True)
class Failure:
    """A step that did not pass, with the error that enforcing it raises."""

    step: Step
    error: ImageVerifierError


def judge(level: Level, failure: Failure, warnings: list[str]) -> None:
    """Raise the failure's error (message prefixed by its step) if enforced, else record a warning."""
    message = f"{failure.step.value}: {failure.error}"
    action = Action.ENFORCE if failure.step is Step.INTEGRITY else level.get(failure.step, Action.ENFORCE)
    if action is Action.ENFORCE:
        raise type(failure.error)(message) from failure.error
    if action is Action.LOG:
        warnings.append(message)
