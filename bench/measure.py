"""The measurements: one decision in a fresh process, warm decisions in this process, oras-py's
fetches in a fresh process (the peer), the CPU a verification costs once its bytes are here, import
costs, the Lambda asset's size and the handler's cold import from it."""

from __future__ import annotations

import importlib.util
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from image_verifier.composition import build_verifier
from image_verifier.cosign.keys import CosignKeyResolver
from image_verifier.deadline import Deadline
from image_verifier.evidence import Evidence
from image_verifier.policy import Policy
from image_verifier.reference import ImageReference
from image_verifier.registry import RegistryClient
from image_verifier.signer_checks import cosign_matches, notation_matches
from image_verifier.verifier import ImageRequest

from bench.fixtures import Proxy

ROOT = Path(__file__).resolve().parent.parent
ORAS_PEER = Path(__file__).with_name("oras_peer.py")
# What a cosign-only `verify` imports (the test tests/runtime/test_cosign_import_cost.py lists them).
COSIGN_VERIFY_IMPORTS = ("image_verifier.cli, image_verifier.composition, image_verifier.verifier, "
                         "image_verifier.registry, image_verifier.signer_checks, image_verifier.evidence")
# The third-party floor of that list: the HTTP client and the cryptography a cosign check needs.
DEPENDENCY_FLOOR_IMPORTS = ("urllib3, cryptography.hazmat.primitives.asymmetric.ec, "
                            "cryptography.hazmat.primitives.serialization, cryptography.exceptions")
HANDLER_IMPORTS = ("image_verifier.handler.app, image_verifier.handler.admission, image_verifier.composition, "
                   "image_verifier.handler.cache, image_verifier.handler.ecs, image_verifier.handler.settings, "
                   "image_verifier.handler.telemetry, boto3, aws_lambda_powertools")


def child_env(pycache: Path | None) -> dict[str, str]:
    """The environment of the measured processes. With `pycache`, bytecode is written to and read from
    there (as after `pip install`, which compiles); without, nothing is cached and every module is
    compiled from source on each start, as from a Lambda asset bundled by another Python version
    (which ships no `__pycache__`)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")}
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    if pycache is None:
        empty = Path(tempfile.mkdtemp(prefix="no-pycache-"))
        env.update(PYTHONDONTWRITEBYTECODE="1", PYTHONPYCACHEPREFIX=str(empty))
    else:
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 1)


def _fresh_runs(command: list[str], proxy: Proxy, runs: int, env: dict[str, str], images: int,
                check: Callable[[subprocess.CompletedProcess[str]], None]) -> dict[str, Any]:
    """`command` in a new process per run (after one unmeasured run, so that bytecode is cached when
    `env` caches it): median wall, network span, requests and bytes per image, the child's CPU."""
    walls, spans, requests, transferred, cpus = [], [], [], [], []
    for attempt in range(runs + 1):
        proxy.stats()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
        wall = (time.perf_counter() - started) * 1000
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        stats = proxy.stats()
        check(done)
        if attempt == 0:
            continue  # the warm-up run
        walls.append(wall)
        cpus.append((after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) * 1000)
        spans.append(stats["span_ms"])
        requests.append(stats["requests"] / images)
        transferred.append((stats["bytes_up"] + stats["bytes_down"]) / images)
    return {"wall_ms": _median(walls), "span_ms": _median(spans), "requests_per_image": _median(requests),
            "bytes_per_image": round(statistics.median(transferred)), "client_cpu_ms": _median(cpus)}


def fresh_process(proxy: Proxy, policy: dict[str, Any], refs: list[str], runs: int, env: dict[str, str]) -> dict[str, Any]:
    """`python -m image_verifier verify` in a new process per run, as a pipeline runs it."""
    def check(done: subprocess.CompletedProcess[str]) -> None:
        verdicts = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
        if done.returncode != 0 or len(verdicts) != len(refs) or any(v["outcome"] != "verified" for v in verdicts):
            raise RuntimeError(f"the fresh-process verify failed (exit {done.returncode}): {done.stderr[-2000:]}")

    with tempfile.TemporaryDirectory() as tmp:
        policy_file = Path(tmp) / "policy.json"
        policy_file.write_text(json.dumps(policy))
        command = [sys.executable, "-m", "image_verifier", "verify", "--policy", str(policy_file),
                   "--insecure-registry", proxy.host, "--json", *refs]
        return _fresh_runs(command, proxy, runs, env, len(refs), check)


def oras_fresh_process(proxy: Proxy, refs: list[str], runs: int, env: dict[str, str]) -> dict[str, Any]:
    """The same fetches a cosign verification needs (manifest, `.sig` manifest, payload blob per image),
    done by oras-py's registry client in a new process per run (`bench/oras_peer.py`); no crypto."""
    def check(done: subprocess.CompletedProcess[str]) -> None:
        lines = done.stdout.strip().splitlines()
        summary = json.loads(lines[-1]) if done.returncode == 0 and lines else {}
        if summary.get("fetches") != 3 * len(refs):
            raise RuntimeError(f"the oras-py peer failed (exit {done.returncode}): {done.stderr[-2000:]}")

    command = [sys.executable, str(ORAS_PEER), "--registry", proxy.host, *refs]
    return _fresh_runs(command, proxy, runs, env, len(refs), check)


def warm_decisions(proxy: Proxy, policy: dict[str, Any], refs: list[str], runs: int) -> dict[str, Any]:
    """Decisions by one long-lived verifier (what a warm Lambda does), after one to warm it up."""
    client = RegistryClient(insecure_registries={proxy.host})
    verifier = build_verifier(Policy.from_json(policy), registry=client)
    requests = [ImageRequest(image=ref) for ref in refs]
    if not verifier.decide(requests, deadline=Deadline.after(60)).admitted:
        raise RuntimeError("the warm-up decision did not admit every image")
    walls, spans, counts, transferred, cpus = [], [], [], [], []
    for _ in range(runs):
        proxy.stats()
        before = client.request_count
        cpu_before = time.process_time()  # every thread of this process: the client's work, bound by the GIL
        started = time.perf_counter()
        decision = verifier.decide(requests, deadline=Deadline.after(60))
        walls.append((time.perf_counter() - started) * 1000)
        cpus.append((time.process_time() - cpu_before) * 1000)
        stats = proxy.stats()
        if not decision.admitted:
            raise RuntimeError(f"a warm decision did not admit every image: {decision.verdicts}")
        spans.append(stats["span_ms"])
        counts.append((client.request_count - before) / len(refs))
        transferred.append((stats["bytes_up"] + stats["bytes_down"]) / len(refs))
    return {"wall_ms": _median(walls), "span_ms": _median(spans), "requests_per_image": _median(counts),
            "bytes_per_image": round(statistics.median(transferred)), "new_connections": stats["connections"],
            "client_cpu_ms": _median(cpus)}


def verification_cpu_ms(proxy: Proxy, policy_document: dict[str, Any], ref: str, runs: int = 50) -> float:
    """CPU for one image once every byte is here: the signer check on memoized evidence (parsing,
    digest checks, the signature verification itself)."""
    policy = Policy.from_json(policy_document)
    session = RegistryClient(insecure_registries={proxy.host}).bound(Deadline.after(60))
    image = ImageReference.parse(ref)
    evidence = Evidence(session, image, session.resolve(image))
    rule = policy.rules[0]
    signer = policy.signer(rule.signer_names[0])
    now = datetime.now(timezone.utc)
    keys = CosignKeyResolver()

    def check() -> None:
        if signer.kind.value == "cosignKey":
            next(cosign_matches(signer, rule, evidence, keys, now))
        else:
            next(notation_matches(signer, rule, evidence, now, None))

    check()  # fetches (and memoizes) every byte
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        check()
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 2)


def _process_ms(code: str, runs: int, env: dict[str, str]) -> list[float]:
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, env=env)  # fills the bytecode cache
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, env=env)
        times.append((time.perf_counter() - started) * 1000)
    return times


def import_cost(modules: str, env: dict[str, str], runs: int = 9) -> dict[str, float]:
    """A fresh interpreter importing `modules`, minus one that imports nothing (`python -c pass`).
    The minimum of several runs is the figure least disturbed by other work on the machine."""
    base = _process_ms("pass", runs, env)
    loaded = _process_ms(f"import {modules}", runs, env)
    return {"python_pass_ms": round(min(base), 1), "with_imports_ms": round(min(loaded), 1),
            "imports_ms": round(min(loaded) - min(base), 1),
            "imports_ms_median": round(statistics.median(loaded) - statistics.median(base), 1)}


def top_imports(modules: str, env: dict[str, str], count: int = 8) -> list[tuple[str, float]]:
    """The modules with the largest cumulative import time (`python -X importtime`, bytecode cached)."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {modules}"], capture_output=True, text=True,
                          check=True, env=env)
    rows = []
    for line in done.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            rows.append((parts[2].strip(), int(parts[1]) / 1000))
    return sorted(rows, key=lambda row: -row[1])[:count]


def oras_version() -> str | None:
    """oras-py's installed version (a dev dependency in the lock), or None when it is missing."""
    if importlib.util.find_spec("oras") is None:
        return None
    from importlib.metadata import version

    return version("oras")


def lambda_cold_import(runs: int = 7) -> dict[str, Any]:
    """The handler's cold import from the asset as this machine bundles it (its CPU, its Python: the
    variant whose bytecode the bundler compiles), in a fresh `python -S` with only the asset on the path
    and no bytecode written (Lambda's /var/task is read-only): with the asset's `__pycache__`, then
    with it removed (what an asset bundled by another Python version ships). Minimum of `runs`."""
    try:
        from constructs_lib._bundling import RuntimeBundler
    except ImportError as exc:  # the CDK side is not installed
        return {"error": f"cannot import the bundler: {exc}"}
    machine = {"x86_64": "x86_64", "aarch64": "arm64"}.get(os.uname().machine)
    if machine is None:
        return {"error": f"no Lambda architecture matches this machine ({os.uname().machine})"}
    bundler = RuntimeBundler(architecture=machine, python_version=f"{sys.version_info.major}.{sys.version_info.minor}")
    if not (bundler.cache_dir / ".complete").exists():
        return {"error": f"the wheel cache {bundler.cache_dir} is empty; run the asset tests once to fill it"}
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONDONTWRITEBYTECODE": "1", "AWS_EC2_METADATA_DISABLED": "true"}
    with tempfile.TemporaryDirectory() as tmp:
        asset = Path(tmp) / "asset"
        bundler.try_bundle(str(asset))
        code = f"import sys; sys.path.insert(0, {str(asset)!r}); import {HANDLER_IMPORTS}"

        def minimum(script: str) -> float:
            times = []
            for _ in range(runs):
                started = time.perf_counter()
                subprocess.run([sys.executable, "-S", "-c", script], check=True, capture_output=True, env=env)
                times.append((time.perf_counter() - started) * 1000)
            return round(min(times), 1)

        base, compiled = minimum("pass"), minimum(code)
        pyc = sum(1 for _ in asset.rglob("*.pyc"))
        for cache in list(asset.rglob("__pycache__")):
            shutil.rmtree(cache)
        from_source = minimum(code)
    return {"python": f"{sys.version_info.major}.{sys.version_info.minor}", "architecture": machine, "runs": runs,
            "pyc_files": pyc, "python_S_pass_ms": base, "with_bytecode_ms": round(compiled - base, 1),
            "without_bytecode_ms": round(from_source - base, 1)}


def lambda_asset() -> dict[str, Any]:
    """The admission function's asset as synth bundles it (default arm64, Python 3.14), from the wheel cache."""
    try:
        from constructs_lib._bundling import RuntimeBundler
    except ImportError as exc:  # the CDK side is not installed
        return {"error": f"cannot import the bundler: {exc}"}
    bundler = RuntimeBundler(architecture="arm64", python_version="3.14")
    if not (bundler.cache_dir / ".complete").exists():
        return {"error": f"the wheel cache {bundler.cache_dir} is empty; run `make synth` once to fill it"}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "asset"
        bundler.try_bundle(str(out))
        files = [p for p in out.rglob("*") if p.is_file()]
        unzipped = sum(p.stat().st_size for p in files)
        archive = Path(tmp) / "asset.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as bundle:
            for path in files:
                bundle.write(path, path.relative_to(out))
        runtime = sum(p.stat().st_size for p in (out / "image_verifier").rglob("*") if p.is_file())
        return {"unzipped_bytes": unzipped, "zipped_bytes": archive.stat().st_size, "runtime_package_bytes": runtime,
                "files": len(files)}
