"""IAM policy documents as the report reads them: statements, action matching, principals, conditions.

This is a reader, not an IAM evaluator: it answers "which statements name this action" (with IAM's
case-insensitive ``*``/``?`` wildcards, and ``NotAction``), and renders principals and conditions
with the names of the resources they point at.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any

from .assembly import Stack
from .values import Resolver, ResourceRef

KMS_SIGN = "kms:Sign"
SIGNER_SIGN_ACTIONS = ("signer:SignPayload", "signer:StartSigningJob")
# A push to a repository that an ECR signing rule covers is signed with the pusher's identity.
ECR_PUSH_ACTIONS = ("ecr:PutImage", "ecr:CompleteLayerUpload", "ecr:InitiateLayerUpload", "ecr:UploadLayerPart")
REVIEWED_ACTIONS = (KMS_SIGN, *SIGNER_SIGN_ACTIONS, *ECR_PUSH_ACTIONS)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


@dataclass(frozen=True, kw_only=True)
class Statement:
    """One statement of a policy document, as written."""

    sid: str
    effect: str
    actions: tuple[str, ...]
    not_actions: tuple[str, ...]
    principal: Any  # the raw Principal ("*" or a map); None in identity policies
    not_principal: bool
    resources: tuple[Any, ...]
    conditions: dict[str, Any]

    def names(self, action: str) -> bool:
        """Whether this statement applies to ``action`` (IAM action names are case-insensitive)."""
        wanted = action.lower()
        if self.not_actions:
            return not any(fnmatch.fnmatchcase(wanted, p.lower()) for p in self.not_actions)
        return any(fnmatch.fnmatchcase(wanted, p.lower()) for p in self.actions)

    def reviewed_actions(self) -> tuple[str, ...]:
        return tuple(a for a in REVIEWED_ACTIONS if self.names(a))


def statements(document: Any) -> list[Statement]:
    if not isinstance(document, dict):
        return []
    result = []
    for index, raw in enumerate(_as_list(document.get("Statement"))):
        if not isinstance(raw, dict):
            continue
        principal = raw.get("Principal", raw.get("NotPrincipal"))
        result.append(Statement(
            sid=str(raw.get("Sid") or f"statement {index + 1}"),
            effect=str(raw.get("Effect", "Allow")),
            actions=tuple(a for a in _as_list(raw.get("Action")) if isinstance(a, str)),
            not_actions=tuple(a for a in _as_list(raw.get("NotAction")) if isinstance(a, str)),
            principal=principal,
            not_principal="NotPrincipal" in raw,
            resources=tuple(_as_list(raw.get("Resource"))) or (("*",) if "NotResource" not in raw else ()),
            conditions=raw.get("Condition") if isinstance(raw.get("Condition"), dict) else {},
        ))
    return result


def principal_entries(principal: Any) -> list[tuple[str, Any]]:
    """``[(kind, value)]`` where kind is AWS, Service, Federated or CanonicalUser; ``*`` is ``("AWS", "*")``."""
    if principal == "*":
        return [("AWS", "*")]
    if not isinstance(principal, dict):
        return []
    return [(kind, value) for kind, values in principal.items() for value in _as_list(values)]


def describe_resource(resolver: Resolver, ref: ResourceRef) -> str:
    """`LogicalId` (name) in stack Stack: the logical id always, the real name when the template has it."""
    name_keys = ("RoleName", "AliasName", "ProfileName", "RepositoryName", "FunctionName", "ServiceName")
    name = next((resolver.text(ref.stack, ref.properties[k]) for k in name_keys if k in ref.properties), None)
    named = f" ({name})" if name and not name.startswith("<") else ""
    return f"`{ref.logical_id}`{named} in {ref.stack.name}"


def describe_principal(resolver: Resolver, stack: Stack, kind: str, value: Any) -> str:
    if value == "*":
        return "everyone (`*`)"
    target = resolver.target(stack, value)
    if target is not None:
        what = {"AWS::IAM::Role": "role", "AWS::IAM::User": "user"}.get(target.type, target.type)
        return f"{what} {describe_resource(resolver, target)}"
    text = resolver.text(stack, value)
    if kind == "AWS" and text.endswith(":root"):
        account = text.split(":")[4] if text.count(":") >= 5 else text
        return f"account {account} (root: whoever that account's IAM policies allow)"
    if kind == "AWS" and text.isdigit():
        return f"account {text} (root: whoever that account's IAM policies allow)"
    return f"{kind.lower()} principal `{text}`"


def describe_principals(resolver: Resolver, stack: Stack, statement: Statement) -> list[str]:
    labels = [describe_principal(resolver, stack, kind, value) for kind, value in principal_entries(statement.principal)]
    if statement.not_principal:
        return [f"everyone except {', '.join(labels)}"]
    return labels


def condition_lines(resolver: Resolver, stack: Stack, conditions: dict[str, Any]) -> list[str]:
    """``StringEquals token.actions.githubusercontent.com:sub = a | b``; ARNs shown by resource name."""
    lines = []
    for operator, block in conditions.items():
        if not isinstance(block, dict):
            continue
        for key, values in block.items():
            shown = []
            for value in _as_list(values):
                target = resolver.target(stack, value)
                shown.append(describe_resource(resolver, target) if target else f"`{resolver.text(stack, value)}`")
            lines.append(f"{operator} `{key}` = {' or '.join(shown)}")
    return lines


def condition_values(resolver: Resolver, stack: Stack, conditions: dict[str, Any], key_suffix: str) -> list[str]:
    """Every value of the condition keys ending with ``key_suffix`` (e.g. ``:sub``), with its operator.

    The operator matters to a reviewer: ``StringLike`` makes ``*`` a wildcard, ``StringEquals`` does not.
    """
    found = []
    for operator, block in conditions.items():
        if isinstance(block, dict):
            for key, values in block.items():
                if key.lower().endswith(key_suffix):
                    found.extend(f"`{resolver.text(stack, v)}` ({operator})" for v in _as_list(values))
    return found


def excepted_principals(resolver: Resolver, stack: Stack, statement: Statement) -> list[ResourceRef] | None:
    """For a deny whose only condition is ``aws:PrincipalArn`` not equal to a list: the excepted resources.

    None when the statement has other conditions, which this reader does not judge.
    """
    refs: list[ResourceRef] = []
    for operator, block in statement.conditions.items():
        if operator not in ("ArnNotEquals", "ArnNotLike", "StringNotEquals", "StringNotLike") or not isinstance(block, dict):
            return None
        for key, values in block.items():
            if key.lower() != "aws:principalarn":
                return None
            for value in _as_list(values):
                target = resolver.target(stack, value)
                if target is not None:
                    refs.append(target)
    return refs
