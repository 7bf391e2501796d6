"""Run Debian's `docker-registry` (distribution 2.8) on 127.0.0.1 for the length of a test session.

distribution 2.8 stores and serves OCI manifests and indexes but has no referrers API (404), so it
exercises the referrers tag schema fallback; the fake registry covers the rest.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import http.client
from dataclasses import dataclass
from pathlib import Path

DOCKER_REGISTRY_BINARY = "/usr/bin/docker-registry"
STARTUP_SECONDS = 20.0  # a cold start on a busy 2-core CI box takes well under a second
STOP_SECONDS = 5.0  # the registry exits promptly on SIGTERM; kill it if it does not
START_ATTEMPTS = 3  # a free port found by bind-and-close can be taken before the registry binds it

_CONFIG = """\
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:{port}
  secret: local-test-registry-not-a-secret
"""


@dataclass(frozen=True, kw_only=True)
class LocalRegistry:
    """A running docker-registry: `host` is "127.0.0.1:PORT", `url` is "http://127.0.0.1:PORT"."""

    host: str
    url: str
    root: Path
    log_path: Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_registry(workdir: Path) -> tuple[LocalRegistry, subprocess.Popen[bytes]]:
    """Start docker-registry with storage under `workdir`; returns once `/v2/` answers."""
    if not os.access(DOCKER_REGISTRY_BINARY, os.X_OK):
        raise RuntimeError(
            f"{DOCKER_REGISTRY_BINARY} is missing: run `make test`, which installs Debian's docker-registry "
            "package (or `sudo apt-get install docker-registry`)"
        )
    last_error = "not started"
    for attempt in range(START_ATTEMPTS):
        port = free_port()
        root = workdir / f"storage-{attempt}"
        root.mkdir(parents=True, exist_ok=True)
        config = workdir / f"config-{attempt}.yml"
        config.write_text(_CONFIG.format(root=root, port=port))
        log_path = workdir / f"registry-{attempt}.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [DOCKER_REGISTRY_BINARY, "serve", str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        host = f"127.0.0.1:{port}"
        if _wait_until_up(process, host):
            return LocalRegistry(host=host, url=f"http://{host}", root=root, log_path=log_path), process
        stop_registry(process)
        last_error = log_path.read_text(errors="replace")[-2000:]
    raise RuntimeError(f"docker-registry did not start after {START_ATTEMPTS} attempts; last log:\n{last_error}")


def stop_registry(process: subprocess.Popen[bytes]) -> None:
    """Terminate, wait, and kill if it will not go."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_SECONDS)


def _wait_until_up(process: subprocess.Popen[bytes], host: str) -> bool:
    give_up_at = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < give_up_at:
        if process.poll() is not None:
            return False
        # http.client rather than urllib.request: it never consults proxy settings.
        connection = http.client.HTTPConnection(host, timeout=1.0)
        try:
            connection.request("GET", "/v2/")
            if connection.getresponse().status == 200:
                return True
        except OSError:
            pass
        finally:
            connection.close()
        time.sleep(0.05)
    return False
