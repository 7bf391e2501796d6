"""Issue 14 item 4: `inventory REPOSITORY --last N --policy P`, the digests an operator can roll to.

Non-ECR path: the real test registry's tag list, resolved to digests, real signatures made by our
own `sign`. ECR path: `ecr:DescribeImages` through botocore's Stubber (the documented response
shape, validated by botocore against the service model), listing digests that the real test
registry holds, so each verdict is still a real verification.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from image_verifier.cosign.keys import CosignKeyResolver
from image_verifier.deadline import Deadline
from image_verifier.errors import AwsUnavailableError, ImageNotFoundError
from image_verifier.inventory import EcrLister, collect_inventory
from image_verifier.policy import Policy
from image_verifier.reference import ImageReference
from image_verifier.verdict import Outcome
from image_verifier.verifier import ImageVerifier
from tests.support.cosign_material import cosign_policy
from tests.support.images import push_image, push_manifest, unique_repository

from .cli_helpers import run_cli, sign, write_policy

pytestmark = pytest.mark.registry
ACCOUNT, REGION = "111111111111", "us-east-1"
PUSHED = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)


def _inventory(registry_host: str, policy: Path, repository: str, *extra: str):  # type: ignore[no-untyped-def]
    return run_cli("inventory", repository, "--policy", str(policy), "--insecure-registry", registry_host, *extra)


def _signed_repository(registry, key_file: Path) -> tuple[str, dict[str, Any]]:  # type: ignore[no-untyped-def]
    """v1 signed, v2 unsigned, v3 signed and also tagged `stable`; `sign` adds `sha256-<hex>.sig` tags."""
    repository = unique_repository()
    images = {tag: push_image(registry, repository, tag, layer_bytes=tag.encode()) for tag in ("v1", "v2", "v3")}
    push_manifest(registry, repository, "stable", images["v3"].manifest_bytes, images["v3"].media_type)
    for tag in ("v1", "v3"):
        assert sign(registry.host, key_file, str(images[tag].ref)).code == 0
    return f"{registry.host}/{repository}", images


def test_lists_the_last_digests_of_the_tag_list_with_their_verdicts_today(registry, tmp_path, key, key_file):
    # Given a repository with signed and unsigned tags (and signature tags, which are not images)
    name, images = _signed_repository(registry, key_file)
    policy = write_policy(tmp_path, cosign_policy({"ci": {"publicKeyPem": key.public_pem}}, images=f"{registry.host}/**"))

    # When the last two digests are listed (distribution 2.8 lists in push order: v1, its .sig, v2, v3, its
    # .sig, stable; the API promises no order, and no push time)
    result = _inventory(registry.host, policy, name, "--last", "2", "--json")

    # Then from the end of the listing: stable and v3 (one digest, verified), then v2 (rejected: unsigned)
    assert result.code == 0, result
    rows = result.verdicts
    assert [(r["digest"], r["verdict"]["outcome"]) for r in rows] == [
        (images["v3"].digest, "verified"), (images["v2"].digest, "rejected")]
    assert rows[0]["tags"] == ["stable", "v3"] and rows[0]["order"] == "tagList" and rows[0]["pushedAt"] is None
    assert "no cosign signature" in rows[1]["verdict"]["reasons"][0]


def test_collects_every_tag_of_a_digest_it_walks_and_prints_a_table_for_people(registry, tmp_path, key, key_file):
    name, images = _signed_repository(registry, key_file)
    policy = write_policy(tmp_path, cosign_policy({"ci": {"publicKeyPem": key.public_pem}}, images=f"{registry.host}/**"))
    result = _inventory(registry.host, policy, name, "--last", "10")
    assert result.code == 0, result
    lines = [line for line in result.out.splitlines() if not line.startswith("    ")]
    # v3 and stable are one digest; the .sig tags are not images
    assert lines == [f"VERIFIED    {images['v3'].digest}  stable, v3", f"REJECTED    {images['v2'].digest}  v2",
                     f"VERIFIED    {images['v1'].digest}  v1"]
    assert "in the reverse of the registry's tag-list order (no push time is known)" in result.err


@pytest.mark.parametrize(("argv", "message"), [
    (("127.0.0.1:1/app:v1",), "names a tag or digest; give the repository only"),
    (("127.0.0.1:1/app", "--last", "0"), "--last must be between 1 and 100"),
])
def test_rejects_inventory_with_exit_2_when_an_argument_is_invalid(tmp_path, key, argv, message):
    policy = write_policy(tmp_path, cosign_policy({"ci": {"publicKeyPem": key.public_pem}}, images="127.0.0.1:1/**"))
    result = run_cli("inventory", *argv, "--policy", str(policy))
    assert result.code == 2 and message in result.err


# --- ECR: DescribeImages through the Stubber ------------------------------------------------------

@pytest.fixture
def ecr():  # type: ignore[no-untyped-def]
    client = boto3.client("ecr", region_name=REGION, aws_access_key_id="test", aws_secret_access_key="test")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def _detail(repository: str, digest: str, *, minutes: int, tags: list[str] | None = None,
            manifest_type: str = "application/vnd.oci.image.manifest.v1+json",
            artifact_type: str | None = "application/vnd.oci.image.config.v1+json") -> dict[str, Any]:
    detail: dict[str, Any] = {"registryId": ACCOUNT, "repositoryName": repository, "imageDigest": digest,
                              "imagePushedAt": PUSHED + timedelta(minutes=minutes), "imageSizeInBytes": 1024,
                              "imageManifestMediaType": manifest_type}
    if tags:
        detail["imageTags"] = tags
    if artifact_type:
        detail["artifactMediaType"] = artifact_type
    return detail


def test_lists_ecr_images_newest_first_by_push_time_leaving_out_signatures(registry, registry_client, ecr, key,
                                                                           key_file):
    # Given images in the (real) registry, described by a stubbed DescribeImages over two pages
    client, stubber = ecr
    name, images = _signed_repository(registry, key_file)
    repository = name.split("/", 1)[1]
    old = push_image(registry, repository, None, layer_bytes=b"untagged, tag moved on")
    page_one = [_detail(repository, images["v1"].digest, minutes=1, tags=["v1"]),
                _detail(repository, "sha256:" + "a" * 64, minutes=9, tags=["sha256-" + "b" * 64 + ".sig"],
                        artifact_type="application/vnd.oci.image.config.v1+json"),
                _detail(repository, "sha256:" + "c" * 64, minutes=8,
                        artifact_type="application/vnd.cncf.notary.signature")]
    page_two = [_detail(repository, images["v3"].digest, minutes=5, tags=["v3", "stable"]),
                _detail(repository, old.digest, minutes=3),
                _detail(repository, images["v2"].digest, minutes=2, tags=["v2"])]
    request = {"registryId": ACCOUNT, "repositoryName": repository, "filter": {"tagStatus": "ANY"}, "maxResults": 1000}
    stubber.add_response("describe_images", {"imageDetails": page_one, "nextToken": "page-2"}, request)
    stubber.add_response("describe_images", {"imageDetails": page_two}, {**request, "nextToken": "page-2"})
    policy = Policy.from_json(cosign_policy({"ci": {"publicKeyPem": key.public_pem}}, images=f"{registry.host}/**"))
    verifier = ImageVerifier(policy, registry=registry_client, cosign_keys=CosignKeyResolver())

    # When the three most recent are listed and judged
    rows = collect_inventory(ImageReference.parse(name), lister=EcrLister(lambda region: client, account=ACCOUNT,
                                                                          region=REGION),
                             verifier=verifier, last=3, deadline=Deadline.after(30))

    # Then by imagePushedAt, newest first; the .sig-tagged manifest and the Notation signature are not images
    assert [(r.candidate.digest, r.candidate.tags, r.verdict.outcome) for r in rows] == [
        (images["v3"].digest, ("stable", "v3"), Outcome.VERIFIED),
        (old.digest, (), Outcome.REJECTED),
        (images["v2"].digest, ("v2",), Outcome.REJECTED)]
    assert rows[0].to_json()["pushedAt"] == (PUSHED + timedelta(minutes=5)).isoformat()


@pytest.mark.parametrize(("code", "error", "message"), [
    ("RepositoryNotFoundException", ImageNotFoundError, "ECR repository team/app does not exist in account"),
    ("ThrottlingException", AwsUnavailableError, "ecr:DescribeImages failed for team/app: ThrottlingException"),
])
def test_rejects_ecr_listing_when_describe_images_fails(ecr, code, error, message):
    client, stubber = ecr
    stubber.add_client_error("describe_images", service_error_code=code, http_status_code=400)
    lister = EcrLister(lambda region: client, account=ACCOUNT, region=REGION)
    with pytest.raises(error, match=message):
        lister.recent(ImageReference.parse(f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/team/app"), 5, Deadline.after(5))
