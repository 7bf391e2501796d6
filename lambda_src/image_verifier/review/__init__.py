"""The reviewer's report: ``image-verifier review cdk.out/ [-o REPORT.md]``.

Reads a synthesized cloud assembly (templates, manifest, metadata, asset directories; never
aws_cdk) and writes one Markdown file that answers "who can sign, with what, and what is
protected?": signing keys and profiles with the roles that can use them and those roles' OIDC
trust, ECR signing rules, protected and unprotected ECS services, the admission policies with
their exemptions, the break-glass path, the cdk-nag acknowledgements, and a trust-flow diagram.

    from image_verifier.review import write_report
    write_report(Path("cdk.out"), Path("cdk.out/review.md"))
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from .assembly import Assembly, ReviewError
from .facts import Facts, gather
from .render import render

__all__ = ["Facts", "ReviewError", "build_report", "gather_facts", "main", "write_report"]

EXIT_OK, EXIT_USAGE = 0, 2
DEFAULT_REPORT_NAME = "review.md"


def gather_facts(cdk_out: Path, *, now: datetime | None = None) -> Facts:
    """Every fact of the report, for callers (and tests) that want data rather than Markdown."""
    return gather(Assembly.load(cdk_out), now or datetime.now(UTC))


def build_report(cdk_out: Path, *, now: datetime | None = None) -> str:
    return render(gather_facts(cdk_out, now=now))


def write_report(cdk_out: Path, output: Path | None = None, *, now: datetime | None = None) -> Path:
    """Write the report (default ``<cdk_out>/review.md``) and return where it went."""
    text = build_report(cdk_out, now=now)
    target = output or cdk_out / DEFAULT_REPORT_NAME
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ReviewError(f"cannot write the report to {target}: {exc.strerror or exc}") from exc
    return target


def main(args: argparse.Namespace, *, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """The ``review`` subcommand: 0 when the report was written, 2 on bad input (never a traceback)."""
    out, err = stdout or sys.stdout, stderr or sys.stderr
    try:
        target = write_report(Path(args.cdk_out), Path(args.output) if args.output else None)
    except ReviewError as exc:
        print(f"error: {exc}", file=err)
        return EXIT_USAGE
    except Exception as exc:  # noqa: BLE001 - the CLI's contract is "never a traceback"
        print(f"error: cannot review {args.cdk_out}: unexpected {type(exc).__name__}: {exc}", file=err)
        return EXIT_USAGE
    print(f"wrote the review report to {target}", file=out)
    return EXIT_OK
