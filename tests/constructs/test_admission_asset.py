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
