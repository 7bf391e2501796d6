"""`RegistrySession`: one decision's view of the registry, bound to its deadline.

It implements `image_verifier.oci.Registry` (read) and `RegistryWriter` (what `sign` needs).
Every manifest and blob is digest-checked and size-bounded before it is returned; a tag is only
ever read to learn a digest (`resolve`) or to look up a well-known tag (`find_tag`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Protocol, Sequence
from urllib.parse import quote

from ..deadline import Deadline
from ..errors import (
    HostileArtifactError,
    ImageNotFoundError,
    InvalidReferenceError,
    RegistryRefusedError,
    RegistryUnavailableError,
)
from ..oci import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    MAX_MANIFEST_BYTES,
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
    Manifest,
)
from ..reference import ImageReference, is_digest
from ._counter import RequestCounter
from ._digest import compute_digest
from ._transport import MAX_ERROR_BODY_BYTES, Response
from .referrers import discover_referrers
from .urls import RegistryUrl

if TYPE_CHECKING:
    from .client import RegistryClient

MANIFEST_ACCEPT = ", ".join((OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST))
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


class RegistryWriter(Protocol):
    """What the CLI's `sign` command needs to write a signature."""

    def put_blob(self, ref: ImageReference, data: bytes, *, media_type: str = ...) -> Descriptor: ...

    def put_manifest(self, ref: ImageReference, reference: str, raw: bytes, media_type: str) -> str: ...


class RegistrySession(RequestCounter):
    """Registry access for one decision. Safe to share between the threads of that decision.

    Counters (`request_count`, `token_request_count`, `request_log`) cover this session only;
    the client's cover every session.
    """

    def __init__(self, client: RegistryClient, deadline: Deadline) -> None:
        super().__init__()
        self._client = client
        self.deadline = deadline

    # -- Registry -----------------------------------------------------------------------------------

    def resolve(self, ref: ImageReference) -> Manifest:
        """The manifest `ref` names: by its digest when pinned, else by its tag (one request either way).

        With a pinned digest the verifier calls this beside the signature lookups, not before them
        (`Evidence.fetching`): nothing here depends on the manifest being read first.
        """
        if ref.digest:
            return self.get_manifest(ref, ref.digest)
        if not ref.tag:
            raise InvalidReferenceError(f"{ref} has neither a tag nor a digest")
        manifest = self._manifest(ref, _checked_tag(ref.tag), expected=None)
        if manifest is None:
            raise ImageNotFoundError(f"tag {ref.tag!r} does not exist in {ref.name}; check the image reference")
        return manifest

    def get_manifest(self, ref: ImageReference, digest: str) -> Manifest:
        manifest = self._manifest(ref, _checked_digest(digest), expected=digest)
        if manifest is None:
            raise ImageNotFoundError(f"manifest {digest} does not exist in {ref.name}")
        return manifest

    def find_tag(self, ref: ImageReference, tag: str) -> Manifest | None:
        return self._manifest(ref, _checked_tag(tag), expected=None)

    def get_blob(self, ref: ImageReference, descriptor: Descriptor, *, max_bytes: int) -> bytes:
        digest = _checked_digest(descriptor.digest)
        if descriptor.size > max_bytes:
            raise HostileArtifactError(f"blob {digest} declares {descriptor.size} bytes, more than the limit of {max_bytes}")
        what = f"blob {digest} of {ref.name}"
        response = self.request("GET", ref, f"blobs/{digest}", max_bytes=descriptor.size, what=what)
        if response.status == 404:
            raise ImageNotFoundError(f"{what} does not exist (the artifact that lists it is incomplete)")
        self.raise_for_status(response, ref, what)
        if len(response.body) != descriptor.size:
            raise HostileArtifactError(f"{what} is {len(response.body)} bytes, but its descriptor says {descriptor.size}")
        _check_digest(response.body, digest, what)
        return response.body

    def referrers(self, ref: ImageReference, digest: str, *, artifact_type: str | None = None) -> Sequence[Descriptor]:
        return discover_referrers(self, ref, _checked_digest(digest), artifact_type=artifact_type,
                                  memory=self._client.referrers_api)

    # -- RegistryWriter -----------------------------------------------------------------------------

    def put_blob(self, ref: ImageReference, data: bytes, *, media_type: str = "application/octet-stream") -> Descriptor:
        """Upload a blob monolithically (POST, then PUT with the digest); skipped when HEAD finds it."""
        digest = compute_digest(data)
        descriptor = Descriptor(media_type=media_type, digest=digest, size=len(data))
        what = f"blob {digest} of {ref.name}"
        head = self.request("HEAD", ref, f"blobs/{digest}", max_bytes=0, what=what, push=True)
        if head.status == 200:
            return descriptor
        started = self.request("POST", ref, "blobs/uploads/", max_bytes=MAX_ERROR_BODY_BYTES, what=f"an upload to {ref.name}", push=True)
        if started.status != 202 or not started.header("Location"):
            self.raise_for_status(started, ref, f"starting an upload to {ref.name}", expected=202)
            raise RegistryUnavailableError(f"{ref.api_host} started an upload to {ref.name} without a Location")
        location = self._client.parse_url(started.header("Location") or "", base=started.url,
                                          what=f"the upload Location for {what}").url
        url = f"{location}{'&' if '?' in location else '?'}digest={quote(digest)}"
        done = self.request("PUT", ref, url=url, body=data, content_type="application/octet-stream",
                            max_bytes=MAX_ERROR_BODY_BYTES, what=what, push=True)
        self.raise_for_status(done, ref, f"uploading {what}", expected=201)
        return descriptor

    def put_manifest(self, ref: ImageReference, reference: str, raw: bytes, media_type: str) -> str:
        """PUT a manifest under a tag or its own digest; returns its digest."""
        digest = compute_digest(raw)
        if is_digest(reference) and reference != compute_digest(raw, reference.split(":", 1)[0]):
            raise ValueError(f"manifest bytes have digest {digest}, not the reference {reference}")
        if len(raw) > MAX_MANIFEST_BYTES:
            raise HostileArtifactError(f"manifest is {len(raw)} bytes, more than the limit of {MAX_MANIFEST_BYTES}")
        target = reference if is_digest(reference) else _checked_tag(reference)
        what = f"manifest {target} of {ref.name}"
        response = self.request("PUT", ref, f"manifests/{target}", body=raw, content_type=media_type,
                                max_bytes=MAX_ERROR_BODY_BYTES, what=what, push=True)
        self.raise_for_status(response, ref, f"pushing {what}", expected=201)
        stored = response.header("Docker-Content-Digest")
        if stored and stored.startswith("sha256:") and stored != digest:
            raise HostileArtifactError(f"{ref.api_host} stored {what} as {stored}, not as the pushed {digest}")
        return digest

    # -- shared plumbing (also used by referrers.py) -------------------------------------------------

    def base_url(self, ref: ImageReference) -> str:
        return self._client.base_url(ref.api_host)

    def parse_url(self, raw: str, *, base: str | None = None, what: str, same_origin: bool = False) -> RegistryUrl:
        """The client's one URL parser (urls.py), for URLs a registry hands back (Link, Location)."""
        return self._client.parse_url(raw, base=base, what=what, same_origin=same_origin)

    def request(
        self, method: str, ref: ImageReference, path: str = "", *, url: str | None = None, max_bytes: int,
        what: str, accept: str | None = None, body: bytes | None = None, content_type: str | None = None,
        push: bool = False,
    ) -> Response:
        headers = {k: v for k, v in (("Accept", accept), ("Content-Type", content_type)) if v}
        target = url or f"{self.base_url(ref)}/v2/{ref.repository}/{path}"
        return self._client.send(self, method, target, host=ref.api_host, repository=ref.repository, push=push,
                                 headers=headers, body=body, max_bytes=max_bytes, what=what)

    def raise_for_status(self, response: Response, ref: ImageReference, what: str, *, expected: int | None = None) -> None:
        """Map a non-success status to our error tree: 401/403 -> refused, 404 -> not found, anything else
        -> unavailable (429/503 were already retried by the transport)."""
        status = response.status
        if (expected is None and 200 <= status < 300) or status == expected:
            return
        if status in (401, 403):
            raise RegistryRefusedError(
                f"{ref.api_host} refused {what} ({response.error_text()}): {_permission_hint(ref, status)}"
            )
        if status == 404:
            raise ImageNotFoundError(f"{what} not found ({response.error_text()})")
        raise RegistryUnavailableError(f"{ref.api_host} failed {what} ({response.error_text()})")

    def _manifest(self, ref: ImageReference, reference: str, *, expected: str | None) -> Manifest | None:
        what = f"manifest {reference} of {ref.name}"
        response = self.request("GET", ref, f"manifests/{reference}", accept=MANIFEST_ACCEPT,
                                max_bytes=MAX_MANIFEST_BYTES, what=what)
        if response.status == 404:
            return None
        self.raise_for_status(response, ref, f"reading {what}")
        if expected is not None:
            _check_digest(response.body, expected, what)
            digest = expected
        else:
            digest = compute_digest(response.body)
            claimed = response.header("Docker-Content-Digest")
            if claimed and is_digest(claimed):
                # Never trusted alone, but a registry that misstates it is not to be believed at all.
                _check_digest(response.body, claimed, f"{what} (Docker-Content-Digest)")
        content_type = (response.header("Content-Type") or "").split(";", 1)[0].strip() or None
        return Manifest.parse(digest=digest, raw=response.body, content_type=content_type)


def _check_digest(data: bytes, digest: str, what: str) -> None:
    actual = compute_digest(data, digest.split(":", 1)[0])
    if actual != digest:
        raise HostileArtifactError(f"{what}: the registry returned content with digest {actual}, not {digest}")


def _checked_digest(digest: str) -> str:
    if not is_digest(digest):
        raise InvalidReferenceError(f"invalid digest {digest!r}: expected sha256:<64 lower-case hex>")
    return digest


def _checked_tag(tag: str) -> str:
    if not _TAG_RE.match(tag):
        raise InvalidReferenceError(f"invalid tag {tag!r}: up to 128 letters, digits, '_', '.', '-'")
    return tag


def _permission_hint(ref: ImageReference, status: int) -> str:
    from .auth import parse_ecr_host

    if parse_ecr_host(ref.api_host) is not None:
        return (f"the verifier's role needs ecr:BatchGetImage and ecr:GetDownloadUrlForLayer on {ref.repository} "
                "(and ecr:GetAuthorizationToken); for cross-account pulls the repository policy must allow it too")
    if status == 401:
        return f"no valid credential for {ref.api_host}; configure credentials for this registry"
    return f"the credential for {ref.api_host} lacks pull access to {ref.repository}"
