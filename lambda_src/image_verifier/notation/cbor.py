"""A strict CBOR (RFC 8949) decoder for the subset COSE_Sign1 needs, and the encoder for Sig_structure.

Why not `cbor2`: it ignores trailing bytes, accepts duplicate map keys by default and turns tags
into Python objects (tag 1 becomes a datetime, so a bare int and a tagged time look alike after
decoding). A signature envelope is hostile input, so this decoder accepts only what a Notary
COSE envelope can contain and fails on everything else:

- definite lengths only (no indefinite-length items), no floats, only the simple values
  false/true/null, no trailing bytes;
- map keys are ints or text strings (COSE labels), and a key may appear only once;
- tags are kept as `Tag(number, value)` so the caller can insist on them;
- depth and item counts are bounded, and a length is checked against the bytes left before
  anything is allocated.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

MAX_DEPTH = 16  # a COSE_Sign1 nests four deep; anything deeper is not an envelope
MAX_ITEMS = 4096  # per array or map; a header map has a handful of entries


class CborError(ValueError):
    """The bytes are not CBOR of the subset we accept."""


@dataclass(frozen=True)
class Tag:
    """A CBOR tag kept as-is, e.g. `Tag(18, [...])` for COSE_Sign1 or `Tag(1, 1667411812)` for a time."""

    number: int
    value: Any


def loads(data: bytes) -> Any:
    """Decode exactly one CBOR item that spans all of `data`."""
    decoder = _Decoder(bytes(data))
    item = decoder.item(0)
    if decoder.pos != len(decoder.data):
        raise CborError(f"{len(decoder.data) - decoder.pos} trailing bytes after the CBOR item")
    return item


class _Decoder:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def _take(self, n: int) -> bytes:
        if n > len(self.data) - self.pos:
            raise CborError("truncated CBOR: an item runs past the end of the data")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def _argument(self, info: int) -> int:
        if info < 24:
            return info
        if info == 31:
            raise CborError("indefinite-length CBOR items are not accepted")
        if info > 27:
            raise CborError(f"reserved CBOR additional information {info}")
        size = 1 << (info - 24)
        return int.from_bytes(self._take(size), "big")

    def item(self, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise CborError(f"CBOR nests deeper than {MAX_DEPTH} levels")
        initial = self._take(1)[0]
        major, info = initial >> 5, initial & 0x1F
        if major == 7:
            return self._simple(info)
        value = self._argument(info)
        if major == 0:
            return value
        if major == 1:
            return -1 - value
        if major == 2:
            return self._take(value)
        if major == 3:
            try:
                return self._take(value).decode("utf-8")
            except UnicodeDecodeError as exc:
                raise CborError("a CBOR text string is not valid UTF-8") from exc
        if major == 4:
            self._check_count(value)
            return [self.item(depth + 1) for _ in range(value)]
        if major == 5:
            self._check_count(value)
            return self._map(value, depth)
        return Tag(value, self.item(depth + 1))  # major 6

    def _check_count(self, count: int) -> None:
        # Every item takes at least one byte, so a count beyond the bytes left is a lie.
        if count > MAX_ITEMS or count > len(self.data) - self.pos:
            raise CborError(f"CBOR container claims {count} items")

    def _map(self, count: int, depth: int) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        for _ in range(count):
            key = self.item(depth + 1)
            # `type(...) is` keeps True (a simple value) from passing as the label 1.
            if type(key) not in (int, str):
                raise CborError(f"CBOR map key {key!r} is neither an integer nor a text string")
            if key in result:
                raise CborError(f"duplicate CBOR map key {key!r}")
            result[key] = self.item(depth + 1)
        return result

    @staticmethod
    def _simple(info: int) -> Any:
        simple = {20: False, 21: True, 22: None}
        if info in simple:
            return simple[info]
        raise CborError(f"CBOR simple value or float (additional information {info}) is not accepted")


def dumps(item: Any) -> bytes:
    """Encode ints, byte strings, text strings, lists, dicts and `Tag`s with the shortest heads.

    The verifier only encodes Sig_structure with it; tests also build envelopes with it.
    """
    out = bytearray()
    _encode(item, out)
    return bytes(out)


def _head(major: int, value: int, out: bytearray) -> None:
    if value < 24:
        out.append(major << 5 | value)
    elif value < 1 << 8:
        out += bytes((major << 5 | 24, value))
    elif value < 1 << 16:
        out.append(major << 5 | 25)
        out += struct.pack(">H", value)
    elif value < 1 << 32:
        out.append(major << 5 | 26)
        out += struct.pack(">I", value)
    elif value < 1 << 64:
        out.append(major << 5 | 27)
        out += struct.pack(">Q", value)
    else:
        raise CborError("integer too large for CBOR")


def _encode(item: Any, out: bytearray) -> None:
    if item is False or item is True or item is None:
        out.append({False: 0xF4, True: 0xF5, None: 0xF6}[item])
    elif isinstance(item, int):
        if item >= 0:
            _head(0, item, out)
        else:
            _head(1, -1 - item, out)
    elif isinstance(item, (bytes, bytearray)):
        _head(2, len(item), out)
        out += item
    elif isinstance(item, str):
        encoded = item.encode("utf-8")
        _head(3, len(encoded), out)
        out += encoded
    elif isinstance(item, (list, tuple)):
        _head(4, len(item), out)
        for element in item:
            _encode(element, out)
    elif isinstance(item, dict):
        _head(5, len(item), out)
        for key, value in item.items():
            _encode(key, out)
            _encode(value, out)
    elif isinstance(item, Tag):
        _head(6, item.number, out)
        _encode(item.value, out)
    else:
        raise CborError(f"cannot encode {type(item).__name__} as CBOR")
