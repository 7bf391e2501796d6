"""`image-verifier review`: where the report goes, bad input as a clear error (exit 2), no aws_cdk import."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

from image_verifier.cli import main

ROOT = Path(__file__).resolve().parents[2]


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["review", *argv], stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def _assembly(tmp_path: Path, template: object) -> Path:
    cdk_out = tmp_path / "cdk.out"
    cdk_out.mkdir()
    (cdk_out / "Stack.template.json").write_text(json.dumps(template))
    (cdk_out / "manifest.json").write_text(json.dumps({"version": "55.0.0", "artifacts": {"Stack": {
        "type": "aws:cloudformation:stack", "environment": "aws://444444444444/us-west-2",
        "properties": {"templateFile": "Stack.template.json"}}}}))
    return cdk_out


def test_rejects_input_when_the_directory_does_not_exist(tmp_path):
    # When
    code, out, err = _run(str(tmp_path / "cdk.out"))
    # Then
    assert code == 2 and out == ""
    assert "does not exist; synthesize the app first" in err and "Traceback" not in err


def test_rejects_input_when_it_is_not_a_cloud_assembly(tmp_path):
    # Given: a directory without manifest.json
    (tmp_path / "notes.txt").write_text("hello")
    # When
    code, _, err = _run(str(tmp_path))
    # Then
    assert code == 2 and "holds no manifest.json, so it is not a cloud assembly" in err


def test_rejects_input_when_the_manifest_is_not_json(tmp_path):
    # Given
    (tmp_path / "manifest.json").write_text("{not json")
    # When
    code, _, err = _run(str(tmp_path))
    # Then
    assert code == 2 and "manifest.json is not valid JSON" in err and "Traceback" not in err


def test_rejects_input_when_a_template_is_missing(tmp_path):
    # Given
    cdk_out = _assembly(tmp_path, {})
    (cdk_out / "Stack.template.json").unlink()
    # When
    code, _, err = _run(str(cdk_out))
    # Then
    assert code == 2 and "cannot read" in err and "Stack.template.json" in err


def test_writes_the_report_into_cdk_out_by_default_and_says_where(tmp_path):
    # Given: an app with an unprotected service and nothing else
    cdk_out = _assembly(tmp_path, {"Resources": {"Web": {"Type": "AWS::ECS::Service", "Properties": {}}}})
    # When
    code, out, err = _run(str(cdk_out))
    # Then
    report = (cdk_out / "review.md").read_text()
    assert code == 0 and err == "" and out.strip() == f"wrote the review report to {cdk_out / 'review.md'}"
    assert "`Web` in Stack" in report.split("### NOT protected", 1)[1]
    assert "No KMS signing key in the assembly." in report


def test_writes_the_report_where_output_says(tmp_path):
    # Given
    cdk_out = _assembly(tmp_path, {"Resources": {}})
    target = tmp_path / "reports" / "security.md"
    # When
    code, out, _ = _run(str(cdk_out), "-o", str(target))
    # Then
    assert code == 0 and target.read_text().startswith("# Signed images: security review")
    assert str(target) in out


def test_review_imports_nothing_from_aws_cdk(tmp_path):
    # Given
    cdk_out = _assembly(tmp_path, {"Resources": {}})
    script = ("import sys; from pathlib import Path; from image_verifier.review import build_report; "
              f"build_report(Path({str(cdk_out)!r})); "
              "print(sorted(m for m in sys.modules if m.split('.')[0] in ('aws_cdk', 'constructs', 'jsii')))")
    # When
    done = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=120,
                          cwd=ROOT / "lambda_src", stdin=subprocess.DEVNULL)
    # Then
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
