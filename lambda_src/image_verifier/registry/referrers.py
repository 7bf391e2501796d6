"""Signature discovery: the OCI referrers API and the referrers tag schema, unioned.

Both are read: a signature pushed by a client that used the tag schema stays visible after the
registry gains the API, and vice versa. A 404 from the API means "no API here" (distribution 2.8).
Descriptors are returned as the registry listed them; the caller must fetch each manifest and check
its `subject`, `artifactType` and layers itself (index entries are unsigned hints).

The two lookups do not depend on each other, so they go out together (one round trip, not two).
Whether a registry has the API is remembered per registry for a while (`ReferrersApiMemory`, kept
by the long-lived client, so a warm Lambda asks once): a registry known to answer 404 is asked for
the tag only. Forgetting after `API_MEMORY_SECONDS` means a registry that gains the API is read
through it again; until then a signature pushed only through the API is not seen, which rejects
(fails closed), never admits.
"""

from __future__ import annotations

import re
import threading
import time
from typing import TYPE_CHECKING, Callable
from urllib.parse import quote

from ..errors import HostileArtifactError
from ..oci import MAX_MANIFEST_BYTES, OCI_EMPTY_CONFIG, OCI_INDEX, Descriptor, Manifest
from ..reference import ImageReference
from ._digest import compute_digest

if TYPE_CHECKING:
    from .session import RegistrySession

MAX_REFERRERS = 256  # matching referrers of one digest; notation caps signature attempts at 100
MAX_REFERRER_PAGES = 16  # referrers API pages; more is a pagination loop or an attack
_NO_API_STATUSES = frozenset({404, 405, 501})  # spec: 404 means no API; 405/501 say the same in other words
API_MEMORY_SECONDS = 3600.0  # how long "this registry has no referrers API" is believed
MAX_REMEMBERED_REGISTRIES = 1024  # bounded so a long-lived client stays small
_NEXT_LINK_RE = re.compile(r'<([^>]*)>\s*;\s*rel="?next"?', re.IGNORECASE)


def referrers_tag(digest: str) -> str:
    """The referrers tag schema's tag for a digest: `<alg>-<hex>`, e.g. `sha256-abc...`."""
    algorithm, _, encoded = digest.partition(":")
    return f"{algorithm[:32]}-{encoded[:64]}"


class ReferrersApiMemory:
    """Per registry base URL: has it been seen without the referrers API (and when)? Thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._without_api: dict[str, float] = {}  # base URL -> when the 404 was seen

    def lacks_api(self, base_url: str) -> bool:
        with self._lock:
            seen = self._without_api.get(base_url)
            if seen is not None and self._clock() - seen > API_MEMORY_SECONDS:
                del self._without_api[base_url]
                return False
            return seen is not None

    def remember(self, base_url: str, *, has_api: bool) -> None:
        with self._lock:
            if has_api:
                self._without_api.pop(base_url, None)
                return
            if len(self._without_api) >= MAX_REMEMBERED_REGISTRIES:
                self._without_api.clear()  # rare; the cost is one 404 per registry
            self._without_api[base_url] = self._clock()


def discover_referrers(
    session: RegistrySession, ref: ImageReference, digest: str, *, artifact_type: str | None,
    memory: ReferrersApiMemory | None = None,
) -> list[Descriptor]:
    """Referrers of `digest` from the API (when there is one) and the tag schema, de-duplicated by digest.

    The tag lookup runs beside the API call in its own thread; both honour the session's deadline,
    and both have finished (or failed) before this returns.
    """
    memory = memory or ReferrersApiMemory()
    base = session.base_url(ref)
    if memory.lacks_api(base):
        listed = _from_tag_schema(session, ref, digest)
    else:
        listed = _api_beside_tag(session, ref, digest, artifact_type, memory)
    found: dict[str, Descriptor] = {}
    for descriptor in listed:
        if descriptor.digest in found or not _may_be(descriptor, artifact_type):
            continue
        found[descriptor.digest] = descriptor
        if len(found) > MAX_REFERRERS:
            raise HostileArtifactError(
                f"{ref.name}@{digest} has more than {MAX_REFERRERS} referrers"
                + (f" of type {artifact_type}" if artifact_type else "")
                + "; delete stale signatures/attestations so verification can finish"
            )
    return list(found.values())


def _api_beside_tag(session: RegistrySession, ref: ImageReference, digest: str, artifact_type: str | None,
                    memory: ReferrersApiMemory) -> list[Descriptor]:
    tagged: list[list[Descriptor]] = []
    failed: list[BaseException] = []

    def tag_lookup() -> None:
        try:
            tagged.append(_from_tag_schema(session, ref, digest))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread below
            failed.append(exc)

    beside = threading.Thread(target=tag_lookup, name="referrers-tag", daemon=True)
    beside.start()
    try:
        from_api = _from_api(session, ref, digest, artifact_type)
    finally:
        beside.join()  # bounded: the lookup honours the session's deadline
    if from_api is None:
        memory.remember(session.base_url(ref), has_api=False)
        from_api = []
    if failed:
        raise failed[0]
    return [*from_api, *tagged[0]]


def _may_be(descriptor: Descriptor, artifact_type: str | None) -> bool:
    """Client-side filter. An entry whose artifactType is absent or the empty config type could be
    anything: go-containerregistry (and GHCR) write the *config* media type into tag-schema indexes."""
    if artifact_type is None or descriptor.artifact_type == artifact_type:
        return True
    return descriptor.artifact_type in (None, OCI_EMPTY_CONFIG)


def _from_api(session: RegistrySession, ref: ImageReference, digest: str,
              artifact_type: str | None) -> list[Descriptor] | None:
    """The API's referrers, or None when the registry has no referrers API."""
    base = f"{session.base_url(ref)}/v2/{ref.repository}/referrers/{digest}"
    url = f"{base}?artifactType={quote(artifact_type, safe='')}" if artifact_type else base
    result: list[Descriptor] = []
    for page in range(MAX_REFERRER_PAGES):
        what = f"referrers of {ref.name}@{digest} (page {page + 1})"
        response = session.request("GET", ref, url=url, accept=OCI_INDEX, max_bytes=MAX_MANIFEST_BYTES, what=what)
        if page == 0 and response.status in _NO_API_STATUSES:
            return None
        session.raise_for_status(response, ref, f"listing {what}")
        content_type = (response.header("Content-Type") or "").split(";", 1)[0].strip() or None
        index = Manifest.parse(digest=compute_digest(response.body), raw=response.body, content_type=content_type)
        if not index.is_index:
            raise HostileArtifactError(f"{what} is a {index.media_type}, not an image index")
        result.extend(index.manifests)
        link = _next_link(response.header("Link"))
        if link is None:
            return result
        # The one URL parser decides where the next page would go and refuses ambiguous URLs;
        # pagination never leaves the registry's origin (UnsafeUrlError, a HostileArtifactError).
        next_url = session.parse_url(link, base=response.url, what=f"the next-page Link of {what}", same_origin=True)
        if next_url.origin != session.parse_url(base, what="the referrers URL").origin:  # page 1 was redirected away
            raise HostileArtifactError(f"{what} links its next page to another host ({next_url})")
        url = next_url.url
    raise HostileArtifactError(f"referrers of {ref.name}@{digest} span more than {MAX_REFERRER_PAGES} pages")


def _from_tag_schema(session: RegistrySession, ref: ImageReference, digest: str) -> list[Descriptor]:
    try:
        index = session.find_tag(ref, referrers_tag(digest))
    except HostileArtifactError:
        # Junk at the tag (unknown media type, bad JSON, too big) must not hide what the API lists.
        return []
    if index is None or not index.is_index:
        return []  # the schema says: missing, or not an index, means no referrers
    return index.manifests


def _next_link(header: str | None) -> str | None:
    """The raw `rel="next"` target, unresolved: resolving it is the URL parser's job."""
    if not header:
        return None
    match = _NEXT_LINK_RE.search(header)
    return match.group(1) if match else None
