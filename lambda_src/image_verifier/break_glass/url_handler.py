"""The break-glass approval function: a function URL (``AWS_IAM`` auth) and the state machine's approval step.

Handler setting: ``image_verifier.break_glass.url_handler.lambda_handler``. Two kinds of event:

- an HTTP request through the function URL: ``POST {"action": "request", "image", "reason", "ticket"}``
  or ``{"action": "approve"|"reject", "requestId", "comment"}``. The caller is whoever AWS
  authenticated (``requestContext.authorizer.iam.userArn``); a name in the body counts for nothing.
  A request starts an execution; an approval or rejection is judged by ``approval`` and completes
  the execution's task token (SendTaskSuccess / SendTaskFailure ``BreakGlass.Rejected``).
- ``{"kind": "awaitApproval", "taskToken", "state", "executionArn"}`` from the state machine's
  approval step: tell the approvers (SNS) that a request waits for them. The token is not sent.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..errors import AwsUnavailableError
from .approval import (
    REQUIRED_APPROVALS,
    ApprovalError,
    ApprovalState,
    BreakGlassRequest,
    Caller,
    Status,
)
from .audit import audit_record, stdout_writer
from .execution import call_aws, execution_arn, pending_task

STATE_MACHINE_ENV = "BREAK_GLASS_STATE_MACHINE_ARN"
APPROVERS_ENV = "BREAK_GLASS_APPROVER_ARNS"
REQUESTERS_ENV = "BREAK_GLASS_REQUESTER_ARNS"
TIMEOUT_ENV = "BREAK_GLASS_APPROVAL_TIMEOUT_SECONDS"
REQUIRED_ENV = "BREAK_GLASS_REQUIRED_APPROVALS"
TOPIC_ENV = "BREAK_GLASS_TOPIC_ARN"
URL_ENV = "BREAK_GLASS_URL"  # shown in notifications; optional
REJECTED_ERROR = "BreakGlass.Rejected"
MAX_BODY_BYTES = 16 * 1024  # a request is a few hundred bytes; refuse anything far larger unread
_STALE_TOKEN_ERRORS = frozenset({"TaskTimedOut", "TaskDoesNotExist", "InvalidToken"})


@dataclass(frozen=True, kw_only=True)
class EndpointSettings:
    state_machine_arn: str
    approvers: tuple[str, ...]
    requesters: tuple[str, ...]
    timeout_seconds: int
    required_approvals: int
    topic_arn: str
    url: str = ""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> EndpointSettings:
        env = os.environ if environ is None else environ
        missing = [n for n in (STATE_MACHINE_ENV, APPROVERS_ENV, REQUESTERS_ENV, TIMEOUT_ENV, TOPIC_ENV) if not env.get(n)]
        if missing:
            raise ValueError(f"the break-glass endpoint needs {', '.join(missing)} (BreakGlassSigning sets them)")
        return cls(state_machine_arn=env[STATE_MACHINE_ENV], approvers=tuple(json.loads(env[APPROVERS_ENV])),
                   requesters=tuple(json.loads(env[REQUESTERS_ENV])), timeout_seconds=int(env[TIMEOUT_ENV]),
                   required_approvals=int(env.get(REQUIRED_ENV) or REQUIRED_APPROVALS), topic_arn=env[TOPIC_ENV],
                   url=env.get(URL_ENV, ""))


class _HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, kw_only=True)
class ApprovalEndpoint:
    settings: EndpointSettings
    states: Any
    sns: Any
    write: Callable[[dict[str, Any]], None]
    clock: Callable[[], float] = time.time
    new_request_id: Callable[[], str] = lambda: (
        datetime.now(UTC).strftime("bg-%Y%m%dT%H%M%SZ-") + secrets.token_hex(4))

    def handle(self, event: Mapping[str, Any]) -> dict[str, Any]:
        if isinstance(event, Mapping) and event.get("kind") == "awaitApproval":
            return self.notify(event)
        return self.http(event)

    # -- the function URL ------------------------------------------------------------------------
    def http(self, event: Mapping[str, Any]) -> dict[str, Any]:
        caller_arn = None
        try:
            caller_arn, body = _caller_and_body(event)
            caller = Caller.from_arn(caller_arn)
            action = body.get("action")
            if action == "request":
                return _response(201, self._request(caller, body))
            if action in ("approve", "reject"):
                return _response(200, self._vote(caller, body, approve=action == "approve"))
            raise _HttpError(400, f"action must be request, approve or reject, got {action!r}")
        except _HttpError as exc:
            return _response(exc.status, {"error": str(exc)})
        except ApprovalError as exc:
            self.write(audit_record("refused", None, caller=caller_arn, error=str(exc)))
            return _response(409, {"error": str(exc)})
        except AwsUnavailableError as exc:
            return _response(503, {"error": str(exc)})

    def _request(self, caller: Caller, body: Mapping[str, Any]) -> dict[str, Any]:
        if not caller.is_one_of(self.settings.requesters):
            raise ApprovalError(f"{caller.arn} may not request break-glass signing: assume a requester role")
        now = int(self.clock())
        request = BreakGlassRequest.create(request_id=self.new_request_id(), image=body.get("image"),
                                           reason=body.get("reason"), ticket=body.get("ticket"), requester=caller,
                                           now=now, timeout_seconds=self.settings.timeout_seconds)
        state = ApprovalState.new(request, required_approvals=self.settings.required_approvals)
        _call(self.states, "start_execution", stateMachineArn=self.settings.state_machine_arn,
              name=request.request_id, input=json.dumps(_output(state, now)))
        self.write(audit_record("requested", state, caller=caller.arn))
        return {"requestId": request.request_id, "status": Status.PENDING.value, "expiresAt": request.expires_at,
                "executionArn": execution_arn(self.settings.state_machine_arn, request.request_id)}

    def _vote(self, caller: Caller, body: Mapping[str, Any], *, approve: bool) -> dict[str, Any]:
        request_id = body.get("requestId")
        if not isinstance(request_id, str) or not request_id:
            raise _HttpError(400, "requestId is required")
        comment = body.get("comment", "")
        arn = execution_arn(self.settings.state_machine_arn, request_id)
        task = pending_task(self.states, arn)
        state, now = ApprovalState.from_json(task.state), int(self.clock())
        if approve:
            state = state.approve(caller, now=now, approvers=self.settings.approvers, comment=comment)
            _complete(self.states, "send_task_success", taskToken=task.task_token,
                      output=json.dumps(_output(state, now)))
        else:
            state = state.reject(caller, now=now, approvers=self.settings.approvers, comment=comment)
            _complete(self.states, "send_task_failure", taskToken=task.task_token, error=REJECTED_ERROR,
                      cause=json.dumps({"rejectedBy": caller.arn, "comment": state.rejection.comment}))
        self.write(audit_record("approved" if approve else "rejected", state, caller=caller.arn))
        return {"requestId": request_id, "status": state.status(now).value,
                "approvals": len(state.approvals), "requiredApprovals": state.required_approvals}

    # -- the state machine's approval step ------------------------------------------------------
    def notify(self, event: Mapping[str, Any]) -> dict[str, Any]:
        state = ApprovalState.from_json(event["state"])
        request, missing = state.request, state.required_approvals - len(state.approvals)
        lines = [
            f"Break-glass signing request {request.request_id} waits for {missing} more approval(s).",
            f"Image:     {request.image}", f"Reason:    {request.reason}", f"Ticket:    {request.ticket}",
            f"Requester: {request.requester.arn}",
            f"Expires:   {datetime.fromtimestamp(request.expires_at, UTC).isoformat()}",
            f"Approved by: {', '.join(v.caller.arn for v in state.approvals) or 'nobody yet'}", "",
            "Review the image and the ticket, then, as an approver role:",
            f"  image-verifier break-glass approve --url {self.settings.url or '<function URL>'} {request.request_id}",
            f"  image-verifier break-glass reject  --url {self.settings.url or '<function URL>'} {request.request_id}",
        ]
        _call(self.sns, "publish", TopicArn=self.settings.topic_arn, Message="\n".join(lines),
              Subject=f"Break-glass request {request.request_id} needs approval"[:100])
        return {"notified": True, "requestId": request.request_id}


def _output(state: ApprovalState, now: int) -> dict[str, Any]:
    """What the approval step hands on: the state machine's Choice reads ``status``, the next wait ``remainingSeconds``."""
    return {"state": state.to_json(), "status": state.status(now).value,
            "remainingSeconds": state.remaining_seconds(now)}


def _caller_and_body(event: Any) -> tuple[str, dict[str, Any]]:
    if not isinstance(event, Mapping):
        raise _HttpError(400, "not a function URL request")
    context = event.get("requestContext") or {}
    caller = ((context.get("authorizer") or {}).get("iam") or {}).get("userArn")
    if not caller:
        # Only an AWS_IAM function URL fills this in: anything else is refused, whatever it says.
        raise _HttpError(403, "no AWS-authenticated caller: call the function URL with SigV4 (AWS_IAM auth)")
    if (context.get("http") or {}).get("method") != "POST":
        raise _HttpError(405, "use POST with a JSON body")
    raw = event.get("body") or ""
    if len(raw) > MAX_BODY_BYTES * 2:
        raise _HttpError(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
    try:
        text = base64.b64decode(raw).decode() if event.get("isBase64Encoded") else raw
        body = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _HttpError(400, f"the body must be a JSON object: {exc}") from exc
    if not isinstance(body, dict):
        raise _HttpError(400, "the body must be a JSON object")
    return caller, body


def _call(client: Any, operation: str, **params: Any) -> Any:
    exists = f"a request named {params.get('name')} exists already; send it again"
    return call_aws(client, operation, refusals={"ExecutionAlreadyExists": exists}, **params)


# Another vote (or the time limit) ended this wait first: nothing was recorded for this one.
_STALE = ("the request changed while you voted (another vote or its expiry came first); run status and vote again "
          "if it is still pending")


def _complete(states: Any, operation: str, **params: Any) -> None:
    call_aws(states, operation, refusals=dict.fromkeys(_STALE_TOKEN_ERRORS, _STALE), **params)


def _response(status: int, body: Mapping[str, Any]) -> dict[str, Any]:
    return {"statusCode": status, "headers": {"content-type": "application/json"}, "body": json.dumps(body)}


_lock = threading.Lock()
_endpoint: ApprovalEndpoint | None = None


def build_endpoint(environ: Mapping[str, str] | None = None, *, aws: Any = None) -> ApprovalEndpoint:
    """The composition root: settings and the Step Functions and SNS clients, once per warm function."""
    from ..composition import AwsClients

    settings = EndpointSettings.from_env(environ)
    aws = aws or AwsClients()
    region = settings.state_machine_arn.split(":")[3]
    return ApprovalEndpoint(settings=settings, states=aws.client("stepfunctions", region),
                            sns=aws.client("sns", settings.topic_arn.split(":")[3]), write=stdout_writer())


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    global _endpoint
    with _lock:
        if _endpoint is None:
            _endpoint = build_endpoint()
        endpoint = _endpoint
    return endpoint.handle(event)
