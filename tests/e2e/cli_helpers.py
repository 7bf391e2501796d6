"""Run the CLI in-process and capture what it prints."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from image_verifier.cli import main


@dataclass(frozen=True)
class CliResult:
    code: int
    out: str
    err: str

    @property
    def verdicts(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.out.splitlines() if line.strip()]


def run_cli(*argv: str) -> CliResult:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return CliResult(code, out.getvalue(), err.getvalue())


def write_policy(tmp_path: Path, document: dict[str, Any]) -> Path:
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(document))
    return path


def verify(registry_host: str, policy: Path, *images: str, extra: tuple[str, ...] = ()) -> CliResult:
    return run_cli("verify", "--policy", str(policy), "--insecure-registry", registry_host, "--json", *extra, *images)


def sign(registry_host: str, key: Path, image: str, *annotations: str) -> CliResult:
    args = ["sign", "--key", str(key), "--insecure-registry", registry_host]
    for annotation in annotations:
        args += ["--annotation", annotation]
    return run_cli(*args, image)
