"""Signature discovery: referrers API (fake registry) and referrers tag schema (docker-registry)."""

from __future__ import annotations

import pytest

from image_verifier.deadline import Deadline
from image_verifier.errors import HostileArtifactError
from image_verifier.oci import OCI_EMPTY_CONFIG, OCI_INDEX, OCI_MANIFEST
from image_verifier.reference import ImageReference
from image_verifier.registry import MAX_REFERRER_PAGES, RegistryClient, referrers_tag
from tests.support.fake_registry import FakeRegistry, Reply
from tests.support.images import (
    Blob,
    PushedImage,
    build_image,
    empty_config,
    index_json,
    manifest_json,
    push_blob,
    push_image,
    push_manifest,
    sha256_digest,
    unique_repository,
)

NOTATION = "application/vnd.cncf.notary.signature"
BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"


def push_signature(registry, image: PushedImage, *, artifact_type: str, payload: bytes) -> PushedImage:
    """A signature-shaped OCI 1.1 artifact (empty config, one layer, subject = the image), by digest."""
    config, layer = empty_config(), Blob(data=payload, media_type="application/jose+json")
    push_blob(registry, image.repository, config.data)
    push_blob(registry, image.repository, layer.data)
    raw = manifest_json(config=config, layers=[layer], subject=image.descriptor(), artifact_type=artifact_type)
    return push_manifest(registry, image.repository, sha256_digest(raw), raw, OCI_MANIFEST)


def entry(digest: str, artifact_type: str | None) -> dict:
    result = {"mediaType": OCI_MANIFEST, "digest": digest, "size": 500}
    if artifact_type:
        result["artifactType"] = artifact_type
    return result


def index_reply(entries: list[dict], link: str | None = None) -> Reply:
    headers = {"Content-Type": OCI_INDEX}
    if link:
        headers["Link"] = f'<{link}>; rel="next"'
    return Reply(body=index_json(entries), headers=headers)


def test_finds_signatures_through_the_tag_schema_when_the_registry_has_no_referrers_api(registry, registry_client):
    # Given: docker-registry 2.8 answers 404 on /referrers; the signer maintained sha256-<hex>
    image = push_image(registry, unique_repository(), "v1")
    notation = push_signature(registry, image, artifact_type=NOTATION, payload=b"jws")
    cosign = push_signature(registry, image, artifact_type=BUNDLE, payload=b"bundle")
    fallback = index_json([notation.descriptor(artifactType=NOTATION), cosign.descriptor(artifactType=OCI_EMPTY_CONFIG)])
    push_manifest(registry, image.repository, referrers_tag(image.digest), fallback, OCI_INDEX)
    registry_session = registry_client.bound(Deadline.after(10))
    # When
    everything = registry_session.referrers(image.ref, image.digest)
    notation_only = registry_session.referrers(image.ref, image.digest, artifact_type=NOTATION)
    # Then: the empty-config entry may be a bundle, so the filter keeps it for the verifier to judge
    assert [d.digest for d in everything] == [notation.digest, cosign.digest]
    assert [d.digest for d in notation_only] == [notation.digest, cosign.digest]
    assert registry_session.get_manifest(image.ref, notation.digest).subject.digest == image.digest


def test_returns_no_referrers_when_neither_the_api_nor_the_tag_exists(registry, registry_client):
    # Given
    image = push_image(registry, unique_repository(), "v1")
    registry_session = registry_client.bound(Deadline.after(10))
    # When
    found = registry_session.referrers(image.ref, image.digest)
    # Then: one API call (404) and one tag lookup (404)
    assert found == []
    assert registry_session.request_count == 2


def test_follows_pagination_and_dedups_with_the_tag_schema_when_the_api_answers(fake_registry: FakeRegistry):
    # Given: two API pages and a tag-schema index that repeats one entry and adds another
    subject = sha256_digest(b"image")
    a, b, c, d = (sha256_digest(x) for x in (b"a", b"b", b"c", b"d"))
    base = f"/v2/app/referrers/{subject}"
    fake_registry.route("GET", base, index_reply([entry(a, NOTATION), entry(b, "application/spdx+json")],
                                                 link=f"{base}?n=2&last=b"))
    fake_registry.route("GET", f"{base}?n=2&last=b", index_reply([entry(c, NOTATION)]))
    fake_registry.add_manifest("app", index_json([entry(c, NOTATION), entry(d, OCI_EMPTY_CONFIG)]), OCI_INDEX,
                               tags=[referrers_tag(subject)])
    client = RegistryClient(insecure_registries={fake_registry.host})
    ref = ImageReference.parse(f"{fake_registry.host}/app@{subject}")
    # When
    found = client.bound(Deadline.after(10)).referrers(ref, subject, artifact_type=NOTATION)
    # Then
    assert [x.digest for x in found] == [a, c, d]
    assert [x.artifact_type for x in found] == [NOTATION, NOTATION, OCI_EMPTY_CONFIG]
    assert fake_registry.requests_to(base)[0].path == f"{base}?artifactType=application%2Fvnd.cncf.notary.signature"


def test_rejects_referrers_when_pagination_never_ends(fake_registry: FakeRegistry):
    # Given: every page links to itself
    subject = sha256_digest(b"image")
    base = f"/v2/app/referrers/{subject}"
    fake_registry.route("GET", base, index_reply([entry(sha256_digest(b"a"), NOTATION)], link=base))
    client = RegistryClient(insecure_registries={fake_registry.host})
    session = client.bound(Deadline.after(10))
    # When / Then
    with pytest.raises(HostileArtifactError, match=f"more than {MAX_REFERRER_PAGES} pages"):
        session.referrers(ImageReference.parse(f"{fake_registry.host}/app@{subject}"), subject)
    assert session.request_count == MAX_REFERRER_PAGES + 1  # and the tag-schema lookup, sent beside page 1


def test_rejects_referrers_when_the_next_page_is_on_another_host(fake_registry: FakeRegistry):
    # Given
    subject = sha256_digest(b"image")
    base = f"/v2/app/referrers/{subject}"
    fake_registry.route("GET", base, index_reply([], link=f"http://127.0.0.1:9/v2/app/referrers/{subject}?page=2"))
    client = RegistryClient(insecure_registries={fake_registry.host})
    # When / Then
    with pytest.raises(HostileArtifactError, match="another host"):
        client.bound(Deadline.after(10)).referrers(ImageReference.parse(f"{fake_registry.host}/app@{subject}"), subject)


def test_rejects_referrers_when_there_are_more_than_the_cap(fake_registry: FakeRegistry, monkeypatch):
    # Given
    from image_verifier.registry import referrers as referrers_module

    monkeypatch.setattr(referrers_module, "MAX_REFERRERS", 3)
    subject = sha256_digest(b"image")
    entries = [entry(sha256_digest(bytes([i])), NOTATION) for i in range(4)]
    fake_registry.route("GET", f"/v2/app/referrers/{subject}", index_reply(entries))
    client = RegistryClient(insecure_registries={fake_registry.host})
    # When / Then
    with pytest.raises(HostileArtifactError, match="more than 3 referrers of type application/vnd.cncf"):
        client.bound(Deadline.after(10)).referrers(
            ImageReference.parse(f"{fake_registry.host}/app@{subject}"), subject, artifact_type=NOTATION)


def test_ignores_the_tag_schema_when_the_tag_is_not_an_index(fake_registry: FakeRegistry):
    # Given: someone pushed an image manifest at the sha256-<hex> tag
    subject = sha256_digest(b"image")
    _, raw = build_image()
    fake_registry.add_manifest("app", raw, OCI_MANIFEST, tags=[referrers_tag(subject)])
    client = RegistryClient(insecure_registries={fake_registry.host})
    # When
    found = client.bound(Deadline.after(10)).referrers(ImageReference.parse(f"{fake_registry.host}/app@{subject}"), subject)
    # Then
    assert found == []


def test_keeps_api_referrers_when_the_tag_schema_holds_junk(fake_registry: FakeRegistry):
    # Given: the API lists a signature; the sha256-<hex> tag holds something that is not a manifest
    subject = sha256_digest(b"image")
    signature = sha256_digest(b"signature")
    fake_registry.route("GET", f"/v2/app/referrers/{subject}", index_reply([entry(signature, NOTATION)]))
    fake_registry.route("GET", f"/v2/app/manifests/{referrers_tag(subject)}",
                        Reply(body=b"not json", headers={"Content-Type": OCI_INDEX}))
    client = RegistryClient(insecure_registries={fake_registry.host})
    # When
    found = client.bound(Deadline.after(10)).referrers(ImageReference.parse(f"{fake_registry.host}/app@{subject}"), subject)
    # Then
    assert [d.digest for d in found] == [signature]
