"""The admission policies: the document each admission Lambda carries in its code asset, resolved for reading.

An admission function is a Lambda whose code asset (``cdk.out/asset.<hash>/``) holds the policy file
(``ADMISSION_POLICY_FILE``, default ``admission_policy.json``). The asset directory is found from the
function's ``aws:asset:path`` metadata (written when the CDK CLI synthesizes), else from the asset
manifest entry whose hash names the code's S3 key. ``{"fromEnv": NAME}`` placeholders are resolved
from the function's environment variables; what only deploy time knows stays a placeholder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .assembly import Assembly, Stack
from .iam import describe_resource
from .values import Resolver, ResourceRef

DEFAULT_POLICY_FILE = "admission_policy.json"
MAX_POLICY_BYTES = 1024 * 1024  # the runtime's own limit (policy.codec.MAX_POLICY_BYTES)


@dataclass(frozen=True, kw_only=True)
class PolicySigner:
    name: str
    kind: str  # cosignKey, awsSigner, notationX509
    trusts: tuple[str, ...]  # key ARNs / profile ARNs / identities, as readable text
    targets: tuple[ResourceRef, ...]  # the keys or profiles of the assembly they resolve to
    state: str
    break_glass: bool


@dataclass(frozen=True, kw_only=True)
class PolicyRule:
    name: str
    images: tuple[str, ...]
    requirement: str  # "any of: a, b" / "all of: a, b"
    annotations: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class PolicyExemption:
    images: tuple[str, ...]
    digests: tuple[str, ...]
    reason: str
    expires: str
    expired: bool | None  # None when the date cannot be read


@dataclass(frozen=True, kw_only=True)
class AdmissionPolicy:
    function: ResourceRef
    label: str
    source: str  # where the document was read, relative to the assembly
    failure_mode: str
    unavailable_mode: str
    signers: tuple[PolicySigner, ...]
    rules: tuple[PolicyRule, ...]
    exemptions: tuple[PolicyExemption, ...]
    problem: str | None = None  # why the document could not be read, if it could not
    # Other functions that carry the same document (the push and task audits reuse the controller's
    # asset): one section per policy, not one per function.
    also_read_by: tuple[ResourceRef, ...] = ()

    @property
    def functions(self) -> tuple[ResourceRef, ...]:
        return (self.function, *self.also_read_by)

    def same_document(self, other: AdmissionPolicy) -> bool:
        return (self.source, self.failure_mode, self.unavailable_mode, self.signers, self.rules, self.exemptions,
                self.problem) == (other.source, other.failure_mode, other.unavailable_mode, other.signers,
                                  other.rules, other.exemptions, other.problem)


def read_policies(assembly: Assembly, resolver: Resolver, now: datetime) -> list[AdmissionPolicy]:
    policies: list[AdmissionPolicy] = []
    for stack in assembly.stacks:
        for logical_id, resource in stack.resources_of("AWS::Lambda::Function"):
            function = ResourceRef(stack=stack, logical_id=logical_id)
            located = _policy_file(assembly, resolver, function)
            if located is None:
                continue
            policy = _read(assembly, resolver, function, located, now)
            same = next((i for i, p in enumerate(policies) if p.same_document(policy)), None)
            if same is None:
                policies.append(policy)
            else:
                first = policies[same]
                policies[same] = replace(first, also_read_by=(*first.also_read_by, function),
                                         label=f"{first.label}, {policy.label}")
    return policies


def _environment(function: ResourceRef) -> dict[str, Any]:
    env = (function.properties.get("Environment") or {}).get("Variables")
    return env if isinstance(env, dict) else {}


def _policy_file(assembly: Assembly, resolver: Resolver, function: ResourceRef) -> Path | None:
    name = resolver.text(function.stack, _environment(function).get("ADMISSION_POLICY_FILE", DEFAULT_POLICY_FILE))
    directory = _asset_directory(assembly, resolver, function)
    if directory is None or "/" in name or "\\" in name or name.startswith("."):
        return None
    path = directory / name
    return path if path.is_file() else None


def _asset_directory(assembly: Assembly, resolver: Resolver, function: ResourceRef) -> Path | None:
    metadata = function.resource.get("Metadata") or {}
    asset_path = metadata.get("aws:asset:path")
    if isinstance(asset_path, str):
        candidate = (function.stack.template_file.parent / asset_path).resolve()
        if candidate.is_dir() and candidate.is_relative_to(assembly.root.resolve()):
            return candidate
    code = function.properties.get("Code") or {}
    key = resolver.text(function.stack, code.get("S3Key", "")) if isinstance(code, dict) else ""
    asset_hash = key.rsplit("/", 1)[-1].split(".", 1)[0]
    if not asset_hash:
        return None
    candidate = assembly.assets.get(asset_hash) or function.stack.template_file.parent / f"asset.{asset_hash}"
    return candidate if candidate.is_dir() else None


def _read(assembly: Assembly, resolver: Resolver, function: ResourceRef, path: Path, now: datetime) -> AdmissionPolicy:
    source = str(path.relative_to(assembly.root)) if path.is_relative_to(assembly.root) else str(path)
    label = describe_resource(resolver, function)
    try:
        if path.stat().st_size > MAX_POLICY_BYTES:
            raise ValueError(f"larger than {MAX_POLICY_BYTES} bytes")
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return AdmissionPolicy(function=function, label=label, source=source, failure_mode="?", unavailable_mode="?",
                               signers=(), rules=(), exemptions=(), problem=f"cannot read the policy: {exc}")
    if not isinstance(document, dict):
        return AdmissionPolicy(function=function, label=label, source=source, failure_mode="?", unavailable_mode="?",
                               signers=(), rules=(), exemptions=(), problem="cannot read the policy: not a JSON object")
    env = _environment(function)
    read = _Reader(resolver, function.stack, env)
    return AdmissionPolicy(
        function=function, label=label, source=source,
        failure_mode=str(document.get("failureMode", "block")),
        unavailable_mode=str(document.get("unavailableMode", "block")),
        signers=tuple(read.signer(s) for s in _items(document.get("trustedSigners"))),
        rules=tuple(read.rule(r) for r in _items(document.get("rules"))),
        exemptions=tuple(read.exemption(e, now) for e in _items(document.get("exemptions"))),
    )


def _items(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


class _Reader:
    """Resolves ``fromEnv`` placeholders from one function's environment."""

    def __init__(self, resolver: Resolver, stack: Stack, env: dict[str, Any]) -> None:
        self.resolver, self.stack, self.env = resolver, stack, env

    def text(self, value: Any) -> str:
        if isinstance(value, dict) and isinstance(value.get("fromEnv"), str):
            name = value["fromEnv"]
            if name not in self.env:
                return f"<${name}: not set on the function>"
            return self.resolver.text(self.stack, self.env[name])
        return str(value)

    def shown(self, value: Any) -> str:
        """The value's text, and the resource of the assembly it names when it names one."""
        text, target = self.text(value), self.target(value)
        if target is None:
            return f"`{text}`"
        known = "" if "<" in text else f" = `{text}`"
        return f"{describe_resource(self.resolver, target)}{known}"

    def target(self, value: Any) -> ResourceRef | None:
        if isinstance(value, dict) and isinstance(value.get("fromEnv"), str):
            return self.resolver.target(self.stack, self.env.get(value["fromEnv"]))
        return self.resolver.target(self.stack, value) if isinstance(value, str) else None

    def signer(self, raw: dict[str, Any]) -> PolicySigner:
        kind = next((k for k in ("cosignKey", "awsSigner", "notationX509", "cosignKeyless")
                     if isinstance(raw.get(k), dict)), "?")
        body = raw.get(kind) if isinstance(raw.get(kind), dict) else {}
        if kind == "cosignKey":
            values = [body["kmsKeyArn"]] if "kmsKeyArn" in body else []
            trusts = [self.shown(v) for v in values] or ["a public key (PEM) in the policy"]
        elif kind == "awsSigner":
            values = body.get("signingProfileArns") if isinstance(body.get("signingProfileArns"), list) else []
            trusts = [self.shown(v) for v in values]
        elif kind == "cosignKeyless":  # an OIDC identity, not an AWS resource: nothing to link
            values = []
            subject = body.get("subject") or f"~ {body.get('subjectRegExp')}"
            issuer = body.get("issuer") or f"~ {body.get('issuerRegExp')}"
            trusts = [f"`{self.text(subject)}` from `{self.text(issuer)}` (Fulcio certificate, Rekor entry)"]
        else:
            values = []
            trusts = [f"`{self.text(v)}`" for v in body.get("trustedIdentities") or []]
        targets = tuple(t for t in (self.target(v) for v in values) if t is not None)
        return PolicySigner(name=str(raw.get("name", "?")), kind=kind, trusts=tuple(trusts), targets=targets,
                            # key states and break-glass exist for cosign keys only (policy model)
                            state=str(body.get("state", "active")) if kind == "cosignKey" else "-",
                            break_glass=body.get("breakGlass") is True)

    def rule(self, raw: dict[str, Any]) -> PolicyRule:
        which = "allOf" if "allOf" in raw else "anyOf"
        names = ", ".join(str(n) for n in raw.get(which) or [])
        annotations = raw.get("requiredAnnotations") if isinstance(raw.get("requiredAnnotations"), dict) else {}
        return PolicyRule(name=str(raw.get("name", "?")), images=tuple(self.text(i) for i in raw.get("images") or []),
                          requirement=f"{'all' if which == 'allOf' else 'any'} of: {names}",
                          annotations=tuple(f"{k} ~ {v}" for k, v in annotations.items()))

    def exemption(self, raw: dict[str, Any], now: datetime) -> PolicyExemption:
        expires = str(raw.get("expires", "?"))
        try:
            when = datetime.fromisoformat(expires)
            expired: bool | None = (when if when.tzinfo else when.replace(tzinfo=UTC)) <= now
        except ValueError:
            expired = None
        return PolicyExemption(images=tuple(self.text(i) for i in raw.get("images") or []),
                               digests=tuple(str(d) for d in raw.get("digests") or []),
                               reason=str(raw.get("reason", "")), expires=expires, expired=expired)
