"""`image-verifier break-glass request|approve|reject|status`: drive BreakGlassSigning with your AWS credentials.

`request`, `approve` and `reject` are SigV4-signed HTTPS calls (service ``lambda``) to the
workflow's function URL, which takes your identity from that signature; `status` reads the
request's execution (``states:DescribeExecution``). Credentials come from the usual AWS chain
(environment, profile, SSO): assume your requester or approver role first.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any, TextIO

URL_ENV = "IMAGE_VERIFIER_BREAK_GLASS_URL"
STATE_MACHINE_ENV = "IMAGE_VERIFIER_BREAK_GLASS_STATE_MACHINE"
HTTP_TIMEOUT_SECONDS = 30.0
MAX_RESPONSE_BYTES = 64 * 1024  # the endpoint answers a few hundred bytes
_URL_REGION = re.compile(r"[a-z0-9]+\.lambda-url\.([a-z0-9-]+)\.on\.aws")
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


class BreakGlassCliError(Exception):
    """A break-glass command could not be done; the message says why (exit 2 unless `code` says otherwise)."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def add_break_glass_commands(commands: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    """The `break-glass` subcommand and its four actions."""
    top = commands.add_parser("break-glass", help="request, approve, reject or inspect a break-glass signature",
                              description="Drive the two-person break-glass signing workflow (BreakGlassSigning) "
                                          "with your AWS credentials.")
    actions = top.add_subparsers(dest="break_glass_action", required=True, parser_class=parser_class,
                                 metavar="ACTION")

    def endpoint_options(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--url", default=os.environ.get(URL_ENV),
                            help=f"the workflow's function URL (output of the stack; default ${URL_ENV})")
        parser.add_argument("--region", default=None, help="the URL's region (default: read from the URL)")
        parser.add_argument("--json", action="store_true", help="print the answer as one JSON object")

    request = actions.add_parser("request", help="ask for a break-glass signature of one image",
                                 description="Ask two approvers to let the break-glass key sign IMAGE@DIGEST.")
    endpoint_options(request)
    request.add_argument("--reason", required=True, help="why the normal pipeline cannot sign this image")
    request.add_argument("--ticket", required=True, help="the incident or change ticket id")
    request.add_argument("image", metavar="IMAGE@DIGEST", help="registry/repository@sha256:<digest>")
    for verb in ("approve", "reject"):
        vote = actions.add_parser(verb, help=f"{verb} a pending request (approver roles; the requester may reject)",
                                  description=f"{verb.capitalize()} a pending break-glass request as yourself.")
        endpoint_options(vote)
        vote.add_argument("--comment", default="", help="recorded with your vote")
        vote.add_argument("request_id", metavar="REQUEST_ID", help="the id `request` printed (and the SNS notice names)")
    status = actions.add_parser("status", help="show a request's state (states:DescribeExecution)",
                                description="Show where a break-glass request is: waiting, signed, rejected, expired.")
    status.add_argument("--state-machine", default=os.environ.get(STATE_MACHINE_ENV), metavar="ARN",
                        help=f"the workflow's state machine ARN (default ${STATE_MACHINE_ENV})")
    status.add_argument("--json", action="store_true", help="print the answer as one JSON object")
    status.add_argument("request_id", metavar="REQUEST_ID", help="the id `request` printed")


def run_break_glass_command(args: argparse.Namespace, out: TextIO, *, session: Any = None,
                            opener: Callable[..., Any] | None = None) -> int:
    """Run one action; `session` (boto3) and `opener` (urllib) let tests inject their own."""
    if session is None:
        import boto3

        session = boto3.session.Session()
    if args.break_glass_action == "status":
        answer = _status(args, session)
    else:
        body: dict[str, Any] = {"action": args.break_glass_action}
        if args.break_glass_action == "request":
            body.update(image=args.image, reason=args.reason, ticket=args.ticket)
        else:
            body.update(requestId=args.request_id, comment=args.comment)
        answer = _call_url(args.url, args.region, body, session, opener or urllib.request.urlopen)
    if args.json:
        print(json.dumps(answer, sort_keys=True), file=out)
    else:
        for key, value in answer.items():
            print(f"{key}: {value if isinstance(value, str) else json.dumps(value)}", file=out)
    return 0


def _call_url(url: str | None, region: str | None, body: dict[str, Any], session: Any,
              opener: Callable[..., Any]) -> dict[str, Any]:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    if not url:
        raise BreakGlassCliError(f"give the workflow's function URL with --url or ${URL_ENV}")
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme != "https" and not (parsed.scheme == "http" and parsed.hostname in _LOOPBACK):
        raise BreakGlassCliError(f"--url must be an https:// function URL, got {url!r}")
    match = _URL_REGION.fullmatch(parsed.hostname or "")
    region = region or (match[1] if match else None)
    if not region:
        raise BreakGlassCliError(f"cannot tell the region from {url!r}; pass --region")
    credentials = session.get_credentials()
    if credentials is None:
        raise BreakGlassCliError("no AWS credentials found: sign in (aws sso login, a profile, or environment "
                                 "variables) as your requester or approver role")
    data = json.dumps(body).encode()
    request = AWSRequest(method="POST", url=url, data=data, headers={"content-type": "application/json"})
    SigV4Auth(credentials.get_frozen_credentials(), "lambda", region).add_auth(request)
    prepared = urllib.request.Request(url, data=data, method="POST", headers=dict(request.headers.items()))
    try:
        with opener(prepared, timeout=HTTP_TIMEOUT_SECONDS) as response:
            return _json_answer(response.read(MAX_RESPONSE_BYTES + 1), response.status)
    except urllib.error.HTTPError as exc:
        answer = _json_answer(exc.read(MAX_RESPONSE_BYTES + 1), exc.code)
        if exc.code == 403 and "error" not in answer:
            # Lambda's own refusal (bad signature, no permission) is {"Message": ...}
            answer["error"] = "AWS refused the call: " + str(answer.get("Message") or "your role may not invoke "
                                                             "the break-glass function URL")
        raise BreakGlassCliError(f"{answer.get('error', answer)} (HTTP {exc.code})",
                                 code=3 if exc.code >= 500 else 1) from exc
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise BreakGlassCliError(f"cannot reach {url}: {getattr(exc, 'reason', exc)}", code=3) from exc


def _json_answer(raw: bytes, status: int) -> dict[str, Any]:
    if len(raw) > MAX_RESPONSE_BYTES:
        raise BreakGlassCliError(f"the endpoint answered more than {MAX_RESPONSE_BYTES} bytes (HTTP {status})")
    try:
        answer = json.loads(raw or b"{}")
    except ValueError:
        answer = {"error": raw[:300].decode(errors="replace")}
    return answer if isinstance(answer, dict) else {"answer": answer}


def _status(args: argparse.Namespace, session: Any) -> dict[str, Any]:
    from botocore.exceptions import BotoCoreError, ClientError

    from .break_glass.execution import execution_arn

    if not args.state_machine:
        raise BreakGlassCliError(f"give the workflow's state machine ARN with --state-machine or ${STATE_MACHINE_ENV}")
    try:
        arn = execution_arn(args.state_machine, args.request_id)
        states = session.client("stepfunctions", region_name=args.state_machine.split(":")[3])
        description = states.describe_execution(executionArn=arn)
    except ValueError as exc:
        raise BreakGlassCliError(str(exc)) from exc
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        raise BreakGlassCliError(f"states:DescribeExecution failed: {code}: {exc}",
                                 code=1 if code == "ExecutionDoesNotExist" else 3) from exc
    except BotoCoreError as exc:
        raise BreakGlassCliError(f"states:DescribeExecution failed: {exc}", code=3) from exc
    request = json.loads(description.get("input") or "{}").get("state", {}).get("request", {})
    answer: dict[str, Any] = {"requestId": args.request_id, "execution": description["status"],
                              "image": request.get("image"), "requester": (request.get("requester") or {}).get("arn"),
                              "ticket": request.get("ticket"), "expiresAt": request.get("expiresAt")}
    if description["status"] == "SUCCEEDED":
        answer["signature"] = json.loads(description.get("output") or "{}").get("result", {}).get("signature")
    if description["status"] in ("FAILED", "TIMED_OUT", "ABORTED"):
        answer.update(error=description.get("error"), cause=description.get("cause"))
    return answer


def main(args: argparse.Namespace, *, stdout: TextIO, stderr: TextIO) -> int:
    """The `break-glass` command as cli.main dispatches it: errors as `error: ...` (or JSON), never a traceback.

    Exit codes: 0 done, 1 refused (the rules, or AWS said no), 2 usage, 3 AWS or the URL unreachable.
    """
    try:
        return run_break_glass_command(args, stdout)
    except BreakGlassCliError as exc:
        message, code = str(exc), exc.code
    except Exception as exc:  # noqa: BLE001 - the CLI's contract is "never a traceback"
        message, code = f"unexpected {type(exc).__name__}: {exc}", 2
    if getattr(args, "json", False):
        print(json.dumps({"error": message, "exitCode": code}, sort_keys=True), file=stdout)
    else:
        print(f"error: {message}", file=stderr)
    return code
