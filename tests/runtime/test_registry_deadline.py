"""No request outlives the decision's deadline, even when the registry trickles bytes (issue 9, class 7).

A loopback server sends its status line and headers (or its body) one byte every 0.2 s: no single
socket read ever times out, so only a bound on the whole exchange can end it. The CLI runs in a
subprocess too, because the reported failure was the process waiting at exit for a reading thread.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from image_verifier.deadline import Deadline
from image_verifier.errors import DeadlineExceededError
from image_verifier.oci import OCI_MANIFEST, Descriptor
from image_verifier.reference import ImageReference
from image_verifier.registry import RegistryClient
from tests.e2e.cli_helpers import write_policy
from tests.support.cosign_material import KeyPair, cosign_policy
from tests.support.fake_registry import FakeRegistry
from tests.support.images import build_image, sha256_digest
from tests.support.local_registry import free_port

TRICKLE_INTERVAL = 0.2  # seconds between bytes: far below any read timeout
SERVER_LIFETIME = 30.0  # each connection is dropped after this, so a broken client cannot keep the test alive
SLACK = 1.0  # the brief: unavailable within the deadline plus about a second
HEADERS = b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: 2\r\n\r\n{}"


class TricklingServer:
    """Answers every request on 127.0.0.1 with `prefix` at once, then `trickle` one byte per interval."""

    def __init__(self, *, prefix: bytes, trickle: bytes, request_end: bytes = b"\r\n\r\n") -> None:
        self._prefix, self._trickle, self._request_end = prefix, trickle, request_end
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.host = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True, name=f"trickle-{self.host}").start()

    def close(self) -> None:
        self._stop.set()
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.settimeout(SERVER_LIFETIME)
                request = b""
                while self._request_end not in request:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    request += chunk
                conn.sendall(self._prefix)
                started = time.monotonic()
                for byte in self._trickle:
                    if self._stop.wait(TRICKLE_INTERVAL) or time.monotonic() - started > SERVER_LIFETIME:
                        return
                    conn.sendall(bytes([byte]))
            except OSError:
                return  # the client shut the connection down: what the test wants


def trickling(prefix: bytes, trickle: bytes, request_end: bytes = b"\r\n\r\n") -> Iterator[TricklingServer]:
    server = TricklingServer(prefix=prefix, trickle=trickle, request_end=request_end)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def trickling_headers() -> Iterator[TricklingServer]:
    yield from trickling(b"", HEADERS.replace(b"\r\n\r\n", b"\r\nX-Padding: " + b"a" * 500 + b"\r\n\r\n"))


@pytest.fixture
def trickling_body() -> Iterator[TricklingServer]:
    body = b"x" * 500
    yield from trickling(f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode(), body)


@pytest.fixture
def trickling_stream() -> Iterator[TricklingServer]:
    # No Content-Length: the body ends when the connection closes, so a cut-off body looks complete
    yield from trickling(b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\n"
                         b"Connection: close\r\n\r\n{\"schemaVersion\":2", b" " * 500 + b"}")


@pytest.fixture
def trickling_tls_handshake() -> Iterator[TricklingServer]:
    # After the ClientHello: a TLS handshake record header announcing 16 KiB, then one byte per interval
    yield from trickling(b"\x16\x03\x03\x40\x00", b"\x02" * 500, request_end=b"")


def timed(call, deadline_seconds: float) -> tuple[BaseException | None, float]:
    started = time.monotonic()
    try:
        call(Deadline.after(deadline_seconds))
    except Exception as exc:  # noqa: BLE001 - the test inspects it
        return exc, time.monotonic() - started
    return None, time.monotonic() - started


@pytest.mark.timeout(30)
def test_gives_up_at_the_deadline_when_the_registry_trickles_its_headers(trickling_headers):
    # Given: 0.2 s between bytes never trips the 10 s read timeout; the whole answer would take ~2 min
    client = RegistryClient(insecure_registries={trickling_headers.host})
    ref = ImageReference.parse(f"{trickling_headers.host}/app:v1")
    # When
    error, elapsed = timed(lambda deadline: client.bound(deadline).resolve(ref), 2.0)
    # Then
    assert isinstance(error, DeadlineExceededError), error
    assert "deadline passed" in str(error)
    assert elapsed < 2.0 + SLACK


@pytest.mark.timeout(30)
def test_gives_up_at_the_deadline_when_the_registry_trickles_a_body_with_a_length(trickling_body):
    # Given
    client = RegistryClient(insecure_registries={trickling_body.host})
    ref = ImageReference.parse(f"{trickling_body.host}/app:v1")
    descriptor = Descriptor(media_type="application/octet-stream", digest=sha256_digest(b"x" * 500), size=500)
    # When
    error, elapsed = timed(lambda deadline: client.bound(deadline).get_blob(ref, descriptor, max_bytes=1024), 1.5)
    # Then
    assert isinstance(error, DeadlineExceededError), error
    assert elapsed < 1.5 + SLACK


@pytest.mark.timeout(30)
def test_gives_up_at_the_deadline_when_the_registry_trickles_its_tls_handshake(trickling_tls_handshake):
    # Given: an https registry (not named insecure) whose ServerHello comes one byte at a time
    client = RegistryClient()
    ref = ImageReference.parse(f"{trickling_tls_handshake.host}/app:v1")
    # When
    error, elapsed = timed(lambda deadline: client.bound(deadline).resolve(ref), 1.5)
    # Then
    assert isinstance(error, DeadlineExceededError), error
    assert elapsed < 1.5 + SLACK


@pytest.mark.timeout(30)
def test_rejects_a_cut_off_body_when_the_deadline_ends_a_stream_without_length(trickling_stream):
    # Given: shutting the socket down ends this body cleanly as far as HTTP can tell
    client = RegistryClient(insecure_registries={trickling_stream.host})
    ref = ImageReference.parse(f"{trickling_stream.host}/app:v1")
    # When
    error, elapsed = timed(lambda deadline: client.bound(deadline).resolve(ref), 1.5)
    # Then: the truncated bytes are never parsed as a manifest
    assert isinstance(error, DeadlineExceededError), error
    assert elapsed < 1.5 + SLACK


@pytest.mark.timeout(30)
def test_keeps_a_pooled_connection_when_an_earlier_exchange_on_it_ended_before_its_deadline(fake_registry: FakeRegistry):
    # Given: one keep-alive connection; the first decision's deadline passes after its request ended
    _, raw = build_image()
    fake_registry.add_manifest("app", raw, OCI_MANIFEST, tags=["v1"])
    client = RegistryClient(insecure_registries={fake_registry.host})
    ref = ImageReference.parse(f"{fake_registry.host}/app:v1")
    client.bound(Deadline.after(0.3)).resolve(ref)
    time.sleep(0.5)  # the watchdog's time for the first exchange comes and goes
    # When
    manifest = client.bound(Deadline.after(10)).resolve(ref)
    # Then: the same connection served both, untouched by the first exchange's deadline
    assert manifest.digest == sha256_digest(raw)
    assert len({r.client_port for r in fake_registry.requests}) == 1


@pytest.mark.timeout(90)
def test_cli_process_exits_unavailable_by_the_deadline_when_the_registry_trickles(tmp_path, trickling_headers):
    # Given: a policy whose rule names the trickling registry, and a pinned digest (no resolution step)
    host = trickling_headers.host
    policy = write_policy(tmp_path, cosign_policy({"ci": {"publicKeyPem": KeyPair.generate().public_pem}}, images=f"{host}/**"))
    image = f"{host}/app@{sha256_digest(b'any image')}"
    # ... and what the same command costs when the registry refuses at once (start-up, imports, policy)
    baseline, _ = _run_cli(policy, f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}/app@{sha256_digest(b'x')}")
    # When: a fresh process, as a pipeline runs it
    elapsed, completed = _run_cli(policy, host, image)
    # Then: unavailable (exit 3), and the process itself is gone within the deadline plus the slack
    assert completed.returncode == 3, completed.stderr
    assert '"outcome": "unavailable"' in completed.stdout
    assert "Traceback" not in completed.stderr
    assert elapsed < baseline + 2.0 + SLACK, (elapsed, baseline)


def _run_cli(policy, host: str, image: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.monotonic()
    completed = subprocess.run(
        [sys.executable, "-m", "image_verifier", "verify", "--policy", str(policy), "--insecure-registry", host,
         "--json", "--timeout", "2", image],
        capture_output=True, text=True, timeout=45, stdin=subprocess.DEVNULL,
    )
    return time.monotonic() - started, completed
