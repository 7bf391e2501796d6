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
from hypothesis import HealthCheck, settings

from image_verifier.registry import RegistryClient
from tests.support.fake_registry import FakeRegistry
from tests.support.local_registry import LocalRegistry, start_registry, stop_registry

# No test may reach a real AWS endpoint or instance metadata, whatever the developer's shell holds.
os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
# jsii's Node version banners would otherwise print on every CDK import (Node 20 here).
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

# Property tests: "default" is the suite's budget (the same examples on every run); "fuzz"
# (`HYPOTHESIS_PROFILE=fuzz`, `make fuzz`) runs FUZZ_FACTOR times as many, freshly random each time.
FUZZ_FACTOR = 20
_PROPERTY_DEFAULTS = {"deadline": None, "database": None, "suppress_health_check": [HealthCheck.too_slow]}
settings.register_profile("default", max_examples=100, derandomize=True, **_PROPERTY_DEFAULTS)
settings.register_profile("fuzz", max_examples=100 * FUZZ_FACTOR, derandomize=False, **_PROPERTY_DEFAULTS)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses the real registry, so `-m "not registry"` runs without it."""
    for item in items:
        if "registry" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.registry)
        if settings.get_current_profile_name() == "fuzz":
            _scale_for_fuzzing(item)


def _scale_for_fuzzing(item: pytest.Item) -> None:
    """Under the fuzz profile, a property test that pins its own `max_examples` (its share of the
    suite's budget) runs FUZZ_FACTOR times that many, randomized; the others take the profile's."""
    test = getattr(getattr(item, "obj", None), "__func__", getattr(item, "obj", None))
    pinned = getattr(test, "_hypothesis_internal_use_settings", None)  # where @settings leaves them
    if pinned is None or getattr(test, "_fuzz_scaled", False) or pinned.max_examples == settings().max_examples:
        return
    test._fuzz_scaled = True  # parametrized items share one function: scale it once
    test._hypothesis_internal_use_settings = settings(pinned, max_examples=pinned.max_examples * FUZZ_FACTOR,
                                                      derandomize=False, database=None)


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
