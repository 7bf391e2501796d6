"""Local, Docker-free bundling of the verifier runtime into a Lambda asset.

`RuntimeBundler` implements ``cdk.ILocalBundling``: ``pip install --platform ... --only-binary=:all:``
fetches the runtime's third-party wheels for the Lambda's CPU and Python version into a cache
directory keyed by (requirements, platform, Python version), once per machine; every bundling
then copies that cache, the runtime package (``image_verifier``, without tests or ``__pycache__``)
and any extra files (the admission policy) into the asset directory. The Docker image in
``BundlingOptions`` is a name that does not exist: if local bundling ever declined, synth fails
instead of silently pulling an image.

Bytecode: Lambda's code directory (``/var/task``) is read-only, so an asset without ``__pycache__``
compiles every module it imports on every cold start (measured in docs/benchmarks.md: the handler's
imports take several times longer than with bytecode). When the bundling interpreter is the Lambda's
CPython major.minor, every ``.py`` of the asset (the runtime package and the third-party wheels) is
compiled into it with ``--invalidation-mode unchecked-hash``: the ``.pyc`` holds a hash of its source
rather than an mtime (deterministic, and never checked at import, since nothing in the asset
changes after bundling). Bytecode of another Python version would be ignored by the Lambda, so
otherwise the asset is left without it (docs/admission.md says so; a synth-time note would print on
every synth of every app, and synth stays quiet). The asset hash is unchanged either way: the bytecode is
derived from what the hash covers plus the Python version, which the cache key already holds.

Why boto3 is bundled although the Lambda runtime ships one: the hook calls
``ecs:DescribeServiceRevisions`` (added to botocore in November 2024) and reads revision fields
added later (``overrides.runtimePlatform``); the runtime's SDK version is not under our control,
so the asset pins the botocore whose service model the tests were written against.
"""

from __future__ import annotations

import compileall
import hashlib
import importlib.util
import json
import os
import py_compile
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Mapping, Sequence

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_

# The Lambda asset's pins: every distribution it bundles, at one version each. `make lock` writes this
# file from requirements.lock (the same versions the tests run against), so the SDK the handler is
# tested with is the SDK it ships with; the asset hash covers these pins, not what PyPI serves today.
LAMBDA_PINS_FILE = Path(__file__).with_name("lambda-requirements.txt")


def lambda_pins(path: Path = LAMBDA_PINS_FILE) -> tuple[str, ...]:
    """The pinned requirement lines (``name==version`` with an optional ``; marker``), comments dropped."""
    lines = (line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines())
    return tuple(line for line in lines if line)


def pinned_versions(pins: Sequence[str]) -> dict[str, str]:
    """``{normalized name: version}`` for ``name==version[ ; marker]`` lines."""
    versions = {}
    for pin in pins:
        name, _, version = pin.split(";", 1)[0].partition("==")
        versions[re.sub(r"[-_.]+", "-", name.strip()).lower()] = version.strip()
    return versions


RUNTIME_PACKAGE = "image_verifier"
CACHE_DIR_ENV = "SIGNED_IMAGES_BUNDLE_CACHE"  # overrides default_cache_root()
NO_DOCKER_IMAGE = "local-bundling-only/no-docker-image"  # never pulled: try_bundle always succeeds or raises
PIP_TIMEOUT_SECONDS = 900
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", "tests", "test_*.py", ".pytest_cache")
_ARCHITECTURES = {"arm64": "aarch64", "x86_64": "x86_64"}
LAMBDA_CODE_DIR = "/var/task"  # where Lambda unpacks the asset: the source path the bytecode records


def default_cache_root() -> Path:
    """Where downloaded wheels are kept between synths: ``$SIGNED_IMAGES_BUNDLE_CACHE``, else the user's
    cache directory (``$XDG_CACHE_HOME`` or ``~/.cache``), never the CDK app's own folder."""
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "signed-images-cdk" / "lambda-bundles"


def runtime_source_dir() -> Path:
    """The directory of the runtime package (``lambda_src/image_verifier`` in the repository)."""
    import image_verifier

    return Path(image_verifier.__file__).resolve().parent


def platform_tags(architecture: str, python_version: str) -> tuple[str, ...]:
    """manylinux tags the Lambda can load: Python 3.12+ runs on Amazon Linux 2023 (glibc 2.34)."""
    if architecture not in _ARCHITECTURES:
        raise ValueError(f"architecture must be one of {', '.join(_ARCHITECTURES)}, got {architecture!r}")
    machine = _ARCHITECTURES[architecture]
    major, minor = (int(p) for p in python_version.split("."))
    if (major, minor) >= (3, 12):
        return (f"manylinux_2_28_{machine}", f"manylinux2014_{machine}")
    return (f"manylinux2014_{machine}",)  # Amazon Linux 2 (glibc 2.26)


@jsii.implements(ILocalBundling)
class RuntimeBundler:
    """Bundles the verifier runtime for one (architecture, Python version) without Docker."""

    def __init__(self, *, architecture: str, python_version: str, extra_files: Mapping[str, str] | None = None,
                 requirements: Sequence[str] | None = None, cache_root: Path | None = None,
                 source_dir: Path | None = None) -> None:
        self.architecture = architecture
        self.python_version = python_version
        self.platforms = platform_tags(architecture, python_version)
        self.requirements = tuple(sorted(lambda_pins() if requirements is None else requirements))
        self.extra_files = dict(extra_files or {})
        self.cache_root = cache_root or default_cache_root()
        self.source_dir = source_dir or runtime_source_dir()

    # -- ILocalBundling ---------------------------------------------------------------------------
    def try_bundle(self, output_dir: str, *, image: DockerImage | None = None, **_options: object) -> bool:
        out = Path(output_dir)
        shutil.copytree(self.dependencies(), out, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".complete"))
        shutil.copytree(self.source_dir, out / RUNTIME_PACKAGE, dirs_exist_ok=True, ignore=_IGNORED)
        for name, text in self.extra_files.items():
            (out / name).write_text(text, encoding="utf-8")
        if self.compiles_bytecode:
            compile_bytecode(out)
        return True

    # -- bytecode ---------------------------------------------------------------------------------
    @property
    def compiles_bytecode(self) -> bool:
        """Whether this interpreter writes bytecode the Lambda's Python loads: CPython, same major.minor."""
        return sys.implementation.name == "cpython" and _major_minor() == self.python_version

    # -- the wheel cache --------------------------------------------------------------------------
    @property
    def cache_key(self) -> str:
        blob = json.dumps({"requirements": self.requirements, "platforms": self.platforms,
                           "python": self.python_version, "implementation": "cp"}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @property
    def cache_dir(self) -> Path:
        return self.cache_root / f"py{self.python_version}-{self.architecture}-{self.cache_key}"

    def dependencies(self) -> Path:
        """The installed wheels for this platform, downloading them only when not cached yet."""
        target = self.cache_dir
        if (target / ".complete").exists():
            return target
        _require_pip()
        self.cache_root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=self.cache_root))
        requirements_file = staging.with_suffix(".requirements.txt")
        try:
            # Every distribution is pinned in the file; pip still resolves, so a dependency the pins
            # forgot would show up in the asset (a test checks that none does).
            requirements_file.write_text("\n".join(self.requirements) + "\n", encoding="utf-8")
            command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-compile", "--no-input",
                       "--disable-pip-version-check", "--only-binary=:all:", "--implementation", "cp",
                       "--python-version", self.python_version, "--target", str(staging),
                       "--requirement", str(requirements_file)]
            for tag in self.platforms:
                command += ["--platform", tag]
            result = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT_SECONDS, check=False)
            if result.returncode != 0:
                raise RuntimeError(
                    f"pip could not fetch the Lambda runtime's wheels for {self.platforms[0]}, Python "
                    f"{self.python_version} (exit {result.returncode}): {result.stderr.strip()[-2000:]}; "
                    "check access to your package index (pip config), or pre-fill the wheel cache "
                    f"{target} on a machine that has it (the cache folder is set by ${CACHE_DIR_ENV})"
                )
            shutil.rmtree(staging / "bin", ignore_errors=True)  # console scripts: useless in Lambda
            for cache in staging.rglob("__pycache__"):
                shutil.rmtree(cache, ignore_errors=True)
            (staging / ".complete").write_text("\n".join(self.requirements) + "\n", encoding="utf-8")
            try:
                staging.rename(target)
            except OSError:
                if not (target / ".complete").exists():  # lost a race only if the winner finished
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            requirements_file.unlink(missing_ok=True)
        return target

    # -- the asset --------------------------------------------------------------------------------
    def asset_hash(self) -> str:
        """A stable hash of what goes into the asset: requirements, platform, source, extra files."""
        digest = hashlib.sha256(self.cache_key.encode())
        for path in sorted(p for p in self.source_dir.rglob("*") if p.is_file() and not _skipped(p, self.source_dir)):
            digest.update(str(path.relative_to(self.source_dir)).encode() + b"\0" + path.read_bytes() + b"\0")
        for name in sorted(self.extra_files):
            digest.update(name.encode() + b"\0" + self.extra_files[name].encode() + b"\0")
        return digest.hexdigest()

    def code(self) -> lambda_.Code:
        """``lambda_.Code`` for this bundle: local bundling only, custom (stable) asset hash."""
        return lambda_.Code.from_asset(
            str(self.source_dir),
            asset_hash_type=AssetHashType.CUSTOM,
            asset_hash=self.asset_hash(),
            bundling=BundlingOptions(image=DockerImage.from_registry(NO_DOCKER_IMAGE), local=self),
        )


def compile_bytecode(root: Path) -> None:
    """Compile every ``.py`` under `root` in place, as the Lambda will import them from ``/var/task``."""
    # In this process (workers=1): bundling runs inside a CDK app, whose jsii kernel threads and pipes a
    # forked worker would inherit. optimize=0: the Lambda runs without -O. A file that does not compile
    # gets no .pyc and fails at import exactly as it would have without one, so the result is not checked.
    compileall.compile_dir(root, quiet=2, workers=1, optimize=0, stripdir=str(root), prependdir=LAMBDA_CODE_DIR,
                           invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)


def _major_minor() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def _require_pip() -> None:
    """Bundling runs pip in this interpreter: say so plainly when the CDK app's environment lacks it."""
    if importlib.util.find_spec("pip") is None:
        raise RuntimeError(
            f"bundling the admission Lambda needs pip in the CDK app's Python ({sys.executable}), and it has "
            f"none; install it with `{sys.executable} -m ensurepip` (or create the virtualenv without "
            "--without-pip), or install this package with its [cdk] extra, which depends on pip"
        )


def _skipped(path: Path, root: Path) -> bool:
    parts = path.relative_to(root).parts
    return any(p in ("__pycache__", "tests", ".pytest_cache") for p in parts) or path.suffix in (".pyc", ".pyo") \
        or path.name.startswith("test_")
