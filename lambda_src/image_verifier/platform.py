"""Platforms (`linux/arm64`) and choosing a platform's manifest from a multi-arch index."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import VerificationError
from .oci import IMAGE_MANIFEST_MEDIA_TYPES, Descriptor, Manifest

_PLATFORM = re.compile(r"^([a-z0-9]+)/([a-z0-9_]+)(?:/([a-z0-9]+))?$")


@dataclass(frozen=True, kw_only=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None

    @classmethod
    def parse(cls, text: str) -> Platform:
        match = _PLATFORM.match(text)
        if not match:
            raise ValueError(f"invalid platform {text!r}; use os/architecture[/variant], e.g. linux/arm64")
        return cls(os=match[1], architecture=match[2], variant=match[3])

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


def select_platform(index: Manifest, platform: Platform) -> Descriptor:
    """The one image manifest of `index` for `platform`; an index without it is a rejection."""
    candidates = []
    for descriptor in index.manifests:
        p = descriptor.platform or {}
        if descriptor.media_type not in IMAGE_MANIFEST_MEDIA_TYPES:
            continue
        if p.get("os") != platform.os or p.get("architecture") != platform.architecture:
            continue
        if platform.variant and p.get("variant") not in (None, platform.variant):
            continue
        candidates.append(descriptor)
    # arm64 manifests usually say variant v8; prefer an exact variant match, then the unqualified one
    exact = [d for d in candidates if (d.platform or {}).get("variant") == platform.variant]
    chosen = exact or candidates
    if not chosen:
        raise VerificationError(f"the index {index.digest} has no manifest for platform {platform}")
    if len({d.digest for d in chosen}) > 1:
        raise VerificationError(f"the index {index.digest} lists several different manifests for platform {platform}")
    return chosen[0]
