"""Early checks on props: literals where a literal is needed, names and patterns.

Every error is lower case and names the offending value and the fix.
"""

from __future__ import annotations

import re
from typing import Any

from aws_cdk import Token


def require_literal(value: Any, what: str, fix: str) -> None:
    """Refuse a CDK token where the construct must read the value at synth."""
    if Token.is_unresolved(value):
        raise ValueError(f"{what} is a token ({value!r}); {fix}")


def require_match(value: str, pattern: re.Pattern[str], what: str, rule: str) -> None:
    """Refuse a literal that does not match ``pattern``; ``rule`` says in words what is allowed."""
    if not pattern.fullmatch(value):
        raise ValueError(f"{what} must be {rule}, got {value!r}")


def require_strings(values: Any, what: str) -> tuple[str, ...]:
    """Turn a sequence of strings into a tuple, refusing a lone string (a common slip)."""
    if isinstance(values, str):
        raise ValueError(f"{what} must be a list of strings, got the string {values!r}; wrap it in a list")
    return tuple(values)
