"""The admission function's asset: bundled locally (no Docker), cached, and runnable.

The import test needs wheels that this machine can load, so it synthesizes an x86_64 /
Python <this interpreter> variant when the machine is x86_64; the default (arm64, Python 3.14)
variant is checked for the right native code.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest
from aws_cdk import aws_lambda as lambda_

from constructs_lib import CosignSigningKey
from constructs_lib import _bundling
from constructs_lib._bundling import RuntimeBundler, lambda_pins, pinned_versions
from constructs_lib.admission import AdmissionController
from tests.constructs.checks import new_app, new_stack, resources

ECR = "111111111111.dkr.ecr.us-east-1.amazonaws.com"
ELF_MACHINES = {62: "x86_64", 183: "aarch64"}
LOCAL_RUNTIME = {(3, 11): lambda_.Runtime.PYTHON_3_11, (3, 12): lambda_.Runtime.PYTHON_3_12,
                 (3, 13): lambda_.Runtime.PYTHON_3_13, (3, 14): lambda_.Runtime.PYTHON_3_14}


def _synth_asset(tmp_path_factory: pytest.TempPathFactory, **props) -> tuple[Path, AdmissionController]:
    app = new_app()
    stack = new_stack(app)
    key = CosignSigningKey(stack, "Key", alias="alias/team/cosign")
    controller = AdmissionController(stack, "Admission", signing_keys=[key], image_patterns=[f"{ECR}/team/**"], **props)
    assembly = app.synth()
    template = assembly.get_stack_by_name(stack.stack_name).template
    [function] = resources(template, "AWS::Lambda::Function").values()
    asset = Path(assembly.directory) / f"asset.{function['Properties']['Code']['S3Key'].removesuffix('.zip')}"
    assert asset.is_dir()
    return asset, controller


@pytest.fixture(scope="module")
def default_asset(tmp_path_factory):
    return _synth_asset(tmp_path_factory)


@pytest.fixture(scope="module")
def local_asset(tmp_path_factory):
    if platform.machine() != "x86_64" and platform.machine() != "aarch64":
        pytest.fail(f"no Lambda architecture matches this machine ({platform.machine()})")
    architecture = lambda_.Architecture.X86_64 if platform.machine() == "x86_64" else lambda_.Architecture.ARM_64
    runtime = LOCAL_RUNTIME[sys.version_info[:2]]
    return _synth_asset(tmp_path_factory, architecture=architecture, runtime=runtime)


def _elf_machine(path: Path) -> str:
    header = path.read_bytes()[:20]
    assert header[:4] == b"\x7fELF", path
    return ELF_MACHINES.get(int.from_bytes(header[18:20], "little"), "unknown")


def test_asset_holds_the_runtime_and_its_wheels_for_arm64_and_nothing_else(default_asset):
    asset, _ = default_asset
    # The runtime package, with the handler, and the policy file
    assert (asset / "image_verifier" / "handler" / "app.py").is_file()
    assert (asset / "admission_policy.json").is_file()
    # The third-party packages, each from its wheel
    for package in ("cryptography", "asn1crypto", "aws_lambda_powertools", "urllib3", "boto3", "botocore"):
        assert (asset / package / "__init__.py").is_file(), package
    # Native code for the Lambda's CPU, not this machine's
    native = list((asset / "cryptography").rglob("*.so"))
    assert native and {_elf_machine(p) for p in native} == {"aarch64"}
    # No tests, no byte code, no console scripts
    if sys.version_info[:2] != (3, 14):  # bytecode only when bundled by the Lambda's own Python
        assert not list(asset.rglob("__pycache__")) and not list(asset.rglob("*.pyc"))
    assert not (asset / "tests").exists() and not (asset / "bin").exists()
    assert not list((asset / "image_verifier").rglob("test_*.py"))


def test_every_distribution_in_the_asset_is_pinned(default_asset):
    # Given the synthesized asset
    asset, _ = default_asset
    installed = {p.name.removesuffix(".dist-info").split("-", 1)[0].lower().replace("_", "-"):
                 p.name.removesuffix(".dist-info").split("-", 1)[1] for p in asset.glob("*.dist-info")}
    pinned = pinned_versions(lambda_pins())
    # Then nothing was resolved that the pins do not name, at the pinned version
    assert installed == pinned


def test_asset_ships_the_sdk_the_lock_pins(default_asset):
    # Given the asset and the pins `make lock` wrote (never what happens to be installed today)
    asset, _ = default_asset
    versions = dict(p.name.removesuffix(".dist-info").split("-", 1) for p in asset.glob("*.dist-info"))
    pins = pinned_versions(lambda_pins())
    # Then the asset holds exactly the pinned SDK
    assert versions["botocore"] == pins["botocore"] and versions["boto3"] == pins["boto3"]


def test_handler_imports_and_answers_from_the_asset_in_a_fresh_interpreter(local_asset, tmp_path):
    # Given the asset built for this machine's CPU and Python, and an interpreter without site-packages
    asset, controller = local_asset
    env = {"PATH": os.environ.get("PATH", ""), "LAMBDA_TASK_ROOT": str(asset), "AWS_EC2_METADATA_DISABLED": "true",
           "AWS_DEFAULT_REGION": "us-east-1", "ADMISSION_POLICY_FILE": "admission_policy.json",
           **controller.policy.placeholders}
    script = """
import importlib, json, pkgutil, sys
sys.path.insert(0, sys.argv[1])
import image_verifier
for module in pkgutil.walk_packages(image_verifier.__path__, "image_verifier."):
    if not module.name.endswith("__main__"):
        importlib.import_module(module.name)
import cryptography, boto3
assert cryptography.__file__.startswith(sys.argv[1]) and boto3.__file__.startswith(sys.argv[1])
from image_verifier.handler.app import lambda_handler
print(json.dumps(lambda_handler({"hello": "world"}, None)))
"""
    # When the handler is imported (every module) and called with a malformed event
    result = subprocess.run([sys.executable, "-S", "-c", script, str(asset)], env=env, capture_output=True,
                            text=True, timeout=120, check=False)
    # Then it answers FAILED (the policy in the asset loaded), from the asset's own packages
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"hookStatus": "FAILED"}
    assert "not a lifecycle-hook event" in result.stdout


def test_repeated_synth_uses_the_wheel_cache_and_never_runs_pip(default_asset, tmp_path_factory, monkeypatch):
    # Given the cache filled by the first synth
    def no_pip(*args, **kwargs):
        raise AssertionError(f"pip ran again: {args}")

    monkeypatch.setattr(_bundling.subprocess, "run", no_pip)
    # When / Then the same variant synthesizes again without pip
    asset, _ = _synth_asset(tmp_path_factory)
    assert (asset / "cryptography" / "__init__.py").is_file()


def test_asset_hash_is_stable_and_follows_the_policy(tmp_path):
    def bundler(policy: str) -> RuntimeBundler:
        return RuntimeBundler(architecture="arm64", python_version="3.14", extra_files={"p.json": policy},
                              cache_root=tmp_path)

    assert bundler("{}").asset_hash() == bundler("{}").asset_hash()
    assert bundler("{}").asset_hash() != bundler('{"a": 1}').asset_hash()
    assert bundler("{}").cache_key == bundler('{"a": 1}').cache_key  # the wheels do not depend on the policy


def test_rejects_bundling_when_pip_cannot_fetch_the_wheels(tmp_path, monkeypatch):
    class Failed:
        returncode, stderr = 1, "ERROR: No matching distribution found for cryptography==0"

    monkeypatch.setattr(_bundling.subprocess, "run", lambda *a, **k: Failed())
    bundler = RuntimeBundler(architecture="arm64", python_version="3.14", cache_root=tmp_path)
    with pytest.raises(RuntimeError, match="pip could not fetch the Lambda runtime's wheels"):
        bundler.try_bundle(str(tmp_path / "out"), image=None)
    assert not bundler.cache_dir.exists()  # nothing half-written is left to be trusted later


def test_python_312_and_later_accept_manylinux_2_28_wheels_and_older_do_not():
    assert _bundling.platform_tags("arm64", "3.14") == ("manylinux_2_28_aarch64", "manylinux2014_aarch64")
    assert _bundling.platform_tags("x86_64", "3.11") == ("manylinux2014_x86_64",)


# -- bytecode (issue 13: Lambda's /var/task is read-only, so an asset without it compiles every module) --

_COMPILED_FROM_SOURCE = """
import importlib.machinery, json, sys
sys.path.insert(0, sys.argv[1])
compiled = []
original = importlib.machinery.SourceFileLoader.source_to_code
def recording(self, data, path, *args, **kwargs):
    compiled.append(str(path))
    return original(self, data, path, *args, **kwargs)
importlib.machinery.SourceFileLoader.source_to_code = recording
import image_verifier.handler.app, image_verifier.composition, boto3, aws_lambda_powertools, cryptography
assert boto3.__file__.startswith(sys.argv[1])
print(json.dumps([p for p in compiled if p.startswith(sys.argv[1])]))
"""


def _pyc_flags(path: Path) -> int:
    return int.from_bytes(path.read_bytes()[4:8], "little")  # PEP 552: 0b01 hash-based, 0b10 check the source


def test_local_asset_ships_unchecked_hash_bytecode_for_the_handler_and_its_wheels(local_asset):
    # Given the asset bundled by an interpreter of the Lambda's own Python version (this machine's)
    asset, _ = local_asset
    tag = sys.implementation.cache_tag
    # Then the handler modules, the runtime package and the wheels are compiled for that version
    handler = sorted((asset / "image_verifier" / "handler").glob("*.py"))
    assert handler
    for source in [*handler, asset / "image_verifier" / "composition.py", asset / "boto3" / "__init__.py",
                   asset / "cryptography" / "__init__.py"]:
        compiled = source.parent / "__pycache__" / f"{source.stem}.{tag}.pyc"
        assert compiled.is_file(), compiled
        # hash-based and never checked against the source: no mtime in it, nothing to stat at import
        assert _pyc_flags(compiled) == 0b01, compiled
    # and only for that version, at optimization level 0 (the Lambda runs without -O)
    assert {p.name.split(".")[1] for p in asset.rglob("*.pyc")} == {tag}


def test_handler_imports_from_the_asset_bytecode_without_compiling_anything(local_asset):
    # Given the local asset, read-only as /var/task is (no bytecode may be written), without site-packages
    asset, _ = local_asset
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONDONTWRITEBYTECODE": "1", "AWS_EC2_METADATA_DISABLED": "true"}
    # When the handler, the composition root, boto3, Powertools and cryptography are imported with -S
    result = subprocess.run([sys.executable, "-S", "-c", _COMPILED_FROM_SOURCE, str(asset)], env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    # Then nothing of the asset was compiled from source: every module came from its .pyc
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_default_asset_ships_bytecode_only_when_this_python_is_the_lambdas_and_synth_stays_quiet(default_asset):
    # Given the default variant (Python 3.14) bundled here
    from aws_cdk import Stack
    from aws_cdk.assertions import Annotations, Match

    asset, controller = default_asset
    # Then the asset holds bytecode only when this interpreter is 3.14 itself
    assert bool(list(asset.rglob("*.pyc"))) is (sys.version_info[:2] == (3, 14))
    # And the controller prints nothing about it at synth (docs/admission.md says how to ship bytecode)
    assert not Annotations.from_stack(Stack.of(controller)).find_info("*", Match.any_value())


def test_bytecode_is_deterministic_and_leaves_the_asset_hash_alone(local_asset, tmp_path, monkeypatch):
    # Given this machine's variant, bundled twice into different directories (the wheel cache is filled)
    def bundler() -> RuntimeBundler:
        return RuntimeBundler(architecture={"x86_64": "x86_64", "aarch64": "arm64"}[platform.machine()],
                              python_version=f"{sys.version_info.major}.{sys.version_info.minor}")

    first, second = tmp_path / "a", tmp_path / "b"
    bundler().try_bundle(str(first))
    bundler().try_bundle(str(second))
    # Then every .pyc is byte for byte the same (no mtime, no bundling directory recorded in it)
    compiled = sorted(p.relative_to(first) for p in first.rglob("*.pyc"))
    assert compiled and compiled == sorted(p.relative_to(second) for p in second.rglob("*.pyc"))
    assert all((first / p).read_bytes() == (second / p).read_bytes() for p in compiled)
    # And the asset hash does not depend on whether the bundling interpreter could compile
    compiling = bundler().asset_hash()
    monkeypatch.setattr(_bundling, "_major_minor", lambda: "3.99")
    assert not bundler().compiles_bytecode and bundler().asset_hash() == compiling
