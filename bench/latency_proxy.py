"""A TCP proxy on 127.0.0.1 that adds network round-trip time, for the benchmarks.

    python bench/latency_proxy.py --upstream 127.0.0.1:5000 --rtt-ms 20

It prints ``listening 127.0.0.1:PORT`` and then answers commands on stdin, one per line:
``stats`` prints one JSON line (what happened since the last ``stats``) and starts counting afresh;
``quit`` stops it.

The model of the network: every chunk, in either direction, arrives rtt/2 after it was sent, in
order; and the first bytes a client sends on a new connection are held one more rtt, which is what
the TCP handshake (SYN, SYN-ACK) costs before a client may send anything. TLS is not modelled (the
test registry speaks plain HTTP); a TLS 1.3 handshake would add one more rtt per new connection.

The counters: connections accepted, HTTP requests (request lines seen going upstream), bytes each
way, and the network span: from the first connection or byte after the reset to the last byte
delivered back to a client (`time.monotonic`, which is one clock for every process on the host, so
the bench can compare it with a child process's life).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
import time
from dataclasses import asdict, dataclass

READ_BYTES = 64 * 1024
_REQUEST_LINE_END = b" HTTP/1.1\r\n"


@dataclass(kw_only=True)
class Stats:
    connections: int = 0
    requests: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    first: float | None = None  # monotonic seconds
    last: float | None = None

    def touch_first(self, now: float) -> None:
        if self.first is None:
            self.first = now

    def report(self) -> dict[str, object]:
        span = (self.last - self.first) if self.first is not None and self.last is not None else None
        return {**asdict(self), "span_ms": None if span is None else round(span * 1000, 2)}


class LatencyProxy:
    def __init__(self, upstream: str, rtt: float) -> None:
        self.upstream_host, port = upstream.rsplit(":", 1)
        self.upstream_port = int(port)
        self.rtt = rtt
        self.stats = Stats()

    async def serve(self) -> None:
        server = await asyncio.start_server(self._connection, "127.0.0.1", 0, backlog=1024)
        host, port = server.sockets[0].getsockname()[:2]
        print(f"listening {host}:{port}", flush=True)
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        threading.Thread(target=self._commands, args=(loop, done), daemon=True).start()
        async with server:
            await done

    def _commands(self, loop: asyncio.AbstractEventLoop, done: asyncio.Future[None]) -> None:
        for line in sys.stdin:
            command = line.strip()
            if command == "stats":
                ready = threading.Event()
                report: list[dict[str, object]] = []

                def snapshot() -> None:
                    report.append(self.stats.report())
                    self.stats = Stats()
                    ready.set()

                loop.call_soon_threadsafe(snapshot)
                ready.wait()
                print(json.dumps(report[0]), flush=True)
            elif command == "quit":
                break
        loop.call_soon_threadsafe(lambda: done.done() or done.set_result(None))

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        accepted = time.monotonic()
        self.stats.connections += 1
        self.stats.touch_first(accepted)
        try:
            up_reader, up_writer = await asyncio.open_connection(self.upstream_host, self.upstream_port)
        except OSError:
            writer.close()
            return
        handshake_until = accepted + self.rtt  # the client could not have sent before SYN, SYN-ACK
        await asyncio.gather(self._pipe(loop, reader, up_writer, upstream=True, hold_until=handshake_until),
                             self._pipe(loop, up_reader, writer, upstream=False, hold_until=0.0))

    async def _pipe(self, loop: asyncio.AbstractEventLoop, source: asyncio.StreamReader, target: asyncio.StreamWriter,
                    *, upstream: bool, hold_until: float) -> None:
        delay = self.rtt / 2
        last_due = 0.0
        offset = loop.time() - time.monotonic()  # loop.time() is monotonic too, maybe offset
        while True:
            try:
                data = await source.read(READ_BYTES)
            except (ConnectionError, OSError):
                data = b""
            now = time.monotonic()
            # Strictly increasing due times keep the chunks in order (timers with equal times may not be).
            due = max(now + delay, hold_until, last_due + 1e-6)
            last_due = due
            if not data:
                loop.call_at(due + offset, _close, target)
                return
            if upstream:
                self.stats.touch_first(now)
                self.stats.bytes_up += len(data)
                self.stats.requests += data.count(_REQUEST_LINE_END)
            loop.call_at(due + offset, self._deliver, target, data, upstream)

    def _deliver(self, target: asyncio.StreamWriter, data: bytes, upstream: bool) -> None:
        if target.is_closing():
            return
        target.write(data)
        if not upstream:
            self.stats.bytes_down += len(data)
            self.stats.last = time.monotonic()


def _close(writer: asyncio.StreamWriter) -> None:
    if not writer.is_closing():
        writer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--upstream", required=True, metavar="HOST:PORT")
    parser.add_argument("--rtt-ms", type=float, default=20.0)
    args = parser.parse_args()
    asyncio.run(LatencyProxy(args.upstream, args.rtt_ms / 1000).serve())


if __name__ == "__main__":
    main()
