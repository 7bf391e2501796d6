"""Registry credentials: ECR authorization tokens, static basic credentials, bearer-token challenges.

- ECR hosts (`<account>.dkr.ecr[-fips].<region>.amazonaws.com[.cn]`) get `Basic` credentials from
  `ecr:GetAuthorizationToken`, sent up front and cached per region until shortly before `expiresAt`.
- Other registries are tried anonymously; a `401` with `WWW-Authenticate: Bearer realm=...` is
  answered with a token from the realm (cached by realm, service, scope and who asked for it), a
  `401` with `Basic` only when credentials for the host exist.
- A token is fetched once however many threads want it at the same moment (`TokenCache.obtain`):
  the requests a verification sends together all meet the same 401 on a cold client, and one token
  request per scope answers them all.
"""

from __future__ import annotations

import base64
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol

from ..deadline import Deadline
from ..aws_errors import AwsRefusedError, judge_aws_error
from ..errors import DeadlineExceededError

ECR_TOKEN_REFRESH_MARGIN = 300.0  # seconds; renew well before ECR's 12-hour expiry so no call races it
BEARER_TOKEN_REFRESH_MARGIN = 10.0  # seconds; a token about to expire is as good as expired
DEFAULT_TOKEN_LIFETIME = 60  # seconds; the token spec's default when `expires_in` is absent
MAX_CACHED_TOKENS = 256  # one per (realm, service, scope): a warm Lambda sees a few dozen repositories
# Token fetches in progress at once (one per key). A decision touches a few repositories, so this is
# never reached in practice; past it a fetch runs unshared, as before single-flight, so the map stays bounded.
MAX_TOKEN_FLIGHTS = 64
_ECR_HOST_RE = re.compile(
    r"^(?P<account>[0-9]{12})\.(?:dkr\.ecr(?P<fips>-fips)?\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?"
    r"|dkr-ecr(?P<ds_fips>-fips)?\.(?P<ds_region>[a-z0-9-]+)\.on\.aws)$"
)
_CHALLENGE_PARAM_RE = re.compile(r'([A-Za-z_]+)=(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


@dataclass(frozen=True, kw_only=True)
class BasicCredentials:
    """A username and password for HTTP Basic auth (or for a token realm).

    `send_up_front`: send Basic auth without waiting for a 401 (ECR always wants it).
    """

    username: str
    password: str = field(repr=False)
    send_up_front: bool = False

    @property
    def header(self) -> str:
        return "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode("ascii")


class CredentialProvider(Protocol):
    """Credentials for a registry host, or None when this provider has none for it."""

    def credentials_for(self, host: str, deadline: Deadline) -> BasicCredentials | None: ...


@dataclass(frozen=True, kw_only=True)
class StaticCredentials:
    """Fixed credentials per registry host (`host[:port]` as written in image references)."""

    by_host: Mapping[str, BasicCredentials]

    def credentials_for(self, host: str, deadline: Deadline) -> BasicCredentials | None:
        return self.by_host.get(host)


@dataclass(frozen=True, kw_only=True)
class EcrHost:
    account: str
    region: str
    fips: bool


def parse_ecr_host(host: str) -> EcrHost | None:
    """The account and region of an ECR registry host, or None for any other host."""
    match = _ECR_HOST_RE.match(host.lower())
    if not match:
        return None
    region = match.group("region") or match.group("ds_region")
    return EcrHost(account=match.group("account"), region=region, fips=bool(match.group("fips") or match.group("ds_fips")))


def _default_ecr_client(region: str) -> Any:
    import boto3  # imported when first needed: nothing is built at import time
    from botocore.config import Config

    config = Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 2, "mode": "standard"})
    return boto3.client("ecr", region_name=region, config=config)


class EcrCredentials:
    """`ecr:GetAuthorizationToken` per region, cached until `expiresAt` minus a margin. Thread-safe.

    `client_factory(region)` returns a boto3 ECR client; the default builds one with short timeouts.
    A boto3 call cannot be cut short by our deadline, so the deadline is checked before and after.
    """

    def __init__(
        self,
        client_factory: Callable[[str], Any] = _default_ecr_client,
        *,
        refresh_margin: float = ECR_TOKEN_REFRESH_MARGIN,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._factory = client_factory
        self._margin = refresh_margin
        self._clock = clock
        self._lock = threading.Lock()
        self._region_locks: dict[str, threading.Lock] = {}
        self._cache: dict[str, tuple[BasicCredentials, float]] = {}
        self._clients: dict[str, Any] = {}
        self.call_count = 0  # GetAuthorizationToken calls made, for tests and metrics

    def credentials_for(self, host: str, deadline: Deadline) -> BasicCredentials | None:
        ecr = parse_ecr_host(host)
        if ecr is None:
            return None
        cached = self._cached(ecr.region)
        if cached:
            return cached
        with self._region_lock(ecr.region):  # one fetch per region even when many threads ask at once
            cached = self._cached(ecr.region)
            if cached:
                return cached
            deadline.check()
            credentials, expires_at = self._fetch(ecr)
            if deadline.remaining() <= 0:
                raise DeadlineExceededError(f"the deadline passed while getting an ECR token for {host}")
            with self._lock:
                self._cache[ecr.region] = (credentials, expires_at - self._margin)
            return credentials

    def _cached(self, region: str) -> BasicCredentials | None:
        with self._lock:
            entry = self._cache.get(region)
        if entry and self._clock() < entry[1]:
            return entry[0]
        return None

    def _region_lock(self, region: str) -> threading.Lock:
        with self._lock:
            return self._region_locks.setdefault(region, threading.Lock())

    def _client(self, region: str) -> Any:
        with self._lock:
            client = self._clients.get(region)
        if client is None:
            client = self._factory(region)
            with self._lock:
                self._clients[region] = client
        return client

    def _fetch(self, ecr: EcrHost) -> tuple[BasicCredentials, float]:
        with self._lock:
            self.call_count += 1
        try:
            answer = self._client(ecr.region).get_authorization_token()
        except Exception as exc:  # botocore's errors, judged in one place
            raise judge_aws_error(exc, f"ecr:GetAuthorizationToken in {ecr.region}", denied_hint=(
                "grant the verifier's role ecr:GetAuthorizationToken (resource \"*\") and ecr:BatchGetImage, "
                f"ecr:GetDownloadUrlForLayer on the repositories of account {ecr.account}")) from exc
        try:
            data = answer["authorizationData"][0]
            username, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
            expires_at = data["expiresAt"].timestamp()
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            raise AwsRefusedError(f"ECR in {ecr.region} returned an unreadable authorization token") from exc
        if not username or not password:
            raise AwsRefusedError(f"ECR in {ecr.region} returned an authorization token without a password")
        return BasicCredentials(username=username, password=password, send_up_front=True), expires_at


@dataclass(frozen=True, kw_only=True)
class Challenge:
    """A parsed `WWW-Authenticate` header: scheme is "bearer" or "basic"."""

    scheme: str
    realm: str | None = None
    service: str | None = None
    scope: str | None = None


def parse_challenge(header: str | None) -> Challenge | None:
    """The first Bearer or Basic challenge in a `WWW-Authenticate` value, or None."""
    if not header:
        return None
    scheme, _, rest = header.strip().partition(" ")
    scheme = scheme.lower()
    if scheme not in ("bearer", "basic"):
        return None
    params = {m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3)) for m in _CHALLENGE_PARAM_RE.finditer(rest)}
    return Challenge(scheme=scheme, realm=params.get("realm"), service=params.get("service"), scope=params.get("scope"))


TokenKey = tuple[str, str, str, str]  # realm, service, scope, username ("" when anonymous)


class _Flight:
    """One token fetch in progress; the threads that want the same token wait for its outcome."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.outcome: str | BaseException = ""  # the token, or what the fetch raised; set before `done`


class TokenCache:
    """Bearer tokens by (realm, service, scope, who asked), honouring `expires_in`. Thread-safe.

    `obtain` is single-flight: while one thread fetches a key's token, the others that need it wait for
    that fetch and share its outcome, a token or the error. Nothing about a failure is kept once its
    flight lands: the next request asks the token service again.
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens: dict[TokenKey, tuple[str, float]] = {}
        self._flights: dict[TokenKey, _Flight] = {}
        self._waiting = 0

    @property
    def waiting(self) -> int:
        """Threads now waiting for a token another thread is fetching (for tests and diagnostics)."""
        with self._lock:
            return self._waiting

    def get(self, key: TokenKey) -> str | None:
        with self._lock:
            return self._valid(key)

    def obtain(self, key: TokenKey, fetch: Callable[[], tuple[str, float]], deadline: Deadline) -> tuple[str, bool]:
        """(token, fetched): the cached token for `key`, else one `fetch()` shared by every thread asking now.

        `fetched` is True when the token was not in the cache (this thread or another fetched it for
        this call). A waiter waits no longer than its own `deadline`. A failed fetch is raised in the
        fetching thread and in every waiter (the same exception object, as `concurrent.futures` does),
        except that a waiter with time left starts a new fetch when the flight failed only because the
        fetching thread's deadline (another decision's) passed.
        """
        while True:
            with self._lock:
                token = self._valid(key)
                if token is not None:
                    return token, False
                flight = self._flights.get(key)
                if flight is None:
                    leading = _Flight() if len(self._flights) < MAX_TOKEN_FLIGHTS else None
                    if leading is not None:
                        self._flights[key] = leading
                else:
                    self._waiting += 1
            if flight is None:
                return self._fetch_for_all(key, leading, fetch), True
            try:
                landed = flight.done.wait(max(deadline.remaining(), 0.0))
            finally:
                with self._lock:
                    self._waiting -= 1
            if not landed:
                raise DeadlineExceededError(f"the deadline passed while waiting for a token for {key[2]}")
            outcome = flight.outcome
            if isinstance(outcome, str):
                return outcome, True
            if isinstance(outcome, DeadlineExceededError) and deadline.remaining() > 0:
                continue  # the fetching thread ran out of its time, not of ours: fetch again
            raise outcome

    def _fetch_for_all(self, key: TokenKey, flight: _Flight | None, fetch: Callable[[], tuple[str, float]]) -> str:
        """Fetch as the flight's leader (or unshared when `flight` is None, past MAX_TOKEN_FLIGHTS)."""
        try:
            token, expires_in = fetch()
        except BaseException as exc:  # every waiter must be released, whatever ended the fetch
            self._land(key, flight, exc)
            raise
        self.put(key, token, expires_in)  # cached before the flight lands: a latecomer finds one or the other
        self._land(key, flight, token)
        return token

    def _land(self, key: TokenKey, flight: _Flight | None, outcome: str | BaseException) -> None:
        if flight is None:
            return
        flight.outcome = outcome
        with self._lock:
            if self._flights.get(key) is flight:
                del self._flights[key]
        flight.done.set()

    def put(self, key: TokenKey, token: str, expires_in: float) -> None:
        expires_at = self._clock() + max(0.0, expires_in - BEARER_TOKEN_REFRESH_MARGIN)
        with self._lock:
            if len(self._tokens) >= MAX_CACHED_TOKENS:
                now = self._clock()
                self._tokens = {k: v for k, v in self._tokens.items() if v[1] > now}
                if len(self._tokens) >= MAX_CACHED_TOKENS:
                    self._tokens.pop(min(self._tokens, key=lambda k: self._tokens[k][1]))
            self._tokens[key] = (token, expires_at)

    def forget(self, key: TokenKey, refused: str) -> None:
        """Drop the cached token for `key` if it is still the one a registry just `refused`.

        A thread whose older token was refused must not evict the newer one another thread has
        fetched meanwhile: that would cost one more token request per 401 in flight.
        """
        with self._lock:
            entry = self._tokens.get(key)
            if entry is not None and entry[0] == refused:
                del self._tokens[key]

    def _valid(self, key: TokenKey) -> str | None:
        entry = self._tokens.get(key)  # the caller holds the lock
        return entry[0] if entry and self._clock() < entry[1] else None
