"""HTTP for the registry client: one urllib3 pool, deadline-bounded calls, bounded bodies.

Everything a registry answers passes through `Transport.send`, which
- checks every URL with the one URL parser (`urls.parse_registry_url`) before any byte is sent:
  https anywhere, http only to hosts named insecure, nothing another parser could read as another host;
- follows redirects itself (GET/HEAD only, a few hops), each `Location` through that parser, and drops
  `Authorization` when a hop leaves the origin (scheme, host, port) the header was made for;
- bounds every exchange twice: each connect/read by min(per-call cap, deadline remaining), and the
  whole exchange by the deadline itself (`_watchdog`: a server that trickles its headers or body one
  byte at a time is cut off at the deadline, so no thread, and no process, outlives it);
- reads bodies incrementally and stops past the caller's bound;
- retries an idempotent request once on a reset connection, and on 429/503 honours `Retry-After` with a
  capped, jittered back-off while the deadline allows (`_retry`); past that it fails at once;
- turns every urllib3/socket error into `RegistryUnavailableError` or `DeadlineExceededError`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Mapping

import urllib3
from urllib3.exceptions import HTTPError, NewConnectionError, ProtocolError
from urllib3.exceptions import TimeoutError as Urllib3TimeoutError

from ..deadline import Deadline
from ..errors import DeadlineExceededError, HostileArtifactError, RegistryUnavailableError
from ._retry import MAX_THROTTLE_ATTEMPTS, MIN_ATTEMPT_SECONDS, RegistryThrottledError, parse_retry_after, pause_before_retry
from ._watchdog import POOL_CLASSES, WATCHDOG
from .urls import RegistryUrl, insecure_origins, parse_registry_url

CONNECT_TIMEOUT_CAP = 3.0  # seconds; a healthy registry accepts TCP+TLS in well under one
READ_TIMEOUT_CAP = 10.0  # seconds per socket read; ECR/S3 start a response within a few seconds
MAX_REDIRECTS = 3  # ECR needs one (registry -> S3); more is a loop or an attack
MAX_ERROR_BODY_BYTES = 16 * 1024  # an error body is only read for its message
READ_CHUNK_BYTES = 64 * 1024  # incremental reads: the bound is checked between chunks
POOL_HOSTS = 16  # registries (and S3 hosts) one warm Lambda talks to
POOL_CONNECTIONS_PER_HOST = 256  # kept idle per host: 64 images at once x 4 lookups each (verifier.MAX_PARALLEL_IMAGES)
_RETRY_STATUSES = frozenset({429, 503})
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_IDEMPOTENT = frozenset({"GET", "HEAD"})


@dataclass(frozen=True, kw_only=True)
class Response:
    """A complete, size-bounded answer. `url` is the last URL after redirects."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    url: str

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def error_text(self) -> str:
        """The registry's own words about an error, short enough for a log line."""
        text = self.body[:500].decode("utf-8", errors="replace").strip()
        return f"HTTP {self.status}" + (f": {text}" if text else "")


class Transport:
    """Thread-safe: urllib3's PoolManager is, and this class keeps no per-call state."""

    def __init__(
        self,
        *,
        insecure_hosts: frozenset[str],
        connect_timeout: float = CONNECT_TIMEOUT_CAP,
        read_timeout: float = READ_TIMEOUT_CAP,
        ca_certs: str | None = None,
        user_agent: str = "image-verifier",
    ) -> None:
        self._insecure_names = frozenset(h.lower() for h in insecure_hosts)
        self._insecure = insecure_origins(insecure_hosts)
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._user_agent = user_agent
        self._pool = urllib3.PoolManager(
            num_pools=POOL_HOSTS, maxsize=POOL_CONNECTIONS_PER_HOST, block=False, retries=False,
            ca_certs=ca_certs,
        )
        # Connections that attach to the deadline watchdog (see _watchdog.py); same pools otherwise.
        self._pool.pool_classes_by_scheme = dict(POOL_CLASSES)  # type: ignore[assignment]

    def base_url(self, host: str) -> str:
        """`https://host`, or `http://host` when the host was named insecure."""
        return f"{'http' if host.lower() in self._insecure_names else 'https'}://{host}"

    def parse(
        self, raw: str, *, base: str | RegistryUrl | None = None, what: str = "a URL", same_origin: bool = False
    ) -> RegistryUrl:
        """The one URL parser (urls.py) with this transport's insecure hosts: where a request would go."""
        if isinstance(base, str):
            base = parse_registry_url(base, insecure=self._insecure, what="the base URL")
        return parse_registry_url(raw, insecure=self._insecure, base=base, what=what, same_origin=same_origin)

    def send(
        self,
        method: str,
        url: str | RegistryUrl,
        *,
        deadline: Deadline,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        max_bytes: int,
        what: str,
        on_request: Callable[[str, str], None] = lambda method, url: None,
    ) -> Response:
        """One logical request: follows redirects and retries (see the module docstring); `on_request` sees every HTTP request."""
        target = url if isinstance(url, RegistryUrl) else self.parse(url, what=f"the URL of {what}")
        attempt, reset_retried = 0, False
        while True:
            try:
                response = self._follow(method, target, deadline, dict(headers or {}), body, max_bytes, what, on_request)
            except ProtocolError as exc:  # reset or dropped connection (often a stale pooled one): once, at once
                if method not in _IDEMPOTENT or reset_retried or deadline.remaining() < MIN_ATTEMPT_SECONDS:
                    raise RegistryUnavailableError(f"connection to {target.netloc} failed while fetching {what}: {exc}") from exc
                reset_retried = True
                continue
            if response.status not in _RETRY_STATUSES:
                return response
            attempt += 1
            retry_after = parse_retry_after(response.header("Retry-After"))
            _raise_if_no_retry(method, response, target, what, attempt, retry_after, deadline)
            # The registry's own Retry-After fits (checked above); our back-off is shortened to fit.
            time.sleep(min(pause_before_retry(attempt - 1, retry_after), max(deadline.remaining() - MIN_ATTEMPT_SECONDS, 0.0)))

    def _follow(
        self, method: str, url: RegistryUrl, deadline: Deadline, headers: dict[str, str], body: bytes | None,
        max_bytes: int, what: str, on_request: Callable[[str, str], None],
    ) -> Response:
        auth_origin = url.origin
        for _hop in range(MAX_REDIRECTS + 1):
            if "Authorization" in headers and url.origin != auth_origin:
                # Never hand the registry's credential to another origin (S3 rejects it; it leaks the token).
                headers = {k: v for k, v in headers.items() if k != "Authorization"}
            response = self._once(method, url, deadline, headers, body, max_bytes, what, on_request)
            if response.status not in _REDIRECT_STATUSES or method not in _IDEMPOTENT:
                return response
            location = response.header("Location")
            if not location:
                raise RegistryUnavailableError(f"{url.netloc} answered {response.status} without a Location for {what}")
            url = self.parse(location, base=url, what=f"the redirect Location for {what}")
        raise RegistryUnavailableError(f"more than {MAX_REDIRECTS} redirects while fetching {what}; last was to {url.netloc}")

    def _once(
        self, method: str, url: RegistryUrl, deadline: Deadline, headers: dict[str, str], body: bytes | None,
        max_bytes: int, what: str, on_request: Callable[[str, str], None],
    ) -> Response:
        timeout = urllib3.Timeout(connect=deadline.timeout(self._connect_timeout), read=deadline.timeout(self._read_timeout))
        # identity: digests are over the stored bytes, and a compressed body could expand without bound.
        all_headers = {"User-Agent": self._user_agent, "Accept-Encoding": "identity", **headers}
        on_request(method, url.url)
        exchange = WATCHDOG.arm(deadline.expires_at)
        raw: urllib3.BaseHTTPResponse | None = None
        try:
            raw = self._pool.request(
                method, url.url, headers=all_headers, body=body, timeout=timeout, redirect=False,
                retries=False, preload_content=False, decode_content=False,
            )
            limit = max_bytes if 200 <= raw.status < 300 else MAX_ERROR_BODY_BYTES
            strict = 200 <= raw.status < 300 and method != "HEAD"
            data = _read_bounded(raw, limit, strict=strict, what=what, deadline=deadline)
        except (HTTPError, OSError) as exc:
            if raw is not None:
                raw.close()  # a half-read response must not go back to the pool
            if WATCHDOG.disarm(exchange) or deadline.remaining() <= 0:
                raise DeadlineExceededError(f"the deadline passed while fetching {what} from {url.netloc}") from exc
            if isinstance(exc, ProtocolError):
                raise  # send() may retry a reset connection once
            raise _unavailable(exc, url, what) from exc
        except BaseException:
            if raw is not None:
                raw.close()
            raise
        finally:
            fired = WATCHDOG.disarm(exchange)  # before the connection can go back to the pool
            if raw is not None:
                raw.release_conn()
        if fired:
            # A shut-down socket reads as a clean end of a body without Content-Length: never trust it.
            raise DeadlineExceededError(f"the deadline passed while fetching {what} from {url.netloc}")
        return Response(status=raw.status, headers=_Headers(raw.headers), body=data, url=url.url)


def _raise_if_no_retry(
    method: str, response: Response, url: RegistryUrl, what: str, attempt: int, retry_after: float | None,
    deadline: Deadline,
) -> None:
    """Fail at once when another try is not allowed or its wait would pass the deadline."""
    asked = f" (Retry-After: {retry_after:g} s)" if retry_after is not None else ""
    said = f"{url.netloc} answered {response.error_text()} to {what}{asked}"
    if method not in _IDEMPOTENT or attempt >= MAX_THROTTLE_ATTEMPTS:
        tries = f" {attempt} times" if attempt > 1 else ""
        raise RegistryThrottledError(f"{said}{tries}; retry later", retry_after=retry_after)
    left = deadline.remaining()
    if (retry_after or 0.0) + MIN_ATTEMPT_SECONDS > left:
        raise RegistryThrottledError(
            f"{said}; waiting would pass the verification deadline ({max(left, 0.0):.1f} s left); retry later",
            retry_after=retry_after,
        )


class _Headers(dict[str, str]):
    """Case-insensitive read access to response headers (registries differ in capitalisation)."""

    def __init__(self, source: urllib3.HTTPHeaderDict) -> None:
        super().__init__((k.lower(), v) for k, v in source.items())

    def get(self, key: str, default: str | None = None) -> str | None:  # type: ignore[override]
        return super().get(key.lower(), default)


def _read_bounded(raw: urllib3.BaseHTTPResponse, limit: int, *, strict: bool, what: str, deadline: Deadline) -> bytes:
    """Read at most `limit` bytes. Past the limit: an error when `strict`, else truncate and drop the connection."""
    declared = raw.headers.get("Content-Length")
    if strict and declared and declared.isdigit() and int(declared) > limit:
        raw.close()
        raise HostileArtifactError(f"{what} is {declared} bytes, more than the limit of {limit}")
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = raw.read(min(READ_CHUNK_BYTES, limit - total + 1))
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if total > limit:
            raw.close()  # the rest is never read; the connection cannot be reused
            if strict:
                raise HostileArtifactError(f"{what} is larger than the limit of {limit} bytes")
            return b"".join(chunks)
        chunks.append(chunk)
        deadline.check()


def _unavailable(exc: BaseException, url: RegistryUrl, what: str) -> Exception:
    if isinstance(exc, NewConnectionError):  # before timeouts: urllib3 2 derives it from ConnectTimeoutError
        return RegistryUnavailableError(f"cannot connect to {url.netloc} while fetching {what}: {exc}")
    if isinstance(exc, Urllib3TimeoutError):
        return RegistryUnavailableError(f"{url.netloc} did not answer in time while fetching {what}")
    return RegistryUnavailableError(f"cannot reach {url.netloc} while fetching {what}: {exc}")
