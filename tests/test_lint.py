"""The whole tree passes ruff's correctness rules (undefined names, unused imports, syntax)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PATHS = ["constructs_lib", "lambda_src", "tests", "reference", "scripts", "bench", "app.py"]


def test_tree_has_no_pyflakes_findings():
    completed = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "--select", "F,E9,B905", "--line-length", "130", *PATHS],
        cwd=ROOT, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
