"""Resolving references and fetching manifests and blobs: digest-checked, size-bounded."""

from __future__ import annotations

import pytest

from image_verifier.deadline import Deadline
from image_verifier.errors import HostileArtifactError, ImageNotFoundError
from image_verifier.oci import MAX_MANIFEST_BYTES, OCI_INDEX, OCI_MANIFEST, Descriptor
from image_verifier.reference import ImageReference
from image_verifier.registry import MANIFEST_ACCEPT, RegistryClient
from tests.support.fake_registry import Reply
from tests.support.images import build_image, push_image, push_index, sha256_digest, unique_repository


def session(client: RegistryClient, seconds: float = 10.0):
    return client.bound(Deadline.after(seconds))


def test_resolves_tag_to_the_digest_of_the_manifest_bytes_when_resolving_by_tag(registry, registry_client):
    # Given
    image = push_image(registry, unique_repository(), "v1")
    # When
    manifest = session(registry_client).resolve(image.tag_ref)
    # Then
    assert manifest.digest == image.digest
    assert manifest.raw == image.manifest_bytes
    assert manifest.media_type == OCI_MANIFEST


def test_fetches_the_manifest_when_resolving_by_digest(registry, registry_client):
    # Given
    image = push_image(registry, unique_repository(), "v1", layer_bytes=b"by digest")
    # When
    manifest = session(registry_client).resolve(image.ref)
    # Then
    assert manifest.digest == image.digest
    assert [layer.media_type for layer in manifest.layers] == ["application/vnd.oci.image.layer.v1.tar+gzip"]


def test_resolves_a_multi_arch_index_when_resolving_by_tag_and_by_digest(registry, registry_client):
    # Given
    repo = unique_repository()
    amd64 = push_image(registry, repo, layer_bytes=b"amd64", platform="linux/amd64")
    arm64 = push_image(registry, repo, layer_bytes=b"arm64", platform="linux/arm64")
    index = push_index(registry, repo, "multi", [amd64, arm64])
    registry_session = session(registry_client)
    # When
    by_tag = registry_session.resolve(index.tag_ref)
    by_digest = registry_session.resolve(index.ref)
    # Then
    assert by_tag.digest == by_digest.digest == index.digest
    assert by_tag.is_index
    assert [(m.digest, m.platform["architecture"]) for m in by_tag.manifests] == [
        (amd64.digest, "amd64"), (arm64.digest, "arm64"),
    ]
    assert registry_session.get_manifest(index.ref, arm64.digest).digest == arm64.digest


def test_returns_none_when_a_tag_does_not_exist(registry, registry_client):
    # Given
    image = push_image(registry, unique_repository(), "v1")
    # When
    found = session(registry_client).find_tag(image.ref, "sha256-" + "0" * 64 + ".sig")
    # Then
    assert found is None


def test_rejects_resolution_when_the_tag_does_not_exist(registry, registry_client):
    # Given
    ref = ImageReference.parse(f"{registry.host}/{unique_repository()}:missing")
    # When / Then
    with pytest.raises(ImageNotFoundError, match="tag 'missing' does not exist"):
        session(registry_client).resolve(ref)


def test_rejects_resolution_when_the_digest_does_not_exist(registry, registry_client):
    # Given
    image = push_image(registry, unique_repository(), "v1")
    ref = image.ref.with_digest(sha256_digest(b"nothing"))
    # When / Then
    with pytest.raises(ImageNotFoundError, match="does not exist"):
        session(registry_client).resolve(ref)


def test_fetches_a_blob_by_descriptor_when_its_digest_matches(registry, registry_client):
    # Given
    image = push_image(registry, unique_repository(), "v1")
    registry_session = session(registry_client)
    config = registry_session.resolve(image.ref).config
    # When
    data = registry_session.get_blob(image.ref, config, max_bytes=4096)
    # Then
    assert sha256_digest(data) == config.digest
    assert b"diff_ids" in data


def test_sends_an_accept_header_for_oci_and_docker_manifests_and_indexes(fake_registry):
    # Given
    blobs, raw = build_image()
    fake_registry.add_manifest("app", raw, OCI_MANIFEST, tags=["v1"])
    client = RegistryClient(insecure_registries={fake_registry.host})
    # When
    session(client).resolve(ImageReference.parse(f"{fake_registry.host}/app:v1"))
    # Then
    accept = fake_registry.requests_to("/v2/app/manifests/v1")[0].header("Accept")
    assert accept == MANIFEST_ACCEPT
    assert {OCI_MANIFEST, OCI_INDEX, "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.docker.distribution.manifest.list.v2+json"} == set(accept.split(", "))


def test_rejects_a_manifest_when_its_bytes_do_not_match_the_requested_digest(fake_registry):
    # Given: the registry serves other bytes under a digest
    _, raw = build_image(layer_bytes=b"real")
    _, other = build_image(layer_bytes=b"swapped")
    digest = sha256_digest(raw)
    fake_registry.route("GET", f"/v2/app/manifests/{digest}", Reply(body=other, headers={"Content-Type": OCI_MANIFEST}))
    client = RegistryClient(insecure_registries={fake_registry.host})
    # When / Then
    with pytest.raises(HostileArtifactError, match=f"not {digest}"):
        session(client).resolve(ImageReference.parse(f"{fake_registry.host}/app@{digest}"))


def test_rejects_a_tag_when_docker_content_digest_misstates_the_bytes(fake_registry):
    # Given
    _, raw = build_image()
    fake_registry.route("GET", "/v2/app/manifests/v1", Reply(body=raw, headers={
        "Content-Type": OCI_MANIFEST, "Docker-Content-Digest": sha256_digest(b"something else")}))
    client = RegistryClient(insecure_registries={fake_registry.host})
    # When / Then
    with pytest.raises(HostileArtifactError, match="Docker-Content-Digest"):
        session(client).resolve(ImageReference.parse(f"{fake_registry.host}/app:v1"))


def test_rejects_a_manifest_when_content_length_exceeds_the_limit(fake_registry):
    # Given: a declared length past the bound; the body is never read
    fake_registry.route("GET", "/v2/app/manifests/v1", Reply(
        body=b"{}", headers={"Content-Type": OCI_MANIFEST, "Content-Length": str(MAX_MANIFEST_BYTES + 1)}))
    client = RegistryClient(insecure_registries={fake_registry.host})
    # When / Then
    with pytest.raises(HostileArtifactError, match="more than the limit"):
        session(client).resolve(ImageReference.parse(f"{fake_registry.host}/app:v1"))


def test_rejects_a_manifest_when_a_body_without_length_grows_past_the_limit(fake_registry):
    # Given
    fake_registry.route("GET", "/v2/app/manifests/v1", Reply(
        body=b" " * (MAX_MANIFEST_BYTES + 100), headers={"Content-Type": OCI_MANIFEST}, stream=True))
    client = RegistryClient(insecure_registries={fake_registry.host})
    # When / Then
    with pytest.raises(HostileArtifactError, match="larger than the limit"):
        session(client).resolve(ImageReference.parse(f"{fake_registry.host}/app:v1"))


def test_rejects_a_blob_when_its_descriptor_exceeds_max_bytes(fake_registry):
    # Given
    client = RegistryClient(insecure_registries={fake_registry.host})
    descriptor = Descriptor(media_type="application/octet-stream", digest=sha256_digest(b"x" * 100), size=100)
    # When / Then
    with pytest.raises(HostileArtifactError, match="more than the limit of 10"):
        session(client).get_blob(ImageReference.parse(f"{fake_registry.host}/app:v1"), descriptor, max_bytes=10)
    assert fake_registry.requests == []


def test_rejects_a_blob_when_the_registry_sends_more_than_its_descriptor_says(fake_registry):
    # Given
    data = b"x" * 100
    fake_registry.route("GET", f"/v2/app/blobs/{sha256_digest(data)}", Reply(body=data * 10, stream=True))
    client = RegistryClient(insecure_registries={fake_registry.host})
    descriptor = Descriptor(media_type="application/octet-stream", digest=sha256_digest(data), size=len(data))
    # When / Then
    with pytest.raises(HostileArtifactError, match="larger than the limit of 100"):
        session(client).get_blob(ImageReference.parse(f"{fake_registry.host}/app:v1"), descriptor, max_bytes=1000)


def test_rejects_a_blob_when_its_bytes_do_not_match_the_digest(fake_registry):
    # Given
    data = b"y" * 100
    fake_registry.route("GET", f"/v2/app/blobs/{sha256_digest(data)}", Reply(body=b"z" * 100))
    client = RegistryClient(insecure_registries={fake_registry.host})
    descriptor = Descriptor(media_type="application/octet-stream", digest=sha256_digest(data), size=len(data))
    # When / Then
    with pytest.raises(HostileArtifactError, match="returned content with digest"):
        session(client).get_blob(ImageReference.parse(f"{fake_registry.host}/app:v1"), descriptor, max_bytes=1000)
