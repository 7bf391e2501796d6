"""Debian's containerd, started for the tests, and a line-by-line model of how 1.6 picks a manifest.

`start_containerd(workdir)` runs `containerd` as root with its own root, state directory and socket
under `workdir` (a minimal config: no CRI, no systemd), and `Containerd.pull` runs
`ctr images pull --plain-http --platform P --print-chainid` against it, returning the chain id of
the rootfs containerd unpacked: the layers that would run. `stop_containerd` ends it by PID.

`containerd16_pick(entries, platform)` mirrors containerd 1.6's `platforms.Only(p)` plus
`images.Manifest` (filter with `Match`, stable sort with `Less`, entries without a platform last,
limit 1) over already decoded index entries, for property tests that cannot start a daemon.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

CONTAINERD_BINARY = "/usr/bin/containerd"
CTR_BINARY = "/usr/bin/ctr"
STARTUP_SECONDS = 20.0  # containerd boots in well under a second here
STOP_SECONDS = 5.0
PULL_SECONDS = 60.0  # a pull of a few KiB from the loopback registry takes a fraction of a second
SNAPSHOTTER = "native"  # needs no overlayfs or mount privileges beyond root
MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes, and containerd adds ".ttrpc" for its second socket

_CONFIG = """\
version = 2
root = "{root}"
state = "{state}"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "{socket}"
[ttrpc]
  address = "{socket}.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "{opt}"
"""
_CHAIN_ID = re.compile(r"image chain ID: (sha256:[0-9a-f]{64})")


def unavailable_reason() -> str | None:
    """Why containerd cannot run here, or None when it can."""
    if os.geteuid() != 0:
        return "containerd needs root (it mounts snapshots and owns its state); run the tests as root, as CI does"
    for binary in (CONTAINERD_BINARY, CTR_BINARY):
        if not os.access(binary, os.X_OK):
            return f"{binary} is missing: install Debian's containerd package"
    return None


@dataclass(frozen=True, kw_only=True)
class PullResult:
    code: int
    chain_id: str | None
    output: str


@dataclass(frozen=True, kw_only=True)
class Containerd:
    """A running containerd: `address` is its socket."""

    address: str
    log_path: Path

    def pull(self, ref: str, platform: str) -> PullResult:
        """`ctr images pull --plain-http --platform P --print-chainid REF` through this daemon."""
        completed = subprocess.run(
            [CTR_BINARY, "--address", self.address, "images", "pull", "--plain-http", "--snapshotter", SNAPSHOTTER,
             "--platform", platform, "--print-chainid", ref],
            capture_output=True, text=True, timeout=PULL_SECONDS, stdin=subprocess.DEVNULL,
        )
        output = completed.stdout + completed.stderr
        match = _CHAIN_ID.search(output)
        return PullResult(code=completed.returncode, chain_id=match[1] if match else None, output=output[-2000:])


def start_containerd(workdir: Path) -> tuple[Containerd, subprocess.Popen[bytes]]:
    """Start containerd with its root, state and socket under `workdir`."""
    workdir.mkdir(parents=True, exist_ok=True)
    socket = workdir / "c.sock"
    if len(str(socket)) > MAX_SOCKET_PATH:
        raise RuntimeError(f"{socket} is longer than a unix socket path may be; use a shorter --basetemp")
    config = workdir / "config.toml"
    config.write_text(_CONFIG.format(root=workdir / "root", state=workdir / "state", socket=socket, opt=workdir / "opt"))
    log_path = workdir / "containerd.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([CONTAINERD_BINARY, "--config", str(config)], stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"containerd exited with {process.returncode}: {log_path.read_text()[-2000:]}")
        probe = subprocess.run([CTR_BINARY, "--address", str(socket), "version"], capture_output=True, timeout=10,
                               stdin=subprocess.DEVNULL)
        if probe.returncode == 0:
            return Containerd(address=str(socket), log_path=log_path), process
        time.sleep(0.1)
    stop_containerd(process)
    raise RuntimeError(f"containerd did not answer within {STARTUP_SECONDS}s: {log_path.read_text()[-2000:]}")


def stop_containerd(process: subprocess.Popen[bytes], workdir: Path | None = None) -> None:
    """Stop the daemon by its PID (SIGTERM, then SIGKILL), and remove its state when asked."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_SECONDS)
    if workdir is not None:
        shutil.rmtree(workdir, ignore_errors=True)


def chain_id(diff_ids: Sequence[str]) -> str:
    """The OCI chain id of a rootfs (image-spec config.md): what `--print-chainid` prints."""
    chain = diff_ids[0]
    for diff_id in diff_ids[1:]:
        chain = "sha256:" + hashlib.sha256(f"{chain} {diff_id}".encode()).hexdigest()
    return chain


# ---- a model of containerd 1.6's choice, written from its Go sources ---------------------------

def _go_lower(text: str) -> str:
    return "".join("i" if c == "\u0130" else (c.lower() if len(c.lower()) == 1 else c) for c in text)


def _normalize16(os_name: str, arch: str, variant: str, host_os: str = "linux") -> tuple[str, str, str]:
    """containerd 1.6 `Normalize`: `normalizeOS` and 1.6's `normalizeArch`."""
    os_name = host_os if os_name == "" else _go_lower(os_name)
    os_name = "darwin" if os_name == "macos" else os_name
    arch, variant = _go_lower(arch), _go_lower(variant)
    if arch == "i386":
        arch, variant = "386", ""
    elif arch in ("x86_64", "x86-64"):
        arch, variant = "amd64", ""
    elif arch in ("aarch64", "arm64"):
        arch = "arm64"
        variant = "" if variant in ("8", "v8") else variant
    elif arch == "armhf":
        arch, variant = "arm", "v7"
    elif arch == "armel":
        arch, variant = "arm", "v6"
    elif arch == "arm":
        variant = {"": "v7", "7": "v7", "5": "v5", "6": "v6", "8": "v8"}.get(variant, variant)
    return os_name, arch, variant


def _vector16(os_name: str, arch: str, variant: str) -> list[tuple[str, str, str]]:
    """containerd 1.6 `platformVector`: amd64 adds 386; arm64 adds arm/v8..v5; arm/vN adds lower."""
    vector = [(os_name, arch, variant)]
    if arch == "amd64":
        vector.append((os_name, "386", ""))
    elif arch == "arm64":
        vector += [(os_name, "arm", f"v{n}") for n in range(8, 4, -1)]
    elif arch == "arm" and re.fullmatch(r"v[6-8]", variant):
        vector += [(os_name, "arm", f"v{n}") for n in range(int(variant[1]) - 1, 4, -1)]
    return vector


def containerd16_pick(entries: Sequence[Mapping[str, Any]], platform: str) -> Mapping[str, Any] | None:
    """The descriptor containerd 1.6 unpacks for `ctr images pull --platform P`, or None (no match).

    An entry without a platform is kept last; the model assumes its config matches (the runtime
    reads the config to decide, which the model cannot: it over-approximates, as the judge must).
    """
    parts = platform.split("/")
    wanted = _normalize16(parts[0], parts[1], parts[2] if len(parts) > 2 else "")
    vector = _vector16(*wanted)

    def rank(entry: Mapping[str, Any]) -> int | None:
        listed = entry.get("platform")
        if listed is None:
            return len(vector)
        spec = _normalize16(listed.get("os", ""), listed.get("architecture", ""), listed.get("variant", ""))
        return vector.index(spec) if spec in vector else None

    ranked = [(r, i, e) for i, e in enumerate(entries) if (r := rank(e)) is not None]
    return min(ranked, key=lambda t: (t[0], t[1]))[2] if ranked else None
