"""Build small, real OCI images and push them through the distribution API with plain http.client.

This deliberately shares no code with `image_verifier.registry`: the client under test is checked
against an independent implementation of the push side. Everything is deterministic (fixed tar
and gzip timestamps), so the same inputs give the same digests.

    image = push_image(registry, unique_repository(), "v1", layer_bytes=b"hello")
    index = push_index(registry, image.repository, "multi", [amd64, arm64])
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import io
import json
import tarfile
import uuid
from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol, Sequence
from urllib.parse import urlsplit

from image_verifier.oci import OCI_EMPTY_CONFIG, OCI_IMAGE_CONFIG, OCI_INDEX, OCI_MANIFEST
from image_verifier.reference import ImageReference

OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
EMPTY_JSON = b"{}"
HTTP_TIMEOUT_SECONDS = 10.0  # a local registry answers in milliseconds; this only stops a hang


class HasHost(Protocol):
    host: str


@dataclass(frozen=True, kw_only=True)
class PushedImage:
    """What a push left in the registry. `ref` carries the digest (and the tag when there is one)."""

    ref: ImageReference
    digest: str
    manifest_bytes: bytes
    size: int
    media_type: str
    platform: Mapping[str, str] | None = None

    @property
    def repository(self) -> str:
        return self.ref.repository

    @property
    def tag_ref(self) -> ImageReference:
        """The same image by tag only (no digest), for tag resolution."""
        return ImageReference(registry=self.ref.registry, repository=self.ref.repository, tag=self.ref.tag)

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        """The OCI descriptor JSON of this manifest (for `subject`, or an index entry)."""
        result: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.platform:
            result["platform"] = dict(self.platform)
        result.update(extra)
        return result


@dataclass(frozen=True, kw_only=True)
class Blob:
    data: bytes
    media_type: str
    annotations: Mapping[str, str] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        return sha256_digest(self.data)

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        result: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": len(self.data)}
        if self.annotations:
            result["annotations"] = dict(self.annotations)
        result.update(extra)
        return result


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def unique_repository(prefix: str = "test") -> str:
    """A repository name no other test uses (the `registry` fixture is shared by the session)."""
    return f"{prefix}/{uuid.uuid4().hex[:12]}"


def make_layer(files: Mapping[str, bytes]) -> tuple[bytes, str]:
    """A gzipped tar layer holding `files`, and its diff_id (sha256 of the uncompressed tar)."""
    tar_buffer = io.BytesIO()
    with tarfile.open(fileobj=tar_buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(content), 0, 0o644
            tar.addfile(info, io.BytesIO(content))
    raw_tar = tar_buffer.getvalue()
    return gzip.compress(raw_tar, mtime=0), sha256_digest(raw_tar)


def manifest_json(
    *,
    config: Blob,
    layers: Sequence[Blob],
    subject: Mapping[str, Any] | None = None,
    artifact_type: str | None = None,
    annotations: Mapping[str, str] | None = None,
) -> bytes:
    """An OCI image manifest; with `subject`/`artifact_type` it is an OCI 1.1 artifact (a signature)."""
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": [layer.descriptor() for layer in layers],
    }
    if artifact_type:
        manifest["artifactType"] = artifact_type
    if subject:
        manifest["subject"] = dict(subject)
    if annotations:
        manifest["annotations"] = dict(annotations)
    return canonical_json(manifest)


def index_json(manifests: Sequence[Mapping[str, Any]], *, annotations: Mapping[str, str] | None = None) -> bytes:
    index: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [dict(m) for m in manifests]}
    if annotations:
        index["annotations"] = dict(annotations)
    return canonical_json(index)


def build_image(*, layer_bytes: bytes = b"hello", platform: str = "linux/amd64") -> tuple[list[Blob], bytes]:
    """The blobs (config, layer) and manifest bytes of a one-layer OCI image."""
    layer, diff_id = make_layer({"hello.txt": layer_bytes})
    os_name, arch = platform.split("/", 1)
    config = {
        "architecture": arch,
        "os": os_name,
        "config": {"Cmd": ["/hello"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }
    config_blob = Blob(data=canonical_json(config), media_type=OCI_IMAGE_CONFIG)
    layer_blob = Blob(data=layer, media_type=OCI_LAYER_GZIP)
    return [config_blob, layer_blob], manifest_json(config=config_blob, layers=[layer_blob])


def empty_config() -> Blob:
    """The OCI empty descriptor's blob `{}` that artifacts (signatures) use as config."""
    return Blob(data=EMPTY_JSON, media_type=OCI_EMPTY_CONFIG)


def push_image(
    registry: HasHost, repo: str, tag: str | None = None, *, layer_bytes: bytes = b"hello",
    platform: str = "linux/amd64",
) -> PushedImage:
    """Push a real one-layer OCI image (tar.gz layer, config with diff_ids, manifest)."""
    blobs, manifest = build_image(layer_bytes=layer_bytes, platform=platform)
    for blob in blobs:
        push_blob(registry, repo, blob.data)
    os_name, arch = platform.split("/", 1)
    pushed = push_manifest(registry, repo, tag or sha256_digest(manifest), manifest, OCI_MANIFEST)
    return PushedImage(
        ref=pushed.ref, digest=pushed.digest, manifest_bytes=manifest, size=len(manifest),
        media_type=OCI_MANIFEST, platform={"os": os_name, "architecture": arch},
    )


def push_index(registry: HasHost, repo: str, tag: str | None, images: Sequence[PushedImage]) -> PushedImage:
    """Push a multi-arch OCI index over already pushed images (each with its platform)."""
    raw = index_json([image.descriptor() for image in images])
    return push_manifest(registry, repo, tag or sha256_digest(raw), raw, OCI_INDEX)


def push_blob(registry: HasHost, repo: str, data: bytes) -> str:
    """Monolithic upload (POST, then PUT with the digest); returns the digest."""
    digest = sha256_digest(data)
    status, headers, body = _http(registry.host, "POST", f"/v2/{repo}/blobs/uploads/")
    _expect(status, 202, "start a blob upload", body)
    location = urlsplit(headers["location"])
    query = f"{location.query}&" if location.query else ""
    status, _, body = _http(
        registry.host, "PUT", f"{location.path}?{query}digest={digest}", data,
        {"Content-Type": "application/octet-stream"},
    )
    _expect(status, 201, f"finish the upload of {digest}", body)
    return digest


def push_manifest(registry: HasHost, repo: str, reference: str, raw: bytes, media_type: str) -> PushedImage:
    """PUT a manifest or index under a tag or its digest. Raises with the registry's answer on refusal."""
    status, _, body = _http(registry.host, "PUT", f"/v2/{repo}/manifests/{reference}", raw, {"Content-Type": media_type})
    _expect(status, 201, f"push manifest {reference} to {repo}", body)
    digest = sha256_digest(raw)
    tag = None if reference.startswith("sha256:") else reference
    ref = ImageReference(registry=registry.host, repository=repo, tag=tag, digest=digest)
    return PushedImage(ref=ref, digest=digest, manifest_bytes=raw, size=len(raw), media_type=media_type)


def delete_manifest(registry: HasHost, repo: str, digest: str) -> None:
    status, _, body = _http(registry.host, "DELETE", f"/v2/{repo}/manifests/{digest}")
    _expect(status, 202, f"delete manifest {digest}", body)


class PushRefused(AssertionError):
    """The registry refused a push; `status` and `body` say why."""

    def __init__(self, what: str, status: int, body: bytes) -> None:
        self.status, self.body = status, body
        super().__init__(f"registry refused to {what}: HTTP {status} {body[:500]!r}")


def _expect(status: int, wanted: int, what: str, body: bytes) -> None:
    if status != wanted:
        raise PushRefused(what, status, body)


def _http(
    host: str, method: str, path: str, body: bytes | None = None, headers: Mapping[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection(host, timeout=HTTP_TIMEOUT_SECONDS)
    try:
        connection.request(method, path, body=body, headers=dict(headers or {}))
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()
