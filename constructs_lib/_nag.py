"""cdk-nag v3 acknowledgements for scoped wildcards (``repository/team/*``, ``service-revision/<cluster>/*``).

cdk-nag v3 needs one acknowledgement per finding, named after the resource as cdk-nag renders it
(``Resource::arn:<AWS::Partition>:ecs:...:service-revision/<ClusterEB0386A7>/*``). Tokens only
have logical ids once the app is prepared, so the acknowledgement is rendered in a node
validation, which runs after preparation and before the templates (and cdk-nag) are written.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from aws_cdk import Acknowledgment, Stack, Validations
from constructs import IConstruct

from ._tree import add_validation

IAM5 = "AwsSolutions-IAM5"


def render(value: Any) -> str:
    """A resolved CloudFormation value as cdk-nag writes it in a finding id."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        (kind, body), = value.items()
        if kind == "Ref":
            return f"<{body}>"
        if kind == "Fn::GetAtt":
            return f"<{'.'.join(body) if isinstance(body, list) else body}>"
        if kind == "Fn::Join":
            delimiter, parts = body
            return delimiter.join(render(p) for p in parts)
    return json.dumps(value, sort_keys=True)


def acknowledge_wildcards(construct: IConstruct, resources: Sequence[str], reason: str) -> None:
    """Acknowledge IAM5 for each resource of ``construct``'s policy that holds a wildcard.

    Rendered twice: now, so that aspects that copy acknowledgements into the template metadata
    (cdk-nag's ``write_suppressions_to_cloud_formation``) see them, and again once references
    across stacks are resolved, where the rendering can differ.
    """

    def acknowledge() -> list[str]:
        stack = Stack.of(construct)
        for resource in resources:
            text = render(stack.resolve(resource))
            if "*" in text and text != "*":
                Validations.of(construct).acknowledge(Acknowledgment(id=f"{IAM5}[Resource::{text}]", reason=reason))
        return []

    acknowledge()
    add_validation(construct, acknowledge)
