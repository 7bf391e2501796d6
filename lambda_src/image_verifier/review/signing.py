"""Signing facts: KMS signing keys and who may sign with them, AWS Signer profiles, ECR signing rules.

"Who can sign" with a key is judged from both sides a request must pass: the key policy
(``kms:Sign`` allows, and explicit denies with their conditions) and the IAM policies of roles
(``kms:Sign`` on that key). A key policy that allows the account root delegates to IAM. A deny
whose condition this reader cannot judge is reported as conditional, never as "no".
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from typing import Any

from .assembly import Assembly
from .iam import (
    ECR_PUSH_ACTIONS,
    KMS_SIGN,
    SIGNER_SIGN_ACTIONS,
    condition_lines,
    describe_principals,
    describe_resource,
    excepted_principals,
    principal_entries,
    statements,
)
from .principals import Role
from .values import Resolver, ResourceRef

BREAK_GLASS_WORDS = re.compile(r"break[-_ ]?glass", re.IGNORECASE)


@dataclass(frozen=True, kw_only=True)
class KeyStatement:
    sid: str
    principals: tuple[str, ...]
    conditions: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class Signer:
    """A role that may sign with a key, and how sure the report is."""

    role: Role
    verdict: str  # "yes", "conditional: ...", "no: ..."
    via: str


@dataclass(frozen=True, kw_only=True)
class SigningKey:
    ref: ResourceRef
    label: str
    aliases: tuple[str, ...]
    description: str
    key_spec: str
    break_glass: str | None  # why the report thinks it is a break-glass key
    allows: tuple[KeyStatement, ...]
    denies: tuple[KeyStatement, ...]
    signers: tuple[Signer, ...]


@dataclass(frozen=True, kw_only=True)
class Profile:
    ref: ResourceRef
    label: str
    platform: str
    validity: str
    signers: tuple[tuple[Role, str], ...]  # role, actions


@dataclass(frozen=True, kw_only=True)
class SigningRule:
    config: ResourceRef
    index: int
    filters: tuple[str, ...]  # empty: every repository of the registry
    profile_label: str
    profile: ResourceRef | None


@dataclass(frozen=True, kw_only=True)
class Repository:
    ref: ResourceRef
    name: str
    rules: tuple[SigningRule, ...]
    pushers: tuple[Role, ...]


def read_keys(assembly: Assembly, resolver: Resolver, roles: list[Role]) -> list[SigningKey]:
    aliases: dict[tuple[str, str], list[str]] = {}
    for stack in assembly.stacks:
        for _, alias in stack.resources_of("AWS::KMS::Alias"):
            props = alias.get("Properties") or {}
            target = resolver.target(stack, props.get("TargetKeyId"))
            if target is not None:
                aliases.setdefault(target.key, []).append(resolver.text(stack, props.get("AliasName", "")))
    keys = []
    for stack in assembly.stacks:
        for logical_id, resource in stack.resources_of("AWS::KMS::Key"):
            props = resource.get("Properties") or {}
            found = statements(props.get("KeyPolicy"))
            if props.get("KeyUsage") != "SIGN_VERIFY" and not any(s.names(KMS_SIGN) for s in found):
                continue
            ref = ResourceRef(stack=stack, logical_id=logical_id)
            sign = [s for s in found if s.names(KMS_SIGN)]
            allows = [s for s in sign if s.effect == "Allow"]
            denies = [s for s in sign if s.effect == "Deny"]
            keys.append(SigningKey(
                ref=ref, label=describe_resource(resolver, ref), aliases=tuple(aliases.get(ref.key, ())),
                description=resolver.text(stack, props.get("Description", "")),
                key_spec=resolver.text(stack, props.get("KeySpec", "SYMMETRIC_DEFAULT")),
                break_glass=_break_glass_marker(resolver, ref),
                allows=tuple(_key_statement(resolver, stack, s) for s in allows),
                denies=tuple(_key_statement(resolver, stack, s) for s in denies),
                signers=tuple(_signers(resolver, ref, allows, denies, roles)),
            ))
    return keys


def _key_statement(resolver: Resolver, stack: Any, statement: Any) -> KeyStatement:
    return KeyStatement(sid=statement.sid, principals=tuple(describe_principals(resolver, stack, statement)),
                        conditions=tuple(condition_lines(resolver, stack, statement.conditions)))


def _break_glass_marker(resolver: Resolver, ref: ResourceRef) -> str | None:
    """Break-glass by description, tag or template metadata (the policy's flag is matched later)."""
    description = resolver.text(ref.stack, ref.properties.get("Description", ""))
    if BREAK_GLASS_WORDS.search(description):
        return f"key description: {description}"
    for tag in ref.properties.get("Tags") or []:
        if isinstance(tag, dict) and BREAK_GLASS_WORDS.search(f"{tag.get('Key')}={tag.get('Value')}"):
            return f"tag {resolver.text(ref.stack, tag.get('Key'))}={resolver.text(ref.stack, tag.get('Value'))}"
    for key in ref.resource.get("Metadata") or {}:
        if BREAK_GLASS_WORDS.search(str(key)):
            return f"template metadata {key}"
    return None


def _signers(resolver: Resolver, key: ResourceRef, allows: list[Any], denies: list[Any], roles: list[Role]) -> list[Signer]:
    result = []
    for role in roles:
        role_arn = resolver.arn_of(role.ref)
        direct = root = False
        everyone: list[Any] = []  # Allow statements with Principal "*": no IAM permission needed
        for statement in allows:
            for kind, value in principal_entries(statement.principal):
                target = resolver.target(key.stack, value)
                text = resolver.text(key.stack, value)
                if target is not None and target.key == role.ref.key or (role_arn and text == role_arn):
                    direct = True
                elif kind == "AWS" and text == "*":
                    everyone.append(statement)
                elif kind == "AWS" and role.ref.stack.account and text in (
                        role.ref.stack.account, f"arn:{key.stack.partition}:iam::{role.ref.stack.account}:root"):
                    root = True
        iam = [g for g, policy_stack in role.grants_for(KMS_SIGN) if g.covers(resolver, policy_stack, key)]
        if not (direct or everyone or (root and iam)):
            continue
        verdict = _deny_verdict(resolver, key, role, denies)
        if direct:
            via = "key policy names the role"
        elif everyone:
            via = "key policy allows everyone (`*`)"
            # Conditions on who (org, account, principal tags) are not judged here; algorithm ones do not limit who.
            if verdict == "yes" and any(not k.lower().startswith("kms:") for s in everyone
                                        for block in s.conditions.values() if isinstance(block, dict) for k in block):
                verdict = "conditional: the key policy allows everyone (`*`) under conditions"
        else:
            via = "key policy allows the account; IAM: " + "; ".join(g.policy for g in iam)
        result.append(Signer(role=role, verdict=verdict, via=via))
    return result


def _deny_verdict(resolver: Resolver, key: ResourceRef, role: Role, denies: list[Any]) -> str:
    for statement in denies:
        applies = any(v == "*" or (t := resolver.target(key.stack, v)) is not None and t.key == role.ref.key
                      for _, v in principal_entries(statement.principal))
        if not applies:
            continue
        if not statement.conditions:
            return f"no: denied by {statement.sid}"
        excepted = excepted_principals(resolver, key.stack, statement)
        if excepted is None:
            return f"conditional: {statement.sid} denies unless its condition holds"
        if not any(ref.key == role.ref.key for ref in excepted):
            return f"no: denied by {statement.sid} (the role is not among its exceptions)"
    return "yes"


def read_profiles(assembly: Assembly, resolver: Resolver, roles: list[Role]) -> list[Profile]:
    profiles = []
    for stack in assembly.stacks:
        for logical_id, resource in stack.resources_of("AWS::Signer::SigningProfile"):
            ref = ResourceRef(stack=stack, logical_id=logical_id)
            props = ref.properties
            validity = props.get("SignatureValidityPeriod") or {}
            signers = []
            for role in roles:
                actions = sorted({a for g, s in role.grants if g.covers(resolver, s, ref)
                                  for a in g.actions if a in SIGNER_SIGN_ACTIONS})
                if actions:
                    signers.append((role, ", ".join(actions)))
            profiles.append(Profile(
                ref=ref, label=describe_resource(resolver, ref),
                platform=resolver.text(stack, props.get("PlatformId", "?")),
                validity=f"{resolver.text(stack, validity.get('Value', '?'))} {resolver.text(stack, validity.get('Type', ''))}"
                if validity else "service default", signers=tuple(signers)))
    return profiles


def read_signing_rules(assembly: Assembly, resolver: Resolver) -> list[SigningRule]:
    rules = []
    for stack in assembly.stacks:
        for logical_id, resource in stack.resources_of("AWS::ECR::SigningConfiguration"):
            config = ResourceRef(stack=stack, logical_id=logical_id)
            for index, rule in enumerate(config.properties.get("Rules") or []):
                if not isinstance(rule, dict):
                    continue
                profile = resolver.target(stack, rule.get("SigningProfileArn"))
                filters = tuple(resolver.text(stack, f.get("Filter")) for f in rule.get("RepositoryFilters") or []
                                if isinstance(f, dict))
                rules.append(SigningRule(
                    config=config, index=index + 1, filters=filters, profile=profile,
                    profile_label=describe_resource(resolver, profile) if profile
                    else f"`{resolver.text(stack, rule.get('SigningProfileArn'))}`"))
    return rules


def read_repositories(assembly: Assembly, resolver: Resolver, rules: list[SigningRule],
                      roles: list[Role]) -> list[Repository]:
    repositories = []
    for stack in assembly.stacks:
        for logical_id, resource in stack.resources_of("AWS::ECR::Repository"):
            ref = ResourceRef(stack=stack, logical_id=logical_id)
            name = resolver.text(stack, ref.properties.get("RepositoryName", f"<{logical_id}>"))
            matching = tuple(r for r in rules if _same_registry(r.config, ref) and (
                not r.filters or any(fnmatch.fnmatchcase(name, f) for f in r.filters)))
            pushers = tuple(role for role in roles if any(
                g.covers(resolver, s, ref) for g, s in role.grants if set(g.actions) & set(ECR_PUSH_ACTIONS)))
            repositories.append(Repository(ref=ref, name=name, rules=matching, pushers=pushers))
    return repositories


def _same_registry(config: ResourceRef, repository: ResourceRef) -> bool:
    """One signing configuration per account and region; an unknown environment may be the same one."""
    a, b = config.stack, repository.stack
    return all(x is None or y is None or x == y for x, y in ((a.account, b.account), (a.region, b.region)))
