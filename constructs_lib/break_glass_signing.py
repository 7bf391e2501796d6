"""`BreakGlassSigning`: two people approve, then a Lambda signs one image with the break-glass key.

    signing = BreakGlassSigning(stack, "BreakGlassSigning", key=key, requesters=[requester_role],
                                approvers=[approver_role], topic=approvers_topic,
                                repositories=[repository], alarm_topic=security_topic)

A Step Functions state machine holds each request: its approval step waits on a task token
(``.waitForTaskToken``, ``TimeoutSecondsPath`` counting down to the request's expiry) that only the
approval function completes. People reach that function through its URL (``AWS_IAM`` auth, only
the requester and approver roles may invoke it), which takes their identity from AWS
authentication. When enough distinct people approved, the signing function, the only principal the
key policy lets call ``kms:Sign``, writes a cosign signature. Any ``kms:Sign`` on the key raises an
EventBridge alarm (CloudTrail) to ``alarm_topic``.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import ArnFormat, Duration, Names, RemovalPolicy, Stack
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from . import _actions
from ._bundling import RuntimeBundler
from ._grants import acknowledge_wildcard_resource, identity_arn
from ._nag import acknowledge_wildcards
from .admission import _defaults as lambda_defaults
from .signing_key import OwnedSigningKeyBase

APPROVAL_HANDLER = "image_verifier.break_glass.url_handler.lambda_handler"
SIGNER_HANDLER = "image_verifier.break_glass.signer.lambda_handler"
DEFAULT_APPROVAL_TIMEOUT = Duration.hours(1)
MIN_APPROVAL_TIMEOUT_SECONDS = 5 * 60  # time to read a ticket and look at an image
MAX_APPROVAL_TIMEOUT_SECONDS = 24 * 60 * 60  # an emergency that can wait longer goes through the pipeline
REQUIRED_APPROVALS = 2
SIGN_TIMEOUT = Duration.seconds(90)  # read the image, kms:Sign, push the signature
REJECTED_ERROR = "BreakGlass.Rejected"  # the url_handler's SendTaskFailure error
STATES_TIMEOUT_ERROR = "States.Timeout"
CLOUDTRAIL_DETAIL_TYPE = "AWS API Call via CloudTrail"
# EventBridge delivers read-only management events (CloudTrail marks kms:Sign readOnly) only to
# rules in this state (EventBridge user guide, "Receiving read-only management events").
ALL_MANAGEMENT_EVENTS_STATE = "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS"
# Step Functions actions of the two functions (kept here, beside the only construct that grants them).
STATES_START_ACTIONS = ("states:StartExecution",)
STATES_TASK_RESPONSE_ACTIONS = ("states:SendTaskSuccess", "states:SendTaskFailure")
STATES_READ_EXECUTION_ACTIONS = ("states:DescribeExecution", "states:GetExecutionHistory")
_ARCHITECTURE_NAMES = {"arm64": "arm64", "x86_64": "x86_64"}


class BreakGlassSigning(Construct):
    """The two-person break-glass signing workflow, for the break-glass account's stack."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        key: OwnedSigningKeyBase,
        requesters: Sequence[iam.IGrantable],
        approvers: Sequence[iam.IGrantable],
        topic: sns.ITopic,
        repositories: Sequence[ecr.IRepository] = (),
        alarm_topic: sns.ITopic | None = None,
        approval_timeout: Duration = DEFAULT_APPROVAL_TIMEOUT,
        required_approvals: int = REQUIRED_APPROVALS,
        log_retention: logs.RetentionDays = lambda_defaults.LOG_RETENTION,
        log_removal_policy: RemovalPolicy = lambda_defaults.LOG_REMOVAL_POLICY,
    ) -> None:
        """
        :param key: the break-glass key (``BreakGlassSigningKey``); the signing function becomes its only signer.
        :param requesters: roles (or users) that may ask for a break-glass signature.
        :param approvers: roles (or users) whose sessions may approve or reject. Distinct people are
            told apart by session name (IAM Identity Center sets it to the user name).
        :param topic: where approvers are told a request waits for them (no task token is sent).
        :param repositories: ECR repositories the signing function may write signatures to (a
            repository in another account must also allow the signing role in its repository policy).
            :default: - none
        :param alarm_topic: where every ``kms:Sign`` on the key is reported; see :meth:`alarm_on_sign`.
            :default: - no alarm (call alarm_on_sign yourself)
        :param approval_timeout: how long a request waits for approvals before it expires. :default: 1 hour
        :param required_approvals: distinct approvers needed, at least 2. :default: 2
        :param log_retention: of both functions' and the state machine's logs. :default: RetentionDays.ONE_YEAR
        :param log_removal_policy: :default: RemovalPolicy.RETAIN (the audit trail)
        """
        super().__init__(scope, id)
        if not isinstance(key, OwnedSigningKeyBase) or not key.break_glass:
            raise ValueError(f"key must be a BreakGlassSigningKey created in this app, got {key!r}; the workflow "
                             "names its signing function in the key policy, which an imported key cannot take")
        if not requesters or not approvers:
            raise ValueError("requesters and approvers must each name at least one role or user")
        if required_approvals < REQUIRED_APPROVALS:
            raise ValueError(f"required_approvals must be at least {REQUIRED_APPROVALS}, got {required_approvals}")
        timeout_seconds = int(approval_timeout.to_seconds())
        if not MIN_APPROVAL_TIMEOUT_SECONDS <= timeout_seconds <= MAX_APPROVAL_TIMEOUT_SECONDS:
            raise ValueError(f"approval_timeout must be between {MIN_APPROVAL_TIMEOUT_SECONDS} seconds and "
                             f"{MAX_APPROVAL_TIMEOUT_SECONDS // 3600} hours, got {timeout_seconds} seconds")
        self.key, self.topic = key, topic
        self.requester_arns = [identity_arn(r, "a requester") for r in requesters]
        self.approver_arns = [identity_arn(a, "an approver") for a in approvers]
        self.approval_timeout = approval_timeout
        self.required_approvals = required_approvals
        self.state_machine_name = Names.unique_resource_name(self, max_length=80, separator="-")
        self.state_machine_arn = Stack.of(self).format_arn(service="states", resource="stateMachine",
                                                           resource_name=self.state_machine_name,
                                                           arn_format=ArnFormat.COLON_RESOURCE_NAME)
        runtime, architecture = lambda_defaults.RUNTIME, lambda_defaults.ARCHITECTURE
        bundler = RuntimeBundler(architecture=_ARCHITECTURE_NAMES[architecture.name],
                                 python_version=runtime.name.removeprefix("python"))
        code = bundler.code()

        def function(name: str, handler: str, description: str, timeout: Duration) -> lambda_.Function:
            role = iam.Role(self, f"{name}Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                            description=description)
            log_group = logs.LogGroup(self, f"{name}Logs", retention=log_retention, removal_policy=log_removal_policy)
            log_group.grant_write(role)
            fn = lambda_.Function(self, name, runtime=runtime, architecture=architecture, handler=handler, code=code,
                                  role=role, log_group=log_group, timeout=timeout, memory_size=256,
                                  description=description)
            return fn

        # -- the signing function: the key's only signer ------------------------------------------
        self.signer_function = function("Signer", SIGNER_HANDLER, "Signs one image approved by two people with the "
                                        "break-glass key (cosign format)", SIGN_TIMEOUT)
        key.grant_sign(self.signer_function)
        self._grant_registry_write(repositories)

        # -- the approval function and its IAM-authenticated URL ------------------------------------
        self.approval_function = function("Approval", APPROVAL_HANDLER, "Break-glass requests and approvals: caller "
                                          "identity from AWS_IAM auth; completes the approval task token",
                                          Duration.seconds(30))
        self.function_url = self.approval_function.add_function_url(auth_type=lambda_.FunctionUrlAuthType.AWS_IAM)
        for grantee in (*requesters, *approvers):
            self.approval_function.grant_invoke_url(grantee)
        topic.grant_publish(self.approval_function)

        # -- the state machine ---------------------------------------------------------------------
        self.state_machine = self._state_machine(log_retention, log_removal_policy)
        # Statements by the state machine's name, not by reference: the state machine invokes both
        # functions, and a function waits for its role's policy, so a reference would be a cycle.
        executions = self._executions_arn()
        self._allow(self.approval_function, STATES_START_ACTIONS + STATES_TASK_RESPONSE_ACTIONS, [self.state_machine_arn])
        for fn in (self.approval_function, self.signer_function):
            self._allow(fn, STATES_READ_EXECUTION_ACTIONS, [executions])
        # The functions find the state machine by its name: a reference would be a cycle (it invokes them).
        common = {"BREAK_GLASS_STATE_MACHINE_ARN": self.state_machine_arn,
                  "BREAK_GLASS_APPROVER_ARNS": Stack.of(self).to_json_string(self.approver_arns)}
        for name, value in common.items():
            self.signer_function.add_environment(name, value)
            self.approval_function.add_environment(name, value)
        self.signer_function.add_environment("BREAK_GLASS_KEY_ARN", key.key_arn)
        for name, value in {
            "BREAK_GLASS_REQUESTER_ARNS": Stack.of(self).to_json_string(self.requester_arns),
            "BREAK_GLASS_APPROVAL_TIMEOUT_SECONDS": str(timeout_seconds),
            "BREAK_GLASS_REQUIRED_APPROVALS": str(required_approvals),
            "BREAK_GLASS_TOPIC_ARN": topic.topic_arn,
        }.items():
            self.approval_function.add_environment(name, value)
        for fn in (self.approval_function, self.signer_function):
            acknowledge_wildcards(fn.role, [executions], "Executions of this state machine are named by request "
                                  "ids made at run time; the statement names only this state machine's executions.")
        machine_role = self.state_machine.role
        acknowledge_wildcards(machine_role, [f"{f.function_arn}:*" for f in (self.approval_function,
                                                                              self.signer_function)],
                              "Step Functions' LambdaInvoke grants the function and its versions; the state machine "
                              "invokes only the two functions of this workflow.")
        acknowledge_wildcard_resource(machine_role, "Execution logging (logs:*LogDelivery, PutResourcePolicy, "
                                      "Describe*) and X-Ray tracing have no resource-level permissions.")
        self.alarm_rule: events.Rule | None = self.alarm_on_sign(alarm_topic) if alarm_topic is not None else None

    # -- the alarm -----------------------------------------------------------------------------------
    def alarm_on_sign(self, topic: sns.ITopic, id: str = "SignAlarm") -> events.Rule:
        """Report every ``kms:Sign`` on the break-glass key (CloudTrail through EventBridge) to ``topic``.

        Needs a CloudTrail trail in this account and region that logs management events (read events
        too: CloudTrail records ``Sign`` as read-only). Denied attempts are reported as well.
        """
        rule = events.Rule(self, id, description=f"Every kms:Sign on the break-glass key {self.key.node.path}",
                           event_pattern=events.EventPattern(
                               source=["aws.kms"], detail_type=[CLOUDTRAIL_DETAIL_TYPE],
                               detail=self.sign_event_detail_pattern()))
        rule.node.default_child.add_property_override("State", ALL_MANAGEMENT_EVENTS_STATE)
        rule.add_target(targets.SnsTopic(topic, message=events.RuleTargetInput.from_text(
            f"BREAK-GLASS KEY USED: {events.EventField.from_path('$.detail.eventName')} on "
            f"{self.key.key_arn} by {events.EventField.from_path('$.detail.userIdentity.arn')} at "
            f"{events.EventField.from_path('$.detail.eventTime')} (error: "
            f"{events.EventField.from_path('$.detail.errorCode')}). Review it: docs/operations.md, "
            "'After a break-glass use'.")))
        return rule

    def sign_event_detail_pattern(self) -> dict:
        """The ``detail`` of the CloudTrail ``Sign`` event: by the resource ARN, or by the key id asked for."""
        return {
            "eventSource": ["kms.amazonaws.com"],
            "eventName": ["Sign"],
            "$or": [
                {"resources": {"ARN": [self.key.key_arn]}},
                {"requestParameters": {"keyId": [self.key.key_arn, self.key.key_id, self.key.alias_name]}},
            ],
        }

    # -- internals -----------------------------------------------------------------------------------
    def _state_machine(self, log_retention: logs.RetentionDays, log_removal_policy: RemovalPolicy) -> sfn.StateMachine:
        expired = sfn.Fail(self, "Expired", error="BreakGlass.Expired",
                           cause="not enough distinct approvals before the time limit")
        rejected = sfn.Fail(self, "Rejected", error=REJECTED_ERROR, cause="an approver rejected the request")
        signing_failed = sfn.Fail(self, "SigningFailed", error="BreakGlass.SigningFailed",
                                  cause="the signing function failed; see its audit record")
        # Waits for the approval function to complete the task token: once per approval, until the
        # request is approved. TimeoutSecondsPath counts down to the request's expiry.
        await_approval = tasks.LambdaInvoke(
            self, "AwaitApproval", lambda_function=self.approval_function,
            integration_pattern=sfn.IntegrationPattern.WAIT_FOR_TASK_TOKEN,
            payload=sfn.TaskInput.from_object({"kind": "awaitApproval", "taskToken": sfn.JsonPath.task_token,
                                               "state": sfn.JsonPath.object_at("$.state"),
                                               "executionArn": sfn.JsonPath.string_at("$$.Execution.Id")}),
            task_timeout=sfn.Timeout.at("$.remainingSeconds"),
            comment="One vote per token: the approval function judges it and sends the new state back")
        await_approval.add_catch(expired, errors=[STATES_TIMEOUT_ERROR])
        await_approval.add_catch(rejected, errors=[REJECTED_ERROR])
        sign = tasks.LambdaInvoke(
            self, "Sign", lambda_function=self.signer_function,
            payload=sfn.TaskInput.from_object({"state": sfn.JsonPath.object_at("$.state"),
                                               "executionArn": sfn.JsonPath.string_at("$$.Execution.Id")}),
            result_selector={"signature": sfn.JsonPath.object_at("$.Payload")}, result_path="$.result",
            comment="The only principal that may call kms:Sign on the break-glass key")
        sign.add_catch(signing_failed, errors=["States.ALL"])
        decided = sfn.Choice(self, "Approved?")
        decided.when(sfn.Condition.string_equals("$.status", "approved"), sign.next(sfn.Succeed(self, "Signed")))
        decided.otherwise(await_approval)
        log_group = logs.LogGroup(self, "StateMachineLogs", retention=log_retention, removal_policy=log_removal_policy)
        return sfn.StateMachine(
            self, "Resource", state_machine_name=self.state_machine_name, definition_body=sfn.DefinitionBody.from_chainable(await_approval.next(decided)),
            # A backstop: approvals end at approval_timeout, signing takes at most the signer's timeout.
            timeout=Duration.seconds(self.approval_timeout.to_seconds() + 3 * SIGN_TIMEOUT.to_seconds()),
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=True),
            tracing_enabled=True, comment="Break-glass signing: two distinct approvers, then one signature")

    def _executions_arn(self) -> str:
        return Stack.of(self).format_arn(service="states", resource="execution",
                                         resource_name=f"{self.state_machine_name}:*",
                                         arn_format=ArnFormat.COLON_RESOURCE_NAME)

    @staticmethod
    def _allow(fn: lambda_.Function, actions: Sequence[str], resources: Sequence[str]) -> None:
        fn.add_to_role_policy(iam.PolicyStatement(actions=list(actions), resources=list(resources)))

    def _grant_registry_write(self, repositories: Sequence[ecr.IRepository]) -> None:
        role = self.signer_function.role
        if not repositories:
            return
        iam.Grant.add_to_principal(grantee=role, actions=list(_actions.ECR_PUSH_ACTIONS + _actions.ECR_READ_ACTIONS),
                                   resource_arns=[r.repository_arn for r in repositories])
        iam.Grant.add_to_principal(grantee=role, actions=list(_actions.ECR_AUTH_ACTIONS), resource_arns=["*"])
        acknowledge_wildcard_resource(role, "ecr:GetAuthorizationToken has no resource-level permission; every "
                                            "other ECR action names the repositories.",
                                      actions=_actions.ECR_AUTH_ACTIONS)

    @property
    def url(self) -> str:
        """The function URL the CLI calls (``image-verifier break-glass ... --url``)."""
        return self.function_url.url


__all__ = ["BreakGlassSigning"]
