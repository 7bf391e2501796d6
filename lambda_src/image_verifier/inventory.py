"""The deployable inventory: a repository's recent digests, each with the verdict it gets today.

So that an operator knows which images can be rolled forward or back to (when the signing pipeline
is down, say), `collect_inventory` lists the N most recent image digests of one repository and
verifies each, by digest, under the policy, exactly as `verify` would.

Where the list comes from:
- ECR (`<account>.dkr.ecr.<region>.amazonaws.com`): `ecr:DescribeImages`, every page, sorted by
  `imagePushedAt`, newest first. Untagged images count (an image whose tag moved on is exactly a
  roll-back candidate); signatures, attestations and other artifacts are left out.
- any other registry: the tag list (`GET /v2/<name>/tags/list`, following `Link` pages), each tag
  resolved to its digest. The tag list has no push time and the API promises no order, so the
  order is the registry's listing order walked from its end (distribution 2.8's filesystem storage
  happens to list in push order; others list lexically): "most recent" is only as good as that.
  Untagged digests cannot be seen this way, and only the tags walked are shown for a digest.
Tags cosign and the referrers tag schema use (`sha256-<hex>`, `.sig`, `.att`, `.sbom`) are not images.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from ._json import strict_json_loads
from .cli_inventory import MAX_LAST  # the one bound, shared with the command line (which imports this lazily)
from .deadline import Deadline
from .errors import AwsUnavailableError, HostileArtifactError, ImageNotFoundError, InvalidReferenceError
from .oci import DOCKER_MANIFEST_LIST, OCI_IMAGE_CONFIG, OCI_INDEX, Manifest
from .reference import ImageReference, is_digest
from .registry.referrers import _next_link
from .verdict import Verdict
from .verifier import ImageRequest

MAX_TAGS = 10_000  # a tag list longer than this is not walked (each tag may cost a request)
MAX_TAG_PAGES = 100
MAX_ECR_PAGES = 50  # DescribeImages pages of 1000: 50 000 images
DOCKER_IMAGE_CONFIG = "application/vnd.docker.container.image.v1+json"
IMAGE_CONFIG_TYPES = frozenset({OCI_IMAGE_CONFIG, DOCKER_IMAGE_CONFIG})
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
NOT_AN_IMAGE_TAG = re.compile(r"sha256-[0-9a-f]{64}(\.(sig|att|sbom))?")
ORDER_PUSHED_AT = "imagePushedAt"
ORDER_TAG_LIST = "tagList"


@dataclass(frozen=True, kw_only=True)
class Candidate:
    """One digest of the repository, with its tags and (ECR only) when it was pushed."""

    digest: str
    tags: tuple[str, ...] = ()
    pushed_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class InventoryRow:
    candidate: Candidate
    verdict: Verdict

    def to_json(self) -> dict[str, Any]:
        return {"digest": self.candidate.digest, "tags": list(self.candidate.tags),
                "pushedAt": self.candidate.pushed_at.isoformat() if self.candidate.pushed_at else None,
                "verdict": self.verdict.to_json()}


class Lister(Protocol):
    """Where the candidates come from; `order` says how they are ordered (ORDER_*)."""

    order: str

    def recent(self, ref: ImageReference, last: int, deadline: Deadline) -> list[Candidate]: ...


class Decider(Protocol):
    def decide(self, requests: Sequence[ImageRequest], *, deadline: Deadline) -> Any: ...


def collect_inventory(ref: ImageReference, *, lister: Lister, verifier: Decider, last: int,
                      deadline: Deadline) -> list[InventoryRow]:
    """The `last` most recent candidates of `ref`'s repository, each with its verdict today."""
    if not 1 <= last <= MAX_LAST:
        raise ValueError(f"--last must be between 1 and {MAX_LAST}, got {last}")
    candidates = lister.recent(ref, last, deadline)
    requests = [ImageRequest(image=f"{ref.name}@{c.digest}") for c in candidates]
    verdicts = verifier.decide(requests, deadline=deadline).verdicts if requests else ()
    return [InventoryRow(candidate=c, verdict=v) for c, v in zip(candidates, verdicts, strict=True)]


class EcrLister:
    """`ecr:DescribeImages`, all pages, newest `imagePushedAt` first."""

    order = ORDER_PUSHED_AT

    def __init__(self, client_for: Callable[[str], Any], *, account: str, region: str) -> None:
        self._client_for, self._account, self._region = client_for, account, region

    def recent(self, ref: ImageReference, last: int, deadline: Deadline) -> list[Candidate]:
        client = self._client_for(self._region)
        details: list[dict[str, Any]] = []
        request: dict[str, Any] = {"registryId": self._account, "repositoryName": ref.repository,
                                   "filter": {"tagStatus": "ANY"}, "maxResults": 1000}
        for _ in range(MAX_ECR_PAGES):
            deadline.check()
            try:
                page = client.describe_images(**request)
            except Exception as exc:  # botocore's ClientError, EndpointConnectionError, ...: all "did not answer"
                code = getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)
                if code == "RepositoryNotFoundException":
                    raise ImageNotFoundError(f"ECR repository {ref.repository} does not exist in account "
                                             f"{self._account} ({self._region})") from exc
                raise AwsUnavailableError(f"ecr:DescribeImages failed for {ref.repository}: {code}") from exc
            details += page.get("imageDetails", [])
            if not page.get("nextToken"):
                break
            request["nextToken"] = page["nextToken"]
        else:
            raise HostileArtifactError(f"{ref.repository} has more than {MAX_ECR_PAGES} pages of images")
        images = [d for d in details if _is_image(d)]
        images.sort(key=lambda d: d["imagePushedAt"], reverse=True)
        return [Candidate(digest=d["imageDigest"], tags=tuple(sorted(d.get("imageTags", ()))),
                          pushed_at=d["imagePushedAt"]) for d in images[:last]]


def _is_image(detail: dict[str, Any]) -> bool:
    """An image or image index, not a signature, attestation or other artifact stored beside it."""
    if not is_digest(detail.get("imageDigest", "")) or detail.get("imagePushedAt") is None:
        return False
    tags = detail.get("imageTags") or []
    if tags and all(NOT_AN_IMAGE_TAG.fullmatch(t) for t in tags):
        return False
    if detail.get("imageManifestMediaType") in INDEX_TYPES:
        return True
    return detail.get("artifactMediaType", OCI_IMAGE_CONFIG) in IMAGE_CONFIG_TYPES


class TagListLister:
    """The registry's tag list, resolved to digests, walked from the end of the listing."""

    order = ORDER_TAG_LIST

    def __init__(self, registry: Any) -> None:
        self._registry = registry  # a RegistryClient: `bound(deadline)` gives the session

    def recent(self, ref: ImageReference, last: int, deadline: Deadline) -> list[Candidate]:
        session = self._registry.bound(deadline)
        tags = [t for t in _list_tags(session, ref) if not NOT_AN_IMAGE_TAG.fullmatch(t)]
        found: dict[str, list[str]] = {}
        for tag in reversed(tags):
            manifest = session.find_tag(ref, tag)
            if manifest is None or not _is_image_manifest(manifest):
                continue  # deleted since listed, or an artifact someone tagged
            found.setdefault(manifest.digest, []).append(tag)
            if len(found) == last:
                break  # each further tag costs a request; later tags of chosen digests are not shown
        return [Candidate(digest=digest, tags=tuple(sorted(tags))) for digest, tags in found.items()]


def _is_image_manifest(manifest: Manifest) -> bool:
    if manifest.is_index:
        return True
    config = manifest.config
    return config is not None and config.media_type in IMAGE_CONFIG_TYPES


def _list_tags(session: Any, ref: ImageReference) -> list[str]:
    what = f"the tag list of {ref.name}"
    url = f"{session.base_url(ref)}/v2/{ref.repository}/tags/list?n=1000"
    origin = session.parse_url(url, what=what).origin
    tags: list[str] = []
    for page in range(MAX_TAG_PAGES):
        response = session.request("GET", ref, url=url, max_bytes=4 * 1024 * 1024, what=f"{what} (page {page + 1})")
        session.raise_for_status(response, ref, f"reading {what}")
        body = strict_json_loads(response.body, what=what)
        listed = body.get("tags") if isinstance(body, dict) else None
        if listed is None:
            listed = []  # distribution answers `"tags": null` for a repository whose tags were all deleted
        if not isinstance(listed, list) or not all(isinstance(t, str) for t in listed):
            raise HostileArtifactError(f"{what} is not a list of tags")
        tags += listed
        if len(tags) > MAX_TAGS:
            raise HostileArtifactError(f"{ref.name} has more than {MAX_TAGS} tags; inventory walks at most that many")
        link = _next_link(response.header("Link"))
        if link is None:
            return tags
        next_url = session.parse_url(link, base=response.url, what=f"the next-page Link of {what}", same_origin=True)
        if next_url.origin != origin:
            raise HostileArtifactError(f"{what} links its next page to another host ({next_url})")
        url = next_url.url
    raise HostileArtifactError(f"{what} spans more than {MAX_TAG_PAGES} pages")


def parse_repository(text: str) -> ImageReference:
    """`registry/repository` (no tag, no digest): what `inventory` takes."""
    if "@" in text or ":" in text.rsplit("/", 1)[-1]:
        raise InvalidReferenceError(f"{text!r} names a tag or digest; give the repository only, e.g. "
                                    "registry.example.com/team/app")
    return ImageReference.parse(text)
