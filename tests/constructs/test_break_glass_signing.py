"""BreakGlassSigning in a synthesized template: two distinct approvals (requester excluded) before the
signing step, expiry, the key policy's one signer, the kms:Sign alarm against the documented
CloudTrail event, cdk-nag and cfn-lint clean."""

from __future__ import annotations

import copy
import importlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import Duration
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sns as sns
from image_verifier.break_glass.approval import (
    ApprovalError,
    ApprovalState,
    BreakGlassRequest,
    Caller,
    Status,
)
from image_verifier.break_glass.url_handler import ApprovalEndpoint, EndpointSettings

from constructs_lib import BreakGlassSigning, BreakGlassSigningKey, CosignSigningKey
from tests.constructs.checks import (
    ENV_B,
    as_list,
    assert_clean,
    denies_sign,
    grants_sign,
    new_app,
    new_stack,
    resources,
)

ACCOUNT = ENV_B.account
KEY_ARN = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/0987dcba-09fe-87dc-65ba-ab0987654321"
KEY_ID = "0987dcba-09fe-87dc-65ba-ab0987654321"
IMAGE = "111111111111.dkr.ecr.us-east-1.amazonaws.com/payments/api@sha256:" + "ef" * 32


def _build(**props: Any):
    app = new_app()
    stack = new_stack(app, "Vault", env=ENV_B)
    key = BreakGlassSigningKey(stack, "Key", alias="alias/break-glass/cosign")
    requester = iam.Role(stack, "Requester", role_name="BreakGlassRequester",
                         assumed_by=iam.AccountPrincipal(ACCOUNT))
    approver = iam.Role(stack, "Approver", role_name="BreakGlassApprover", assumed_by=iam.AccountPrincipal(ACCOUNT))
    topic = sns.Topic(stack, "Approvers", enforce_ssl=True)
    repository = ecr.Repository.from_repository_arn(
        stack, "Repo", "arn:aws:ecr:us-east-1:111111111111:repository/payments/api")
    signing = BreakGlassSigning(stack, "BreakGlassSigning", key=key, requesters=[requester], approvers=[approver],
                                topic=topic, repositories=[repository], alarm_topic=topic, **props)
    return app, stack, signing


@pytest.fixture(scope="module")
def synthesized():
    app, stack, signing = _build()
    assembly = app.synth()
    return app, assembly, stack, signing, assembly.get_stack_by_name("Vault").template


def _logical_id(stack, construct) -> str:
    return stack.resolve(stack.get_logical_id(construct.node.default_child))


def _definition(template: dict[str, Any]) -> dict[str, Any]:
    [machine] = resources(template, "AWS::StepFunctions::StateMachine").values()
    parts = machine["Properties"]["DefinitionString"]["Fn::Join"][1]
    return json.loads("".join(p if isinstance(p, str) else "TOKEN" for p in parts))


def _function_env(template: dict[str, Any], handler_suffix: str) -> dict[str, Any]:
    [function] = [f for f in resources(template, "AWS::Lambda::Function").values()
                  if f["Properties"]["Handler"].endswith(handler_suffix)]
    return function["Properties"]["Environment"]["Variables"]


def test_signing_step_is_reached_only_through_an_approved_decision(synthesized):
    # Given the synthesized state machine
    definition = _definition(synthesized[4])
    states = definition["States"]
    # Then the only state that leads to Sign is the Choice on status == "approved", after a task-token wait
    leads_to_sign = [name for name, s in states.items() if s.get("Next") == "Sign"
                     or any(c.get("Next") == "Sign" for c in s.get("Choices", []))]
    assert leads_to_sign == ["Approved?"]
    assert states["Approved?"]["Choices"] == [{"Variable": "$.status", "StringEquals": "approved", "Next": "Sign"}]
    assert states["Approved?"]["Default"] == "AwaitApproval"
    assert definition["StartAt"] == "AwaitApproval"
    assert states["AwaitApproval"]["Resource"].endswith(":states:::lambda:invoke.waitForTaskToken")
    assert states["AwaitApproval"]["Parameters"]["Payload"]["taskToken.$"] == "$$.Task.Token"


def test_approval_function_requires_two_distinct_approvers_and_excludes_the_requester(synthesized):
    # Given the approval function's settings, as synthesized
    _app, _assembly, stack, _signing, template = synthesized
    env = _function_env(template, "url_handler.lambda_handler")
    approvers = json.dumps(stack.resolve(env["BREAK_GLASS_APPROVER_ARNS"]))
    requesters = json.dumps(stack.resolve(env["BREAK_GLASS_REQUESTER_ARNS"]))
    assert env["BREAK_GLASS_REQUIRED_APPROVALS"] == "2"
    approver_id, requester_id = (_logical_id(stack, stack.node.find_child(n)) for n in ("Approver", "Requester"))
    assert approver_id in approvers and requester_id not in approvers
    assert requester_id in requesters and approver_id not in requesters
    # When the runtime's rule runs with those role names (as deployed: the roles are named)
    approver_roles = [f"arn:aws:iam::{ACCOUNT}:role/BreakGlassApprover"]

    def person(role: str, name: str) -> Caller:
        return Caller.from_arn(f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{name}")

    request = BreakGlassRequest.create(request_id="bg-1", image=IMAGE, reason="hotfix", ticket="INC-1",
                                       requester=person("BreakGlassRequester", "alice"), now=0,
                                       timeout_seconds=int(env["BREAK_GLASS_APPROVAL_TIMEOUT_SECONDS"]))
    state = ApprovalState.new(request, required_approvals=int(env["BREAK_GLASS_REQUIRED_APPROVALS"]))
    # Then the requester cannot approve, one person counts once, and two people make "approved"
    with pytest.raises(ApprovalError, match="cannot approve it"):
        state.approve(person("BreakGlassApprover", "alice"), now=1, approvers=approver_roles)
    once = state.approve(person("BreakGlassApprover", "bob"), now=1, approvers=approver_roles)
    with pytest.raises(ApprovalError, match="already approved"):
        once.approve(person("BreakGlassApprover", "bob"), now=2, approvers=approver_roles)
    assert once.status(2) is Status.PENDING
    assert once.approve(person("BreakGlassApprover", "carol"), now=2, approvers=approver_roles).status(3).value \
        == "approved"


def test_timeout_expires_a_request(synthesized):
    definition = _definition(synthesized[4])
    wait = definition["States"]["AwaitApproval"]
    env = _function_env(synthesized[4], "url_handler.lambda_handler")
    # The wait counts down to the request's expiry (default one hour), and a timeout ends in Expired
    assert env["BREAK_GLASS_APPROVAL_TIMEOUT_SECONDS"] == "3600"
    assert wait["TimeoutSecondsPath"] == "$.remainingSeconds"
    assert {"ErrorEquals": ["States.Timeout"], "Next": "Expired"} in wait["Catch"]
    assert definition["States"]["Expired"] == {"Type": "Fail", "Error": "BreakGlass.Expired",
                                               "Cause": "not enough distinct approvals before the time limit"}
    assert {"ErrorEquals": ["BreakGlass.Rejected"], "Next": "Rejected"} in wait["Catch"]
    assert definition["TimeoutSeconds"] == 3600 + 270  # the backstop: approvals plus signing


def test_approval_timeout_is_configurable():
    app, _stack, _signing = _build(approval_timeout=Duration.minutes(30))
    template = app.synth().get_stack_by_name("Vault").template
    assert _function_env(template, "url_handler.lambda_handler")["BREAK_GLASS_APPROVAL_TIMEOUT_SECONDS"] == "1800"
    assert _definition(template)["TimeoutSeconds"] == 1800 + 270


def test_only_the_signing_functions_role_can_sign_with_the_break_glass_key(synthesized):
    # Given the synthesized key policy
    _app, _assembly, stack, signing, template = synthesized
    [key] = resources(template, "AWS::KMS::Key").values()
    policy = key["Properties"]["KeyPolicy"]
    signer_role = {"Fn::GetAtt": [_logical_id(stack, signing.signer_function.role), "Arn"]}
    # Then one statement allows kms:Sign, to the signer role only, and everyone else is denied
    [allow] = [s for s in policy["Statement"] if grants_sign(s)]
    [deny] = [s for s in policy["Statement"] if denies_sign(s)]
    assert allow["Principal"] == {"AWS": signer_role}
    assert deny["Principal"] == {"AWS": "*"}
    assert deny["Condition"] == {"ArnNotEquals": {"aws:PrincipalArn": [signer_role]}}
    # and no identity policy in the stack but the signer's names kms:Sign
    signing_policies = [name for name, p in resources(template, "AWS::IAM::Policy").items()
                        for s in p["Properties"]["PolicyDocument"]["Statement"] if "kms:Sign" in as_list(s["Action"])]
    assert signing_policies == [_logical_id(stack, signing.signer_function.role.node.find_child("DefaultPolicy"))]


def test_function_url_uses_iam_auth_and_only_requesters_and_approvers_may_invoke_it(synthesized):
    _app, _assembly, stack, signing, template = synthesized
    [url] = resources(template, "AWS::Lambda::Url").values()
    assert url["Properties"]["AuthType"] == "AWS_IAM"
    approval_id = _logical_id(stack, signing.approval_function)
    invokers = sorted(name for name, p in resources(template, "AWS::IAM::Policy").items()
                      for s in p["Properties"]["PolicyDocument"]["Statement"]
                      if "lambda:InvokeFunctionUrl" in as_list(s["Action"])
                      and s["Resource"] == {"Fn::GetAtt": [approval_id, "Arn"]})
    expected = sorted(_logical_id(stack, stack.node.find_child(n).node.find_child("DefaultPolicy"))
                      for n in ("Approver", "Requester"))
    assert invokers == expected
    assert not [p for p in resources(template, "AWS::Lambda::Permission").values()
                if p["Properties"]["Action"] in ("lambda:InvokeFunctionUrl", "lambda:InvokeFunction")
                and p["Properties"]["Principal"] == "*"]


# The CloudTrail record of kms:Sign as the KMS developer guide documents it ("Sign", ct-sign), for
# this key, as EventBridge delivers it ("AWS API Call via CloudTrail").
DOCUMENTED_SIGN_EVENT = {
    "version": "0", "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718", "detail-type": "AWS API Call via CloudTrail",
    "source": "aws.kms", "account": ACCOUNT, "time": "2022-03-07T22:36:44Z", "region": "us-east-1", "resources": [],
    "detail": {
        "eventVersion": "1.08",
        "userIdentity": {"type": "AssumedRole", "principalId": "AROAEXAMPLE:signer",
                         "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/SignerRole/signer", "accountId": ACCOUNT},
        "eventTime": "2022-03-07T22:36:44Z", "eventSource": "kms.amazonaws.com", "eventName": "Sign",
        "awsRegion": "us-east-1", "sourceIPAddress": "192.0.2.0", "userAgent": "AWS Internal",
        "requestParameters": {"messageType": "DIGEST", "keyId": KEY_ARN, "signingAlgorithm": "ECDSA_SHA_256"},
        "responseElements": None, "requestID": "8d0b35e0-46cf-48b9-be99-bf2ebc9ab9fb",
        "eventID": "107b3cac-b125-4556-9702-12a2b9afcff7", "readOnly": True,
        "resources": [{"accountId": ACCOUNT, "type": "AWS::KMS::Key", "ARN": KEY_ARN}],
        "eventType": "AwsApiCall", "managementEvent": True, "recipientAccountId": ACCOUNT,
        "eventCategory": "Management",
    },
}


def _matches(pattern: Any, event: Any) -> bool:
    """EventBridge's matching for the operators the rule uses: exact values, nested objects, "$or",
    and arrays in the event (an array matches when any element does)."""
    if isinstance(event, list):
        return any(_matches(pattern, item) for item in event)
    if isinstance(pattern, list):
        return event in pattern
    if not isinstance(event, dict):
        return False
    return all(any(_matches(p, event) for p in value) if key == "$or" else key in event and _matches(value, event[key])
               for key, value in pattern.items())


def _resolved_pattern(synthesized) -> dict[str, Any]:
    """The rule's pattern with the key's ARN and id filled in as CloudFormation would."""
    _app, _assembly, stack, _signing, template = synthesized
    [rule] = resources(template, "AWS::Events::Rule").values()
    key_id = _logical_id(stack, stack.node.find_child("Key"))
    text = json.dumps(rule["Properties"]["EventPattern"])
    text = text.replace(json.dumps({"Fn::GetAtt": [key_id, "Arn"]}), json.dumps(KEY_ARN))
    return json.loads(text.replace(json.dumps({"Ref": key_id}), json.dumps(KEY_ID)))


def test_alarm_rule_matches_the_documented_cloudtrail_sign_event(synthesized):
    pattern = _resolved_pattern(synthesized)
    assert _matches(pattern, DOCUMENTED_SIGN_EVENT)
    # by key id alone (the documented example names the key by id), and a denied attempt too
    by_id = copy.deepcopy(DOCUMENTED_SIGN_EVENT)
    by_id["detail"]["requestParameters"]["keyId"] = KEY_ID
    denied = copy.deepcopy(by_id)
    denied["detail"].pop("resources")
    denied["detail"]["errorCode"] = "AccessDeniedException"
    assert _matches(pattern, by_id) and _matches(pattern, denied)


def test_alarm_rule_ignores_other_keys_and_other_operations(synthesized):
    pattern = _resolved_pattern(synthesized)
    other_key = json.loads(json.dumps(DOCUMENTED_SIGN_EVENT).replace(KEY_ID, "11111111-2222-3333-4444-555555555555"))
    verify = copy.deepcopy(DOCUMENTED_SIGN_EVENT)
    verify["detail"]["eventName"] = "Verify"
    assert not _matches(pattern, other_key)
    assert not _matches(pattern, verify)


def test_alarm_rule_receives_read_only_management_events_and_notifies_the_topic(synthesized):
    _app, _assembly, stack, _signing, template = synthesized
    [rule] = resources(template, "AWS::Events::Rule").values()
    assert rule["Properties"]["State"] == "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS"
    [target] = rule["Properties"]["Targets"]
    assert target["Arn"] == {"Ref": _logical_id(stack, stack.node.find_child("Approvers"))}


def test_break_glass_signing_is_clean_under_cdk_nag_and_cfn_lint(synthesized):
    app, assembly, *_ = synthesized
    assert_clean(app, assembly)


def test_rejects_key_when_it_is_not_a_break_glass_key():
    app = new_app()
    stack = new_stack(app, "Vault", env=ENV_B)
    role = iam.Role(stack, "R", assumed_by=iam.AccountPrincipal(ACCOUNT))
    key = CosignSigningKey(stack, "Key", alias="alias/ci/cosign")
    with pytest.raises(ValueError, match="key must be a BreakGlassSigningKey created in this app"):
        BreakGlassSigning(stack, "S", key=key, requesters=[role], approvers=[role], topic=sns.Topic(stack, "T"))


@pytest.mark.parametrize(("props", "message"), [
    ({"required_approvals": 1}, "required_approvals must be at least 2, got 1"),
    ({"approval_timeout": Duration.minutes(1)}, "approval_timeout must be between 300 seconds and 24 hours"),
    ({"approval_timeout": Duration.days(2)}, "got 172800 seconds"),
])
def test_rejects_props_when_they_weaken_the_two_person_rule(props, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        _build(**props)


def test_rejects_approvers_when_one_is_an_account_principal():
    app = new_app()
    stack = new_stack(app, "Vault", env=ENV_B)
    key = BreakGlassSigningKey(stack, "Key", alias="alias/break-glass/cosign")
    role = iam.Role(stack, "R", assumed_by=iam.AccountPrincipal(ACCOUNT))
    with pytest.raises(ValueError, match="an approver must be an IAM role or user"):
        BreakGlassSigning(stack, "S", key=key, requesters=[role], approvers=[iam.AccountPrincipal(ACCOUNT)],
                          topic=sns.Topic(stack, "T"))


def test_both_functions_run_entry_points_of_the_one_bundled_runtime(synthesized):
    # Given the two functions of the workflow
    _app, assembly, _stack, _signing, template = synthesized
    functions = list(resources(template, "AWS::Lambda::Function").values())
    # Then they share one asset (the runtime package), and each handler is a function in it
    [s3_key] = {f["Properties"]["Code"]["S3Key"] for f in functions}
    asset = Path(assembly.directory) / f"asset.{s3_key.removesuffix('.zip')}"
    for function in functions:
        module, _, name = function["Properties"]["Handler"].rpartition(".")
        assert (asset / (module.replace(".", "/") + ".py")).is_file(), module
        assert callable(getattr(importlib.import_module(module), name))
    assert sorted(f["Properties"]["Handler"] for f in functions) == [
        "image_verifier.break_glass.signer.lambda_handler", "image_verifier.break_glass.url_handler.lambda_handler"]


# -- the synthesized definition, walked with the real approval endpoint --------------------------
class _Execution:
    """A small, explicit stand-in for one Step Functions execution of the synthesized definition: it
    follows Task/Choice/Fail/Succeed states and answers the endpoint's four Step Functions calls."""

    def __init__(self, definition: dict[str, Any]) -> None:
        self.definition, self.data, self.pending, self.ended = definition, None, None, None
        self.history: list[str] = []

    # the Step Functions client the endpoint uses
    def start_execution(self, *, stateMachineArn: str, name: str, input: str) -> dict[str, Any]:
        self.data = json.loads(input)
        self._run(self.definition["StartAt"])
        return {"executionArn": name}

    def describe_execution(self, *, executionArn: str) -> dict[str, Any]:
        return {"status": "RUNNING" if self.ended is None else "FAILED", "name": "bg-1"}

    def get_execution_history(self, **_: Any) -> dict[str, Any]:
        parameters = json.dumps({"Payload": self.pending})
        return {"events": [{"type": "TaskScheduled", "taskScheduledEventDetails": {"parameters": parameters}}]}

    def send_task_success(self, *, taskToken: str, output: str) -> None:
        self.data = json.loads(output)
        self._run(self.definition["States"]["AwaitApproval"]["Next"])

    def send_task_failure(self, *, taskToken: str, error: str, cause: str) -> None:
        self._catch("AwaitApproval", error)

    def expire(self) -> None:
        self._catch("AwaitApproval", "States.Timeout")

    def _catch(self, name: str, error: str) -> None:
        [target] = [c["Next"] for c in self.definition["States"][name]["Catch"] if error in c["ErrorEquals"]]
        self._run(target)

    def _run(self, name: str) -> None:
        while True:
            self.history.append(name)
            state = self.definition["States"][name]
            if state["Type"] in ("Fail", "Succeed"):
                self.ended = state.get("Error", "Succeeded")
                return
            if state["Type"] == "Choice":
                [choice] = state["Choices"]
                value = self.data[choice["Variable"].removeprefix("$.")]
                name = choice["Next"] if value == choice["StringEquals"] else state["Default"]
                continue
            if state["Resource"].endswith("waitForTaskToken"):
                self.pending = {"taskToken": "token", "state": self.data["state"]}
                return  # waits for a vote
            self.ended = "reached " + name  # the signing step: what the test wants to know
            return


def _walk(synthesized, votes: list[tuple[str, str, str]], *, expire: bool = False) -> _Execution:
    _app, _assembly, _stack, _signing, template = synthesized
    execution = _Execution(_definition(template))
    env = _function_env(template, "url_handler.lambda_handler")
    settings = EndpointSettings(state_machine_arn=f"arn:aws:states:us-east-1:{ACCOUNT}:stateMachine:m",
                                approvers=(f"arn:aws:iam::{ACCOUNT}:role/BreakGlassApprover",),
                                requesters=(f"arn:aws:iam::{ACCOUNT}:role/BreakGlassRequester",),
                                timeout_seconds=int(env["BREAK_GLASS_APPROVAL_TIMEOUT_SECONDS"]),
                                required_approvals=int(env["BREAK_GLASS_REQUIRED_APPROVALS"]), topic_arn="t")
    endpoint = ApprovalEndpoint(settings=settings, states=execution, sns=None, write=lambda record: None,
                                clock=lambda: 1_800_000_000, new_request_id=lambda: "bg-1")
    answers = []
    for role, person, action in [("BreakGlassRequester", "alice", "request"), *votes]:
        body = {"action": action, "requestId": "bg-1", "image": IMAGE, "reason": "hotfix", "ticket": "INC-1"}
        event = {"body": json.dumps(body), "requestContext": {"http": {"method": "POST"}, "authorizer": {"iam": {
            "userArn": f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{person}"}}}}
        answers.append(endpoint.handle(event)["statusCode"])
    if expire:
        execution.expire()
    execution.answers = answers
    return execution


def test_walked_definition_signs_only_after_two_distinct_people_other_than_the_requester_approve(synthesized):
    # When the requester, then the same approver twice, then a second person approve
    execution = _walk(synthesized, [("BreakGlassApprover", "alice", "approve"), ("BreakGlassApprover", "bob", "approve"),
                                    ("BreakGlassApprover", "bob", "approve"), ("BreakGlassApprover", "carol", "approve")])
    # Then only the last vote reaches the signing step
    assert execution.answers == [201, 409, 200, 409, 200]
    assert execution.ended == "reached Sign"
    assert execution.history.count("AwaitApproval") == 2


def test_walked_definition_expires_a_request_with_one_approval(synthesized):
    execution = _walk(synthesized, [("BreakGlassApprover", "bob", "approve")], expire=True)
    assert execution.ended == "BreakGlass.Expired"
    assert "Sign" not in execution.history


def test_walked_definition_ends_rejected_when_an_approver_rejects_after_an_approval(synthesized):
    execution = _walk(synthesized, [("BreakGlassApprover", "bob", "approve"), ("BreakGlassApprover", "carol", "reject")])
    assert execution.ended == "BreakGlass.Rejected"
    assert "Sign" not in execution.history
