"""The platform judge: containerd's normalization, compatible platforms and entry order.

Issue 9, class 1: choosing "the linux/amd64 entry" by exact string comparison admitted an index
whose unsigned first entry (`x86_64`, `AMD64`, `Linux`, empty os, no platform) is what containerd
runs. The judge counts every entry the runtime could pick; a signature on one platform manifest
decides only when all of them are that manifest.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from image_verifier.errors import HostileArtifactError, VerificationError
from image_verifier.oci import OCI_INDEX, OCI_MANIFEST, Manifest
from image_verifier.platform import Platform, normalize_arch, platform_conflict, runnable_entries, select_platform
from tests.support.containerd import containerd16_pick
from tests.support.images import canonical_json, sha256_digest

SIGNED = "sha256:" + "5" * 64
UNSIGNED = "sha256:" + "0" * 64
AMD64 = Platform.parse("linux/amd64")
ARM64 = Platform.parse("linux/arm64")
LINUX_AMD64 = {"os": "linux", "architecture": "amd64"}
LINUX_ARM64 = {"os": "linux", "architecture": "arm64"}


def _entry(digest: str, platform: dict[str, Any] | None, media_type: str = OCI_MANIFEST) -> dict[str, Any]:
    entry: dict[str, Any] = {"mediaType": media_type, "digest": digest, "size": 100}
    if platform is not None:
        entry["platform"] = platform
    return entry


def _index(*entries: dict[str, Any]) -> Manifest:
    raw = canonical_json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": list(entries)})
    return Manifest.parse(digest=sha256_digest(raw), raw=raw, content_type=None)


# ---- normalization -----------------------------------------------------------------------------

@pytest.mark.parametrize(("spelling", "expected"), [
    ("linux/amd64", "linux/amd64"), ("LINUX/X86_64", "linux/amd64"), ("Linux/x86-64", "linux/amd64"),
    ("linux/amd64/v1", "linux/amd64"), ("LINUX/ARM64", "linux/arm64"), ("linux/aarch64", "linux/arm64"),
    ("linux/arm64/v8", "linux/arm64"), ("linux/arm64/8", "linux/arm64"), ("linux/armhf", "linux/arm"),
    ("linux/armel", "linux/arm/v6"), ("linux/arm/7", "linux/arm"), ("linux/i386", "linux/386"),
    ("WINDOWS/X86_64", "windows/amd64"), ("macos/arm64", "darwin/arm64"), ("linux/amd64/v3", "linux/amd64/v3"),
])
def test_parses_every_spelling_into_one_normalized_platform(spelling, expected):
    assert str(Platform.parse(spelling)) == expected
    assert Platform.parse(spelling) == Platform.parse(expected)


def test_normalizes_platforms_built_from_ecs_fields():
    # Given the values ECS puts in runtimePlatform, When used as given, Then they equal containerd's names
    assert Platform(os="LINUX", architecture="X86_64") == AMD64
    assert Platform(os="LINUX", architecture="ARM64") == ARM64


@pytest.mark.parametrize("text", ["linux", "linux/arm64\n", "linux/arm64/v8/x", "linux/amd 64", "/amd64", ""])
def test_rejects_platform_when_it_is_not_os_slash_architecture(text):
    with pytest.raises(ValueError, match="invalid platform"):
        Platform.parse(text)


def test_lower_cases_as_go_does_including_dotted_capital_i():
    # Go's strings.ToLower maps U+0130 to a plain i; Python's str.lower would add a combining dot
    assert normalize_arch("X86_64", "V1") == ("amd64", "")
    index = _index(_entry(UNSIGNED, {"os": "L\u0130NUX", "architecture": "amd64"}), _entry(SIGNED, LINUX_AMD64))
    assert [d.digest for d in runnable_entries(index, AMD64)] == [UNSIGNED, SIGNED]


# ---- class 1 regressions: what containerd could pick ------------------------------------------

@pytest.mark.parametrize("first", [
    {"os": "linux", "architecture": "x86_64"}, {"os": "linux", "architecture": "AMD64"},
    {"os": "Linux", "architecture": "amd64"}, {"os": "", "architecture": "amd64"}, {"architecture": "amd64"},
    {"os": "linux", "architecture": "386"}, {"os": "linux", "architecture": "amd64", "variant": "v2"},
    {"os": "linux", "architecture": "amd64", "variant": "v1"}, None, {},
])
def test_rejects_amd64_index_when_an_unsigned_entry_is_spelled_otherwise_class1(first):
    # Given an index listing an unsigned entry under another spelling, then the signed linux/amd64 one
    index = _index(_entry(UNSIGNED, first), _entry(SIGNED, LINUX_AMD64))
    # When the signed manifest is judged for linux/amd64
    problem = platform_conflict(index, AMD64, SIGNED)
    # Then the other entry is named, with its platform as written
    assert problem is not None and UNSIGNED in problem
    assert "several different manifests for platform linux/amd64" in problem


@pytest.mark.parametrize("first", [
    {"os": "linux", "architecture": "aarch64"}, {"os": "linux", "architecture": "arm64", "variant": "v8"},
    {"os": "LINUX", "architecture": "ARM64"}, {"os": "linux", "architecture": "arm", "variant": "v7"},
    {"os": "linux", "architecture": "arm64", "variant": "v8.2"}, {"architecture": "arm64"},
])
def test_rejects_arm64_index_when_an_unsigned_entry_is_spelled_otherwise_class1(first):
    index = _index(_entry(UNSIGNED, first), _entry(SIGNED, LINUX_ARM64))
    problem = platform_conflict(index, ARM64, SIGNED)
    assert problem is not None and UNSIGNED in problem


def test_select_platform_prefers_containerds_best_match_then_index_order():
    # Given 386 first, then two amd64 spellings: containerd takes the first amd64 one
    index = _index(_entry(UNSIGNED, {"os": "linux", "architecture": "386"}),
                   _entry(SIGNED, {"os": "Linux", "architecture": "x86_64"}),
                   _entry("sha256:" + "7" * 64, LINUX_AMD64))
    assert select_platform(index, AMD64).digest == SIGNED


def test_admits_only_when_every_runnable_entry_is_the_signed_manifest():
    # Given the signed manifest listed twice for amd64 (two spellings) and other platforms elsewhere
    index = _index(_entry(SIGNED, {"os": "linux", "architecture": "x86_64"}), _entry(SIGNED, LINUX_AMD64),
                   _entry(UNSIGNED, LINUX_ARM64), _entry(UNSIGNED, {"os": "windows", "architecture": "amd64"}),
                   _entry(UNSIGNED, {"os": "linux", "architecture": "s390x"}))
    # When / Then nothing else could run on linux/amd64
    assert platform_conflict(index, AMD64, SIGNED) is None
    assert select_platform(index, AMD64).digest == SIGNED


def test_rejects_index_when_a_runnable_entry_is_a_nested_index():
    index = _index(_entry(SIGNED, LINUX_AMD64), _entry(UNSIGNED, {"os": "linux", "architecture": "386"}, OCI_INDEX))
    assert "not an image manifest" in platform_conflict(index, AMD64, SIGNED)


def test_rejects_index_when_no_entry_can_run_on_the_platform():
    index = _index(_entry(SIGNED, LINUX_ARM64))
    with pytest.raises(VerificationError, match="has no manifest for platform linux/amd64"):
        select_platform(index, AMD64)


def test_rejects_index_when_a_platform_field_is_not_a_string():
    index = _index(_entry(SIGNED, {"os": "linux", "architecture": ["amd64"]}))
    with pytest.raises(VerificationError, match="non-string architecture"):
        select_platform(index, AMD64)


def test_names_at_most_a_few_entries_and_counts_the_rest():
    index = _index(*[_entry(f"sha256:{i:064x}", LINUX_AMD64) for i in range(20)], _entry(SIGNED, LINUX_AMD64))
    assert "and 12 more" in platform_conflict(index, AMD64, SIGNED)


# ---- property-based: spellings and orders ------------------------------------------------------

_OS = st.sampled_from(["linux", "Linux", "LINUX", "", "windows", "L\u0130NUX", "darwin", None])
_ARCH = st.sampled_from(["amd64", "AMD64", "x86_64", "x86-64", "386", "i386", "arm64", "aarch64", "ARM64", "arm",
                         "armhf", "armel", "s390x", "", None])
_VARIANT = st.sampled_from([None, "", "v1", "v2", "v3", "v8", "8", "v7", "v6", "v5", "V8", "v8.2", "v9"])


@st.composite
def _platforms(draw: st.DrawFn) -> dict[str, Any] | None:
    if draw(st.integers(0, 9)) == 0:
        return None
    listed = {name: value for name, value in (("os", draw(_OS)), ("architecture", draw(_ARCH)),
                                              ("variant", draw(_VARIANT))) if value is not None}
    return listed


@settings(max_examples=300, deadline=None)
@given(platforms=st.lists(_platforms(), min_size=1, max_size=6), signed_at=st.integers(0, 5),
       task=st.sampled_from(["linux/amd64", "LINUX/X86_64", "linux/arm64", "LINUX/ARM64", "linux/arm64/v8"]))
def test_property_admits_nothing_containerd_would_not_run(platforms, signed_at, task):
    # Given an index of entries in any spelling and order, one of which is the signed manifest
    signed_at %= len(platforms)
    entries = [_entry(SIGNED if i == signed_at else f"sha256:{i + 1:064x}", p) for i, p in enumerate(platforms)]
    index = _index(*entries)
    platform = Platform.parse(task)
    # When the judge looks at it, and containerd 1.6 (modelled from its sources) picks
    picked = containerd16_pick(json.loads(index.raw)["manifests"], str(platform))
    try:
        chosen = select_platform(index, platform)
    except VerificationError as exc:
        # Then a refusal carries a reason, and "nothing runs here" agrees with containerd
        assert str(exc)
        if "has no manifest" in str(exc):
            assert picked is None
        return
    problem = platform_conflict(index, platform, chosen.digest)
    # Then whatever containerd picks is among the entries the judge counted
    assert picked is None or picked["digest"] in {d.digest for d in runnable_entries(index, platform)}
    # And an admission (no conflict) means containerd runs exactly the judged manifest, or nothing
    if problem is None:
        assert picked is None or picked["digest"] == chosen.digest
    else:
        assert "several different manifests" in problem


@settings(max_examples=150, deadline=None)
@given(platforms=st.lists(_platforms(), min_size=1, max_size=5), data=st.data())
def test_property_entry_order_never_turns_a_rejection_into_an_admission(platforms, data):
    # Given an index the judge rejects for the signed entry, When its entries are reordered
    entries = [_entry(SIGNED if i == 0 else UNSIGNED, p) for i, p in enumerate(platforms)]
    try:
        rejected = platform_conflict(_index(*entries), AMD64, SIGNED) is not None
        shuffled = data.draw(st.permutations(entries))
        reordered = platform_conflict(_index(*shuffled), AMD64, SIGNED) is not None
    except (VerificationError, HostileArtifactError) as exc:
        assert str(exc)
        return
    # Then the judgement is the same: it is about the set of runnable entries, not their order
    assert rejected == reordered
