"""A reverse proxy that counts dependent round trips, in front of a real registry.

Every request that reaches it is held at a gate. The gate opens when no new request has arrived
for `quiet` seconds, lets everything held through at once, and numbers that batch: the round.
A request that needs the answer to another can only arrive after that other one was let through,
so it lands in a later round; requests sent together land in the same one. The number of rounds is
therefore the number of dependent round trips the client made, whatever the machine's speed (a
slow machine only makes each round take longer). Nothing here measures wall time.

    with RoundRecorder(registry.host) as proxy:
        ... verify f"{proxy.host}/repo@sha256:..." with insecure_registries={proxy.host} ...
        proxy.rounds()  # [["GET /v2/repo/manifests/sha256:...", "GET /v2/repo/manifests/sha256-....sig"], [...]]
"""

from __future__ import annotations

import http.client
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

QUIET_SECONDS = 1.0  # a batch is closed after this long without a new request (a loaded CI box can stall that long)
UPSTREAM_TIMEOUT = 10.0
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "host", "content-length"})


@dataclass(kw_only=True)
class Held:
    method: str
    path: str
    client_port: int = 0  # one value for many requests means a reused (pooled) connection
    opened: threading.Event = field(default_factory=threading.Event)
    round: int = 0


class RoundRecorder:
    """An HTTP proxy on 127.0.0.1 that forwards to `upstream` ("host:port") and numbers rounds."""

    def __init__(self, upstream: str, *, quiet: float = QUIET_SECONDS) -> None:
        self.upstream = upstream
        self.quiet = quiet
        self._cond = threading.Condition()
        self._held: list[Held] = []
        self._done: list[Held] = []
        self._last_arrival = 0.0
        self._round = 0
        self._stopping = False
        self._in_flight = 0
        self.max_in_flight = 0
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.recorder = self  # type: ignore[attr-defined]
        self.host = f"127.0.0.1:{self._server.server_address[1]}"
        self._threads = [threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True),
                         threading.Thread(target=self._gate, daemon=True)]

    def __enter__(self) -> RoundRecorder:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._server.shutdown()
        self._server.server_close()

    def reset(self) -> None:
        """Forget what was recorded (e.g. the pushes before the verification under test)."""
        with self._cond:
            self._done.clear()
            self._round = 0

    def rounds(self) -> list[list[str]]:
        """The requests let through, "METHOD path" per request, one list per round, in order."""
        with self._cond:
            done = list(self._done)
        by_round: dict[int, list[str]] = {}
        for held in done:
            by_round.setdefault(held.round, []).append(f"{held.method} {held.path}")
        return [sorted(by_round[r]) for r in sorted(by_round)]

    # -- the gate ---------------------------------------------------------------------------------

    def client_ports(self) -> set[int]:
        """The client's TCP ports seen since the last reset: one per connection it used."""
        with self._cond:
            return {held.client_port for held in self._done}

    def arrive(self, method: str, path: str, client_port: int = 0) -> Held:
        held = Held(method=method, path=path, client_port=client_port)
        with self._cond:
            self._held.append(held)
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            self._last_arrival = time.monotonic()
            self._cond.notify_all()
        held.opened.wait()
        return held

    def left(self) -> None:
        with self._cond:
            self._in_flight -= 1

    def _gate(self) -> None:
        with self._cond:
            while not self._stopping:
                if not self._held:
                    self._cond.wait()
                    continue
                wait = self._last_arrival + self.quiet - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                self._round += 1
                for held in self._held:
                    held.round = self._round
                    self._done.append(held)
                    held.opened.set()
                self._held.clear()
            for held in self._held:
                held.opened.set()


class _Server(ThreadingHTTPServer):
    request_queue_size = 1024  # many clients connect at once; the default backlog (5) would stall them


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a registry would
    disable_nagle_algorithm = True

    def _forward(self) -> None:
        recorder: RoundRecorder = self.server.recorder  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        recorder.arrive(self.command, self.path, self.client_address[1])
        try:
            upstream = http.client.HTTPConnection(recorder.upstream, timeout=UPSTREAM_TIMEOUT)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            upstream.request(self.command, self.path, body=body, headers=headers)
            response = upstream.getresponse()
            data = response.read()
            upstream.close()
            self.send_response(response.status)
            for name, value in response.getheaders():
                if name.lower() not in _HOP_BY_HOP:
                    self.send_header(name, value.replace(recorder.upstream, recorder.host))
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
        finally:
            recorder.left()

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _forward

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass

    def handle(self) -> None:
        try:
            super().handle()
        except (ConnectionError, TimeoutError):
            pass
