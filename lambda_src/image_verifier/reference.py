"""Image references: parse `registry/repository[:tag][@digest]` the way Docker normalizes them.

`ImageReference.parse("nginx")` is `docker.io/library/nginx:latest`; a reference that carries a
digest is always verified by that digest, and its tag (if any) is informational only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import InvalidReferenceError

DEFAULT_REGISTRY = "docker.io"
# Docker Hub's API host differs from the name people write.
_REGISTRY_API_HOSTS = {"docker.io": "registry-1.docker.io"}
MAX_REFERENCE_LENGTH = 2048  # well above any real reference; bounds the regexes below

# Always used with fullmatch: `$` would also match before a trailing newline.
_DIGEST_RE = re.compile(r"sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128}")
_TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_COMPONENT_RE = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_HOST_RE = re.compile(r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?|\[[0-9a-fA-F:]+\](?::[0-9]+)?")


def is_digest(value: str) -> bool:
    """True when `value` is a canonical `sha256:`/`sha512:` digest in lower-case hex."""
    return bool(_DIGEST_RE.fullmatch(value))


def _looks_like_registry(component: str) -> bool:
    return "." in component or ":" in component or component == "localhost" or component.startswith("[")


@dataclass(frozen=True, kw_only=True)
class ImageReference:
    """A parsed image reference. `repository` never includes the registry."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @classmethod
    def parse(cls, raw: str) -> ImageReference:
        if not isinstance(raw, str) or not raw or len(raw) > MAX_REFERENCE_LENGTH:
            raise InvalidReferenceError(f"invalid image reference {raw!r}: expected registry/repository[:tag][@digest]")
        if raw != raw.strip():
            raise InvalidReferenceError(f"invalid image reference {raw!r}: remove the surrounding white space")
        name, digest = raw, None
        if "@" in raw:
            name, digest = raw.split("@", 1)
            if not is_digest(digest):
                raise InvalidReferenceError(
                    f"invalid digest in {raw!r}: expected sha256:<64 lower-case hex> or sha512:<128 lower-case hex>"
                )
        tag = None
        last_slash = name.rfind("/")
        colon = name.rfind(":")
        if colon > last_slash:
            name, tag = name[:colon], name[colon + 1 :]
            if not _TAG_RE.fullmatch(tag):
                raise InvalidReferenceError(f"invalid tag {tag!r} in {raw!r}")
        parts = name.split("/")
        if len(parts) > 1 and _looks_like_registry(parts[0]):
            registry, path = parts[0], parts[1:]
            if not _HOST_RE.fullmatch(registry):
                raise InvalidReferenceError(f"invalid registry host {registry!r} in {raw!r}")
            registry = registry.lower()  # host names are case-insensitive: one spelling, one policy rule
        else:
            registry, path = DEFAULT_REGISTRY, parts
        if registry == "index.docker.io":
            registry = DEFAULT_REGISTRY
        if registry == DEFAULT_REGISTRY and len(path) == 1:
            path = ["library", *path]
        for component in path:
            if not _COMPONENT_RE.fullmatch(component):
                raise InvalidReferenceError(
                    f"invalid repository component {component!r} in {raw!r}: use lower-case letters, digits and . _ -"
                )
        if tag is None and digest is None:
            tag = "latest"
        return cls(registry=registry, repository="/".join(path), tag=tag, digest=digest)

    @property
    def name(self) -> str:
        """`registry/repository`, the string that policy image patterns match."""
        return f"{self.registry}/{self.repository}"

    @property
    def api_host(self) -> str:
        """The host that serves the distribution API for this registry."""
        return _REGISTRY_API_HOSTS.get(self.registry, self.registry)

    def with_digest(self, digest: str) -> ImageReference:
        return ImageReference(registry=self.registry, repository=self.repository, tag=self.tag, digest=digest)

    def __str__(self) -> str:
        text = self.name
        if self.tag and not self.digest:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text
