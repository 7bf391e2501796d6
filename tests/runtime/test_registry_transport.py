"""Transport behaviour: redirects, https-only, unreachable/slow registries, retries, threads, counts."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from image_verifier.deadline import Deadline
from image_verifier.errors import DeadlineExceededError, RegistryUnavailableError, UnavailableError
from image_verifier.oci import OCI_MANIFEST, Descriptor
from image_verifier.reference import ImageReference
from image_verifier.registry import MAX_REDIRECTS, MAX_THROTTLE_ATTEMPTS, BasicCredentials, RegistryClient, StaticCredentials
from tests.support.fake_registry import FakeRegistry, Reply
from tests.support.images import build_image, push_image, sha256_digest, unique_repository
from tests.support.local_registry import free_port

BLOB = b"layer bytes served by object storage"
CREDENTIALS = BasicCredentials(username="AWS", password="secret-password")


def blob_descriptor(data: bytes = BLOB) -> Descriptor:
    return Descriptor(media_type="application/octet-stream", digest=sha256_digest(data), size=len(data))


def test_follows_a_blob_redirect_without_leaking_authorization_when_it_leaves_the_registry(fake_registry_factory):
    # Given: a registry that needs Basic auth redirects the blob to a second host (like ECR -> S3)
    registry, storage = fake_registry_factory(), fake_registry_factory()
    registry.require_basic(CREDENTIALS.header)
    digest = sha256_digest(BLOB)
    signed_url = f"{storage.url}/bucket/{digest}?X-Amz-Signature=abc"
    registry.route("GET", f"/v2/app/blobs/{digest}", Reply(status=307, headers={"Location": signed_url}))
    storage.route("GET", f"/bucket/{digest}", Reply(body=BLOB))
    client = RegistryClient(insecure_registries={registry.host, storage.host},
                            credentials=[StaticCredentials(by_host={registry.host: CREDENTIALS})])
    session = client.bound(Deadline.after(10))
    # When
    data = session.get_blob(ImageReference.parse(f"{registry.host}/app:v1"), blob_descriptor(), max_bytes=1024)
    # Then
    assert data == BLOB
    assert registry.requests[-1].header("Authorization") == CREDENTIALS.header
    assert [r.header("Authorization") for r in storage.requests] == [None]
    assert session.request_count == 3  # 401 challenge, authorized GET (307), storage GET


def test_rejects_a_redirect_chain_when_it_is_longer_than_the_cap(fake_registry):
    # Given
    digest = sha256_digest(BLOB)
    fake_registry.route("GET", f"/v2/app/blobs/{digest}", Reply(status=302, headers={"Location": f"/v2/app/blobs/{digest}"}))
    client = RegistryClient(insecure_registries={fake_registry.host})
    # When / Then
    with pytest.raises(RegistryUnavailableError, match=f"more than {MAX_REDIRECTS} redirects"):
        client.bound(Deadline.after(10)).get_blob(ImageReference.parse(f"{fake_registry.host}/app:v1"),
                                                  blob_descriptor(), max_bytes=1024)
    assert len(fake_registry.requests) == MAX_REDIRECTS + 1


def test_refuses_plain_http_without_sending_when_a_redirect_targets_a_host_not_named_insecure(fake_registry_factory):
    # Given: the second server is reachable over http but not listed as insecure
    registry, elsewhere = fake_registry_factory(), fake_registry_factory()
    digest = sha256_digest(BLOB)
    registry.route("GET", f"/v2/app/blobs/{digest}", Reply(status=307, headers={"Location": f"{elsewhere.url}/x"}))
    client = RegistryClient(insecure_registries={registry.host})
    # When / Then
    with pytest.raises(RegistryUnavailableError, match="only https is allowed"):
        client.bound(Deadline.after(10)).get_blob(ImageReference.parse(f"{registry.host}/app:v1"),
                                                  blob_descriptor(), max_bytes=1024)
    assert elsewhere.requests == []


def test_refuses_plain_http_without_sending_when_a_token_realm_is_not_named_insecure(fake_registry_factory):
    # Given
    registry, token_service = fake_registry_factory(), fake_registry_factory()
    registry.require_bearer(realm=f"{token_service.url}/token")
    client = RegistryClient(insecure_registries={registry.host})
    session = client.bound(Deadline.after(10))
    # When / Then
    with pytest.raises(RegistryUnavailableError, match=f"refusing to send a request to http://{token_service.host}"):
        session.resolve(ImageReference.parse(f"{registry.host}/app:v1"))
    assert token_service.requests == []
    assert session.token_request_count == 0


def test_uses_https_when_the_registry_is_not_named_insecure(fake_registry):
    # Given: a plain-http registry the client was not told about
    client = RegistryClient()
    # When / Then: the TLS handshake fails; no HTTP request reaches the server
    with pytest.raises(RegistryUnavailableError, match=f"cannot reach {fake_registry.host}"):
        client.bound(Deadline.after(5)).resolve(ImageReference.parse(f"{fake_registry.host}/app:v1"))
    assert fake_registry.requests == []


def test_rejects_quickly_with_unavailable_when_the_registry_port_is_closed():
    # Given
    host = f"127.0.0.1:{free_port()}"
    client = RegistryClient(insecure_registries={host})
    # When / Then
    with pytest.raises(RegistryUnavailableError, match=f"cannot connect to {host}"):
        client.bound(Deadline.after(10)).resolve(ImageReference.parse(f"{host}/app:v1"))


@pytest.mark.timeout(20)
def test_gives_up_at_the_deadline_when_the_registry_is_slow(fake_registry):
    # Given: the registry would take 30s; the decision has 1s
    fake_registry.route("GET", "/v2/app/manifests/v1", Reply(delay=30))
    client = RegistryClient(insecure_registries={fake_registry.host})
    # When / Then: finishing at all (under the 20s test timeout) is the assertion on time
    with pytest.raises((DeadlineExceededError, RegistryUnavailableError)):
        client.bound(Deadline.after(1.0)).resolve(ImageReference.parse(f"{fake_registry.host}/app:v1"))


def test_rejects_before_sending_when_the_deadline_has_passed(fake_registry):
    # Given
    client = RegistryClient(insecure_registries={fake_registry.host})
    session = client.bound(Deadline.after(-1))
    # When / Then
    with pytest.raises(DeadlineExceededError, match="deadline passed"):
        session.resolve(ImageReference.parse(f"{fake_registry.host}/app:v1"))
    assert fake_registry.requests == [] and session.request_count == 0


def test_retries_once_when_the_registry_answers_503(fake_registry):
    # Given: the first answer is 503, the second is the manifest
    _, raw = build_image()
    answers = iter([Reply(status=503), Reply(body=raw, headers={"Content-Type": OCI_MANIFEST})])
    fake_registry.route("GET", "/v2/app/manifests/v1", lambda request: next(answers))
    client = RegistryClient(insecure_registries={fake_registry.host})
    session = client.bound(Deadline.after(10))
    # When
    manifest = session.resolve(ImageReference.parse(f"{fake_registry.host}/app:v1"))
    # Then
    assert manifest.digest == sha256_digest(raw)
    assert session.request_count == 2


@pytest.mark.parametrize("status", [429, 500, 503])
def test_rejects_with_unavailable_when_the_registry_keeps_failing(fake_registry, status):
    # Given
    fake_registry.route("GET", "/v2/app/manifests/v1", Reply(status=status, body=b"try later"))
    client = RegistryClient(insecure_registries={fake_registry.host})
    # When / Then
    with pytest.raises(RegistryUnavailableError, match=str(status)):
        client.bound(Deadline.after(10)).resolve(ImageReference.parse(f"{fake_registry.host}/app:v1"))
    assert len(fake_registry.requests) == (1 if status == 500 else MAX_THROTTLE_ATTEMPTS)


def test_unavailable_errors_are_not_verification_errors():
    # Given / When / Then: the verdict logic relies on this split
    assert issubclass(RegistryUnavailableError, UnavailableError)
    assert issubclass(DeadlineExceededError, UnavailableError)


@pytest.mark.timeout(60)
def test_resolves_concurrently_when_one_client_serves_eight_threads(registry):
    # Given
    repo = unique_repository()
    images = [push_image(registry, repo, f"t{i}", layer_bytes=f"image {i}".encode()) for i in range(20)]
    client = RegistryClient(insecure_registries={registry.host})
    session = client.bound(Deadline.after(30))
    # When
    with ThreadPoolExecutor(max_workers=8) as pool:
        digests = list(pool.map(lambda image: session.resolve(image.tag_ref).digest, images))
    # Then
    assert digests == [image.digest for image in images]
    assert session.request_count == client.request_count == 20


def test_counts_requests_per_session_and_in_total(registry, registry_client):
    # Given
    image = push_image(registry, unique_repository(), "v1")
    first, second = registry_client.bound(Deadline.after(10)), registry_client.bound(Deadline.after(10))
    # When
    manifest = first.resolve(image.tag_ref)
    first.get_blob(image.ref, manifest.config, max_bytes=4096)
    second.resolve(image.ref)
    # Then
    assert (first.request_count, second.request_count, registry_client.request_count) == (2, 1, 3)
    assert first.token_request_count == registry_client.token_request_count == 0
    assert first.request_log[0] == f"GET {registry.url}/v2/{image.repository}/manifests/v1"


def test_reuses_connections_when_a_client_makes_many_calls(fake_registry: FakeRegistry):
    # Given
    _, raw = build_image()
    fake_registry.add_manifest("app", raw, OCI_MANIFEST, tags=["v1"])
    client = RegistryClient(insecure_registries={fake_registry.host})
    # When
    for _ in range(5):
        client.bound(Deadline.after(10)).resolve(ImageReference.parse(f"{fake_registry.host}/app:v1"))
    # Then: every request came over one keep-alive connection
    assert len({request.client_port for request in fake_registry.requests}) == 1
