"""Fixtures shared by the end-to-end tests: a trusted cosign key and its private key file."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cosign_material import KeyPair


@pytest.fixture(scope="module")
def key() -> KeyPair:
    """The key the tests' policies trust (one per module)."""
    return KeyPair.generate()


@pytest.fixture
def key_file(tmp_path: Path, key: KeyPair) -> Path:
    """`key`'s private half as a PEM file, for `sign --key`."""
    path = tmp_path / "cosign.key"
    path.write_bytes(key.private_pem)
    return path
