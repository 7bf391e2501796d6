"""OCI value objects (descriptors, manifests) and the registry interface the verifiers use.

Everything here is data: the HTTP client that fills it lives in `registry/`. A `Manifest` is only
ever built from bytes whose digest was checked against the digest it was fetched by.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol, Sequence

from ._json import strict_json_loads as strict_json_loads  # re-exported: the one reader, older import path
from .errors import HostileArtifactError
from .reference import ImageReference, is_digest

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_EMPTY_CONFIG = "application/vnd.oci.empty.v1+json"
OCI_IMAGE_CONFIG = "application/vnd.oci.image.config.v1+json"
INDEX_MEDIA_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
IMAGE_MANIFEST_MEDIA_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
MANIFEST_MEDIA_TYPES = INDEX_MEDIA_TYPES | IMAGE_MANIFEST_MEDIA_TYPES

MAX_MANIFEST_BYTES = 4 * 1024 * 1024  # OCI distribution spec guidance for manifests
MAX_DESCRIPTORS = 1000  # layers/manifests in one manifest; real images have tens
MAX_ANNOTATIONS_BYTES = 64 * 1024  # annotations are metadata; a signature is a few KiB at most


@dataclass(frozen=True, kw_only=True)
class Descriptor:
    """An OCI content descriptor."""

    media_type: str
    digest: str
    size: int
    artifact_type: str | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)
    platform: Mapping[str, str] | None = None

    @classmethod
    def from_json(cls, raw: Any, *, where: str = "descriptor") -> Descriptor:
        if not isinstance(raw, dict):
            raise HostileArtifactError(f"{where} is not a JSON object")
        media_type, digest, size = raw.get("mediaType"), raw.get("digest"), raw.get("size")
        if not isinstance(media_type, str) or not media_type:
            raise HostileArtifactError(f"{where} has no mediaType")
        if not isinstance(digest, str) or not is_digest(digest):
            raise HostileArtifactError(f"{where} has an invalid digest {digest!r}")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise HostileArtifactError(f"{where} has an invalid size {size!r}")
        annotations = raw.get("annotations", {})
        if not isinstance(annotations, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()
        ):
            raise HostileArtifactError(f"{where} has annotations that are not a string map")
        artifact_type = raw.get("artifactType")
        if artifact_type is not None and not isinstance(artifact_type, str):
            raise HostileArtifactError(f"{where} has a non-string artifactType")
        platform = raw.get("platform")
        if platform is not None and not (
            isinstance(platform, dict) and all(isinstance(v, (str, list)) for v in platform.values())
        ):
            raise HostileArtifactError(f"{where} has an invalid platform")
        return cls(
            media_type=media_type,
            digest=digest,
            size=size,
            artifact_type=artifact_type,
            annotations=dict(annotations),
            platform=dict(platform) if platform else None,
        )


@dataclass(frozen=True, kw_only=True)
class Manifest:
    """A manifest or index as fetched: its exact bytes, its verified digest, and the parsed JSON."""

    digest: str
    media_type: str
    raw: bytes
    data: Mapping[str, Any]

    @classmethod
    def parse(cls, *, digest: str, raw: bytes, content_type: str | None) -> Manifest:
        """Parse manifest bytes whose digest the caller has already checked."""
        if len(raw) > MAX_MANIFEST_BYTES:
            raise HostileArtifactError(f"manifest {digest} is larger than {MAX_MANIFEST_BYTES} bytes")
        data = strict_json_loads(raw, what=f"manifest {digest}")
        if not isinstance(data, dict):
            raise HostileArtifactError(f"manifest {digest} is not a JSON object")
        media_type = data.get("mediaType") or content_type or ""
        # The content type is advisory; a declared mediaType inside the body must agree with it.
        declared = data.get("mediaType")
        if declared is not None and not isinstance(declared, str):
            raise HostileArtifactError(f"manifest {digest} has a non-string mediaType")
        if media_type not in MANIFEST_MEDIA_TYPES:
            raise HostileArtifactError(f"manifest {digest} has unsupported media type {media_type!r}")
        return cls(digest=digest, media_type=media_type, raw=raw, data=data)

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_MEDIA_TYPES

    @property
    def size(self) -> int:
        return len(self.raw)

    @property
    def descriptor(self) -> Descriptor:
        return Descriptor(media_type=self.media_type, digest=self.digest, size=self.size,
                          artifact_type=self.artifact_type)

    @property
    def artifact_type(self) -> str | None:
        value = self.data.get("artifactType")
        return value if isinstance(value, str) else None

    @property
    def config(self) -> Descriptor | None:
        raw = self.data.get("config")
        return None if raw is None else Descriptor.from_json(raw, where=f"config of {self.digest}")

    @property
    def layers(self) -> list[Descriptor]:
        return self._descriptor_list("layers")

    @property
    def manifests(self) -> list[Descriptor]:
        return self._descriptor_list("manifests")

    @property
    def subject(self) -> Descriptor | None:
        raw = self.data.get("subject")
        return None if raw is None else Descriptor.from_json(raw, where=f"subject of {self.digest}")

    @property
    def annotations(self) -> Mapping[str, str]:
        raw = self.data.get("annotations", {})
        if not isinstance(raw, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in raw.items()):
            raise HostileArtifactError(f"manifest {self.digest} has annotations that are not a string map")
        return raw

    def _descriptor_list(self, key: str) -> list[Descriptor]:
        raw = self.data.get(key) or []
        if not isinstance(raw, list):
            raise HostileArtifactError(f"{key} of manifest {self.digest} is not a list")
        if len(raw) > MAX_DESCRIPTORS:
            raise HostileArtifactError(f"manifest {self.digest} lists more than {MAX_DESCRIPTORS} {key}")
        return [Descriptor.from_json(item, where=f"{key}[{i}] of {self.digest}") for i, item in enumerate(raw)]


class Registry(Protocol):
    """What verifiers need from an OCI registry. Every method honours the client's deadline.

    Implementations raise `RegistryUnavailableError` for transport trouble, `ImageNotFoundError`
    when a tag or digest does not exist, and `HostileArtifactError` for oversized or mismatched
    content. Digests of manifests and blobs are always checked before anything is returned.
    """

    def resolve(self, ref: ImageReference) -> Manifest:
        """The manifest (or index) a reference points at; by digest when it has one, else by tag."""
        ...

    def get_manifest(self, ref: ImageReference, digest: str) -> Manifest:
        """A manifest of `ref`'s repository, fetched by digest."""
        ...

    def find_tag(self, ref: ImageReference, tag: str) -> Manifest | None:
        """The manifest a tag of `ref`'s repository points at, or None when the tag does not exist."""
        ...

    def get_blob(self, ref: ImageReference, descriptor: Descriptor, *, max_bytes: int) -> bytes:
        """A blob of `ref`'s repository, by descriptor; refuses more than `max_bytes`."""
        ...

    def referrers(self, ref: ImageReference, digest: str, *, artifact_type: str | None = None) -> Sequence[Descriptor]:
        """Referrers of `digest`: the referrers API, falling back to the `sha256-<hex>` tag schema.

        Both sources are read and de-duplicated where the API answers, because a signature may be
        visible through only one of them. `artifact_type` filters client-side as well.
        """
        ...
