"""Fixtures for construct tests: one synth of the reference app per test session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.constructs import checks  # noqa: F401  (sets the jsii/AWS environment first)


@pytest.fixture(scope="module")
def reference_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    """The reference app (app.build_app) and its synthesized cloud assembly."""
    from app import build_app

    app = build_app(outdir=str(tmp_path_factory.mktemp("cdk.out")))
    yield app, app.synth()
