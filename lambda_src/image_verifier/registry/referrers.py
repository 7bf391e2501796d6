"""Signature discovery: the OCI referrers API and the referrers tag schema, unioned.

Both are read: a signature pushed by a client that used the tag schema stays visible after the
registry gains the API, and vice versa. A 404 from the API means "no API here" (distribution 2.8).
Descriptors are returned as the registry listed them; the caller must fetch each manifest and check
its `subject`, `artifactType` and layers itself (index entries are unsigned hints).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
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
_NEXT_LINK_RE = re.compile(r'<([^>]*)>\s*;\s*rel="?next"?', re.IGNORECASE)


def referrers_tag(digest: str) -> str:
    """The referrers tag schema's tag for a digest: `<alg>-<hex>`, e.g. `sha256-abc...`."""
    algorithm, _, encoded = digest.partition(":")
    return f"{algorithm[:32]}-{encoded[:64]}"


def discover_referrers(
    session: RegistrySession, ref: ImageReference, digest: str, *, artifact_type: str | None
) -> list[Descriptor]:
    """Referrers of `digest` from the API (when there is one) and the tag schema, de-duplicated by digest."""
    found: dict[str, Descriptor] = {}
    for descriptor in [*_from_api(session, ref, digest, artifact_type), *_from_tag_schema(session, ref, digest)]:
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


def _may_be(descriptor: Descriptor, artifact_type: str | None) -> bool:
    """Client-side filter. An entry whose artifactType is absent or the empty config type could be
    anything: go-containerregistry (and GHCR) write the *config* media type into tag-schema indexes."""
    if artifact_type is None or descriptor.artifact_type == artifact_type:
        return True
    return descriptor.artifact_type in (None, OCI_EMPTY_CONFIG)


def _from_api(session: RegistrySession, ref: ImageReference, digest: str, artifact_type: str | None) -> list[Descriptor]:
    base = f"{session.base_url(ref)}/v2/{ref.repository}/referrers/{digest}"
    url = f"{base}?artifactType={quote(artifact_type, safe='')}" if artifact_type else base
    result: list[Descriptor] = []
    for page in range(MAX_REFERRER_PAGES):
        what = f"referrers of {ref.name}@{digest} (page {page + 1})"
        response = session.request("GET", ref, url=url, accept=OCI_INDEX, max_bytes=MAX_MANIFEST_BYTES, what=what)
        if page == 0 and response.status in _NO_API_STATUSES:
            return []
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
