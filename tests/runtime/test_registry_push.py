"""The writer half (what `sign` needs), and the test support's own promises."""

from __future__ import annotations

import pytest

from image_verifier.deadline import Deadline
from image_verifier.oci import OCI_EMPTY_CONFIG, OCI_MANIFEST
from image_verifier.registry import RegistryWriter, compute_digest
from tests.support import local_registry
from tests.support.images import Blob, empty_config, manifest_json, push_image, unique_repository


def test_uploads_a_blob_and_skips_it_when_it_already_exists(registry, registry_client):
    # Given
    image = push_image(registry, unique_repository(), "v1")
    first, second = registry_client.bound(Deadline.after(10)), registry_client.bound(Deadline.after(10))
    # When
    descriptor = first.put_blob(image.ref, b'{"payload":1}', media_type="application/vnd.dev.cosign.simplesigning.v1+json")
    again = second.put_blob(image.ref, b'{"payload":1}')
    # Then: HEAD, POST, PUT the first time; only HEAD the second
    assert descriptor.digest == again.digest == compute_digest(b'{"payload":1}')
    assert [line.split()[0] for line in first.request_log] == ["HEAD", "POST", "PUT"]
    assert second.request_count == 1
    assert first.get_blob(image.ref, descriptor, max_bytes=100) == b'{"payload":1}'


def test_pushes_a_signature_manifest_by_tag_when_signing_in_cosign_format(registry, registry_client):
    # Given
    image = push_image(registry, unique_repository(), "v1")
    writer: RegistryWriter = registry_client.bound(Deadline.after(10))
    config = writer.put_blob(image.ref, empty_config().data, media_type=OCI_EMPTY_CONFIG)
    layer = writer.put_blob(image.ref, b"payload", media_type="application/vnd.dev.cosign.simplesigning.v1+json")
    raw = manifest_json(config=Blob(data=b"{}", media_type=config.media_type),
                        layers=[Blob(data=b"payload", media_type=layer.media_type)])
    tag = f"sha256-{image.digest.split(':')[1]}.sig"
    # When
    digest = writer.put_manifest(image.ref, tag, raw, OCI_MANIFEST)
    # Then
    found = registry_client.bound(Deadline.after(10)).find_tag(image.ref, tag)
    assert found is not None and found.digest == digest == compute_digest(raw)


def test_rejects_a_manifest_push_when_the_digest_reference_does_not_match_the_bytes(registry, registry_client):
    # Given
    image = push_image(registry, unique_repository(), "v1")
    # When / Then
    with pytest.raises(ValueError, match="not the reference"):
        registry_client.bound(Deadline.after(10)).put_manifest(image.ref, image.digest, b"{}", OCI_MANIFEST)


def test_fails_with_make_test_advice_when_docker_registry_is_missing(tmp_path, monkeypatch):
    # Given
    monkeypatch.setattr(local_registry, "DOCKER_REGISTRY_BINARY", str(tmp_path / "no-such-binary"))
    # When / Then
    with pytest.raises(RuntimeError, match="run `make test`"):
        local_registry.start_registry(tmp_path)
