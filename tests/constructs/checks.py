"""Shared checks for construct tests: synth, cdk-nag (AwsSolutions, v3), cfn-lint, key-policy reading."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")

import pytest  # noqa: E402
from aws_cdk import App, Environment, Stack  # noqa: E402
from aws_cdk.cx_api import CloudAssembly  # noqa: E402
from cdk_nag import AwsSolutionsChecks  # noqa: E402
from cfnlint.api import ManualArgs, lint  # noqa: E402

ENV_A = Environment(account="111111111111", region="us-east-1")
ENV_B = Environment(account="222222222222", region="us-east-1")


def new_app() -> App:
    return App(analytics_reporting=False)


def new_stack(app: App, id: str = "Stack", env: Environment | None = ENV_A) -> Stack:
    return Stack(app, id, env=env)


def nag_findings(app: App) -> list[str]:
    """Unacknowledged AwsSolutions findings for the whole app (acknowledgements honoured)."""
    report = AwsSolutionsChecks().validate_scope(app)
    return [
        f"{violation.rule_name} at {resource.construct_path}"
        for violation in report.violations
        for resource in violation.violating_resources
    ]


def lint_errors(template: dict[str, Any]) -> list[str]:
    """cfn-lint errors (E rules) for one template."""
    matches = lint(json.dumps(template), config=ManualArgs(regions=["us-east-1"]))
    return [f"{m.rule.id}: {m.message}" for m in matches if m.rule.id.startswith("E")]


def assert_clean(app: App, assembly: CloudAssembly) -> None:
    """No unacknowledged cdk-nag finding in the app and no cfn-lint error in any template."""
    assert nag_findings(app) == []
    for stack in assembly.stacks:
        assert lint_errors(stack.template) == [], stack.stack_name


def synth_error(app: App) -> str:
    """Synthesize ``app`` expecting the synth-time validations to fail; return the message."""
    with pytest.raises(Exception) as caught:
        app.synth()
    return str(caught.value)


def resources(template: dict[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == type_}


def statements(policy: dict[str, Any], predicate: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
    return [s for s in policy["Statement"] if predicate(s)]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def grants_sign(statement: dict[str, Any]) -> bool:
    return statement["Effect"] == "Allow" and "kms:Sign" in as_list(statement["Action"])


def denies_sign(statement: dict[str, Any]) -> bool:
    return statement["Effect"] == "Deny" and "kms:Sign" in as_list(statement["Action"])


def principal_refs(statement: dict[str, Any]) -> list[Any]:
    return as_list(statement["Principal"]["AWS"])
