"""`RegistryClient`: the long-lived, thread-safe part (connections, credentials, tokens, counters).

Build one per process (a warm Lambda keeps it across decisions) and call `bound(deadline)` once per
decision to get a `RegistrySession`, which implements the verifiers' `Registry` protocol.

What it remembers, each map bounded: bearer tokens (one fetch per scope however many requests meet
the same 401 at once: `TokenCache.obtain`), each registry's last challenge (so later requests to any
of its repositories send the token up front, without a 401 first), and each registry's parsed
origin (scheme, host, port), the one URL that is the same on every request to that registry.
"""

from __future__ import annotations

import json
import threading
from typing import Iterable, Mapping
from urllib.parse import urlencode

from ..deadline import Deadline
from ..errors import RegistryUnavailableError
from ._counter import RequestCounter
from ._transport import CONNECT_TIMEOUT_CAP, READ_TIMEOUT_CAP, Response, Transport
from .auth import (
    DEFAULT_TOKEN_LIFETIME,
    BasicCredentials,
    Challenge,
    CredentialProvider,
    EcrCredentials,
    TokenCache,
    TokenKey,
    parse_challenge,
)
from .referrers import ReferrersApiMemory
from .session import RegistrySession
from .urls import Origin, RegistryUrl

MAX_TOKEN_RESPONSE_BYTES = 256 * 1024  # a token response is a JWT or two; far below this
MAX_REMEMBERED_CHALLENGES = 1024  # per (registry, repository, pull/push); bounded so a long-lived client stays small
# Registries (by host) whose token service, and whose parsed origin, are remembered. A warm Lambda
# talks to a handful (the connection pool keeps 16); the cap only stops an endless stream of hosts.
MAX_REMEMBERED_REGISTRIES = 256
_ChallengeKey = tuple[str, str, bool]  # registry base URL, repository, push


class RegistryClient(RequestCounter):
    """An OCI distribution client for the verifier and the CLI.

        client = RegistryClient(insecure_registries={"localhost:5000"})
        session = client.bound(Deadline.after(20))
        manifest = session.resolve(ImageReference.parse("localhost:5000/app:v1"))

    :param insecure_registries: "host:port" values that may be reached over plain http; every other
        registry, token realm and redirect target must be https.
    :param ecr_auth: ECR token provider. :default: - `EcrCredentials()`, a boto3 client per region
    :param credentials: further providers (e.g. `StaticCredentials`) for Basic auth and token realms.
    :param connect_timeout: cap for one connect, in seconds; the decision's deadline can only shorten it.
    :param read_timeout: cap for one socket read, in seconds; the deadline can only shorten it.
    :param ca_certs: a CA bundle for registries with a private CA. :default: - the system trust store
    """

    def __init__(
        self,
        *,
        insecure_registries: Iterable[str] = (),
        ecr_auth: EcrCredentials | None = None,
        credentials: Iterable[CredentialProvider] = (),
        connect_timeout: float = CONNECT_TIMEOUT_CAP,
        read_timeout: float = READ_TIMEOUT_CAP,
        ca_certs: str | None = None,
    ) -> None:
        super().__init__()
        self.insecure_registries = frozenset(insecure_registries)
        self.ecr_auth = ecr_auth if ecr_auth is not None else EcrCredentials()
        self._providers: tuple[CredentialProvider, ...] = (self.ecr_auth, *credentials)
        self._transport = Transport(
            insecure_hosts=self.insecure_registries, connect_timeout=connect_timeout, read_timeout=read_timeout,
            ca_certs=ca_certs,
        )
        self._token_cache = TokenCache()
        self._lock = threading.Lock()  # guards the three maps below
        self._challenges: dict[_ChallengeKey, Challenge] = {}
        self._host_challenges: dict[str, Challenge] = {}
        self._origins: dict[str, Origin] = {}
        self.referrers_api = ReferrersApiMemory()  # which registries lack the referrers API (referrers.py)

    def bound(self, deadline: Deadline) -> RegistrySession:
        """A `Registry` (and `RegistryWriter`) for one decision: every call honours `deadline`."""
        return RegistrySession(self, deadline)

    def base_url(self, host: str) -> str:
        return self._transport.base_url(host)

    def parse_url(
        self, raw: str, *, base: str | RegistryUrl | None = None, what: str = "a URL", same_origin: bool = False
    ) -> RegistryUrl:
        """The one URL parser (urls.py): where a request to `raw` would go; refuses anything ambiguous."""
        return self._transport.parse(raw, base=base, what=what, same_origin=same_origin)

    def registry_origin(self, host: str) -> Origin:
        """The origin (scheme, host, port) of `base_url(host)`, parsed once per host by the one URL parser.

        Safe to remember: `base_url` depends only on `host` and this client's fixed insecure
        registries, so every parse of it gives the same answer. A URL a registry hands back (a
        redirect, a `Link`, a `Location`) is never looked up here; it is parsed each time.
        """
        with self._lock:
            origin = self._origins.get(host)
        if origin is None:
            origin = self.parse_url(self.base_url(host), what="the registry URL").origin  # raises: nothing kept
            with self._lock:
                if len(self._origins) >= MAX_REMEMBERED_REGISTRIES:
                    self._origins.clear()  # rare; the cost is one parse per registry
                self._origins[host] = origin
        return origin

    @property
    def token_waiters(self) -> int:
        """Threads now waiting for a bearer token another thread is fetching (tests, diagnostics)."""
        return self._token_cache.waiting

    # -- used by RegistrySession ------------------------------------------------------------------

    def send(
        self,
        session: RegistrySession,
        method: str,
        url: str,
        *,
        host: str,
        repository: str,
        push: bool,
        headers: Mapping[str, str],
        body: bytes | None,
        max_bytes: int,
        what: str,
    ) -> Response:
        """Send with the registry's credentials, answering one 401 challenge; counts every request."""
        deadline = session.deadline
        base = self.base_url(host)
        target = self.parse_url(url, what=f"the URL of {what}")
        # Credentials belong to the registry's origin (scheme, host, port), as the HTTP client reads it:
        # an upload Location or a Link elsewhere gets none.
        authorize = target.origin == self.registry_origin(host)
        key: _ChallengeKey = (base, repository, push)

        def counted(method: str, url: str) -> None:
            session.count_request(method, url)
            self.count_request(method, url)

        auth, token_key, _fresh = self._authorization(session, host, key) if authorize else (None, None, False)
        response = self._transport.send(
            method, target, deadline=deadline, headers=_with_auth(headers, auth), body=body, max_bytes=max_bytes,
            what=what, on_request=counted,
        )
        if response.status != 401 or not authorize:
            return response
        challenge = parse_challenge(response.header("WWW-Authenticate"))
        if challenge is not None:
            self._remember(key, challenge)
        if token_key is not None and auth is not None:
            # Revoked or expired early: fetch a new one once (unless another thread already did).
            self._token_cache.forget(token_key, refused=auth.removeprefix("Bearer "))
        retry_auth, _, fresh = self._authorization(session, host, key)
        if retry_auth is None or (retry_auth == auth and not fresh):
            return response
        return self._transport.send(
            method, target, deadline=deadline, headers=_with_auth(headers, retry_auth), body=body, max_bytes=max_bytes,
            what=what, on_request=counted,
        )

    def credentials_for(self, host: str, deadline: Deadline) -> BasicCredentials | None:
        for provider in self._providers:
            found = provider.credentials_for(host, deadline)
            if found is not None:
                return found
        return None

    # -- authorization ----------------------------------------------------------------------------

    def _remember(self, key: _ChallengeKey, challenge: Challenge) -> None:
        with self._lock:
            if len(self._challenges) >= MAX_REMEMBERED_CHALLENGES:
                self._challenges.clear()  # rare; the cost is one 401 round trip per repository
            if len(self._host_challenges) >= MAX_REMEMBERED_REGISTRIES:
                self._host_challenges.clear()
            self._challenges[key] = challenge
            self._host_challenges[key[0]] = challenge

    def _authorization(
        self, session: RegistrySession, host: str, key: _ChallengeKey
    ) -> tuple[str | None, TokenKey | None, bool]:
        """(Authorization header or None, the token cache key it came from, whether it was just fetched)."""
        base, repository, push = key
        with self._lock:
            challenge = self._challenges.get(key)
            host_challenge = self._host_challenges.get(base)
        credentials = self.credentials_for(host, session.deadline)
        actions = "pull,push" if push else "pull"
        if challenge is None and host_challenge is not None and host_challenge.scheme == "bearer":
            # Same token service for every repository of a registry: skip the 401 round trip.
            challenge = Challenge(scheme="bearer", realm=host_challenge.realm, service=host_challenge.service,
                                  scope=f"repository:{repository}:{actions}")
        if challenge is None or challenge.scheme == "basic":
            # ECR always wants Basic: send it up front. Elsewhere only when the registry asks.
            if credentials is not None and (challenge is not None or credentials.send_up_front):
                return credentials.header, None, False
            return None, None, False
        scope = challenge.scope or f"repository:{repository}:{actions}"
        token_key: TokenKey = (challenge.realm or "", challenge.service or "", scope, credentials.username if credentials else "")
        # One token request per key however many threads get here at once (the requests a verification
        # sends together all meet the same 401 on a cold client); each waits no longer than its deadline.
        token, fetched = self._token_cache.obtain(
            token_key, lambda: self._fetch_token(session, challenge, scope, credentials, host), session.deadline)
        return f"Bearer {token}", token_key, fetched

    def _fetch_token(
        self, session: RegistrySession, challenge: Challenge, scope: str, credentials: BasicCredentials | None,
        host: str,
    ) -> tuple[str, float]:
        if not challenge.realm:
            raise RegistryUnavailableError(f"{host} asked for a bearer token but named no realm to get it from")
        query = urlencode([(k, v) for k, v in (("service", challenge.service), ("scope", scope)) if v])
        url = f"{challenge.realm}{'&' if '?' in challenge.realm else '?'}{query}"

        def counted(method: str, url: str) -> None:
            session.count_token()
            self.count_token()

        headers = {"Authorization": credentials.header} if credentials else {}
        response = self._transport.send(
            "GET", url, deadline=session.deadline, headers=headers, max_bytes=MAX_TOKEN_RESPONSE_BYTES,
            what=f"a token for {scope}", on_request=counted,
        )
        if response.status != 200:
            hint = "the configured credentials were refused" if credentials else "anonymous access was refused; configure credentials"
            raise RegistryUnavailableError(
                f"token service {challenge.realm} gave no token for {scope} ({response.error_text()}): {hint}"
            )
        return _parse_token(response.body, challenge.realm)


def _parse_token(body: bytes, realm: str) -> tuple[str, float]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RegistryUnavailableError(f"token service {realm} answered with invalid JSON") from exc
    token = data.get("token") or data.get("access_token") if isinstance(data, dict) else None
    if not isinstance(token, str) or not token:
        raise RegistryUnavailableError(f"token service {realm} answered without a token")
    expires_in = data.get("expires_in")
    if not isinstance(expires_in, (int, float)) or isinstance(expires_in, bool) or expires_in <= 0:
        expires_in = DEFAULT_TOKEN_LIFETIME
    return token, float(expires_in)


def _with_auth(headers: Mapping[str, str], auth: str | None) -> dict[str, str]:
    return {**headers, "Authorization": auth} if auth else dict(headers)
