"""A tiny fake OCI registry for what docker-registry 2.8 cannot do.

It serves the referrers API (with pagination), redirects, bearer-token and basic challenges, slow
answers and 5xx — each configured explicitly by the test, nothing implied. It records every request
(method, path, headers) so a test can assert what was, and was not, sent.

    fake.add_manifest("repo", raw, OCI_MANIFEST, tags=["v1"])
    fake.route("GET", "/v2/repo/referrers/sha256:...", Reply(body=index, headers={"Content-Type": OCI_INDEX}))
    fake.require_bearer(token="t0k")
    fake.route("GET", "/v2/slow/manifests/v1", Reply(delay=30))
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Iterable, Mapping, Union

from .images import sha256_digest

STOP_SECONDS = 5.0  # joining the serving thread; request threads are daemons and may outlive it


@dataclass(frozen=True, kw_only=True)
class Reply:
    """One canned answer. `delay` waits before answering (cut short when the server stops)."""

    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    stream: bool = False  # no Content-Length: the body ends when the connection closes


@dataclass(frozen=True, kw_only=True)
class RecordedRequest:
    method: str
    path: str  # with the query string
    headers: Mapping[str, str]  # keys in lower case
    body: bytes
    client_port: int  # the client's TCP port: one value for many requests means a reused connection

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


Handler = Union[Reply, Callable[[RecordedRequest], Reply]]


def error_reply(status: int, code: str, message: str) -> Reply:
    body = json.dumps({"errors": [{"code": code, "message": message}]}).encode()
    return Reply(status=status, body=body, headers={"Content-Type": "application/json"})


class FakeRegistry:
    """A ThreadingHTTPServer on 127.0.0.1 with a free port. Use as a context manager or start()/stop()."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._routes: dict[tuple[str, str], Handler] = {}
        self._requests: list[RecordedRequest] = []
        self._stopping = threading.Event()
        self._bearer: tuple[str, str] | None = None  # (token, WWW-Authenticate value)
        self._basic: tuple[str, str] | None = None  # (Authorization value, WWW-Authenticate value)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _RequestHandler)
        self._server.daemon_threads = True
        self._server.fake = self  # type: ignore[attr-defined]
        self.host = f"127.0.0.1:{self._server.server_address[1]}"
        self.url = f"http://{self.host}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"fake-registry-{self.host}", daemon=True)

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> FakeRegistry:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(STOP_SECONDS)

    def __enter__(self) -> FakeRegistry:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- configuration ---------------------------------------------------------------------------

    def route(self, method: str, path: str, reply: Handler) -> None:
        """Answer `method path` (exact, query included; or the path alone) with `reply`."""
        with self._lock:
            self._routes[(method.upper(), path)] = reply

    def add_blob(self, repo: str, data: bytes) -> str:
        digest = sha256_digest(data)
        self._content(repo, "blobs", [digest], data, "application/octet-stream")
        return digest

    def add_manifest(self, repo: str, raw: bytes, media_type: str, *, tags: Iterable[str] = ()) -> str:
        """Serve `raw` by its digest and by each tag, with Docker-Content-Digest like a real registry."""
        digest = sha256_digest(raw)
        self._content(repo, "manifests", [digest, *tags], raw, media_type, {"Docker-Content-Digest": digest})
        return digest

    def require_bearer(self, *, token: str = "fake-token", service: str = "fake-registry", expires_in: int = 300,
                       realm: str | None = None) -> None:
        """Every /v2/ request needs `Bearer <token>`; GET /token hands it out (to anyone)."""
        realm = realm or f"{self.url}/token"
        challenge = f'Bearer realm="{realm}",service="{service}"'
        with self._lock:
            self._bearer = (token, challenge)
        self.route("GET", "/token", lambda request: Reply(
            body=json.dumps({"token": token, "expires_in": expires_in}).encode(),
            headers={"Content-Type": "application/json"},
        ))

    def require_basic(self, authorization: str) -> None:
        """Every /v2/ request needs exactly this Authorization value (e.g. BasicCredentials.header)."""
        with self._lock:
            self._basic = (authorization, 'Basic realm="fake-registry"')

    # -- inspection ------------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def requests_to(self, path_prefix: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.startswith(path_prefix)]

    # -- serving ---------------------------------------------------------------------------------

    def _content(self, repo: str, kind: str, references: list[str], body: bytes, media_type: str,
                 extra: Mapping[str, str] | None = None) -> None:
        headers = {"Content-Type": media_type, **(extra or {})}
        for reference in references:
            for method in ("GET", "HEAD"):
                self.route(method, f"/v2/{repo}/{kind}/{reference}", Reply(body=body, headers=headers))

    def _reply_for(self, request: RecordedRequest) -> Reply:
        with self._lock:
            self._requests.append(request)
            bearer, basic = self._bearer, self._basic
            handler = self._routes.get((request.method, request.path)) or self._routes.get(
                (request.method, request.path.split("?", 1)[0])
            )
        if request.path.startswith("/v2/"):
            sent = request.header("Authorization")
            if bearer and sent != f"Bearer {bearer[0]}":
                return _unauthorized(bearer[1])
            if basic and sent != basic[0]:
                return _unauthorized(basic[1])
        if handler is None:
            return error_reply(404, "MANIFEST_UNKNOWN", f"no route for {request.method} {request.path}")
        return handler(request) if callable(handler) else handler

    def _wait(self, seconds: float) -> None:
        self._stopping.wait(seconds)


def _unauthorized(challenge: str) -> Reply:
    reply = error_reply(401, "UNAUTHORIZED", "authentication required")
    return Reply(status=401, body=reply.body, headers={**reply.headers, "WWW-Authenticate": challenge})


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so the client's connection pool is exercised
    disable_nagle_algorithm = True  # headers and body go out in two writes; do not wait 40 ms between them

    def _serve(self) -> None:
        fake: FakeRegistry = self.server.fake  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = RecordedRequest(
            method=self.command, path=self.path, headers={k.lower(): v for k, v in self.headers.items()}, body=body,
            client_port=self.client_address[1],
        )
        reply = fake._reply_for(request)
        if reply.delay:
            fake._wait(reply.delay)
        self.send_response(reply.status)
        headers = {k.lower(): v for k, v in reply.headers.items()}
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if reply.stream:
            self.close_connection = True
            self.send_header("Connection", "close")
        elif "content-length" not in headers:
            self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = do_PATCH = _serve

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass  # quiet: the recorded requests are the log

    def handle(self) -> None:
        try:
            super().handle()
        except (ConnectionError, TimeoutError):
            pass  # the client gave up (deadline) or closed an oversized body: expected in these tests
