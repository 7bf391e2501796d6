"""The Lambda entry point: builds nothing at import, and a broken setup still answers FAILED."""

from __future__ import annotations

import json
import subprocess
import sys

from image_verifier.handler import app


def test_answers_failed_and_says_why_when_the_policy_is_missing(monkeypatch, capsys):
    monkeypatch.delenv("ADMISSION_POLICY", raising=False)
    monkeypatch.delenv("ADMISSION_POLICY_FILE", raising=False)
    monkeypatch.setattr(app, "_handler", None)
    assert app.lambda_handler({"executionDetails": {}}, None) == {"hookStatus": "FAILED"}
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["level"] == "ERROR" and "set exactly one of ADMISSION_POLICY" in line["error"]
    assert app._handler is None  # the next invocation tries again


def test_importing_the_handler_builds_nothing_and_reads_no_environment():
    script = ("import os, sys; os.environ.clear(); import image_verifier.handler.app as a; "
              "assert a._handler is None; assert 'boto3' not in sys.modules, 'boto3 imported'; print('ok')")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_answers_failed_when_the_handler_itself_raises(monkeypatch, capsys):
    class Broken:
        def handle(self, event, context):
            raise MemoryError("injected")

    monkeypatch.setattr(app, "_handler", Broken())
    assert app.lambda_handler({}, None) == {"hookStatus": "FAILED"}
    assert "MemoryError: injected" in capsys.readouterr().out
