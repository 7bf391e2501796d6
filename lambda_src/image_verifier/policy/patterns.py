"""Image patterns: globs over `registry/repository`, and the overlap test that keeps policies unambiguous.

Syntax: `*` matches any run of characters except `/`; `**` matches any run of characters, `/`
included. Everything else is literal. Patterns never contain a tag or a digest.

Precedence between two rules whose patterns both match an image: an exact pattern (no `*`) beats
any glob; among globs, the one with the longer literal text before its first `*` wins. Two rules
that could match the same image with equal precedence make the policy ambiguous, and it is refused
when loaded (see `find_overlap`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

MAX_PATTERN_LENGTH = 255  # Docker caps a repository name at 255 characters; also bounds the overlap search depth
_ALLOWED = re.compile(r"[a-z0-9.\-_:/*\[\]]+")

_STAR, _GLOBSTAR = "\x00*", "\x00**"


@dataclass(frozen=True)
class ImagePattern:
    """A validated image pattern such as `123456789012.dkr.ecr.*.amazonaws.com/team/**`."""

    text: str

    @classmethod
    def parse(cls, text: object) -> ImagePattern:
        if not isinstance(text, str) or not text:
            raise ValueError("an image pattern must be a non-empty string like 'registry.example.com/team/*'")
        if len(text) > MAX_PATTERN_LENGTH:
            raise ValueError(f"image pattern is longer than {MAX_PATTERN_LENGTH} characters")
        if "@" in text or (":" in text.split("/", 1)[-1] and "/" in text):
            raise ValueError(f"image pattern {text!r} must not contain a tag or digest; patterns match registry/repository")
        if not _ALLOWED.fullmatch(text):
            raise ValueError(
                f"image pattern {text!r} has characters outside lower-case letters, digits, '.', '-', '_', ':', '/' and '*'"
            )
        if "***" in text:
            raise ValueError(f"image pattern {text!r} has '***'; use '*' (one path segment) or '**' (any depth)")
        if "/" not in text:
            raise ValueError(
                f"image pattern {text!r} names no registry; write 'registry/repository', e.g. 'docker.io/library/{text}'"
            )
        return cls(text)

    @property
    def is_exact(self) -> bool:
        return "*" not in self.text

    @property
    def precedence(self) -> tuple[int, int]:
        """Higher wins: exact patterns first, then the longest literal prefix."""
        if self.is_exact:
            return (1, len(self.text))
        return (0, self.text.index("*"))

    def matches(self, name: str) -> bool:
        return _compile(self.text).fullmatch(name) is not None

    def __str__(self) -> str:
        return self.text


@lru_cache(maxsize=1024)
def _compile(text: str) -> re.Pattern[str]:
    parts = []
    for token in _tokens(text):
        if token == _GLOBSTAR:
            parts.append(".*")
        elif token == _STAR:
            parts.append("[^/]*")
        else:
            parts.append(re.escape(token))
    return re.compile("".join(parts), re.DOTALL)


def _tokens(text: str) -> tuple[str, ...]:
    tokens: list[str] = []
    i = 0
    while i < len(text):
        if text.startswith("**", i):
            tokens.append(_GLOBSTAR)
            i += 2
        elif text[i] == "*":
            tokens.append(_STAR)
            i += 1
        else:
            tokens.append(text[i])
            i += 1
    return tuple(tokens)


def find_overlap(a: ImagePattern, b: ImagePattern) -> str | None:
    """An image name matched by both patterns, or None when no name can match both."""
    ta, tb = _tokens(a.text), _tokens(b.text)

    @lru_cache(maxsize=None)
    def witness(i: int, j: int) -> str | None:
        if i == len(ta) and j == len(tb):
            return ""
        x = ta[i] if i < len(ta) else None
        y = tb[j] if j < len(tb) else None
        x_wild, y_wild = x in (_STAR, _GLOBSTAR), y in (_STAR, _GLOBSTAR)
        if x_wild:
            found = witness(i + 1, j)  # the wildcard matches nothing
            if found is not None:
                return found
            if y is not None and not y_wild and (x == _GLOBSTAR or y != "/"):
                rest = witness(i, j + 1)  # the wildcard swallows b's literal
                if rest is not None:
                    return y + rest
        if y_wild:
            found = witness(i, j + 1)
            if found is not None:
                return found
            if x is not None and not x_wild and (y == _GLOBSTAR or x != "/"):
                rest = witness(i + 1, j)
                if rest is not None:
                    return x + rest
        if x is not None and y is not None and not x_wild and not y_wild and x == y:
            rest = witness(i + 1, j + 1)
            if rest is not None:
                return x + rest
        return None

    return witness(0, 0)
