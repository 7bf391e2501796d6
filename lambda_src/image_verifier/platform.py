"""Platforms (`linux/arm64`) and choosing a platform's manifest from a multi-arch index."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

from .errors import VerificationError
from .oci import IMAGE_MANIFEST_MEDIA_TYPES, Descriptor, Manifest

_PLATFORM = re.compile(r"([a-z0-9]+)/([a-z0-9_]+)(?:/([a-z0-9]+))?")


@dataclass(frozen=True, kw_only=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None

    @classmethod
    def parse(cls, text: str) -> Platform:
        match = _PLATFORM.fullmatch(text)
        if not match:
            raise ValueError(f"invalid platform {text!r}; use os/architecture[/variant], e.g. linux/arm64")
        return cls(os=match[1], architecture=match[2], variant=match[3])

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


def select_platform(index: Manifest, platform: Platform) -> Descriptor:
    """The one image manifest of `index` for `platform`; anything less certain is a rejection.

    Every entry the runtime might pull for the platform counts, whatever its media type: an entry
    without a variant and one with the requested variant are the same platform to containerd
    (arm64 is arm64/v8), and a nested index can stand for it too. Unless all of them are one
    image manifest, which manifest runs would not be decided by the signature that is checked.
    """
    candidates = [d for d in index.manifests if _may_run_as(d.platform or {}, platform)]
    if not candidates:
        raise VerificationError(f"the index {index.digest} has no manifest for platform {platform}")
    for descriptor in candidates:
        if descriptor.media_type not in IMAGE_MANIFEST_MEDIA_TYPES:
            raise VerificationError(
                f"the index {index.digest} lists {descriptor.digest} for platform {platform}, which is not an image "
                f"manifest ({descriptor.media_type})"
            )
    if len({d.digest for d in candidates}) > 1:
        raise VerificationError(f"the index {index.digest} lists several different manifests for platform {platform}")
    return candidates[0]


def _may_run_as(listed: Mapping[str, Any], platform: Platform) -> bool:
    if listed.get("os") != platform.os or listed.get("architecture") != platform.architecture:
        return False
    variant = listed.get("variant")
    return variant is None or platform.variant is None or variant == platform.variant
