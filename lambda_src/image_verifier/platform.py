"""Platforms, and the platform judge: which entries of an index the runtime could run.

ECS pulls through containerd, which does not compare platform strings: it normalizes them
(`github.com/containerd/platforms` `normalizeOS`/`normalizeArch`: `Linux`, `x86_64`, `aarch64`,
`arm64/v8`, an empty `os` meaning the host's), accepts compatible platforms (`Only`: 386 on an
amd64 host, 32-bit ARM on arm64, lower variants), sorts the matches best first, keeps index order
among equals, and can choose entries that declare no platform at all (their config decides).
See shared/reference/runtime-semantics.md §2.

The judge therefore works with a *set*: every entry that some containerd version, on some host of
the task's platform, could select. It over-approximates where the runtime depends on things we
cannot see (the host's amd64 level or arm64 revision, Windows OS versions, OS features, the config
of an entry without a platform); over-approximating only ever turns an admission into a rejection.

- `select_platform(index, platform)` is the entry containerd prefers: what the runtime most
  likely runs, reported in the verdict.
- `platform_conflict(index, platform, digest)` says why a signature on the image manifest `digest`
  alone does not decide what runs: every entry the runtime could pick must be that same image
  manifest. A signature on the index itself covers all entries and needs no such judgement.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import VerificationError
from .oci import IMAGE_MANIFEST_MEDIA_TYPES, Descriptor, Manifest

# containerd's specifier components (platforms.go `specifierRe`); ECS writes `LINUX/X86_64`.
_PLATFORM = re.compile(r"([A-Za-z0-9_-]+)/([A-Za-z0-9_.-]+)(?:/([A-Za-z0-9_.-]+))?")
DEFAULT_OS = "linux"  # containerd reads an empty `os` as the host's OS; ECS hosts run Linux
MAX_CONFLICTS_NAMED = 8  # a reason names this many other entries, then counts the rest


def go_lower(text: str) -> str:
    """Go's `strings.ToLower`: per-rune simple lower-casing (U+0130 becomes a plain `i`)."""
    return "".join("i" if c == "\u0130" else c.lower() if len(c.lower()) == 1 else c for c in text)


def normalize_os(os_name: str) -> str:
    """containerd's `normalizeOS`: lower case, empty means the host's OS, `macos` is `darwin`."""
    if not os_name:
        return DEFAULT_OS
    lowered = go_lower(os_name)
    return "darwin" if lowered == "macos" else lowered


def normalize_arch(architecture: str, variant: str) -> tuple[str, str]:
    """containerd's `normalizeArch`, the union of 1.6 and later: `x86_64` is amd64, `aarch64` is
    arm64, `arm64/v8` is arm64, `armhf` is arm/v7, `armel` is arm/v6, plain `arm` is arm/v7."""
    arch, var = go_lower(architecture), go_lower(variant)
    if arch == "i386":
        return "386", ""
    if arch in ("x86_64", "x86-64", "amd64"):
        return "amd64", "" if var == "v1" else var
    if arch in ("aarch64", "arm64"):
        return "arm64", "" if var in ("8", "v8") else var
    if arch == "armhf":
        return "arm", "v7"
    if arch == "armel":
        return "arm", "v6"
    if arch == "arm":
        return "arm", {"": "v7", "7": "v7", "5": "v5", "6": "v6", "8": "v8"}.get(var, var)
    return arch, var


@dataclass(frozen=True, kw_only=True)
class Platform:
    """A normalized platform: `Platform(os="LINUX", architecture="X86_64")` is linux/amd64."""

    os: str
    architecture: str
    variant: str | None = None

    def __post_init__(self) -> None:
        # One spelling per platform, so equality, cache keys and verdicts agree with containerd.
        arch, variant = normalize_arch(self.architecture, self.variant or "")
        object.__setattr__(self, "os", normalize_os(self.os))
        object.__setattr__(self, "architecture", arch)
        object.__setattr__(self, "variant", None if not variant or (arch, variant) == ("arm", "v7") else variant)

    @classmethod
    def parse(cls, text: str) -> Platform:
        """`os/architecture[/variant]` in any spelling containerd or ECS uses: `linux/amd64`,
        `LINUX/X86_64`, `linux/aarch64`, `linux/arm64/v8`."""
        match = _PLATFORM.fullmatch(text)
        if not match:
            raise ValueError(f"invalid platform {text!r}; use os/architecture[/variant], e.g. linux/arm64")
        return cls(os=match[1], architecture=match[2], variant=match[3])

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


def runnable_entries(index: Manifest, platform: Platform) -> list[Descriptor]:
    """Every entry of `index` the runtime could select for `platform`, best match first.

    Entries whose platform matches in containerd's preference order (stable: index order among
    equals), then entries without a platform, which containerd keeps as a last resort.
    """
    preference = _preference(platform)
    ranked: list[tuple[int, int, Descriptor]] = []
    for position, descriptor in enumerate(index.manifests):
        rank = _rank(descriptor.platform, platform, preference, where=f"{descriptor.digest} in {index.digest}")
        if rank is not None:
            ranked.append((rank, position, descriptor))
    return [descriptor for _, _, descriptor in sorted(ranked, key=lambda r: (r[0], r[1]))]


def select_platform(index: Manifest, platform: Platform) -> Descriptor:
    """The entry of `index` containerd prefers for `platform` (what most likely runs).

    Raises VerificationError when no entry could run on the platform, or when the preferred entry
    is not an image manifest (a nested index would be resolved again by the runtime).
    """
    entries = runnable_entries(index, platform)
    if not entries:
        raise VerificationError(f"the index {index.digest} has no manifest for platform {platform}")
    chosen = entries[0]
    if chosen.media_type not in IMAGE_MANIFEST_MEDIA_TYPES:
        raise VerificationError(
            f"the index {index.digest} lists {chosen.digest} for platform {platform}, which is not an image "
            f"manifest ({chosen.media_type})"
        )
    return chosen


def platform_conflict(index: Manifest, platform: Platform, digest: str) -> str | None:
    """Why a signature on the image manifest `digest` alone does not decide what runs, or None.

    None only when every entry the runtime could select for `platform` is that image manifest.
    """
    others = [d for d in runnable_entries(index, platform)
              if d.digest != digest or d.media_type not in IMAGE_MANIFEST_MEDIA_TYPES]
    if not others:
        return None
    named = ", ".join(_describe(d) for d in others[:MAX_CONFLICTS_NAMED])
    more = f" and {len(others) - MAX_CONFLICTS_NAMED} more" if len(others) > MAX_CONFLICTS_NAMED else ""
    return (
        f"the index {index.digest} lists several different manifests for platform {platform}: the runtime could "
        f"pick {named}{more} instead of {digest}; unless the index itself is signed, a signature on one entry does "
        f"not decide what runs (sign the index, or list one manifest per platform)"
    )


def _describe(descriptor: Descriptor) -> str:
    kind = "" if descriptor.media_type in IMAGE_MANIFEST_MEDIA_TYPES else f", not an image manifest: {descriptor.media_type}"
    return f"{descriptor.digest} ({_as_written(descriptor.platform)}{kind})"


def _as_written(listed: Mapping[str, Any] | None) -> str:
    if listed is None:
        return "no platform"
    return "platform " + ", ".join(f"{k}={v!r}" for k, v in listed.items()) if listed else "empty platform"


def _preference(platform: Platform) -> list[tuple[str, frozenset[str] | None]]:
    """containerd's `platformVector`: (architecture, variants) best first; None means any variant.

    The host's amd64 level and arm64 revision are not known (ECS names only X86_64 or ARM64, and
    newer containerd reads them from the CPU), so every variant of the task's architecture counts,
    ranked after the plain one that containerd 1.6 prefers.
    """
    if platform.architecture == "amd64":
        return [("amd64", frozenset({""})), ("amd64", None), ("386", None)]
    if platform.architecture == "arm64":
        return [("arm64", frozenset({""})), ("arm64", None),
                *(("arm", frozenset({f"v{n}"})) for n in range(8, 4, -1)), ("arm", None)]
    if platform.architecture == "arm":
        level = int(platform.variant[1:]) if platform.variant and re.fullmatch(r"v[5-8]", platform.variant) else 7
        return [("arm", frozenset({f"v{n}"})) for n in range(level, 4, -1)]
    return [(platform.architecture, None)]


def _rank(listed: Mapping[str, Any] | None, platform: Platform,
          preference: Sequence[tuple[str, frozenset[str] | None]], *, where: str) -> int | None:
    """The position of an entry's platform in the preference order, or None when it cannot run."""
    if listed is None or not listed:
        return len(preference)  # no platform: containerd keeps it last, and its config decides
    fields = {}
    for name in ("os", "architecture", "variant"):
        value = listed.get(name, "")
        if not isinstance(value, str):
            raise VerificationError(f"the platform of {where} has a non-string {name}: {value!r}")
        fields[name] = value
    if fields["os"] and normalize_os(fields["os"]) != platform.os:
        return None  # an empty os is the host's, and the host runs the task's OS
    arch, variant = normalize_arch(fields["architecture"], fields["variant"])
    for rank, (wanted_arch, variants) in enumerate(preference):
        if arch == wanted_arch and (variants is None or variant in variants):
            return rank
    return None
