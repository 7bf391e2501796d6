"""Reading CloudFormation values the way a reviewer would: intrinsics rendered as text, references followed.

A value is evaluated as far as the assembly allows. ``Ref``/``Fn::GetAtt`` of a resource whose name
and environment are in the template become the real name or ARN (an ECR repository's ARN, an IAM
role's ARN); ``Fn::ImportValue`` is followed to the exporting stack's output; ``Fn::Join``,
``Fn::Select``, ``Fn::Split`` and ``Fn::Sub`` are computed when their inputs are known. What cannot be
known before deploy (a KMS key id, a parameter) stays visible as ``<...>``, never guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .assembly import Assembly, Stack

MAX_DEPTH = 20  # imports of imports; deeper is a loop


@dataclass(frozen=True, kw_only=True)
class Opaque:
    """A value known only at deploy time, shown as ``<text>``."""

    text: str
    partial: bool = False  # text already shows its unknown parts as <...> (a join of known and unknown)

    def __str__(self) -> str:
        return self.text if self.partial else f"<{self.text}>"


@dataclass(frozen=True, kw_only=True)
class ResourceRef:
    """A resource of the assembly that a value points at (through Ref, GetAtt or an import)."""

    stack: Stack
    logical_id: str

    @property
    def resource(self) -> dict[str, Any]:
        return self.stack.resources.get(self.logical_id, {})

    @property
    def type(self) -> str:
        return str(self.resource.get("Type", ""))

    @property
    def properties(self) -> dict[str, Any]:
        props = self.resource.get("Properties")
        return props if isinstance(props, dict) else {}

    @property
    def key(self) -> tuple[str, str]:
        return (self.stack.artifact_id, self.logical_id)


# What `Ref` returns for resource types whose name a reviewer knows (CloudFormation return values).
_REF_NAME = {
    "AWS::ECR::Repository": "RepositoryName",
    "AWS::IAM::Role": "RoleName",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::KMS::Alias": "AliasName",
    "AWS::Signer::SigningProfile": "ProfileName",
}
_SUB = re.compile(r"\$\{([^}!][^}]*)\}")


class Resolver:
    """Evaluates template values against the whole assembly."""

    def __init__(self, assembly: Assembly) -> None:
        self.assembly = assembly
        self._exports: dict[str, tuple[Stack, Any]] = {}
        for stack in assembly.stacks:
            outputs = stack.template.get("Outputs")
            for output in (outputs.values() if isinstance(outputs, dict) else ()):
                export = output.get("Export") if isinstance(output, dict) else None
                if isinstance(export, dict) and "Name" in export:
                    self._exports[self.text(stack, export["Name"])] = (stack, output.get("Value"))

    # -- public ---------------------------------------------------------------------------------
    def text(self, stack: Stack, value: Any) -> str:
        """The value as a reviewer reads it, on one line; deploy-time parts shown as ``<...>``."""
        result = self.evaluate(stack, value)
        text = ", ".join(str(v) for v in result) if isinstance(result, list) else str(result)
        # One line: a description with a line break must not start a heading or a list in the report.
        return " ".join(text.splitlines()) if "\n" in text or "\r" in text else text

    def is_literal(self, stack: Stack, value: Any) -> bool:
        return isinstance(self.evaluate(stack, value), str)

    def target(self, stack: Stack, value: Any, depth: int = 0) -> ResourceRef | None:
        """The resource of the assembly a value refers to, if it refers to one."""
        if depth > MAX_DEPTH or not isinstance(value, dict) or len(value) != 1:
            return self._by_literal_arn(stack, value)
        (name, arg), = value.items()
        if name == "Ref" and isinstance(arg, str) and arg in stack.resources:
            return ResourceRef(stack=stack, logical_id=arg)
        if name == "Ref" and isinstance(arg, str) and stack.parent is not None and arg in stack.parameter_values:
            return self.target(stack.parent, stack.parameter_values[arg], depth + 1)
        if name == "Fn::GetAtt":
            logical_id, attribute = _get_att_parts(arg)
            output = self._nested_output(stack, logical_id, attribute)
            if output is not None:
                return self.target(output[0], output[1], depth + 1)
            if isinstance(logical_id, str) and logical_id in stack.resources:
                return ResourceRef(stack=stack, logical_id=logical_id)
        if name == "Fn::ImportValue":
            exported = self._exports.get(self.text(stack, arg))
            if exported:
                return self.target(exported[0], exported[1], depth + 1)
        return None

    def _nested_output(self, stack: Stack, logical_id: str | None, attribute: str | None) -> tuple[Stack, Any] | None:
        """``Fn::GetAtt [NestedStackResource, Outputs.X]``: the nested stack and its output's value."""
        if not (logical_id and attribute and attribute.startswith("Outputs.")):
            return None
        for nested in self.assembly.stacks:
            if nested.parent is stack and nested.nested_logical_id == logical_id:
                output = (nested.template.get("Outputs") or {}).get(attribute[len("Outputs."):])
                return (nested, output.get("Value")) if isinstance(output, dict) else None
        return None

    def arn_of(self, ref: ResourceRef) -> str | None:
        """The ARN of a resource when its name and environment are known at synth."""
        value = self._get_att(ref.stack, ref.logical_id, "Arn", 0)
        return value if isinstance(value, str) else None

    # -- evaluation -----------------------------------------------------------------------------
    def evaluate(self, stack: Stack, value: Any, depth: int = 0) -> str | list | Opaque:
        if depth > MAX_DEPTH:
            return Opaque(text="too deeply nested")
        if isinstance(value, str):
            return value
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (int, float)):
            return str(value)
        if isinstance(value, list):
            return [self.evaluate(stack, v, depth + 1) for v in value]
        if isinstance(value, dict) and len(value) == 1:
            (name, arg), = value.items()
            handler = _INTRINSICS.get(name)
            if handler is not None:
                return handler(self, stack, arg, depth + 1)
        return Opaque(text=f"{value}"[:120])

    def _ref(self, stack: Stack, name: Any, depth: int) -> str | Opaque:
        if not isinstance(name, str):
            return Opaque(text=f"Ref {name}")
        pseudo = {"AWS::AccountId": stack.account, "AWS::Region": stack.region,
                  "AWS::Partition": stack.partition if stack.region else None,
                  "AWS::URLSuffix": stack.url_suffix if stack.region else None}
        if name in pseudo:
            return pseudo[name] or Opaque(text=name)
        resource = stack.resources.get(name)
        if resource is None and stack.parent is not None and name in stack.parameter_values:
            return self.evaluate(stack.parent, stack.parameter_values[name], depth + 1)  # a nested stack's input
        if resource is None:
            parameters = stack.template.get("Parameters") or {}
            return Opaque(text=f"parameter {name}" if name in parameters else name)
        attribute = _REF_NAME.get(str(resource.get("Type")))
        props = resource.get("Properties") or {}
        if attribute and attribute in props:
            named = self.evaluate(stack, props[attribute], depth + 1)
            if isinstance(named, str):
                return named
        return Opaque(text=name)

    def _get_att(self, stack: Stack, logical_id: str, attribute: str, depth: int) -> str | list | Opaque:
        output = self._nested_output(stack, logical_id, attribute)
        if output is not None:
            return self.evaluate(output[0], output[1], depth + 1)
        resource = stack.resources.get(logical_id) or {}
        kind, props = resource.get("Type"), resource.get("Properties") or {}
        fallback = Opaque(text=f"{logical_id}.{attribute}")
        if attribute != "Arn" or not (stack.account and stack.region):
            return fallback
        prefix = f"arn:{stack.partition}"
        name = self._ref(stack, logical_id, depth + 1)
        if not isinstance(name, str):
            return fallback
        if kind == "AWS::ECR::Repository":
            return f"{prefix}:ecr:{stack.region}:{stack.account}:repository/{name}"
        if kind == "AWS::IAM::Role":
            path = props.get("Path", "/")
            return f"{prefix}:iam::{stack.account}:role{path if isinstance(path, str) else '/'}{name}"
        if kind == "AWS::Lambda::Function":
            return f"{prefix}:lambda:{stack.region}:{stack.account}:function:{name}"
        if kind == "AWS::Signer::SigningProfile":
            return f"{prefix}:signer:{stack.region}:{stack.account}:/signing-profiles/{name}"
        return fallback

    def _by_literal_arn(self, stack: Stack, value: Any) -> ResourceRef | None:
        text = self.evaluate(stack, value)
        if not isinstance(text, str) or not text.startswith("arn:"):
            return None
        for other in self.assembly.stacks:
            for logical_id in other.resources:
                if self._get_att(other, logical_id, "Arn", 0) == text:
                    return ResourceRef(stack=other, logical_id=logical_id)
        return None


def _join(resolver: Resolver, stack: Stack, arg: Any, depth: int) -> str | Opaque:
    if not (isinstance(arg, list) and len(arg) == 2 and isinstance(arg[0], str)):
        return Opaque(text="Fn::Join")
    parts = resolver.evaluate(stack, arg[1], depth)
    if not isinstance(parts, list):
        return parts if isinstance(parts, Opaque) else Opaque(text="Fn::Join")
    text = arg[0].join(str(p) for p in parts)
    return text if all(isinstance(p, str) for p in parts) else Opaque(text=text, partial=True)


def _split(resolver: Resolver, stack: Stack, arg: Any, depth: int) -> list | Opaque:
    if not (isinstance(arg, list) and len(arg) == 2 and isinstance(arg[0], str)):
        return Opaque(text="Fn::Split")
    source = resolver.evaluate(stack, arg[1], depth)
    if isinstance(source, str):
        return source.split(arg[0])
    return Opaque(text=f"part of {source}" if isinstance(source, Opaque) else "Fn::Split")


def _select(resolver: Resolver, stack: Stack, arg: Any, depth: int) -> str | list | Opaque:
    if not (isinstance(arg, list) and len(arg) == 2):
        return Opaque(text="Fn::Select")
    index, items = resolver.evaluate(stack, arg[0], depth), resolver.evaluate(stack, arg[1], depth)
    if isinstance(items, list) and isinstance(index, str) and index.isdigit() and int(index) < len(items):
        return items[int(index)]
    return items if isinstance(items, Opaque) else Opaque(text="Fn::Select")


def _sub(resolver: Resolver, stack: Stack, arg: Any, depth: int) -> str | Opaque:
    template, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1]) if (
        isinstance(arg, list) and len(arg) == 2 and isinstance(arg[1], dict)) else (None, {})
    if not isinstance(template, str):
        return Opaque(text="Fn::Sub")
    opaque = False

    def replace(match: re.Match[str]) -> str:
        nonlocal opaque
        name = match.group(1)
        if name in variables:
            value = resolver.evaluate(stack, variables[name], depth)
        elif "." in name:
            logical_id, _, attribute = name.partition(".")
            value = resolver._get_att(stack, logical_id, attribute, depth)
        else:
            value = resolver._ref(stack, name, depth)
        opaque = opaque or not isinstance(value, str)
        return value if isinstance(value, str) else str(value)

    text = _SUB.sub(replace, template)
    return Opaque(text=text, partial=True) if opaque else text


def _get_att_parts(arg: Any) -> tuple[str | None, str | None]:
    if isinstance(arg, str):
        arg = arg.split(".", 1)
    if isinstance(arg, list) and len(arg) == 2 and all(isinstance(a, str) for a in arg):
        return arg[0], arg[1]
    return None, None


def _get_att(resolver: Resolver, stack: Stack, arg: Any, depth: int) -> str | list | Opaque:
    logical_id, attribute = _get_att_parts(arg)
    if logical_id is None or attribute is None:
        return Opaque(text="Fn::GetAtt")
    return resolver._get_att(stack, logical_id, attribute, depth)


def _import(resolver: Resolver, stack: Stack, arg: Any, depth: int) -> str | list | Opaque:
    name = resolver.text(stack, arg)
    exported = resolver._exports.get(name)
    if exported is None:
        return Opaque(text=f"import {name}")
    return resolver.evaluate(exported[0], exported[1], depth)


_INTRINSICS = {
    "Ref": lambda r, s, a, d: r._ref(s, a, d),
    "Fn::GetAtt": _get_att,
    "Fn::Join": _join,
    "Fn::Split": _split,
    "Fn::Select": _select,
    "Fn::Sub": _sub,
    "Fn::ImportValue": _import,
    "Fn::GetAZs": lambda r, s, a, d: Opaque(text="availability zones"),
}
