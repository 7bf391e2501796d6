"""The benchmark's outputs: JSON (every figure), a Markdown section for docs/benchmarks.md, a PNG plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.png import plot_png

START, END = "<!-- bench:start -->", "<!-- bench:end -->"
COLORS = {("cosign", "fresh"): (200, 40, 40), ("cosign", "warm"): (240, 140, 40), ("cosign", "minimum"): (120, 20, 20),
          ("notation", "fresh"): (40, 80, 200), ("notation", "warm"): (40, 170, 220), ("notation", "minimum"): (20, 40, 120)}
COLOR_NAMES = {(200, 40, 40): "red", (240, 140, 40): "orange", (120, 20, 20): "dark red, dashed",
               (40, 80, 200): "blue", (40, 170, 220): "light blue", (20, 40, 120): "dark blue, dashed",
               (40, 150, 60): "green"}
ORAS_COLOR = (40, 150, 60)


def _shown(counts: dict[str, int]) -> str:
    return ", ".join(f"{status} {n}" for status, n in sorted(counts.items()))


def _ratio(value: float | None, minimum: float) -> str:
    return "n/a" if value is None or not minimum else f"{value / minimum:.2f}"


def markdown(results: dict[str, Any], plot_name: str) -> str:
    env = results["environment"]
    rtt = env["rtt_ms"]
    lines = [
        START,
        f"Run of {results['date']} on {env['machine']} ({env['cpus']} CPUs), Python {env['python']}, "
        f"docker-registry 2.8 on 127.0.0.1 behind `bench/latency_proxy.py` adding {rtt:g} ms of round-trip time "
        f"(and one more round trip for each new TCP connection, as a handshake would). Images by digest, "
        f"each signed once. Fresh: median of {env['fresh_runs']} runs after one unmeasured run (bytecode cached); "
        f"warm: median of {env['warm_runs']} after one. Load average before/after: "
        f"{env['load_average_before'][0]:g}/{env['load_average_after'][0]:g} (1 min): other work shared the CPUs.",
        "",
        "| format | images | run | wall (ms) | network span (ms) | network minimum (ms) | span / minimum "
        "| physical minimum (ms) | wall / physical minimum | client CPU (ms) | requests per image | bytes per image |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in results["rows"]:
        lines.append(
            f"| {row['format']} | {row['images']} | {row['run']} | {row['wall_ms']:g} | {row['span_ms']:g} "
            f"| {row['network_minimum_ms']:g} | {_ratio(row['span_ms'], row['network_minimum_ms'])} "
            f"| {row['physical_minimum_ms']:g} | {_ratio(row['wall_ms'], row['physical_minimum_ms'])} "
            f"| {row['client_cpu_ms']:g} | {row['requests_per_image']:g} | {row['bytes_per_image']} |")
    cpu = results["verification_cpu_ms"]
    start = results["imports"]
    handler, uncached = results["handler_imports"], results["handler_imports_no_bytecode"]
    lines += [
        "",
        f"- Verification CPU once the bytes are here (median of 50, one image): cosign {cpu['cosign']:g} ms, "
        f"Notation {cpu['notation']:g} ms.",
        f"- A fresh interpreter: `python -c pass` {start['python_pass_ms']:g} ms; importing what a cosign-only "
        f"`verify` imports: +{start['imports_ms']:g} ms (minimum of 9 runs; median +{start['imports_ms_median']:g} ms), "
        f"of which urllib3 and cryptography alone: +{results['dependency_floor_imports']['imports_ms']:g} ms.",
        f"- Handler cold import (the handler, composition root, boto3, Powertools): +{handler['imports_ms']:g} ms "
        f"with bytecode cached (minimum of 9; median +{handler['imports_ms_median']:g} ms); +{uncached['imports_ms']:g} ms "
        "when every module is compiled from source (site-packages, nothing cached; minimum of 5).",
        "- Largest cumulative imports of a cosign-only `verify` (`-X importtime`, one run): "
        + ", ".join(f"`{name}` {ms:.0f} ms" for name, ms in results["top_imports"]) + ".",
    ]
    asset = results["lambda_asset"]
    if "error" in asset:
        lines.append(f"- Lambda asset: not measured ({asset['error']}).")
    else:
        lines.append(f"- Lambda asset (arm64, Python 3.14, as synth bundles it): {asset['unzipped_bytes'] / 1e6:.1f} MB "
                     f"unzipped in {asset['files']} files, {asset['zipped_bytes'] / 1e6:.1f} MB zipped; the runtime "
                     f"package itself {asset['runtime_package_bytes'] / 1e3:.0f} kB.")
    cold = results.get("lambda_cold_import") or {"error": "not run"}
    if "error" in cold:
        lines.append(f"- Handler cold import from the asset: not measured ({cold['error']}).")
    else:
        lines.append(f"- Handler cold import from the asset, as this machine bundles it ({cold['architecture']}, Python "
                     f"{cold['python']}, the same imports, `python -S` with only the asset on the path, no bytecode "
                     f"written, minimum of {cold['runs']} above `python -S -c pass`): +{cold['with_bytecode_ms']:g} ms "
                     f"with the {cold['pyc_files']} `.pyc` files the bundler compiles into it; "
                     f"+{cold['without_bytecode_ms']:g} ms with its `__pycache__` removed, as an asset bundled by "
                     "another Python version ships.")
    lines += _oras_lines(results["oras"])
    if results.get("load"):
        lines += ["", "Load (`bench/load.py`): concurrent hook invocations over warm handler instances (half deploy two "
                  "signed images, half one signed and one unsigned) while the registry answers a share of requests "
                  "429 with `Retry-After: 1`.", "",
                  "| 429 share | invocations | instances | seconds | 429s / forwarded | signed revisions | "
                  "revisions with the unsigned image | failed open | IN_PROGRESS with callBackDelay < Retry-After "
                  "| largest verdict cache (bound) |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for row in results["load"]:
            lines.append(f"| {row['rate']:.0%} | {row['invocations']} | {row['instances']} | {row['seconds']:g} "
                         f"| {row['throttled']} / {row['forwarded']} | {_shown(row['statuses']['signed'])} "
                         f"| {_shown(row['statuses']['with-unsigned'])} | {row['failed_open']} "
                         f"| {row['in_progress_shorter_than_retry_after']} "
                         f"| {row['largest_verdict_cache']} ({row['verdict_cache_bound']}) |")
    legend = "; ".join(f"{fmt} {run}: {COLOR_NAMES[color]}" for (fmt, run), color in COLORS.items())
    if results["oras"]["rows"]:
        legend += f"; oras-py (fresh process, the cosign fetches, no crypto): {COLOR_NAMES[ORAS_COLOR]}"
    lines += ["", f"![time per decision against images]({plot_name})", "",
              f"Time per decision (ms) against the number of images. {legend}. The minimum lines are the warm "
              "physical minimum (round trips x RTT + verification CPU of one image).", END]
    return "\n".join(lines)


def _oras_lines(oras: dict[str, Any]) -> list[str]:
    """The peer: oras-py fetching what a cosign verification needs, beside this CLI, and the target."""
    if not oras["rows"]:
        return [f"- oras-py: not measured ({oras['note']})."]
    lines = ["", f"The peer, oras-py {oras['version']} (`bench/oras_peer.py`): the same fetches a cosign verification "
             "needs (per image, by digest: the image manifest, the `sha256-<hex>.sig` manifest, its payload blob) with "
             "`oras.provider.Registry` over plain HTTP through the same proxy, in a fresh process per run, one image "
             "after the other and each fetch after the one before, as oras-py's user guide writes its calls (no thread "
             "pool). **No crypto**: oras-py verifies no signature (and no digest), so its column is fetching only, "
             "where this CLI's also parses, digest-checks and verifies every signature. Same runs and medians as the "
             "fresh rows above; oras-py's network minimum is its own sequence: (3 x images + 1) x RTT.", "",
             "| images | this CLI, cosign (fresh process) (ms) | oras-py (fresh process) (ms) | CLI / oras-py "
             "| oras-py network span (ms) | oras-py network minimum (ms) | oras-py client CPU (ms) "
             "| oras-py requests per image | oras-py bytes per image |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in oras["rows"]:
        lines.append(f"| {row['images']} | {row['cli_wall_ms']:g} | {row['wall_ms']:g} | {row['cli_over_oras']:.2f} "
                     f"| {row['span_ms']:g} | {row['network_minimum_ms']:g} | {row['client_cpu_ms']:g} "
                     f"| {row['requests_per_image']:g} | {row['bytes_per_image']} |")
    verdicts = [f"{n} images {t['ratio']:.2f} ({'met' if t['met'] else 'missed'})" for n, t in oras["target"].items()]
    if verdicts:
        lines += ["", f"Target: this CLI's fresh-process wall <= {oras['target_ratio']:g} x oras-py's at 10 and 50 "
                  f"images: {', '.join(verdicts)}."]
    return lines + [""]


def write(results: dict[str, Any], docs: Path) -> None:
    json_path, png_path, page = docs / "benchmarks.json", docs / "benchmarks.png", docs / "benchmarks.md"
    json_path.write_text(json.dumps(results, indent=2) + "\n")
    series = []
    for fmt in ("cosign", "notation"):
        rows = [r for r in results["rows"] if r["format"] == fmt]
        for run in ("fresh", "warm"):
            points = [(r["images"], r["wall_ms"]) for r in rows if r["run"] == run]
            series.append((f"{fmt} {run}", COLORS[(fmt, run)], points))
        series.append((f"{fmt} minimum", COLORS[(fmt, "minimum")],
                       [(r["images"], r["physical_minimum_ms"]) for r in rows if r["run"] == "warm"]))
    if results["oras"]["rows"]:
        series.append(("oras-py fresh", ORAS_COLOR, [(r["images"], r["wall_ms"]) for r in results["oras"]["rows"]]))
    plot_png(png_path, series, x_ticks=sorted({r["images"] for r in results["rows"]}))
    section = markdown(results, png_path.name)
    text = page.read_text() if page.exists() else "# Benchmarks\n"
    if START in text and END in text:
        text = text[:text.index(START)] + section + text[text.index(END) + len(END):]
    else:
        text = text.rstrip() + "\n\n## Latest run\n\n" + section + "\n"
    page.write_text(text)
