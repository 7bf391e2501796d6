"""Reading a synthesized cloud assembly (``cdk.out/``) as plain files: manifest, templates, metadata, assets.

Nothing here imports aws_cdk: the reviewer's report must run where only the assembly is at hand
(a CI artifact, a review checkout). Nested assemblies (CDK stages) are read too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ImageVerifierError

STACK_ARTIFACT = "aws:cloudformation:stack"
NESTED_ASSEMBLY_ARTIFACT = "cdk:cloud-assembly"
ASSET_MANIFEST_ARTIFACT = "cdk:asset-manifest"
MAX_JSON_BYTES = 64 * 1024 * 1024  # CloudFormation caps a template at 1 MB; tree/metadata files stay far below this
MAX_NESTING = 8  # stages inside stages (or nested stacks); deeper than this is a loop or a hostile assembly
NESTED_STACK = "AWS::CloudFormation::Stack"
_ASSET_HASH_JSON = re.compile(r"([0-9a-f]{64})\.json")


class ReviewError(ImageVerifierError):
    """The input is not a cloud assembly this report can read (a usage error: exit 2)."""


def read_json(path: Path) -> Any:
    """One JSON file of the assembly, or a ReviewError that names it."""
    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            raise ReviewError(f"{path} is larger than {MAX_JSON_BYTES} bytes; is it really part of a cloud assembly?")
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ReviewError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except (ValueError, RecursionError) as exc:
        raise ReviewError(f"{path} is not valid JSON ({exc}); synthesize the app again (cdk synth)") from exc


@dataclass(frozen=True, kw_only=True)
class Stack:
    """One CloudFormation stack of the assembly, with its construct metadata."""

    artifact_id: str
    name: str
    account: str | None  # None for an environment-agnostic stack
    region: str | None
    template: dict[str, Any]
    metadata: dict[str, list[dict[str, Any]]]  # construct path -> metadata entries
    template_file: Path
    # A nested stack (``NestedStack``) knows its parent and the values the parent passes as parameters.
    parent: Stack | None = None
    parameter_values: dict[str, Any] = field(default_factory=dict)
    nested_logical_id: str | None = None  # the parent's AWS::CloudFormation::Stack resource

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        resources = self.template.get("Resources")
        return resources if isinstance(resources, dict) else {}

    def resources_of(self, *types: str) -> Iterator[tuple[str, dict[str, Any]]]:
        for logical_id, resource in self.resources.items():
            if isinstance(resource, dict) and resource.get("Type") in types:
                yield logical_id, resource

    @property
    def partition(self) -> str:
        region = self.region or ""
        if region.startswith("cn-"):
            return "aws-cn"
        return "aws-us-gov" if region.startswith("us-gov-") else "aws"

    @property
    def url_suffix(self) -> str:
        return "amazonaws.com.cn" if self.partition == "aws-cn" else "amazonaws.com"

    @property
    def environment(self) -> str:
        return f"{self.account or 'any account'}/{self.region or 'any region'}"

    def logical_id_of_path(self, construct_path: str) -> str | None:
        """The logical id CDK recorded for a construct path (or for its ``Resource`` child)."""
        for path in (construct_path, f"{construct_path}/Resource", f"{construct_path}/Default"):
            for entry in self.metadata.get(path, ()):
                if entry.get("type") == "aws:cdk:logicalId" and isinstance(entry.get("data"), str):
                    return entry["data"]
        return None


@dataclass(frozen=True, kw_only=True)
class Assembly:
    """Every stack and file asset of a cloud assembly directory."""

    root: Path
    stacks: tuple[Stack, ...]
    assets: dict[str, Path] = field(default_factory=dict)  # asset hash -> directory or file inside the assembly
    validation_reports: tuple[Path, ...] = ()

    @classmethod
    def load(cls, root: Path) -> Assembly:
        if not root.exists():
            raise ReviewError(f"{root} does not exist; synthesize the app first (cdk synth, or make synth)")
        if not root.is_dir():
            raise ReviewError(f"{root} is not a directory; give the cloud assembly directory (usually cdk.out/)")
        if not (root / "manifest.json").is_file():
            raise ReviewError(f"{root} holds no manifest.json, so it is not a cloud assembly; "
                              "give the directory that cdk synth wrote (usually cdk.out/)")
        stacks: list[Stack] = []
        assets: dict[str, Path] = {}
        reports: list[Path] = []
        _read_directory(root, stacks, assets, reports, depth=0)
        for stack in list(stacks):
            stacks.extend(_nested_stacks(stack, assets, depth=0))
        return cls(root=root, stacks=tuple(stacks), assets=assets, validation_reports=tuple(reports))

    def stack_named(self, name: str) -> Stack | None:
        return next((s for s in self.stacks if s.name == name or s.artifact_id == name), None)


def _read_directory(directory: Path, stacks: list[Stack], assets: dict[str, Path], reports: list[Path],
                    *, depth: int) -> None:
    if depth > MAX_NESTING:
        raise ReviewError(f"{directory}: nested assemblies deeper than {MAX_NESTING} levels")
    manifest = read_json(directory / "manifest.json")
    artifacts = manifest.get("artifacts") if isinstance(manifest, dict) else None
    if not isinstance(artifacts, dict):
        raise ReviewError(f"{directory / 'manifest.json'} lists no artifacts; it is not a cloud assembly manifest")
    report = directory / "validation-report.json"
    if report.is_file():
        reports.append(report)
    for artifact_id, artifact in artifacts.items():
        if not isinstance(artifact, dict):
            continue
        kind, properties = artifact.get("type"), artifact.get("properties") or {}
        if kind == STACK_ARTIFACT:
            stacks.append(_stack(directory, artifact_id, artifact, properties))
        elif kind == ASSET_MANIFEST_ARTIFACT and isinstance(properties.get("file"), str):
            _assets(directory, directory / properties["file"], assets)
        elif kind == NESTED_ASSEMBLY_ARTIFACT and isinstance(properties.get("directoryName"), str):
            nested = directory / properties["directoryName"]
            if (nested / "manifest.json").is_file():
                _read_directory(nested, stacks, assets, reports, depth=depth + 1)


def _stack(directory: Path, artifact_id: str, artifact: dict[str, Any], properties: dict[str, Any]) -> Stack:
    template_name = properties.get("templateFile")
    if not isinstance(template_name, str):
        raise ReviewError(f"stack {artifact_id} in {directory / 'manifest.json'} names no templateFile")
    template_file = directory / template_name
    template = read_json(template_file)
    if not isinstance(template, dict):
        raise ReviewError(f"{template_file} is not a CloudFormation template (expected a JSON object)")
    metadata: dict[str, list[dict[str, Any]]] = {}
    inline = artifact.get("metadata")
    if isinstance(inline, dict):
        _merge_metadata(metadata, inline)
    extra = artifact.get("additionalMetadataFile")
    if isinstance(extra, str) and (directory / extra).is_file():
        data = read_json(directory / extra)
        if isinstance(data, dict):
            _merge_metadata(metadata, data)
    account, region = _environment(artifact.get("environment"))
    return Stack(artifact_id=artifact_id, name=str(properties.get("stackName") or artifact_id), account=account,
                 region=region, template=template, metadata=metadata, template_file=template_file)


def _nested_stacks(parent: Stack, assets: dict[str, Path], *, depth: int) -> list[Stack]:
    """The NestedStack templates of ``parent``: CDK writes them as file assets (``*.nested.template.json``)."""
    if depth > MAX_NESTING:
        raise ReviewError(f"stack {parent.name}: nested stacks deeper than {MAX_NESTING} levels")
    found = []
    for logical_id, resource in parent.resources_of(NESTED_STACK):
        metadata, props = resource.get("Metadata") or {}, resource.get("Properties") or {}
        template_file = None
        if isinstance(metadata.get("aws:asset:path"), str):
            template_file = parent.template_file.parent / metadata["aws:asset:path"]
        else:
            match = _ASSET_HASH_JSON.search(json.dumps(props.get("TemplateURL")))
            template_file = assets.get(match.group(1)) if match else None
        if template_file is None or not template_file.is_file():
            continue  # a nested stack whose template is not in the assembly (an S3 URL of its own)
        template = read_json(template_file)
        if not isinstance(template, dict):
            raise ReviewError(f"{template_file} is not a CloudFormation template (expected a JSON object)")
        parameters = props.get("Parameters")
        stack = Stack(artifact_id=f"{parent.artifact_id}/{logical_id}",
                      name=template_file.name.removesuffix(".nested.template.json").removesuffix(".template.json"),
                      account=parent.account, region=parent.region, template=template, metadata=parent.metadata,
                      template_file=template_file, parent=parent,
                      parameter_values=parameters if isinstance(parameters, dict) else {}, nested_logical_id=logical_id)
        found += [stack, *_nested_stacks(stack, assets, depth=depth + 1)]
    return found


def _merge_metadata(into: dict[str, list[dict[str, Any]]], data: dict[str, Any]) -> None:
    for path, entries in data.items():
        if isinstance(entries, list):
            into.setdefault(path, []).extend(e for e in entries if isinstance(e, dict))


def _environment(text: Any) -> tuple[str | None, str | None]:
    """``aws://111111111111/us-east-1``; ``unknown-account``/``unknown-region`` mean environment-agnostic."""
    if not isinstance(text, str) or not text.startswith("aws://"):
        return None, None
    account, _, region = text[len("aws://"):].partition("/")
    return (None if account.startswith("unknown") else account), (None if region.startswith("unknown") else region)


def _assets(directory: Path, manifest_file: Path, assets: dict[str, Path]) -> None:
    if not manifest_file.is_file():
        return
    data = read_json(manifest_file)
    files = data.get("files") if isinstance(data, dict) else None
    for asset_hash, asset in (files or {}).items():
        source = asset.get("source") if isinstance(asset, dict) else None
        if isinstance(source, dict) and isinstance(source.get("path"), str):
            assets[asset_hash] = directory / source["path"]
