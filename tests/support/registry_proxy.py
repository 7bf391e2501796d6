"""A reverse proxy in front of the real test registry that can turn hostile, for attacks with real bytes.

Everything it does not intercept is forwarded to the upstream registry (Debian's docker-registry),
so the verifier reads real images and real signatures through it. It records every request and
connection, and can:

- require a bearer token (a 401 challenge whose realm hands it out), so the client holds a registry
  credential that must never reach another host (issue 9, class 3);
- answer chosen requests itself with a `Reply` (a hostile redirect, a referrers page with a hostile
  `Link`), keyed like `FakeRegistry.route` (exact path with query, or the path alone);
- send every response's status line and headers one byte per interval (issue 9, class 7), noting
  when the client cut the trickle short.

    with RegistryProxy(registry.host, bearer_token="secret") as proxy:
        proxy.route("GET", f"/v2/{repo}/blobs/{digest}", Reply(status=307, headers={"Location": hostile}))
        ... verify f"{proxy.host}/{repo}@{digest}" with insecure_registries={proxy.host} ...
        proxy.requests, proxy.connections
"""

from __future__ import annotations

import http.client
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .fake_registry import RecordedRequest, Reply

UPSTREAM_TIMEOUT = 10.0  # the local registry answers in milliseconds; this only stops a hang
TRICKLE_LIFETIME = 30.0  # a trickle is abandoned after this, so a broken client cannot keep a test alive
STOP_SECONDS = 5.0
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "host", "content-length",
                         "authorization", "proxy-authorization", "te", "trailer", "upgrade"})


class RegistryProxy:
    """An HTTP/1.1 server on 127.0.0.1 that forwards to `upstream` ("host:port") unless told otherwise."""

    def __init__(self, upstream: str, *, bearer_token: str | None = None,
                 trickle_interval: float | None = None) -> None:
        self.upstream = upstream
        self.bearer_token = bearer_token
        self.trickle_interval = trickle_interval
        self._lock = threading.Lock()
        self._routes: dict[tuple[str, str], Reply] = {}
        self._requests: list[RecordedRequest] = []
        self._stopping = threading.Event()
        self.connections = 0  # TCP connections accepted: zero means the client never even connected
        self.trickles_cut = 0  # trickled responses the client stopped reading (it shut the socket down)
        self.trickles_active = 0  # trickled responses still being written
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.proxy = self  # type: ignore[attr-defined]
        self.host = f"127.0.0.1:{self._server.server_address[1]}"
        self.url = f"http://{self.host}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"registry-proxy-{self.host}", daemon=True)

    def __enter__(self) -> RegistryProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(STOP_SECONDS)

    def route(self, method: str, path: str, reply: Reply) -> None:
        """Answer `method path` with `reply` instead of forwarding it."""
        with self._lock:
            self._routes[(method.upper(), path)] = reply

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    # -- serving --------------------------------------------------------------------------------------

    def _reply_for(self, request: RecordedRequest) -> Reply:
        with self._lock:
            self._requests.append(request)
            routed = self._routes.get((request.method, request.path)) or self._routes.get(
                (request.method, request.path.split("?", 1)[0]))
        if request.path.startswith("/token") and self.bearer_token:
            return Reply(body=json.dumps({"token": self.bearer_token, "expires_in": 300}).encode(),
                         headers={"Content-Type": "application/json"})
        if self.bearer_token and request.header("Authorization") != f"Bearer {self.bearer_token}":
            return Reply(status=401, body=b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}',
                         headers={"Content-Type": "application/json",
                                  "WWW-Authenticate": f'Bearer realm="{self.url}/token",service="registry-proxy"'})
        return routed or self._forward(request)

    def _forward(self, request: RecordedRequest) -> Reply:
        connection = http.client.HTTPConnection(self.upstream, timeout=UPSTREAM_TIMEOUT)
        try:
            headers = {k: v for k, v in request.headers.items() if k not in _HOP_BY_HOP}
            connection.request(request.method, request.path, body=request.body or None, headers=headers)
            response = connection.getresponse()
            body = response.read()
            kept = {k: v for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP}
            if request.method == "HEAD":  # keep the upstream's length: the client reads it from HEAD
                kept["Content-Length"] = response.getheader("Content-Length") or "0"
            return Reply(status=response.status, body=body, headers=kept)
        finally:
            connection.close()

    def _send(self, handler: BaseHTTPRequestHandler, head: bytes, body: bytes) -> None:
        if self.trickle_interval is None:
            handler.wfile.write(head + body)
            return
        with self._lock:
            self.trickles_active += 1
        try:
            waited = 0.0
            for byte in head:
                if self._stopping.wait(self.trickle_interval) or waited > TRICKLE_LIFETIME:
                    return
                waited += self.trickle_interval
                handler.wfile.write(bytes([byte]))
                handler.wfile.flush()
            handler.wfile.write(body)
        except OSError:
            with self._lock:
                self.trickles_cut += 1
            raise
        finally:
            with self._lock:
                self.trickles_active -= 1


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # a trickled byte goes out at once

    def setup(self) -> None:
        super().setup()
        proxy: RegistryProxy = self.server.proxy  # type: ignore[attr-defined]
        with proxy._lock:
            proxy.connections += 1

    def _serve(self) -> None:
        proxy: RegistryProxy = self.server.proxy  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        request = RecordedRequest(method=self.command, path=self.path,
                                  headers={k.lower(): v for k, v in self.headers.items()},
                                  body=self.rfile.read(length) if length else b"", client_port=self.client_address[1])
        reply = proxy._reply_for(request)
        headers = {k: v for k, v in reply.headers.items()}
        if not any(k.lower() == "content-length" for k in headers):
            headers["Content-Length"] = str(len(reply.body))
        reason = http.client.responses.get(reply.status, "Status")
        head = f"HTTP/1.1 {reply.status} {reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        proxy._send(self, head.encode("latin-1"), b"" if self.command == "HEAD" else reply.body)

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _serve

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass  # the recorded requests are the log

    def handle(self) -> None:
        try:
            super().handle()
        except (ConnectionError, TimeoutError, OSError):
            pass  # the client gave up (its deadline) or shut the socket down: what these tests provoke
