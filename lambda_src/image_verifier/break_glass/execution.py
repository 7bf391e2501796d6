"""Read a break-glass request's state from its Step Functions execution (the one source of truth).

The approval step is a Lambda task with ``.waitForTaskToken``: its ``TaskScheduled`` event holds
the task token and the state being decided; each decision is the ``TaskSucceeded`` output the
function URL handler sent. Nothing else stores a request, so what the history says is what counts.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..errors import AwsUnavailableError
from .approval import ApprovalError

HISTORY_PAGE = 50  # events read newest-first; the waiting task is always among the last few


@dataclass(frozen=True, kw_only=True)
class PendingTask:
    task_token: str
    state: dict[str, Any]


def execution_arn(state_machine_arn: str, request_id: str) -> str:
    """``arn:...:states:<region>:<account>:execution:<state machine name>:<request id>``."""
    prefix, sep, name = state_machine_arn.rpartition(":stateMachine:")
    if not sep:
        raise ValueError(f"not a state machine ARN: {state_machine_arn!r}")
    return f"{prefix}:execution:{name}:{request_id}"


def call_aws(client: Any, operation: str, *, refusals: Mapping[str, str] | None = None, **params: Any) -> Any:
    """Call ``client.<operation>``: an error code in ``refusals`` is an ApprovalError with that message
    (the caller's mistake, or the request's state), any other AWS error is AwsUnavailableError."""
    try:
        return getattr(client, operation)(**params)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if refusals and code in refusals:
            raise ApprovalError(refusals[code]) from exc
        raise AwsUnavailableError(f"{operation} failed: {code}: {exc}") from exc
    except BotoCoreError as exc:
        raise AwsUnavailableError(f"{operation} failed: {exc}") from exc


def _call(states: Any, operation: str, **params: Any) -> Any:
    missing = f"no break-glass request {params.get('executionArn')}; check the request id"
    return call_aws(states, operation, refusals={"ExecutionDoesNotExist": missing}, **params)


def _newest_events(states: Any, arn: str) -> list[dict[str, Any]]:
    return _call(states, "get_execution_history", executionArn=arn, reverseOrder=True,
                 maxResults=HISTORY_PAGE, includeExecutionData=True)["events"]


def pending_task(states: Any, arn: str) -> PendingTask:
    """The approval task the execution waits on now; an ApprovalError when it waits on none."""
    description = _call(states, "describe_execution", executionArn=arn)
    if description["status"] != "RUNNING":
        raise ApprovalError(f"break-glass request {description.get('name')} is {description['status'].lower()}, "
                            "not waiting for approvals; make a new request if the image still has to be signed")
    for event in _newest_events(states, arn):
        if event["type"] == "TaskScheduled":
            details = event["taskScheduledEventDetails"]
            payload = json.loads(details["parameters"]).get("Payload", {})
            if "taskToken" in payload and "state" in payload:
                return PendingTask(task_token=payload["taskToken"], state=payload["state"])
        if event["type"] in ("TaskSucceeded", "TaskFailed", "TaskTimedOut"):
            break  # the newest task has ended: the execution is between steps (or signing)
    raise ApprovalError(f"break-glass request {description.get('name')} is not waiting for approvals now "
                        "(it is being signed, or between steps); run status, then try again")


def last_decision(states: Any, arn: str, state_machine_arn: str) -> dict[str, Any]:
    """The state of the newest finished approval task of a RUNNING execution of ``state_machine_arn``."""
    description = _call(states, "describe_execution", executionArn=arn)
    if description.get("stateMachineArn") != state_machine_arn or description["status"] != "RUNNING":
        raise ApprovalError(f"execution {arn} is not a running break-glass request of {state_machine_arn}")
    for event in _newest_events(states, arn):
        if event["type"] == "TaskSucceeded":
            return json.loads(event["taskSucceededEventDetails"]["output"])["state"]
    raise ApprovalError(f"execution {arn} has no approval in its history")
