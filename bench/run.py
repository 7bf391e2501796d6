"""Benchmark: image verification against a real registry over a simulated network, beside its minimum.

    .venv/bin/python bench/run.py [--rtt-ms 20] [--images 1,10,50] [--fresh-runs 3] [--warm-runs 5] [--no-write]

Starts Debian's docker-registry on 127.0.0.1 and `bench/latency_proxy.py` in front of it (each
chunk delayed rtt/2 each way; a new connection's first bytes one rtt more, as a TCP handshake).
Pushes real images and signs each once with cosign (legacy `.sig`) and with Notation (JWS, listed
in the referrers tag schema, as docker-registry 2.8 has no referrers API). Then, per format and
number of images, one decision:
- in a fresh process per run (`python -m image_verifier verify ... IMAGE...`, what a pipeline sees),
- warm, in this process, by one long-lived verifier (what a warm Lambda sees);
and, for the cosign images, the same registry fetches done by oras-py in a fresh process per run
(`bench/oras_peer.py`: manifest, `.sig` manifest, payload blob, image after image; no crypto).
Beside each figure: the physical minimum, i.e. dependent round trips x RTT (+ one RTT of
connection set-up when connections are new) + the measured CPU of one verification; registry
requests and bytes per image (counted by the proxy); import costs; the Lambda asset's size, and the
handler's cold import from the asset as this machine bundles it, with and without its bytecode.
Writes docs/benchmarks.json, docs/benchmarks.png and the generated section of docs/benchmarks.md.
Nothing is asserted beyond every image being verified: this is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "lambda_src")]

from bench import load, measure, report  # noqa: E402
from bench.fixtures import Proxy, cosign_set, notation_set, policy_for, references  # noqa: E402
from tests.support.local_registry import start_registry, stop_registry  # noqa: E402

# Dependent round trips once the digest is known (docs/benchmarks.md, "Round trips"): cosign reads
# the manifest and the .sig tag together, then the payload; Notation reads the manifest and the
# referrers together, then the signature manifest, then the envelope.
ROUNDS = {"cosign": 2, "notation": 3}
ORAS_TARGET_RATIO = 0.7  # issue 13: fresh-process wall <= 0.7 x oras-py's fresh-process wall at 10 and 50 images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--rtt-ms", type=float, default=20.0, help="round-trip time the proxy adds (default 20)")
    parser.add_argument("--images", default="1,10,50", help="numbers of images per decision (default 1,10,50)")
    parser.add_argument("--fresh-runs", type=int, default=3)
    parser.add_argument("--warm-runs", type=int, default=5)
    parser.add_argument("--no-write", action="store_true", help="print the Markdown, write nothing")
    parser.add_argument("--load-rates", default="0.1,0.5,1.0",
                        help="shares of registry requests answered 429 in the load scenario (bench/load.py); '' skips it")
    args = parser.parse_args()
    counts = [int(n) for n in args.images.split(",")]
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    with tempfile.TemporaryDirectory() as workdir:
        registry, process = start_registry(Path(workdir))
        proxy = Proxy(registry.host, args.rtt_ms)
        try:
            results = run(registry, proxy, counts, args)
        finally:
            proxy.stop()
            stop_registry(process)
    if args.no_write:
        print(report.markdown(results, "benchmarks.png"))
    else:
        report.write(results, ROOT / "docs")
        print(report.markdown(results, "benchmarks.png"))


def run(registry, proxy: Proxy, counts: list[int], args: argparse.Namespace) -> dict:  # type: ignore[no-untyped-def]
    rtt = args.rtt_ms
    most = max(counts)
    load_before = os.getloadavg()
    env = measure.child_env(Path(tempfile.mkdtemp(prefix="bench-pycache-")))
    sets = [cosign_set(registry, most), notation_set(registry, most)]
    cpu = {s.format: measure.verification_cpu_ms(proxy, policy_for(s, proxy.host), references(s, proxy.host, 1)[0])
           for s in sets}
    rows, oras_rows = [], []
    oras_version = measure.oras_version()
    for signed in sets:
        policy = policy_for(signed, proxy.host)
        for count in counts:
            refs = references(signed, proxy.host, count)
            rounds = ROUNDS[signed.format]
            for run_kind, figures, setup in (
                ("fresh", measure.fresh_process(proxy, policy, refs, args.fresh_runs, env), 1),
                ("warm", measure.warm_decisions(proxy, policy, refs, args.warm_runs), 0),
            ):
                network_minimum = (rounds + setup) * rtt
                rows.append({"format": signed.format, "images": count, "run": run_kind, "rounds": rounds,
                             "network_minimum_ms": network_minimum,
                             "physical_minimum_ms": round(network_minimum + cpu[signed.format], 1), **figures})
                print(rows[-1], flush=True)
            if signed.format == "cosign" and oras_version:
                # oras-py fetches one image after the other, each fetch after the one before: 3 dependent
                # round trips per image, after one RTT of connection set-up (one pooled connection).
                oras_rows.append({"images": count, "network_minimum_ms": (3 * count + 1) * rtt,
                                  **measure.oras_fresh_process(proxy, refs, args.fresh_runs, env)})
                print({"oras-py": oras_rows[-1]}, flush=True)
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "environment": {"rtt_ms": rtt, "python": platform.python_version(), "machine": platform.machine(),
                        "cpus": os.cpu_count(), "fresh_runs": args.fresh_runs, "warm_runs": args.warm_runs,
                        "load_average_before": [round(x, 1) for x in load_before],
                        "load_average_after": [round(x, 1) for x in os.getloadavg()]},
        "rows": rows,
        "verification_cpu_ms": cpu,
        "imports": measure.import_cost(measure.COSIGN_VERIFY_IMPORTS, env),
        "top_imports": measure.top_imports(measure.COSIGN_VERIFY_IMPORTS, env),
        "dependency_floor_imports": measure.import_cost(measure.DEPENDENCY_FLOOR_IMPORTS, env),
        "handler_imports": measure.import_cost(measure.HANDLER_IMPORTS, env),
        "handler_imports_no_bytecode": measure.import_cost(measure.HANDLER_IMPORTS, measure.child_env(None), runs=5),
        "oras": oras_comparison(oras_version, rows, oras_rows),
        "lambda_asset": measure.lambda_asset(),
        "lambda_cold_import": measure.lambda_cold_import(),
        "load": load.run(registry, [float(r) for r in args.load_rates.split(",") if r], invocations=100, instances=10),
    }


def oras_comparison(version: str | None, rows: list[dict], oras_rows: list[dict]) -> dict:  # type: ignore[type-arg]
    """oras-py's fresh-process figures beside the CLI's (cosign, fresh), and issue 13's target: the
    CLI's fresh-process wall at most 0.7 x oras-py's at 10 and 50 images."""
    if version is None:
        return {"version": None, "rows": [], "note": "oras-py is not installed (it is a dev dependency: pip install -e .[dev])"}
    fresh = {r["images"]: r["wall_ms"] for r in rows if r["format"] == "cosign" and r["run"] == "fresh"}
    for row in oras_rows:
        row["cli_wall_ms"] = fresh[row["images"]]
        row["cli_over_oras"] = round(fresh[row["images"]] / row["wall_ms"], 2)
    target = {str(r["images"]): {"ratio": r["cli_over_oras"], "met": r["cli_over_oras"] <= ORAS_TARGET_RATIO}
              for r in oras_rows if r["images"] in (10, 50)}
    return {"version": version, "rows": oras_rows, "target_ratio": ORAS_TARGET_RATIO, "target": target}


if __name__ == "__main__":
    main()
