"""Reading JSON-like values whose shape we do not control: the hook event and the ECS answers.

Each helper returns the value when it has the expected JSON type and raises the caller's error
class otherwise, naming the path to the field, what was expected and (briefly) what came. A
hostile value is shown through `reprlib`, bounded in length and depth, so it can neither flood
the audit record nor blow the stack while being described.
"""

from __future__ import annotations

import reprlib
from typing import Any, Mapping, Sequence

_REPR = reprlib.Repr()
_REPR.maxlevel = 2
_REPR.maxstring = 120
_REPR.maxother = 60
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 4

_JSON_TYPES: tuple[tuple[type | tuple[type, ...], str], ...] = (
    (bool, "a boolean"), ((int, float), "a number"), (str, "a string"), (Mapping, "an object"),
    ((list, tuple), "an array"), (type(None), "null"),
)


def show(value: Any) -> str:
    """`value` as a short, safe string for a message (never the whole of a hostile value)."""
    try:
        return _REPR.repr(value)
    except Exception:  # noqa: BLE001 - a value whose repr raises is still described, by its type
        return f"<{type(value).__name__}>"


def kind(value: Any) -> str:
    """The JSON type of `value`, as a message says it ("an object", "null", ...)."""
    for python_type, name in _JSON_TYPES:
        if isinstance(value, python_type):
            return name
    return f"a {type(value).__name__}"


def got(value: Any) -> str:
    return f"got {kind(value)}: {show(value)}"


def mapping(value: Any, path: str, error: type[Exception]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise error(f"{path} must be an object, {got(value)}")
    return value


def array(value: Any, path: str, error: type[Exception], *, max_items: int) -> Sequence[Any]:
    if not isinstance(value, (list, tuple)):
        raise error(f"{path} must be an array, {got(value)}")
    if len(value) > max_items:
        raise error(f"{path} has {len(value)} items; at most {max_items} are read")
    return value


def string(value: Any, path: str, error: type[Exception], *, max_length: int, empty: bool = False) -> str:
    if not isinstance(value, str):
        raise error(f"{path} must be a string, {got(value)}")
    if not value and not empty:
        raise error(f"{path} must not be empty")
    if len(value) > max_length:
        raise error(f"{path} is {len(value)} characters long; at most {max_length} are read")
    return value


def optional_string(parent: Mapping[str, Any], key: str, path: str, error: type[Exception], *,
                    max_length: int) -> str | None:
    """`parent[key]` when present and a non-empty string; None when absent, null or empty."""
    value = parent.get(key)
    if value is None or value == "":
        return None
    return string(value, f"{path}.{key}", error, max_length=max_length)
