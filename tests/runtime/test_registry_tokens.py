"""Bearer tokens on a cold client: one token request per scope, shared by every request that needs it.

The verifier sends the requests of all images together (issue 13), so on a cold client against a
bearer-token registry they all meet the same 401 at once. `TokenCache.obtain` lets one of them fetch
the token and the others wait for that fetch (its token or its error). The registry here is the
fake (tests/support/fake_registry.py) serving the bytes of real cosign-signed images copied from
the real docker-registry; its token service holds its answer until every other request is waiting
for it, so the counts below prove the sharing rather than a lucky order. Structural counts only.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from urllib.parse import quote

import pytest

from image_verifier.composition import build_verifier
from image_verifier.cosign.legacy import signature_tag
from image_verifier.deadline import Deadline
from image_verifier.errors import DeadlineExceededError, RegistryUnavailableError
from image_verifier.oci import OCI_MANIFEST, Descriptor
from image_verifier.policy import Policy
from image_verifier.reference import ImageReference
from image_verifier.registry import RegistryClient, auth
from image_verifier.registry import _transport as transport_module
from image_verifier.registry.auth import TokenCache
from image_verifier.verdict import Outcome
from image_verifier.verifier import ImageRequest
from tests.support.cosign_material import KeyPair, cosign_policy, fetch_raw, push_cosign_signed
from tests.support.fake_registry import FakeRegistry, Reply
from tests.support.images import PushedImage, build_image, unique_repository

IMAGES = 8
REQUESTS_AT_ONCE = 2 * IMAGES  # per cosign image by digest: its manifest and its `.sig` tag, together
GATE_SECONDS = 20.0  # upper bound on holding the token answer; the gate opens as soon as all are waiting
KEY = ("https://auth.example/token", "registry.example", "repository:app:pull", "")


@pytest.fixture(scope="module")
def signed(registry) -> tuple[KeyPair, str, list[PushedImage]]:
    """IMAGES cosign-signed images in one repository of the real registry."""
    key = KeyPair.generate()
    repo = unique_repository("tokens")
    return key, repo, push_cosign_signed(registry, key, repo, IMAGES)


def mirror(registry, fake: FakeRegistry, repo: str, images: list[PushedImage]) -> None:
    """Serve from `fake` the exact bytes the verifier reads: each manifest, its `.sig` manifest and blobs."""
    for image in images:
        fake.add_manifest(repo, image.manifest_bytes, image.media_type)
        tag = signature_tag(image.digest)
        raw = fetch_raw(registry, repo, f"manifests/{tag}", OCI_MANIFEST)
        fake.add_manifest(repo, raw, OCI_MANIFEST, tags=[tag])
        manifest = json.loads(raw)
        for descriptor in [manifest["config"], *manifest["layers"]]:
            fake.add_blob(repo, fetch_raw(registry, repo, f"blobs/{descriptor['digest']}", "*/*"))


class HeldTokenService:
    """A token-service handler that answers once `waiters` other requests wait for this token.

    `seen` records how many were waiting when it answered: the proof that they shared one request.
    """

    def __init__(self, client: RegistryClient, waiters: int, reply: Reply) -> None:
        self.client, self.waiters, self.reply = client, waiters, reply
        self.seen: list[int] = []

    def __call__(self, _request: object) -> Reply:
        give_up = time.monotonic() + GATE_SECONDS  # a bound on the gate, not a timing assertion
        while self.client.token_waiters < self.waiters and time.monotonic() < give_up:
            time.sleep(0.01)
        self.seen.append(self.client.token_waiters)
        return self.reply


def decide(client: RegistryClient, policy: Policy, fake: FakeRegistry, repo: str, images: list[PushedImage]):
    requests = [ImageRequest(image=f"{fake.host}/{repo}@{image.digest}") for image in images]
    return build_verifier(policy, registry=client).decide(requests, deadline=Deadline.after(60))


@pytest.fixture
def bearer_registry(registry, signed, fake_registry):
    """(fake, client, policy, repo, images): the signed images behind a bearer-token fake, a cold client."""
    key, repo, images = signed
    fake_registry.require_bearer(token="t0k", service="fake-registry")
    mirror(registry, fake_registry, repo, images)
    client = RegistryClient(insecure_registries={fake_registry.host})
    policy = Policy.from_json(cosign_policy({"ci": {"publicKeyPem": key.public_pem}}, images=f"{fake_registry.host}/**"))
    return fake_registry, client, policy, repo, images


def test_fetches_one_token_per_scope_when_a_cold_client_verifies_many_images_of_one_repository(bearer_registry):
    # Given a cold client, and a token service that answers only once every other request is waiting
    fake, client, policy, repo, images = bearer_registry
    token_reply = Reply(body=json.dumps({"token": "t0k", "expires_in": 300}).encode(),
                        headers={"Content-Type": "application/json"})
    service = HeldTokenService(client, REQUESTS_AT_ONCE - 1, token_reply)
    fake.route("GET", "/token", service)
    # When all images are verified in one decision
    decision = decide(client, policy, fake, repo, images)
    # Then every image is verified, with one token request for the repository's pull scope, which
    # all the other requests of the first round were waiting for
    assert [v.outcome for v in decision.verdicts] == [Outcome.VERIFIED] * IMAGES, decision.verdicts
    scope = quote(f"repository:{repo}:pull", safe="")
    assert [r.path for r in fake.requests_to("/token")] == [f"/token?service=fake-registry&scope={scope}"]
    assert service.seen == [REQUESTS_AT_ONCE - 1]
    assert client.token_request_count == 1
    # And only first-round requests went without the token (those sent before the first 401 came
    # back; the rest waited for the token up front); each logical request was sent once with it
    content = fake.requests_to("/v2/")
    anonymous = [r for r in content if r.header("Authorization") is None]
    assert 1 <= len(anonymous) <= REQUESTS_AT_ONCE
    assert {r.path.rsplit("/", 2)[-2] for r in anonymous} == {"manifests"}
    sent = [r.header("Authorization") for r in content if r.header("Authorization") is not None]
    assert sent == ["Bearer t0k"] * 3 * IMAGES
    assert client.token_waiters == 0


def test_sends_the_token_up_front_when_the_challenge_of_the_repository_is_known(bearer_registry):
    # Given a client that has verified the images once (it knows the challenge and holds the token)
    fake, client, policy, repo, images = bearer_registry
    decide(client, policy, fake, repo, images)
    before = len(fake.requests)
    # When it verifies them again
    decision = decide(client, policy, fake, repo, images)
    # Then no request goes without the token, and none goes to the token service
    assert decision.admitted
    again = fake.requests[before:]
    assert again and all(r.header("Authorization") == "Bearer t0k" for r in again)
    assert client.token_request_count == 1


def test_rejects_every_waiter_as_unavailable_when_the_one_token_request_fails_and_retries_it_later(bearer_registry):
    # Given a token service that refuses, once every other request is waiting for its answer
    fake, client, policy, repo, images = bearer_registry
    service = HeldTokenService(client, REQUESTS_AT_ONCE - 1, Reply(status=401, body=b"no"))
    fake.route("GET", "/token", service)
    # When all images are verified at once
    decision = decide(client, policy, fake, repo, images)
    # Then all are unavailable, as one refused token request makes them (today's outcome), shared by all
    assert [v.outcome for v in decision.verdicts] == [Outcome.UNAVAILABLE] * IMAGES, decision.verdicts
    assert all(any("gave no token" in reason for reason in v.reasons) for v in decision.verdicts)
    assert len(fake.requests_to("/token")) == 1
    assert service.seen == [REQUESTS_AT_ONCE - 1]
    # And when the token service recovers, the next decision asks it again: the failure was not kept
    fake.require_bearer(token="t0k", service="fake-registry")
    assert decide(client, policy, fake, repo, images).admitted
    assert len(fake.requests_to("/token")) == 2


def test_parses_one_url_per_request_when_the_registry_origin_is_known(fake_registry, monkeypatch):
    # Given a warm client (challenge and token known) and a counter on the one URL parser
    fake_registry.require_bearer(token="t0k")
    _, raw = build_image()
    digest = fake_registry.add_manifest("app", raw, OCI_MANIFEST, tags=["v1", "v2", "v3"])
    client = RegistryClient(insecure_registries={fake_registry.host})
    client.bound(Deadline.after(10)).get_manifest(_ref(fake_registry, "v1"), digest)
    parsed: list[str] = []
    real_parse = transport_module.parse_registry_url

    def counting(raw: str, **kwargs: object):
        parsed.append(raw)
        return real_parse(raw, **kwargs)

    monkeypatch.setattr(transport_module, "parse_registry_url", counting)
    session = client.bound(Deadline.after(10))
    # When three manifests are read
    for tag in ("v1", "v2", "v3"):
        session.resolve(_ref(fake_registry, tag))
    # Then each request's URL was parsed once, and the registry's own base URL not at all
    assert session.request_count == 3
    assert len(parsed) == 3
    assert all(url.startswith(f"{fake_registry.url}/v2/app/manifests/") for url in parsed)


def test_parses_every_redirect_location_when_the_registry_origin_is_remembered(fake_registry, monkeypatch):
    # Given a warm client and a blob served through a redirect on the same registry
    blob = b"redirected blob"
    digest = fake_registry.add_blob("app", blob)
    fake_registry.route("GET", f"/v2/app/blobs/{digest}", Reply(status=307, headers={"Location": f"/elsewhere/{digest}"}))
    fake_registry.route("GET", f"/elsewhere/{digest}", Reply(body=blob))
    client = RegistryClient(insecure_registries={fake_registry.host})
    client.registry_origin(fake_registry.host)
    parsed: list[str] = []
    real_parse = transport_module.parse_registry_url
    monkeypatch.setattr(transport_module, "parse_registry_url",
                        lambda raw, **kwargs: parsed.append(raw) or real_parse(raw, **kwargs))
    session = client.bound(Deadline.after(10))
    # When the blob is read
    body = session.get_blob(_ref(fake_registry, "v1"), Descriptor(media_type="application/octet-stream", digest=digest,
                                                                  size=len(blob)), max_bytes=1024)
    # Then both hops were parsed: the request URL and the Location
    assert body == blob
    assert session.request_count == 2
    assert parsed == [f"{fake_registry.url}/v2/app/blobs/{digest}", f"/elsewhere/{digest}"]


def _ref(fake: FakeRegistry, tag: str) -> ImageReference:
    return ImageReference.parse(f"{fake.host}/app:{tag}")


# -- TokenCache alone (no network) ---------------------------------------------------------------


def _gated_fetch(cache: TokenCache, waiters: int, outcome: Callable[[], tuple[str, float]]):
    calls: list[int] = []

    def fetch() -> tuple[str, float]:
        calls.append(1)
        give_up = time.monotonic() + GATE_SECONDS
        while cache.waiting < waiters and time.monotonic() < give_up:
            time.sleep(0.005)
        return outcome()

    return fetch, calls


def _in_threads(count: int, work: Callable[[], object]) -> list[object]:
    results: list[object] = [None] * count

    def run(i: int) -> None:
        try:
            results[i] = work()
        except Exception as exc:  # collected for the assertions
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(GATE_SECONDS * 2)
    return results


def test_fetches_one_token_when_sixteen_threads_ask_for_the_same_key_at_once():
    # Given
    cache = TokenCache()
    fetch, calls = _gated_fetch(cache, 15, lambda: ("tok", 300.0))
    # When
    results = _in_threads(16, lambda: cache.obtain(KEY, fetch, Deadline.after(30)))
    # Then one fetch served all; every thread was told the token was new
    assert calls == [1]
    assert results == [("tok", True)] * 16
    assert cache.obtain(KEY, fetch, Deadline.after(30)) == ("tok", False)


def test_rejects_every_waiter_with_the_fetch_error_when_the_shared_fetch_fails_and_fetches_again_later():
    # Given
    cache = TokenCache()

    def refuse() -> tuple[str, float]:
        raise RegistryUnavailableError("token service gave no token for repository:app:pull")

    fetch, calls = _gated_fetch(cache, 7, refuse)
    # When
    results = _in_threads(8, lambda: cache.obtain(KEY, fetch, Deadline.after(30)))
    # Then
    assert calls == [1]
    assert all(isinstance(r, RegistryUnavailableError) and "gave no token" in str(r) for r in results), results
    # And the failure is not cached: the next request fetches again
    assert cache.obtain(KEY, lambda: ("tok", 300.0), Deadline.after(30)) == ("tok", True)


def test_rejects_a_waiter_with_deadline_exceeded_when_its_deadline_passes_while_it_waits():
    # Given a fetch in progress that does not finish
    cache = TokenCache()
    with _fetch_in_progress(cache):
        # When a thread whose deadline has passed asks for the same token
        with pytest.raises(DeadlineExceededError, match="deadline passed while waiting for a token for repository:app:pull"):
            _obtain_when_in_flight(cache, Deadline.after(-1))
    # Then the leader's token is still cached for everyone else
    assert cache.get(KEY) == "tok"


def test_fetches_again_for_a_waiter_with_time_left_when_the_leader_ran_out_of_its_own_deadline():
    # Given a leader (another decision) whose fetch ends in its own deadline, while a waiter waits
    cache = TokenCache()

    def leader_fetch() -> tuple[str, float]:
        give_up = time.monotonic() + GATE_SECONDS
        while cache.waiting < 1 and time.monotonic() < give_up:
            time.sleep(0.005)
        raise DeadlineExceededError("the deadline passed while fetching a token")

    leader = threading.Thread(target=lambda: pytest.raises(DeadlineExceededError, cache.obtain, KEY, leader_fetch,
                                                           Deadline.after(30)))
    leader.start()
    # When the waiter, with time left, sees that flight land
    result = _obtain_when_in_flight(cache, Deadline.after(30), fetch=lambda: ("tok", 300.0))
    leader.join(30)
    # Then it fetched a token itself rather than failing with someone else's deadline
    assert result == ("tok", True)


def test_keeps_the_newer_token_when_a_registry_refuses_an_older_one():
    # Regression: a thread whose old token got a 401 evicted the token another thread had just fetched,
    # so every 401 in flight cost one more token request.
    cache = TokenCache()
    cache.put(KEY, "new", 300.0)
    # When
    cache.forget(KEY, refused="old")
    # Then
    assert cache.get(KEY) == "new"
    cache.forget(KEY, refused="new")
    assert cache.get(KEY) is None


def test_fetches_unshared_when_the_flights_in_progress_reach_their_cap(monkeypatch):
    # Given one flight in progress and a cap of one
    monkeypatch.setattr(auth, "MAX_TOKEN_FLIGHTS", 1)
    cache = TokenCache()
    with _fetch_in_progress(cache):
        _wait_for(lambda: len(cache._flights) == 1)
        # When another key's token is wanted
        other = (*KEY[:2], "repository:other:pull", "")
        result = cache.obtain(other, lambda: ("other", 300.0), Deadline.after(30))
        # Then it is fetched at once, without a flight, so the map of flights stays within its cap
        assert result == ("other", True)
        assert len(cache._flights) == 1
    assert cache._flights == {}


@contextmanager
def _fetch_in_progress(cache: TokenCache) -> Iterator[None]:
    """A thread fetching KEY's token ("tok") until the block ends."""
    release = threading.Event()
    leader = threading.Thread(target=cache.obtain, args=(KEY, lambda: (release.wait(30), ("tok", 300.0))[1],
                                                          Deadline.after(30)))
    leader.start()
    try:
        yield
    finally:
        release.set()
        leader.join(30)


def _obtain_when_in_flight(cache: TokenCache, deadline: Deadline,
                           fetch: Callable[[], tuple[str, float]] = lambda: ("unused", 1.0)) -> tuple[str, bool]:
    _wait_for(lambda: len(cache._flights) == 1)
    return cache.obtain(KEY, fetch, deadline)


def _wait_for(condition: Callable[[], bool]) -> None:
    give_up = time.monotonic() + GATE_SECONDS
    while not condition():
        assert time.monotonic() < give_up, "the condition never held"
        time.sleep(0.005)
