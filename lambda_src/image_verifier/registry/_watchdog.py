"""A hard end for every HTTP exchange: at the deadline, the exchange's socket is shut down.

A socket timeout bounds one `recv`, not a response: a registry that sends its status line one byte
every 0.2 s never trips a 10 s read timeout, and the verifier thread (and so the process, whose
ThreadPoolExecutor threads are joined at exit) waits as long as the registry likes. Checking the
clock between reads cannot help while http.client is still inside `begin()` reading headers.

So each exchange is *armed* with its deadline before urllib3 touches the connection. The pool's
connection classes below attach themselves to the armed exchange of the calling thread when they
connect or send; one daemon thread sleeps until the earliest deadline and then calls
`shutdown(SHUT_RDWR)` on the attached socket, which wakes a blocked `recv` with end-of-file on Linux
and every other platform we run on. The transport then reports `DeadlineExceededError`.

A connection is owned by one exchange at a time: when urllib3 hands a pooled connection to another
request, `request()` re-attaches it, and a late fire for the old exchange leaves it alone.
During a TLS handshake the TCP socket is already detached into the SSLSocket being built, so a fire
is a no-op there; it need not act: CPython bounds a whole handshake by the socket timeout (the connect
timeout, never longer than what was left), not each read (tested with a trickled ServerHello).
"""

from __future__ import annotations

import heapq
import itertools
import socket
import threading
import time
from typing import Any

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool


class Exchange:
    """One armed request/response. `fired` is true once its deadline shut the socket down."""

    __slots__ = ("connection", "done", "expires_at", "fired", "sock")

    def __init__(self, expires_at: float) -> None:
        self.expires_at = expires_at
        self.connection: Any = None
        # The socket is kept here too: http.client drops `connection.sock` as soon as it has read the
        # headers of a `Connection: close` answer, while the body is still read from that socket.
        self.sock: socket.socket | None = None
        self.fired = False
        self.done = False


class Watchdog:
    """One daemon thread per process (started on first use), shared by every transport."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._heap: list[tuple[float, int, Exchange]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None
        self._local = threading.local()

    def arm(self, expires_at: float) -> Exchange:
        """Start guarding the calling thread's next exchange; pair with `disarm` in a `finally`."""
        exchange = Exchange(expires_at)
        with self._lock:
            heapq.heappush(self._heap, (expires_at, next(self._order), exchange))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="registry-deadline-watchdog", daemon=True)
                self._thread.start()
            self._lock.notify()
        self._local.exchange = exchange
        return exchange

    def disarm(self, exchange: Exchange) -> bool:
        """Stop guarding; True when the deadline had already shut the exchange down (its data is suspect)."""
        with self._lock:
            exchange.done = True
            if exchange.connection is not None and getattr(exchange.connection, "_watchdog_owner", None) is exchange:
                exchange.connection._watchdog_owner = None
            exchange.connection = exchange.sock = None
        if getattr(self._local, "exchange", None) is exchange:
            self._local.exchange = None
        return exchange.fired

    def attach(self, connection: Any) -> None:
        """Called by a connection as the calling thread uses it: it now belongs to that thread's exchange."""
        exchange = getattr(self._local, "exchange", None)
        if exchange is None:
            return
        with self._lock:
            connection._watchdog_owner = exchange
            exchange.connection = connection
            exchange.sock = getattr(connection, "sock", None) or exchange.sock
            fire_now = not exchange.done and exchange.expires_at <= time.monotonic()
        if fire_now:
            self._fire(exchange)

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._heap:
                    self._lock.wait()
                expires_at, _, exchange = self._heap[0]
                wait = expires_at - time.monotonic()
                if wait > 0:
                    self._lock.wait(wait)
                    continue
                heapq.heappop(self._heap)
            if not exchange.done:
                self._fire(exchange)

    def _fire(self, exchange: Exchange) -> None:
        with self._lock:
            connection = exchange.connection
            if exchange.done or connection is None or getattr(connection, "_watchdog_owner", None) is not exchange:
                exchange.fired = not exchange.done  # nothing attached yet: the transport checks this flag
                return
            exchange.fired = True
            sock = getattr(connection, "sock", None) or exchange.sock
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)  # wakes a blocked recv; the pool discards the connection
                except OSError:
                    pass  # already closed, or mid-handshake (see the module docstring)


WATCHDOG = Watchdog()


class _Watched:
    """Mixin for urllib3 connections: attach to the calling thread's armed exchange on connect and send."""

    def connect(self) -> None:
        WATCHDOG.attach(self)
        super().connect()  # type: ignore[misc]
        WATCHDOG.attach(self)  # again, now with the connected (and, for https, TLS-wrapped) socket

    def request(self, *args: Any, **kwargs: Any) -> None:
        WATCHDOG.attach(self)
        super().request(*args, **kwargs)  # type: ignore[misc]


class WatchedHTTPConnection(_Watched, HTTPConnection):
    pass


class WatchedHTTPSConnection(_Watched, HTTPSConnection):
    pass


class WatchedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = WatchedHTTPConnection


class WatchedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = WatchedHTTPSConnection


POOL_CLASSES = {"http": WatchedHTTPConnectionPool, "https": WatchedHTTPSConnectionPool}
