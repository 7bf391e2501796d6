"""Fixtures for the reviewer's report: each app is synthesized once per test module, in a temp dir."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.constructs import checks  # noqa: F401  (sets the jsii/AWS environment first)


@pytest.fixture(scope="module")
def reference_cdk_out(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The reference app (app.build_app), synthesized into its own cdk.out."""
    from app import build_app

    outdir = tmp_path_factory.mktemp("reference-cdk.out")
    build_app(outdir=str(outdir)).synth()
    yield outdir


@pytest.fixture(scope="module")
def user_cdk_out(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The small user-style app of tests/review/user_app.py, synthesized into its own cdk.out."""
    from tests.review.user_app import build_user_app

    outdir = tmp_path_factory.mktemp("user-cdk.out")
    build_user_app(str(outdir)).synth()
    yield outdir

