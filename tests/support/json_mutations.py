"""Mutations of JSON documents for property tests: one more member anywhere, under a key that Go's
decoder reads as an existing one (the same key again, or a case-folded spelling of it)."""

from __future__ import annotations

import json
from typing import Any

# How a key is re-spelled so that Go's case-insensitive decoder still matches it
SPELLINGS = ("exact", "upper", "title", "long-s", "kelvin", "swapcase")


def object_paths(value: Any, path: tuple = ()) -> list[tuple]:
    """Paths to every object in a JSON tree, the root (`()`) first."""
    found = [path] if isinstance(value, dict) else []
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
    for step, child in children:
        found += object_paths(child, (*path, step))
    return found


def at(value: Any, path: tuple) -> Any:
    for step in path:
        value = value[step]
    return value


def respell(key: str, how: str) -> str:
    """`key` as Go would still match it: upper case, title case, `s` as long s, `k` as Kelvin sign.
    A spelling that does not apply (no `s`, no letters) leaves the key unchanged: an exact duplicate."""
    if how == "upper":
        return key.upper()
    if how == "title":
        return key[:1].upper() + key[1:]
    if how == "long-s":
        return key.replace("s", "\u017f", 1)
    if how == "kelvin":
        return key.replace("k", "\u212a", 1)
    if how == "swapcase":
        return key.swapcase()
    return key


def with_member(document: Any, path: tuple, key: str, value: Any) -> bytes:
    """`document` encoded with one more member in the object at `path`, written by hand
    (json.dumps cannot write a key twice). `document` itself is left as it was."""
    target = at(document, path)
    marker = "__member__"
    target[marker] = None
    try:
        text = json.dumps(document)
    finally:
        del target[marker]
    return text.replace(f'"{marker}": null', f"{json.dumps(key)}: {json.dumps(value)}").encode()
