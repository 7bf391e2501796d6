"""Load scenario: 100 concurrent hook invocations while the registry answers a share of requests 429.

    .venv/bin/python bench/load.py [--invocations 100] [--instances 10] [--rates 0.1,0.5,1.0]

The real admission handler (built by its composition root, ECS answered by the test suite's plain
fake) runs in `--instances` warm instances, each answering its share of the invocations at once.
Half the instances deploy a revision of two signed images, the other half one signed and one
unsigned image. The real registry sits behind a proxy that answers each request 429 (`Retry-After:
1`) with the given probability. What is checked, per rate:
- nothing fails open: no revision with the unsigned image is ever SUCCEEDED;
- a revision of signed images is SUCCEEDED, or IN_PROGRESS with a `callBackDelay` that covers the
  registry's Retry-After, or FAILED (block mode) - never anything else;
- every cache stays within its bound (verdict cache, the registry client's remembered facts).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import random
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "lambda_src")]

import http.client  # noqa: E402

from image_verifier.cosign.sign import PemSigner, sign_image  # noqa: E402
from image_verifier.deadline import Deadline  # noqa: E402
from image_verifier.registry import RegistryClient  # noqa: E402
from tests.runtime.handler.hook_support import (  # noqa: E402
    PlainEcs,
    admission_handler,
    hook_event,
    revision_answer,
    task_definition_answer,
)
from tests.support.cosign_material import KeyPair, cosign_policy  # noqa: E402
from tests.support.images import push_image, unique_repository  # noqa: E402
from tests.support.local_registry import start_registry, stop_registry  # noqa: E402

RETRY_AFTER_SECONDS = 1


class ThrottlingProxy:
    """HTTP proxy to the registry that answers 429 with probability `rate` (seeded, so runs repeat)."""

    def __init__(self, upstream: str, rate: float, seed: int = 13) -> None:
        self.upstream, self.rate = upstream, rate
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self.throttled = self.forwarded = 0
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.proxy = self  # type: ignore[attr-defined]
        self.host = f"127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def throttle(self) -> bool:
        with self._lock:
            hit = self._random.random() < self.rate
            if hit:
                self.throttled += 1
            else:
                self.forwarded += 1
            return hit

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class _Server(ThreadingHTTPServer):
    request_queue_size = 1024  # a hundred clients connect at once


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - the base class's name
        proxy: ThrottlingProxy = self.server.proxy  # type: ignore[attr-defined]
        if proxy.throttle():
            body = b'{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}'
            self.send_response(429)
            self.send_header("Retry-After", str(RETRY_AFTER_SECONDS))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        upstream = http.client.HTTPConnection(proxy.upstream, timeout=30)
        upstream.request("GET", self.path, headers={k: v for k, v in self.headers.items() if k.lower() != "host"})
        response = upstream.getresponse()
        data = response.read()
        upstream.close()
        self.send_response(response.status)
        for name, value in response.getheaders():
            if name.lower() not in ("connection", "transfer-encoding", "content-length"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


def _images(registry: Any) -> tuple[KeyPair, list[Any], Any]:
    key = KeyPair.generate()
    repo = unique_repository("load")
    writer = RegistryClient(insecure_registries={registry.host}).bound(Deadline.after(60))
    signed = []
    for name in ("app", "sidecar"):
        image = push_image(registry, repo, name, layer_bytes=f"load-{name}".encode())
        sign_image(writer, image.ref, PemSigner(key.private_pem))
        signed.append(image)
    unsigned = push_image(registry, repo, "debug", layer_bytes=b"load-unsigned")
    return key, signed, unsigned


def scenario(registry: Any, rate: float, invocations: int, instances: int) -> dict[str, Any]:
    key, signed, unsigned = _images(registry)
    proxy = ThrottlingProxy(registry.host, rate)
    try:
        def via(image: Any) -> tuple[str, str]:
            return f"{proxy.host}/{image.repository}:{image.ref.tag}", image.digest

        revisions = {
            "signed": [("app", *via(signed[0])), ("sidecar", *via(signed[1]))],
            "with-unsigned": [("app", *via(signed[0])), ("debug", *via(unsigned))],
        }
        policy = cosign_policy({"ci": {"publicKeyPem": key.public_pem}}, images=f"{proxy.host}/**")
        handlers = []
        for index in range(instances):
            kind = "signed" if index % 2 == 0 else "with-unsigned"
            containers = revisions[kind]
            ecs = PlainEcs(revision_answer(containers), task_definition_answer([(n, i) for n, i, _ in containers]))
            handlers.append((kind, admission_handler(policy, ecs, insecure_registries=[proxy.host])))
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=invocations) as pool:
            futures = [(handlers[i % instances][0], pool.submit(handlers[i % instances][1].handle, hook_event()))
                       for i in range(invocations)]
            answers = [(kind, future.result()) for kind, future in futures]
        elapsed = time.perf_counter() - started
        statuses: dict[str, dict[str, int]] = {"signed": {}, "with-unsigned": {}}
        short_delays = 0
        for kind, answer in answers:
            status = answer["hookStatus"]
            statuses[kind][status] = statuses[kind].get(status, 0) + 1
            if status == "IN_PROGRESS" and answer.get("callBackDelay", 0) < RETRY_AFTER_SECONDS:
                short_delays += 1
        caches = [len(admission.handler._cache) for _, admission in handlers]
        return {"rate": rate, "invocations": invocations, "instances": instances, "seconds": round(elapsed, 1),
                "throttled": proxy.throttled, "forwarded": proxy.forwarded, "statuses": statuses,
                "failed_open": statuses["with-unsigned"].get("SUCCEEDED", 0),
                "in_progress_shorter_than_retry_after": short_delays,
                "largest_verdict_cache": max(caches), "verdict_cache_bound": handlers[0][1].handler._cache._max}
    finally:
        proxy.stop()


def run(registry: Any, rates: list[float], invocations: int, instances: int) -> list[dict[str, Any]]:
    results = []
    for rate in rates:
        with contextlib.redirect_stdout(io.StringIO()):  # Powertools prints every decision's metrics (EMF)
            results.append(scenario(registry, rate, invocations, instances))
        print(results[-1], flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--invocations", type=int, default=100)
    parser.add_argument("--instances", type=int, default=10)
    parser.add_argument("--rates", default="0.1,0.5,1.0")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        registry, process = start_registry(Path(workdir))
        try:
            run(registry, [float(r) for r in args.rates.split(",")], args.invocations, args.instances)
        finally:
            stop_registry(process)


if __name__ == "__main__":
    main()
