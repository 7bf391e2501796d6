"""Shared fixtures: a real local OCI registry (session), a client for it, and fake registries.

- `registry`: Debian's docker-registry (distribution 2.8) on 127.0.0.1, one per test session.
  Tests share it, so push to a fresh repository: `tests.support.images.unique_repository()`.
- `registry_client`: `RegistryClient(insecure_registries={registry.host})`, new per test.
- `fake_registry`: a `FakeRegistry` (tests/support/fake_registry.py), new per test.
- `fake_registry_factory`: call it for more fake registries (e.g. a second host for redirects).
"""

from __future__ import annotations

import os
from typing import Callable, Iterator

import pytest

from image_verifier.registry import RegistryClient
from tests.support.fake_registry import FakeRegistry
from tests.support.local_registry import LocalRegistry, start_registry, stop_registry

# No test may reach a real AWS endpoint or instance metadata, whatever the developer's shell holds.
os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
# jsii's Node version banners would otherwise print on every CDK import (Node 20 here).
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses the real registry, so `-m "not registry"` runs without it."""
    for item in items:
        if "registry" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.registry)


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    """A running docker-registry with filesystem storage and deletes enabled."""
    try:
        local, process = start_registry(tmp_path_factory.mktemp("docker-registry"))
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)  # never skip: a missing registry must be noticed
    try:
        yield local
    finally:
        stop_registry(process)


@pytest.fixture
def registry_client(registry: LocalRegistry) -> RegistryClient:
    return RegistryClient(insecure_registries={registry.host})


@pytest.fixture
def fake_registry_factory() -> Iterator[Callable[[], FakeRegistry]]:
    started: list[FakeRegistry] = []

    def make() -> FakeRegistry:
        fake = FakeRegistry().start()
        started.append(fake)
        return fake

    yield make
    for fake in started:
        fake.stop()


@pytest.fixture
def fake_registry(fake_registry_factory: Callable[[], FakeRegistry]) -> FakeRegistry:
    return fake_registry_factory()
