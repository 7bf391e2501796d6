"""IAM roles of the assembly: who may assume them (OIDC, services, accounts) and what they may sign or push.

Policies are attached to a role by an ``AWS::IAM::Policy``/``ManagedPolicy`` (``Roles``), an
``AWS::IAM::RolePolicy``, the role's inline ``Policies`` or its ``ManagedPolicyArns``. A managed policy
that is not in the assembly (an AWS managed policy) cannot be read: it is listed as unread.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any

from .assembly import Assembly
from .iam import (
    Statement,
    condition_lines,
    condition_values,
    describe_principal,
    describe_resource,
    principal_entries,
    statements,
)
from .values import Resolver, ResourceRef

POLICY_TYPES = ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy")


@dataclass(frozen=True, kw_only=True)
class Grant:
    """An Allow statement of a role's policies that names a reviewed action."""

    actions: tuple[str, ...]
    resources: tuple[Any, ...]  # raw values, in the policy's stack
    conditions: tuple[str, ...]
    policy: str  # where the statement lives

    def covers(self, resolver: Resolver, stack_of_policy: Any, ref: ResourceRef) -> bool:
        """Whether the grant's resources include ``ref`` (by reference, ``*`` or an ARN pattern)."""
        arn = resolver.arn_of(ref)
        for value in self.resources:
            target = resolver.target(stack_of_policy, value)
            if target is not None and target.key == ref.key:
                return True
            text = resolver.text(stack_of_policy, value)
            if text == "*" or (arn and "<" not in text and fnmatch.fnmatchcase(arn, text)):
                return True
        return False


@dataclass(frozen=True, kw_only=True)
class Trust:
    """One statement of a role's trust policy."""

    principals: tuple[str, ...]
    action: str
    conditions: tuple[str, ...]
    oidc_provider: str | None  # e.g. token.actions.githubusercontent.com
    subjects: tuple[str, ...]  # `<provider>:sub` patterns
    audiences: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class Role:
    ref: ResourceRef
    label: str
    description: str
    trusts: tuple[Trust, ...]
    grants: tuple[tuple[Grant, Any], ...]  # (grant, stack of the policy that holds it)
    unread_policies: tuple[str, ...]

    def grants_for(self, action: str) -> list[tuple[Grant, Any]]:
        return [(g, s) for g, s in self.grants if action in g.actions]

    @property
    def is_ci(self) -> bool:
        """Assumed through OIDC or by a CI service (CodeBuild, CodePipeline)."""
        return any(t.oidc_provider or any("codebuild" in p or "codepipeline" in p for p in t.principals)
                   for t in self.trusts)


def read_roles(assembly: Assembly, resolver: Resolver) -> list[Role]:
    attached: dict[tuple[str, str], list[tuple[str, Any, Any]]] = {}  # role key -> (policy label, document, stack)
    unread: dict[tuple[str, str], list[str]] = {}
    for stack in assembly.stacks:
        for logical_id, resource in stack.resources_of(*POLICY_TYPES, "AWS::IAM::RolePolicy"):
            props = resource.get("Properties") or {}
            roles = props.get("Roles") or []
            if "RoleName" in props:
                roles = [props["RoleName"]]
            for role_value in roles if isinstance(roles, list) else []:
                target = resolver.target(stack, role_value) or _role_by_name(resolver, stack, role_value)
                if target is not None:
                    label = f"{resource['Type'].split('::')[-1]} `{logical_id}` in {stack.name}"
                    attached.setdefault(target.key, []).append((label, props.get("PolicyDocument"), stack))
    roles = []
    for stack in assembly.stacks:
        for logical_id, resource in stack.resources_of("AWS::IAM::Role"):
            ref = ResourceRef(stack=stack, logical_id=logical_id)
            props = ref.properties
            documents = list(attached.get(ref.key, []))
            for inline in props.get("Policies") or []:
                if isinstance(inline, dict):
                    name = resolver.text(stack, inline.get("PolicyName", "inline"))
                    documents.append((f"inline policy {name} of `{logical_id}`", inline.get("PolicyDocument"), stack))
            for arn in props.get("ManagedPolicyArns") or []:
                target = resolver.target(stack, arn)
                if target is None or target.type != "AWS::IAM::ManagedPolicy":
                    unread.setdefault(ref.key, []).append(resolver.text(stack, arn))
                elif not any(d[0].endswith(f"`{target.logical_id}` in {target.stack.name}") for d in documents):
                    documents.append((f"ManagedPolicy `{target.logical_id}` in {target.stack.name}",
                                      target.properties.get("PolicyDocument"), target.stack))
            grants = tuple((grant, policy_stack) for label, document, policy_stack in documents
                           for grant in _grants(resolver, policy_stack, label, statements(document)))
            roles.append(Role(
                ref=ref, label=describe_resource(resolver, ref),
                description=resolver.text(stack, props.get("Description", "")),
                trusts=tuple(_trust(resolver, stack, s) for s in statements(props.get("AssumeRolePolicyDocument"))
                             if s.effect == "Allow"),
                grants=grants, unread_policies=tuple(unread.get(ref.key, ())),
            ))
    return roles


def _role_by_name(resolver: Resolver, stack: Any, value: Any) -> ResourceRef | None:
    name = resolver.text(stack, value)
    for other in resolver.assembly.stacks:
        for logical_id, resource in other.resources_of("AWS::IAM::Role"):
            role_name = (resource.get("Properties") or {}).get("RoleName")
            if role_name is not None and resolver.text(other, role_name) == name:
                return ResourceRef(stack=other, logical_id=logical_id)
    return None


def _grants(resolver: Resolver, stack: Any, label: str, found: list[Statement]) -> list[Grant]:
    grants = []
    for statement in found:
        actions = statement.reviewed_actions()
        if statement.effect != "Allow" or not actions:
            continue
        grants.append(Grant(actions=actions, resources=statement.resources, policy=label,
                            conditions=tuple(condition_lines(resolver, stack, statement.conditions))))
    return grants


def _trust(resolver: Resolver, stack: Any, statement: Statement) -> Trust:
    provider = None
    principals = []
    for kind, value in principal_entries(statement.principal):
        if kind == "Federated":
            provider = _oidc_host(resolver, stack, value)
            principals.append(f"OIDC provider `{provider}`" if provider else f"federated `{resolver.text(stack, value)}`")
        elif kind == "Service":
            principals.append(f"service `{resolver.text(stack, value)}`")
        else:
            principals.append(describe_principal(resolver, stack, kind, value))
    action = ", ".join(statement.actions) or "(NotAction)"
    return Trust(
        principals=tuple(principals), action=action,
        conditions=tuple(condition_lines(resolver, stack, statement.conditions)),
        oidc_provider=provider,
        subjects=tuple(condition_values(resolver, stack, statement.conditions, ":sub")),
        audiences=tuple(condition_values(resolver, stack, statement.conditions, ":aud")),
    )


def _oidc_host(resolver: Resolver, stack: Any, value: Any) -> str | None:
    target = resolver.target(stack, value)
    if target is not None:
        url = target.properties.get("Url")  # AWS::IAM::OIDCProvider and CDK's Custom::AWSCDKOpenIdConnectProvider
        if url is not None:
            return resolver.text(target.stack, url).removeprefix("https://")
        return f"<{target.logical_id}>"
    text = resolver.text(stack, value)
    marker = ":oidc-provider/"
    if marker in text:
        return text.split(marker, 1)[1]
    if text.startswith(("https://", "<")) or "." in text:
        return text.removeprefix("https://")
    return None
