"""X-Ray tracing of the admission function: off by default, one switch on the controller.

``tracing=True`` sets the function's tracing mode to ``Active`` (Lambda records a segment per
invocation, with its initialization and overhead) and ``POWERTOOLS_TRACE_DISABLED=false``; off,
the mode is left unset (PassThrough) and ``POWERTOOLS_TRACE_DISABLED=true``. The runtime does not
create a Powertools ``Tracer``: it needs ``aws-xray-sdk``, which the function's bundle does not
ship (docs/constructs/operations.md).
"""

from __future__ import annotations

from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_

from .._grants import acknowledge_wildcard_resource

TRACE_DISABLED_ENV = "POWERTOOLS_TRACE_DISABLED"
# What aws-cdk-lib grants a function with Tracing.ACTIVE; X-Ray has no resource-level permissions.
XRAY_ACTIONS = ("xray:PutTraceSegments", "xray:PutTelemetryRecords")


def tracing_mode(enabled: bool) -> lambda_.Tracing | None:
    return lambda_.Tracing.ACTIVE if enabled else None


def tracing_environment(enabled: bool) -> dict[str, str]:
    return {TRACE_DISABLED_ENV: "false" if enabled else "true"}


def acknowledge_tracing(role: iam.IRole, enabled: bool) -> None:
    """cdk-nag IAM5 on ``Resource::*`` for the X-Ray actions only (see ``_nag``), when tracing is on."""
    if enabled:
        acknowledge_wildcard_resource(role, "X-Ray's PutTraceSegments and PutTelemetryRecords have no resource-level "
                                            "permissions (service authorization reference).", actions=XRAY_ACTIONS)
