"""Whole-app lookups shared by the synth-time validations (singletons, account separation)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import jsii
from aws_cdk import IStableAnyProducer, Lazy, Stack, Token
from constructs import IConstruct, IValidation

T = TypeVar("T")


def find_in_app(scope: IConstruct, kind: type[T] | tuple[type, ...]) -> list[T]:
    """Every construct of ``kind`` (a type or a tuple of types) in the app that holds ``scope``, in tree order."""
    return [c for c in scope.node.root.node.find_all() if isinstance(c, kind)]


def same_value(a: str, b: str) -> bool | None:
    """True or False when both are known; None when a token makes it undecidable.

    (``Token.compare_strings`` returns jsii objects that do not compare equal across calls, so the
    comparison is done here.)
    """
    a_token, b_token = Token.is_unresolved(a), Token.is_unresolved(b)
    if not a_token and not b_token:
        return a == b
    if a_token and b_token and a == b:
        # Two environment-agnostic stacks ({"Ref": "AWS::AccountId"}) may deploy anywhere: a
        # singleton check must assume the worst, so identical tokens count as the same place.
        return True
    return None


def same_environment(a: IConstruct, b: IConstruct) -> bool | None:
    """Whether two constructs deploy to the same account and region (None: cannot tell)."""
    sa, sb = Stack.of(a), Stack.of(b)
    account, region = same_value(sa.account, sb.account), same_value(sa.region, sb.region)
    if account is False or region is False:
        return False
    if account and region:
        return True
    return None


def describe_environment(scope: IConstruct) -> str:
    """``account 111111111111, region us-east-1`` or ``an environment-agnostic stack``."""
    stack = Stack.of(scope)
    if Token.is_unresolved(stack.account) or Token.is_unresolved(stack.region):
        return "an environment-agnostic stack"
    return f"account {stack.account}, region {stack.region}"


@jsii.implements(IValidation)
class _Validation:
    """Adapts a function to ``constructs.IValidation``."""

    def __init__(self, check: Callable[[], list[str]]) -> None:
        self._check = check

    def validate(self) -> list[str]:
        return list(self._check())


def add_validation(scope: IConstruct, check: Callable[[], list[str]]) -> None:
    """Run ``check`` when the app synthesizes; each string it returns is a synth error."""
    scope.node.add_validation(_Validation(check))


@jsii.implements(IStableAnyProducer)
class _Producer:
    """Adapts a function to ``IStableAnyProducer`` for ``Lazy.any``."""

    def __init__(self, produce: Callable[[], Any]) -> None:
        self._produce = produce

    def produce(self) -> Any:
        return self._produce()


def lazy(produce: Callable[[], Any]) -> Any:
    """A value computed at synth, after every ``add_*``/``grant_*`` call has been made."""
    return Lazy.any(_Producer(produce))
