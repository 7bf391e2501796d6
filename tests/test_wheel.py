"""The built wheel is complete: installed (not editable) into a fresh venv, the CLI and the constructs work.

The wheel is built from a copy of the sources (so no build/ or *.egg-info lands in the checkout) and
installed with --no-deps into a venv of its own. The project venv's third-party packages are made
visible through a `.pth` file that lists its site-packages directory: a path line in a .pth adds
the directory without running the .pth files inside it, so the project's editable install (its
finder is loaded by such a file) stays out, and every import of our packages must come from the
wheel. No network: pip installs one local file with --no-index.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "constructs_lib", "lambda_src")  # what setuptools reads
EXAMPLE_POLICY = ROOT / "docs" / "examples" / "policy.json"
COMMAND_SECONDS = 120


@dataclass(frozen=True, kw_only=True)
class FreshVenv:
    root: Path
    python: Path
    site_packages: Path
    work: Path  # the working directory of every command: not the checkout, which is importable

    def run(self, *argv: str | Path) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
        env["PATH"] = f"{self.python.parent}{os.pathsep}{env.get('PATH', '')}"
        return _run([str(a) for a in argv], cwd=self.work, env=env)

    def script(self, name: str) -> Path:
        return self.python.parent / name


def _run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=False, capture_output=True, text=True, timeout=COMMAND_SECONDS,
                          stdin=subprocess.DEVNULL, **kwargs)  # type: ignore[call-overload]


def _checked(completed: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert completed.returncode == 0, f"{completed.args} exited {completed.returncode}:\n{completed.stdout}\n{completed.stderr}"
    return completed


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("wheel-source")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(ROOT / name, source / name)
    for license_file in ROOT.glob("LICEN[CS]E*"):
        shutil.copy2(license_file, source / license_file.name)
    dist = tmp_path_factory.mktemp("dist")
    _checked(_run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
                   "--wheel-dir", str(dist), str(source)]))
    (built,) = dist.glob("signed_images_cdk-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> FreshVenv:
    root = tmp_path_factory.mktemp("fresh") / "venv"
    _checked(_run([sys.executable, "-m", "venv", "--without-pip", str(root)]))
    python = root / ("Scripts" if os.name == "nt" else "bin") / "python"
    _checked(_run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index",
                   str(wheel)]))
    site_packages = Path(_checked(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]))
                         .stdout.strip())
    # The project venv's third-party packages (cryptography, boto3, aws-cdk-lib, ...), without its .pth files.
    (site_packages / "project-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    work = tmp_path_factory.mktemp("work")
    return FreshVenv(root=root, python=python, site_packages=site_packages, work=work)


def test_packages_import_from_the_wheel_not_from_the_checkout(venv):
    # When both packages are imported in the fresh venv
    result = _checked(venv.run(venv.python, "-c", "import json, constructs_lib, image_verifier; "
                               "print(json.dumps([image_verifier.__file__, constructs_lib.__file__]))"))
    # Then both come from its site-packages, not from the editable install of the checkout
    for location in json.loads(result.stdout):
        assert Path(location).is_relative_to(venv.site_packages), location


def test_console_script_prints_the_distribution_version(venv):
    result = _checked(venv.run(venv.script("image-verifier"), "--version"))
    assert result.stdout.strip().startswith("image-verifier 0.")
    assert "unknown" not in result.stdout


def test_wheel_ships_the_policy_schema_and_the_lambda_pins(venv):
    result = _checked(venv.run(venv.python, "-c", (
        "from importlib import resources; import json; "
        "schema = json.loads(resources.files('image_verifier.policy').joinpath('schema.json').read_text()); "
        "pins = resources.files('constructs_lib').joinpath('lambda-requirements.txt').read_text(); "
        "print(schema['title']); print('boto3==' in pins)"
    )))
    assert result.stdout.split("\n")[:2] == ["Image admission policy, version 1", "True"]


def test_policy_validate_accepts_the_docs_example_policy(venv):
    # The example in docs/examples/ reads its key and certificate from files beside it.
    result = venv.run(venv.script("image-verifier"), "policy", "validate", EXAMPLE_POLICY)
    assert result.returncode == 0, result.stderr
    assert f"{EXAMPLE_POLICY}: valid" in result.stdout


def test_policy_init_writes_a_policy_that_validates(venv):
    # Given a starting policy written by the installed CLI
    policy = venv.work / "policy.json"
    _checked(venv.run(venv.script("image-verifier"), "policy", "init", "--registry", "registry.example.com",
                      "--public-key", EXAMPLE_POLICY.parent / "keys" / "break-glass.pub", "--output", policy))
    # When / Then it validates
    assert venv.run(venv.script("image-verifier"), "policy", "validate", policy).returncode == 0


def test_constructs_import_from_the_wheel(venv):
    _checked(venv.run(venv.python, "-c", "import constructs_lib"))
