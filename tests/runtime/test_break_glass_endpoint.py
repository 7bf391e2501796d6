"""The break-glass function URL handler: identities from the IAM request context, the task token
completed through Step Functions (botocore Stubber, documented shapes), one audit record each."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber
from image_verifier.break_glass.approval import ApprovalState, BreakGlassRequest, Caller
from image_verifier.break_glass.url_handler import (
    REJECTED_ERROR,
    ApprovalEndpoint,
    EndpointSettings,
)

ACCOUNT = "222222222222"
STATE_MACHINE = f"arn:aws:states:us-east-1:{ACCOUNT}:stateMachine:BreakGlassSigning"
TOPIC = f"arn:aws:sns:us-east-1:{ACCOUNT}:break-glass"
REQUESTER_ROLE = f"arn:aws:iam::{ACCOUNT}:role/BreakGlassRequester"
APPROVER_ROLE = f"arn:aws:iam::{ACCOUNT}:role/BreakGlassApprover"
IMAGE = "111111111111.dkr.ecr.us-east-1.amazonaws.com/payments/api@sha256:" + "cd" * 32
NOW = 1_800_000_000
EXECUTION = f"arn:aws:states:us-east-1:{ACCOUNT}:execution:BreakGlassSigning:bg-1"


def _arn(role: str, person: str) -> str:
    return f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{person}"


def _url_event(caller: str | None, body: dict[str, Any], method: str = "POST") -> dict[str, Any]:
    """The function URL payload (version 2.0) as Lambda delivers it under AWS_IAM auth."""
    context: dict[str, Any] = {"accountId": ACCOUNT, "apiId": "abc", "domainName": "abc.lambda-url.us-east-1.on.aws",
                               "http": {"method": method, "path": "/", "protocol": "HTTP/1.1",
                                        "sourceIp": "192.0.2.1", "userAgent": "image-verifier"},
                               "requestId": "r", "routeKey": "$default", "stage": "$default"}
    if caller:
        context["authorizer"] = {"iam": {"accessKey": "ASIAEXAMPLE", "accountId": ACCOUNT, "callerId": "AROA:x",
                                         "userArn": caller, "userId": "AROAEXAMPLE:x"}}
    return {"version": "2.0", "routeKey": "$default", "rawPath": "/", "rawQueryString": "", "headers": {},
            "requestContext": context, "body": json.dumps(body), "isBase64Encoded": False}


@pytest.fixture
def clients(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    states, sns = boto3.client("stepfunctions", region_name="us-east-1"), boto3.client("sns", region_name="us-east-1")
    with Stubber(states) as states_stub, Stubber(sns) as sns_stub:
        yield states, states_stub, sns, sns_stub
        states_stub.assert_no_pending_responses()


def _endpoint(states, sns, records, now: int = NOW) -> ApprovalEndpoint:
    settings = EndpointSettings(state_machine_arn=STATE_MACHINE, approvers=(APPROVER_ROLE,),
                                requesters=(REQUESTER_ROLE,), timeout_seconds=3600, required_approvals=2,
                                topic_arn=TOPIC)
    return ApprovalEndpoint(settings=settings, states=states, sns=sns, write=records.append, clock=lambda: now,
                            new_request_id=lambda: "bg-1")


def _pending(states_stub: Stubber, state: ApprovalState) -> None:
    started = datetime.now(UTC)
    states_stub.add_response("describe_execution", {"executionArn": EXECUTION, "stateMachineArn": STATE_MACHINE,
                                                    "name": "bg-1", "status": "RUNNING", "startDate": started},
                             {"executionArn": EXECUTION})
    parameters = {"FunctionName": "approval", "Payload": {"kind": "awaitApproval", "taskToken": "token-1",
                                                          "state": state.to_json(), "executionArn": EXECUTION}}
    states_stub.add_response("get_execution_history", {"events": [
        {"timestamp": started, "type": "TaskSubmitted", "id": 5, "previousEventId": 4,
         "taskSubmittedEventDetails": {"resourceType": "lambda", "resource": "invoke.waitForTaskToken"}},
        {"timestamp": started, "type": "TaskScheduled", "id": 3, "previousEventId": 2,
         "taskScheduledEventDetails": {"resourceType": "lambda", "resource": "invoke.waitForTaskToken",
                                       "region": "us-east-1", "parameters": json.dumps(parameters)}},
    ]}, {"executionArn": EXECUTION, "reverseOrder": True, "maxResults": 50, "includeExecutionData": True})


def _state(*approvers: str) -> ApprovalState:
    request = BreakGlassRequest.create(request_id="bg-1", image=IMAGE, reason="hotfix", ticket="INC-1",
                                       requester=Caller.from_arn(_arn("BreakGlassRequester", "alice")), now=NOW - 60,
                                       timeout_seconds=3600)
    state = ApprovalState.new(request)
    for person in approvers:
        state = state.approve(Caller.from_arn(_arn("BreakGlassApprover", person)), now=NOW - 30,
                              approvers=(APPROVER_ROLE,))
    return state


def test_request_starts_an_execution_named_by_the_request_with_the_authenticated_requester(clients):
    states, states_stub, sns, _ = clients
    records: list[dict[str, Any]] = []
    states_stub.add_response("start_execution", {"executionArn": EXECUTION, "startDate": datetime.now(UTC)},
                             {"stateMachineArn": STATE_MACHINE, "name": "bg-1", "input": ANY})
    # When alice asks, and the body claims to be someone else
    body = {"action": "request", "image": IMAGE, "reason": "hotfix", "ticket": "INC-1", "requester": "mallory"}
    response = _endpoint(states, sns, records).handle(_url_event(_arn("BreakGlassRequester", "alice"), body))
    # Then the request is alice's, and it expires after the time limit
    assert response["statusCode"] == 201, response
    assert json.loads(response["body"])["expiresAt"] == NOW + 3600
    assert records[0]["event"] == "requested"
    assert records[0]["requester"] == _arn("BreakGlassRequester", "alice")


def test_approval_completes_the_task_token_with_the_new_state(clients):
    states, states_stub, sns, _ = clients
    records: list[dict[str, Any]] = []
    _pending(states_stub, _state("bob"))
    states_stub.add_response("send_task_success", {}, {"taskToken": "token-1", "output": ANY})
    response = _endpoint(states, sns, records).handle(
        _url_event(_arn("BreakGlassApprover", "carol"), {"action": "approve", "requestId": "bg-1"}))
    assert response["statusCode"] == 200, response
    assert json.loads(response["body"])["status"] == "approved"
    assert [a["caller"]["person"] for a in records[0]["approvals"]] == ["bob", "carol"]


def test_rejection_fails_the_task_with_the_rejected_error(clients):
    states, states_stub, sns, _ = clients
    records: list[dict[str, Any]] = []
    _pending(states_stub, _state("bob"))
    states_stub.add_response("send_task_failure", {}, {"taskToken": "token-1", "error": REJECTED_ERROR, "cause": ANY})
    response = _endpoint(states, sns, records).handle(
        _url_event(_arn("BreakGlassApprover", "carol"), {"action": "reject", "requestId": "bg-1", "comment": "no"}))
    assert json.loads(response["body"])["status"] == "rejected"
    assert records[0]["event"] == "rejected" and records[0]["rejection"]["comment"] == "no"


def test_rejects_approval_with_409_when_the_requester_approves(clients):
    states, states_stub, sns, _ = clients
    records: list[dict[str, Any]] = []
    _pending(states_stub, _state())
    response = _endpoint(states, sns, records).handle(
        _url_event(_arn("BreakGlassApprover", "alice"), {"action": "approve", "requestId": "bg-1"}))
    assert response["statusCode"] == 409
    assert "cannot approve it" in json.loads(response["body"])["error"]
    assert records[0]["event"] == "refused"


def test_rejects_vote_with_409_when_another_vote_used_the_token_first(clients):
    states, states_stub, sns, _ = clients
    _pending(states_stub, _state("bob"))
    states_stub.add_client_error("send_task_success", "TaskTimedOut", "Task Timed Out", 400,
                                 expected_params={"taskToken": "token-1", "output": ANY})
    response = _endpoint(states, sns, []).handle(
        _url_event(_arn("BreakGlassApprover", "dave"), {"action": "approve", "requestId": "bg-1"}))
    assert response["statusCode"] == 409
    assert "changed while you voted" in json.loads(response["body"])["error"]


def test_rejects_request_with_403_when_no_iam_identity_is_in_the_request_context(clients):
    states, _, sns, _ = clients
    event = _url_event(None, {"action": "approve", "requestId": "bg-1", "caller": _arn("BreakGlassApprover", "bob")})
    response = _endpoint(states, sns, []).handle(event)
    assert response["statusCode"] == 403
    assert "SigV4" in json.loads(response["body"])["error"]


def test_rejects_request_with_409_when_caller_holds_no_requester_role(clients):
    states, _, sns, _ = clients
    body = {"action": "request", "image": IMAGE, "reason": "r", "ticket": "t"}
    response = _endpoint(states, sns, []).handle(_url_event(_arn("BreakGlassApprover", "bob"), body))
    assert response["statusCode"] == 409
    assert "may not request" in json.loads(response["body"])["error"]


def test_approval_step_notifies_approvers_without_the_task_token(clients):
    states, _, sns, sns_stub = clients
    sns_stub.add_response("publish", {"MessageId": "m-1"}, {"TopicArn": TOPIC, "Message": ANY, "Subject": ANY})
    event = {"kind": "awaitApproval", "taskToken": "secret-token", "state": _state("bob").to_json(),
             "executionArn": EXECUTION}
    captured: list[dict[str, Any]] = []
    sns.meta.events.register("before-parameter-build.sns.Publish", lambda params, **_: captured.append(params))
    assert _endpoint(states, sns, []).handle(event)["notified"] is True
    message = captured[0]["Message"]
    assert "waits for 1 more approval" in message and IMAGE in message
    assert "secret-token" not in message


def test_settings_are_read_from_the_environment_the_construct_sets():
    env = {"BREAK_GLASS_STATE_MACHINE_ARN": STATE_MACHINE, "BREAK_GLASS_APPROVER_ARNS": json.dumps([APPROVER_ROLE]),
           "BREAK_GLASS_REQUESTER_ARNS": json.dumps([REQUESTER_ROLE]), "BREAK_GLASS_APPROVAL_TIMEOUT_SECONDS": "1800",
           "BREAK_GLASS_REQUIRED_APPROVALS": "3", "BREAK_GLASS_TOPIC_ARN": TOPIC}
    settings = EndpointSettings.from_env(env)
    assert (settings.approvers, settings.requesters) == ((APPROVER_ROLE,), (REQUESTER_ROLE,))
    assert (settings.timeout_seconds, settings.required_approvals) == (1800, 3)


def test_rejects_endpoint_settings_when_the_state_machine_is_missing():
    with pytest.raises(ValueError, match="needs BREAK_GLASS_STATE_MACHINE_ARN"):
        EndpointSettings.from_env({"BREAK_GLASS_APPROVER_ARNS": "[]"})


def test_rejects_signer_settings_when_approvers_are_not_a_json_list():
    from image_verifier.break_glass.signer import SignerSettings

    env = {"BREAK_GLASS_KEY_ARN": "arn:aws:kms:us-east-1:222222222222:key/k", "BREAK_GLASS_APPROVER_ARNS": '"x"',
           "BREAK_GLASS_STATE_MACHINE_ARN": STATE_MACHINE}
    with pytest.raises(ValueError, match="must be a JSON list of role or user ARNs"):
        SignerSettings.from_env(env)
