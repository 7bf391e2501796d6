"""HTTP for the registry client: one urllib3 pool, deadline-bounded calls, bounded bodies.

Everything a registry answers passes through `Transport.send`, which
- refuses plain http unless the host was named insecure, before any byte is sent;
- gives every attempt a timeout of min(per-call cap, deadline remaining);
- follows redirects itself (GET/HEAD only, a few hops) and drops `Authorization` when the
  redirect leaves the origin that the header was made for (ECR blobs redirect to S3);
- reads bodies incrementally and stops past the caller's bound;
- retries an idempotent request once on a reset connection, 429 or 503, when the deadline allows;
- turns every urllib3/socket error into `RegistryUnavailableError` or `DeadlineExceededError`.

Limit: a socket timeout bounds each read, not a whole response, so a server that trickles bytes can
overrun the deadline by at most one read timeout (itself never longer than what was left); the
deadline is checked between chunks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Mapping
from urllib.parse import urljoin, urlsplit

import urllib3
from urllib3.exceptions import HTTPError, NewConnectionError, ProtocolError
from urllib3.exceptions import TimeoutError as Urllib3TimeoutError

from ..deadline import Deadline
from ..errors import DeadlineExceededError, HostileArtifactError, RegistryUnavailableError

CONNECT_TIMEOUT_CAP = 3.0  # seconds; a healthy registry accepts TCP+TLS in well under one
READ_TIMEOUT_CAP = 10.0  # seconds per socket read; ECR/S3 start a response within a few seconds
MAX_REDIRECTS = 3  # ECR needs one (registry -> S3); more is a loop or an attack
RETRY_BACKOFF_SECONDS = 0.2  # one short pause before the single retry; the deadline bounds the rest
MAX_ERROR_BODY_BYTES = 16 * 1024  # an error body is only read for its message
READ_CHUNK_BYTES = 64 * 1024  # incremental reads: the bound is checked between chunks
POOL_HOSTS = 16  # registries (and S3 hosts) one warm Lambda talks to
POOL_CONNECTIONS_PER_HOST = 8  # images are verified in parallel, a few threads per registry
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


def origin_of(url: str) -> tuple[str, str]:
    """(scheme, host:port) with the default port made explicit, for same-origin checks."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme, f"{(parts.hostname or '').lower()}:{port}"


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
        self._insecure = frozenset(h.lower() for h in insecure_hosts)
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._user_agent = user_agent
        self._pool = urllib3.PoolManager(
            num_pools=POOL_HOSTS, maxsize=POOL_CONNECTIONS_PER_HOST, block=False, retries=False,
            ca_certs=ca_certs,
        )

    def base_url(self, host: str) -> str:
        """`https://host`, or `http://host` when the host was named insecure."""
        return f"{'http' if host.lower() in self._insecure else 'https'}://{host}"

    def check_allowed(self, url: str) -> None:
        """Refuse before sending: https anywhere, http only to hosts named insecure."""
        parts = urlsplit(url)
        if parts.scheme == "https" and parts.hostname:
            return
        if parts.scheme == "http" and (parts.netloc or "").lower() in self._insecure:
            return
        raise RegistryUnavailableError(
            f"refusing to send a request to {parts.scheme}://{parts.netloc}: only https is allowed unless the "
            f"host:port is listed in insecure registries (--insecure-registry)"
        )

    def send(
        self,
        method: str,
        url: str,
        *,
        deadline: Deadline,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        max_bytes: int,
        what: str,
        on_request: Callable[[str, str], None] = lambda method, url: None,
    ) -> Response:
        """One logical request: retries once and follows redirects; `on_request` sees every HTTP request."""
        attempt = 0
        while True:
            try:
                response = self._follow(method, url, deadline, dict(headers or {}), body, max_bytes, what, on_request)
            except ProtocolError as exc:  # reset or dropped connection
                if not self._may_retry(method, attempt, deadline):
                    raise RegistryUnavailableError(f"connection to {_host(url)} failed while fetching {what}: {exc}") from exc
            else:
                if response.status not in _RETRY_STATUSES or not self._may_retry(method, attempt, deadline):
                    return response
            attempt += 1
            time.sleep(RETRY_BACKOFF_SECONDS)

    def _may_retry(self, method: str, attempt: int, deadline: Deadline) -> bool:
        return method in _IDEMPOTENT and attempt == 0 and deadline.remaining() > 2 * RETRY_BACKOFF_SECONDS

    def _follow(
        self, method: str, url: str, deadline: Deadline, headers: dict[str, str], body: bytes | None,
        max_bytes: int, what: str, on_request: Callable[[str, str], None],
    ) -> Response:
        auth_origin = origin_of(url)
        for _hop in range(MAX_REDIRECTS + 1):
            if "Authorization" in headers and origin_of(url) != auth_origin:
                # Never hand the registry's credential to another host (S3 rejects it; it leaks the token).
                headers = {k: v for k, v in headers.items() if k != "Authorization"}
            response = self._once(method, url, deadline, headers, body, max_bytes, what, on_request)
            if response.status not in _REDIRECT_STATUSES or method not in _IDEMPOTENT:
                return response
            location = response.header("Location")
            if not location:
                raise RegistryUnavailableError(f"{_host(url)} answered {response.status} without a Location for {what}")
            url = urljoin(url, location)
        raise RegistryUnavailableError(f"more than {MAX_REDIRECTS} redirects while fetching {what}; last was to {_host(url)}")

    def _once(
        self, method: str, url: str, deadline: Deadline, headers: dict[str, str], body: bytes | None,
        max_bytes: int, what: str, on_request: Callable[[str, str], None],
    ) -> Response:
        self.check_allowed(url)
        timeout = urllib3.Timeout(connect=deadline.timeout(self._connect_timeout), read=deadline.timeout(self._read_timeout))
        # identity: digests are over the stored bytes, and a compressed body could expand without bound.
        all_headers = {"User-Agent": self._user_agent, "Accept-Encoding": "identity", **headers}
        on_request(method, url)
        try:
            raw = self._pool.request(
                method, url, headers=all_headers, body=body, timeout=timeout, redirect=False,
                retries=False, preload_content=False, decode_content=False,
            )
        except ProtocolError:
            raise
        except (HTTPError, OSError) as exc:
            raise _unavailable(exc, url, what, deadline) from exc
        try:
            limit = max_bytes if 200 <= raw.status < 300 else MAX_ERROR_BODY_BYTES
            strict = 200 <= raw.status < 300 and method != "HEAD"
            data = _read_bounded(raw, limit, strict=strict, what=what, deadline=deadline)
        except ProtocolError:
            raw.close()
            raise
        except (HTTPError, OSError) as exc:
            raw.close()
            raise _unavailable(exc, url, what, deadline) from exc
        except BaseException:
            raw.close()  # a half-read response must not go back to the pool
            raise
        finally:
            raw.release_conn()
        return Response(status=raw.status, headers=_Headers(raw.headers), body=data, url=url)


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


def _unavailable(exc: BaseException, url: str, what: str, deadline: Deadline) -> Exception:
    if deadline.remaining() <= 0:
        return DeadlineExceededError(f"the deadline passed while fetching {what} from {_host(url)}")
    if isinstance(exc, NewConnectionError):  # before timeouts: urllib3 2 derives it from ConnectTimeoutError
        return RegistryUnavailableError(f"cannot connect to {_host(url)} while fetching {what}: {exc}")
    if isinstance(exc, Urllib3TimeoutError):
        return RegistryUnavailableError(f"{_host(url)} did not answer in time while fetching {what}")
    return RegistryUnavailableError(f"cannot reach {_host(url)} while fetching {what}: {exc}")


def _host(url: str) -> str:
    return urlsplit(url).netloc or url
