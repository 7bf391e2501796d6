"""cdk-nag v3 acknowledgements of IAM5 (wildcard) findings, scoped to the statements they cover.

cdk-nag v3 reports one IAM5 finding per wildcard resource (``Resource::*``,
``Resource::arn:<AWS::Partition>:ecs:...:service-revision/<ClusterEB0386A7>/*``) and per wildcard
action (``Action::s3:*``); ``Validations.of(x).acknowledge(id="AwsSolutions-IAM5[Resource::...]")``
is v3's ``appliesTo``. The finding names the resource but not the action, so an acknowledgement of
``Resource::*`` made for ``ecr:GetAuthorizationToken`` would also cover any statement added later
that grants something else on ``*``. Here an acknowledgement is a claim about statements: it
records the actions it was made for (given, or read from the statements the construct holds at the
call), and each finding is acknowledged only while every Allow statement under the construct that
produces it grants only those actions. A new action on an acknowledged resource, or a new wildcard,
is then reported by cdk-nag. Action wildcards are never acknowledged here.

The check runs twice: in an aspect (so that cdk-nag's ``write_suppressions_to_cloud_formation``
aspect, which runs later, copies the acknowledgement into the template metadata) and in a node
validation, after references across stacks are resolved (the rendering of a finding can differ)
and before cdk-nag runs. Acknowledgements cannot be withdrawn, so a statement that changes between
the two is a synth error rather than a silent cover.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import jsii
from aws_cdk import Acknowledgment, AspectPriority, Aspects, IAspect, Stack, Validations
from aws_cdk import aws_iam as iam
from constructs import IConstruct

from ._tree import add_validation

IAM5 = "AwsSolutions-IAM5"


def render(value: Any) -> str:
    """A resolved CloudFormation value as cdk-nag names it in a finding (its ``flattenCfnReference``)."""
    if isinstance(value, str):
        return value.replace("${", "<").replace("}", ">")
    if isinstance(value, dict):
        if "Fn::Join" in value:
            delimiter, parts = value["Fn::Join"]
            return delimiter.join(render(p) for p in parts)
        if "Fn::Sub" in value:
            return render(value["Fn::Sub"])
        if "Fn::GetAtt" in value:
            body = value["Fn::GetAtt"]
            resource, attribute = body if isinstance(body, list) else str(body).split(".", 1)
            return f"<{render(resource)}.{render(attribute)}>"
        if "Fn::ImportValue" in value:
            return render(value["Fn::ImportValue"])
        if "Ref" in value:
            return f"<{render(value['Ref'])}>"
    return json.dumps(value, separators=(",", ":"))


@dataclass(frozen=True, kw_only=True)
class _Statement:
    """An Allow statement as cdk-nag reads it: its actions (None for NotAction) and resources."""

    actions: frozenset[str] | None
    resources: tuple[Any, ...]


@dataclass(frozen=True, kw_only=True)
class _Cover:
    resource: str  # as passed (may hold tokens); rendered again at each check
    actions: frozenset[str]
    reason: str


@dataclass(kw_only=True)
class _Ledger:
    """Every acknowledgement made on one construct, and what has been acknowledged so far."""

    covers: list[_Cover] = field(default_factory=list)
    acknowledged: set[str] = field(default_factory=set)


# One ledger per construct path, per app; weak so that finished apps (tests build many) are freed.
_LEDGERS: weakref.WeakKeyDictionary[Any, dict[str, _Ledger]] = weakref.WeakKeyDictionary()


def acknowledge_wildcards(
    construct: IConstruct, resources: Sequence[str], reason: str, *, actions: Sequence[str] | None = None
) -> None:
    """Acknowledge IAM5 ``Resource::`` findings of ``construct`` for ``resources`` and these actions only.

    :param actions: the actions the acknowledgement covers on every one of ``resources``.
        :default: - for each resource, the actions of the Allow statements under ``construct`` that
        name it now (call this after adding the statements it is meant for)
    """
    stack = Stack.of(construct)
    statements = _allow_statements(construct) if actions is None else []
    ledger = _ledger(construct)
    for resource in resources:
        if actions is not None:
            covered = frozenset(actions)
        else:
            resolved = stack.resolve(resource)
            covered = frozenset(
                a for s in statements if s.actions is not None and resolved in s.resources for a in s.actions
            )
        ledger.covers.append(_Cover(resource=resource, actions=covered, reason=reason))


def _ledger(construct: IConstruct) -> _Ledger:
    ledgers = _LEDGERS.setdefault(construct.node.root, {})
    ledger = ledgers.get(construct.node.path)
    if ledger is None:
        ledger = ledgers[construct.node.path] = _Ledger()
        Aspects.of(construct).add(_AcknowledgeAspect(construct, ledger), priority=AspectPriority.MUTATING)
        add_validation(construct, lambda: _acknowledge(construct, ledger, final=True))
    return ledger


@jsii.implements(IAspect)
class _AcknowledgeAspect:
    def __init__(self, construct: IConstruct, ledger: _Ledger) -> None:
        self._path = construct.node.path
        self._construct = construct
        self._ledger = ledger

    def visit(self, node: IConstruct) -> None:
        if node.node.path == self._path:
            _acknowledge(self._construct, self._ledger, final=False)


def _acknowledge(construct: IConstruct, ledger: _Ledger, *, final: bool) -> list[str]:
    stack = Stack.of(construct)
    allowed: dict[str, set[str]] = {}
    reasons: dict[str, list[str]] = {}
    for cover in ledger.covers:
        finding = render(stack.resolve(cover.resource))
        if "*" not in finding:
            continue
        allowed.setdefault(finding, set()).update(cover.actions)
        if cover.reason not in reasons.setdefault(finding, []):
            reasons[finding].append(cover.reason)
    granted: dict[str, set[str] | None] = {}
    for statement in _allow_statements(construct):
        for resource in statement.resources:
            finding = render(resource)
            if finding not in allowed:
                continue
            if statement.actions is None or granted.get(finding, set()) is None:
                granted[finding] = None  # NotAction: what it grants cannot be compared
            else:
                granted.setdefault(finding, set()).update(statement.actions)
    errors = []
    for finding, actions in granted.items():
        rule = f"{IAM5}[Resource::{finding}]"
        if actions is not None and actions <= allowed[finding]:
            if rule not in ledger.acknowledged:
                Validations.of(construct).acknowledge(Acknowledgment(id=rule, reason=" ".join(reasons[finding])))
                ledger.acknowledged.add(rule)
        elif final and rule in ledger.acknowledged:
            extra = "NotAction" if actions is None else ", ".join(sorted(actions - allowed[finding]))
            errors.append(
                f"{construct.node.path}: the cdk-nag acknowledgement of {rule} covers only "
                f"{', '.join(sorted(allowed[finding]))}, but a statement granting {extra} on that resource was "
                "added after aspects ran; grant it before synthesis, or on another resource"
            )
    return errors


def _allow_statements(construct: IConstruct) -> list[_Statement]:
    """Allow statements of every IAM policy under ``construct`` (what its acknowledgements reach)."""
    stack = Stack.of(construct)
    documents: list[Any] = []
    for node in construct.node.find_all():
        if isinstance(node, (iam.CfnPolicy, iam.CfnManagedPolicy)):
            documents.append(stack.resolve(node.policy_document))
        elif isinstance(node, (iam.CfnRole, iam.CfnUser, iam.CfnGroup)):
            for policy in stack.resolve(node.policies) or []:
                policy = stack.resolve(policy)
                documents.append(stack.resolve(policy.get("policyDocument", policy.get("PolicyDocument"))))
    return [s for document in documents for s in _parse(document)]


def _parse(document: Any) -> Iterable[_Statement]:
    statements = document.get("Statement", []) if isinstance(document, dict) else []
    for statement in statements if isinstance(statements, list) else [statements]:
        if not isinstance(statement, dict) or statement.get("Effect") != "Allow":
            continue
        actions = statement.get("Action")
        resources = statement.get("Resource", [])
        yield _Statement(
            actions=None if actions is None else frozenset(actions if isinstance(actions, list) else [actions]),
            resources=tuple(resources if isinstance(resources, list) else [resources]),
        )
