"""A small typed reader over parsed JSON that reports problems with the path of the bad field."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Callable, Iterator, Mapping, TypeVar

from ..errors import PolicyError

T = TypeVar("T")
_RFC3339 = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})")


class Node:
    """A JSON value and the path that led to it, e.g. `rules[0].images[2]`."""

    def __init__(self, value: Any, path: str, environ: Mapping[str, str] | None) -> None:
        self.value = value
        self.path = path
        self._environ = environ

    def fail(self, message: str) -> PolicyError:
        return PolicyError(self.path or "(document)", message)

    def child(self, key: str | int) -> Node:
        return Node(self.value[key], _path(self.path, key), self._environ)

    # -- shapes ---------------------------------------------------------------------------------
    def object(self, *, required: tuple[str, ...] = (), optional: tuple[str, ...] = ()) -> Node:
        if not isinstance(self.value, dict):
            raise self.fail(f"expected an object, got {_kind(self.value)}")
        allowed = set(required) | set(optional)
        for key in self.value:
            if key not in allowed:
                hint = f"; allowed keys are {', '.join(sorted(allowed))}" if allowed else ""
                raise PolicyError(_path(self.path, key), f"unknown field{hint}")
        for key in required:
            if key not in self.value:
                raise self.fail(f"missing required field {key!r}")
        return self

    def has(self, key: str) -> bool:
        return key in self.value

    def get(self, key: str) -> Node | None:
        return self.child(key) if key in self.value else None

    def items(self, *, min_items: int = 0, max_items: int | None = None) -> Iterator[Node]:
        if not isinstance(self.value, list):
            raise self.fail(f"expected a list, got {_kind(self.value)}")
        if len(self.value) < min_items:
            raise self.fail(f"expected at least {min_items} item(s), got {len(self.value)}")
        if max_items is not None and len(self.value) > max_items:
            raise self.fail(f"expected at most {max_items} item(s), got {len(self.value)}")
        return (self.child(i) for i in range(len(self.value)))

    # -- scalars --------------------------------------------------------------------------------
    def string(self, *, pattern: re.Pattern[str] | None = None, hint: str = "") -> str:
        value = self.value
        if isinstance(value, dict) and set(value) == {"fromEnv"}:
            value = self._from_env(value["fromEnv"])
        if not isinstance(value, str) or not value:
            raise self.fail(f"expected a non-empty string, got {_kind(value)}")
        if pattern is not None and not pattern.fullmatch(value):
            raise self.fail(f"{value!r} is not valid{': ' + hint if hint else ''}")
        return value

    def regex(self, *, max_length: int) -> str:
        """A regular expression, kept short enough to review (and to bound matching cost)."""
        text = self.string()
        if len(text) > max_length:
            raise self.fail(f"the regular expression is longer than {max_length} characters")
        try:
            re.compile(text)
        except re.error as exc:
            raise self.fail(f"not a valid regular expression: {exc}") from exc
        return text

    def boolean(self) -> bool:
        if not isinstance(self.value, bool):
            raise self.fail(f"expected true or false, got {_kind(self.value)}")
        return self.value

    def choice(self, choices: Mapping[str, T]) -> T:
        if not isinstance(self.value, str) or self.value not in choices:  # a list or object is not hashable
            raise self.fail(f"expected one of {', '.join(repr(c) for c in choices)}, got {self.value!r}")
        return choices[self.value]

    def timestamp(self) -> datetime:
        text = self.string()
        if not _RFC3339.fullmatch(text):
            raise self.fail(f"{text!r} is not an RFC 3339 time with a zone, e.g. '2027-01-31T00:00:00Z'")
        try:
            return datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError as exc:
            raise self.fail(f"{text!r} is not a valid time: {exc}") from exc

    def convert(self, parse: Callable[[Any], T]) -> T:
        """Apply a parser that raises ValueError, reporting its message at this path."""
        try:
            return parse(self.value)
        except ValueError as exc:
            raise self.fail(str(exc)) from exc

    def _from_env(self, name: Any) -> str:
        if not isinstance(name, str) or not name:
            raise self.fail("fromEnv must name an environment variable")
        if self._environ is None:
            raise self.fail(f"uses {{'fromEnv': {name!r}}} but no environment was given to resolve it")
        if not self._environ.get(name):
            raise self.fail(f"environment variable {name} is not set; the deployment must set it")
        return self._environ[name]


_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")


def _path(parent: str, key: str | int) -> str:
    """`parent.key`, `parent[3]`, or `parent['odd key']` for a key that would make the path unreadable."""
    if isinstance(key, int):
        return f"{parent}[{key}]"
    if not _PLAIN_KEY.fullmatch(key):
        return f"{parent}[{key!r}]"
    return f"{parent}.{key}" if parent else key


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(type(value), type(value).__name__)
