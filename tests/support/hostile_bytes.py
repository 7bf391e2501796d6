"""Hypothesis strategies that spoil real artifacts: byte-level edits of signed bytes, and JSON documents
with one value replaced anywhere in the tree. Shared by the `test_properties_*` files.

Every strategy draws an edit and applies it to a seed made by the test helpers (a real manifest, a
real signed payload, a real envelope or token), so that most examples get past the first check.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import strategies as st

from .json_mutations import at, object_paths

json_scalars = (st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False)
                | st.text(max_size=16))
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=10), inner, max_size=3), max_leaves=8)


@st.composite
def byte_edits(draw: st.DrawFn, seed: bytes) -> bytes:
    """`seed` with one edit: a bit flip, a byte replaced/inserted/deleted, a truncation, or trailing bytes.
    The result always differs from `seed`."""
    how = draw(st.sampled_from(["flip", "replace", "insert", "delete", "truncate", "append"]))
    at_ = draw(st.integers(0, len(seed) - 1))
    if how == "flip":
        edited = seed[:at_] + bytes([seed[at_] ^ (1 << draw(st.integers(0, 7)))]) + seed[at_ + 1:]
    elif how == "replace":
        edited = seed[:at_] + bytes([draw(st.integers(0, 255).filter(lambda b: b != seed[at_]))]) + seed[at_ + 1:]
    elif how == "insert":
        edited = seed[:at_] + draw(st.binary(min_size=1, max_size=8)) + seed[at_:]
    elif how == "delete":
        edited = seed[:at_] + seed[at_ + draw(st.integers(1, 8)):]
    elif how == "truncate":
        edited = seed[:at_]
    else:
        edited = seed + draw(st.binary(min_size=1, max_size=8))
    return edited


def value_paths(value: Any, path: tuple = ()) -> list[tuple]:
    """Paths to every value in a JSON tree (objects, arrays and scalars), the root (`()`) first."""
    found = [path]
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
    for step, child in children:
        found += value_paths(child, (*path, step))
    return found


@st.composite
def json_replacements(draw: st.DrawFn, document: Any, plausible: st.SearchStrategy[Any] = st.nothing()) -> Any:
    """A deep copy of `document` with the value at one path replaced (by a random or a plausible
    value), deleted, or given one more random member (objects only)."""
    edited = copy.deepcopy(document)
    path = draw(st.sampled_from(value_paths(edited)))
    how = draw(st.sampled_from(["replace", "delete", "add"]))
    if not path or how == "replace":
        value = draw(json_values | plausible)
        if not path:
            return value
        at(edited, path[:-1])[path[-1]] = value
    elif how == "delete":
        del at(edited, path[:-1])[path[-1]]
    else:
        targets = object_paths(edited)
        target = at(edited, draw(st.sampled_from(targets))) if targets else None
        if isinstance(target, dict):
            target[draw(st.text(max_size=12))] = draw(json_values | plausible)
    return edited


def encode(document: Any) -> bytes:
    return json.dumps(document).encode()
