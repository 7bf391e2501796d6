"""`image-verifier break-glass`: SigV4-signed calls to the function URL, and status from DescribeExecution.

A loopback HTTP server plays the function URL: it checks each request's SigV4 signature against the
caller's secret (as Lambda's AWS_IAM auth does), puts that caller's ARN in the request context, and
hands the event to the real ApprovalEndpoint (Step Functions behind botocore's Stubber).
"""

from __future__ import annotations

import argparse
import io
import json
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.stub import ANY, Stubber
from image_verifier.break_glass.url_handler import ApprovalEndpoint, EndpointSettings
from image_verifier.cli import main
from image_verifier.cli_break_glass import run_break_glass_command

ACCOUNT = "222222222222"
STATE_MACHINE = f"arn:aws:states:us-east-1:{ACCOUNT}:stateMachine:BreakGlassSigning"
IMAGE = "111111111111.dkr.ecr.us-east-1.amazonaws.com/payments/api@sha256:" + "12" * 32
# access key -> (secret, the ARN AWS would authenticate)
IDENTITIES = {
    "ASIAALICE": ("alice-secret", f"arn:aws:sts::{ACCOUNT}:assumed-role/BreakGlassRequester/alice"),
    "ASIABOB": ("bob-secret", f"arn:aws:sts::{ACCOUNT}:assumed-role/BreakGlassApprover/bob"),
}


class _FunctionUrl(BaseHTTPRequestHandler):
    endpoint: ApprovalEndpoint
    seen: list[dict[str, Any]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        caller = _authenticate(self.command, f"http://{self.headers['host']}{self.path}", dict(self.headers), body)
        if caller is None:
            return self._answer(403, {"Message": "The request signature we calculated does not match"})
        event = {"version": "2.0", "rawPath": self.path, "body": body.decode(), "isBase64Encoded": False,
                 "requestContext": {"http": {"method": self.command},
                                    "authorizer": {"iam": {"userArn": caller, "accountId": ACCOUNT}}}}
        self.seen.append(event)
        response = self.endpoint.handle(event)
        self._answer(response["statusCode"], json.loads(response["body"]))

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


def _authenticate(method: str, url: str, headers: dict[str, str], body: bytes) -> str | None:
    """Recompute the SigV4 signature with the caller's secret; the caller's ARN when it matches."""
    found = re.match(r"AWS4-HMAC-SHA256 Credential=(\w+)/\d{8}/us-east-1/lambda/aws4_request, "
                     r"SignedHeaders=([\w;-]+), Signature=(\w+)", headers.get("Authorization", ""))
    if not found or found[1] not in IDENTITIES:
        return None
    secret, arn = IDENTITIES[found[1]]
    signed = {k: v for k, v in headers.items() if k.lower() in found[2].split(";")}
    request = AWSRequest(method=method, url=url, data=body, headers=signed)
    request.context["timestamp"] = headers["X-Amz-Date"]
    auth = SigV4Auth(Credentials(found[1], secret), "lambda", "us-east-1")
    auth._modify_request_before_signing(request)  # the steps add_auth takes, at the request's own time
    signature = auth.signature(auth.string_to_sign(request, auth.canonical_request(request)), request)
    return arn if signature == found[3] else None


@pytest.fixture
def function_url(monkeypatch) -> Iterator[tuple[str, Stubber, list[dict[str, Any]]]]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    states = boto3.client("stepfunctions", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    stubber = Stubber(states)
    settings = EndpointSettings(state_machine_arn=STATE_MACHINE, approvers=(f"arn:aws:iam::{ACCOUNT}:role/BreakGlassApprover",),
                                requesters=(f"arn:aws:iam::{ACCOUNT}:role/BreakGlassRequester",), timeout_seconds=3600,
                                required_approvals=2, topic_arn=f"arn:aws:sns:us-east-1:{ACCOUNT}:t")
    handler = type("Handler", (_FunctionUrl,), {
        "endpoint": ApprovalEndpoint(settings=settings, states=states, sns=None, write=lambda r: None,
                                     new_request_id=lambda: "bg-cli-1"),
        "seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with stubber:
            yield f"http://127.0.0.1:{server.server_address[1]}/", stubber, handler.seen
    finally:
        server.shutdown()
        server.server_close()


def _as(monkeypatch, access_key: str, secret: str | None = None) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret or IDENTITIES[access_key][0])
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)


def _cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_request_is_signed_and_made_as_the_authenticated_caller(function_url, monkeypatch):
    url, stubber, seen = function_url
    stubber.add_response("start_execution", {"executionArn": "arn:aws:states:us-east-1:222222222222:execution:"
                                             "BreakGlassSigning:bg-cli-1", "startDate": datetime.now(UTC)},
                         {"stateMachineArn": STATE_MACHINE, "name": "bg-cli-1", "input": ANY})
    _as(monkeypatch, "ASIAALICE")
    code, out, err = _cli("break-glass", "request", "--url", url, "--region", "us-east-1", "--reason", "CVE fix",
                          "--ticket", "INC-9", "--json", IMAGE)
    assert code == 0, err
    assert json.loads(out)["requestId"] == "bg-cli-1"
    assert seen[0]["requestContext"]["authorizer"]["iam"]["userArn"].endswith("/BreakGlassRequester/alice")


def test_rejects_request_with_exit_1_when_the_signature_is_made_with_a_wrong_secret(function_url, monkeypatch):
    url, _stubber, seen = function_url
    _as(monkeypatch, "ASIABOB", secret="not-bobs-secret")
    code, _out, err = _cli("break-glass", "approve", "--url", url, "--region", "us-east-1", "bg-cli-1")
    assert code == 1
    assert "AWS refused the call: The request signature we calculated does not match (HTTP 403)" in err
    assert seen == []


def test_rejects_approval_with_exit_1_when_the_requester_approves(function_url, monkeypatch):
    url, stubber, _seen = function_url
    _as(monkeypatch, "ASIAALICE")
    stubber.add_client_error("describe_execution", "ExecutionDoesNotExist", "no such execution", 400,
                             expected_params={"executionArn": ANY})
    code, out, _err = _cli("break-glass", "approve", "--url", url, "--region", "us-east-1", "--json", "bg-cli-1")
    assert code == 1
    assert "no break-glass request" in json.loads(out)["error"]


def test_rejects_url_with_exit_2_when_it_is_not_https(monkeypatch):
    _as(monkeypatch, "ASIABOB")
    code, _out, err = _cli("break-glass", "approve", "--url", "http://example.com/", "bg-1")
    assert code == 2
    assert "--url must be an https:// function URL" in err


def test_reads_the_region_from_a_function_url():
    from image_verifier.cli_break_glass import _URL_REGION

    assert _URL_REGION.fullmatch("abcdefghij0123456789abcdefghij01.lambda-url.eu-west-1.on.aws")[1] == "eu-west-1"


def test_status_shows_the_signature_of_a_succeeded_request():
    # Given a finished execution, as DescribeExecution returns it
    states = boto3.client("stepfunctions", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    stubber = Stubber(states)
    arn = STATE_MACHINE.replace(":stateMachine:", ":execution:") + ":bg-1"
    request = {"requestId": "bg-1", "image": IMAGE, "ticket": "INC-9", "expiresAt": 1_800_003_600,
               "requester": {"arn": IDENTITIES["ASIAALICE"][1]}}
    stubber.add_response("describe_execution", {
        "executionArn": arn, "stateMachineArn": STATE_MACHINE, "status": "SUCCEEDED",
        "startDate": datetime.now(UTC), "input": json.dumps({"state": {"request": request}}),
        "output": json.dumps({"result": {"signature": {"signatureManifest": "sha256:" + "9" * 64}}})},
        {"executionArn": arn})
    session = type("Session", (), {"client": lambda self, service, region_name: states})()
    args = argparse.Namespace(break_glass_action="status", state_machine=STATE_MACHINE, request_id="bg-1", json=True)
    out = io.StringIO()
    # When
    with stubber:
        assert run_break_glass_command(args, out, session=session) == 0
    # Then
    answer = json.loads(out.getvalue())
    assert answer["execution"] == "SUCCEEDED"
    assert answer["signature"]["signatureManifest"] == "sha256:" + "9" * 64
    assert answer["requester"].endswith("/alice")


def test_status_needs_the_state_machine():
    code, _out, err = _cli("break-glass", "status", "bg-1")
    assert code == 2
    assert "--state-machine" in err
