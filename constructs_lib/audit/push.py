"""`PushAudit`: every image pushed to a signed repository is verified a few minutes later.

    audit = PushAudit(stack, "PushAudit", controller=admission, alarm_topic=security_topic)

An EventBridge rule takes ECR's "ECR Image Action" events (``action-type: PUSH``, ``result:
SUCCESS``) of the controller's repositories into an SQS queue with a delivery delay: ECR managed
signing is asynchronous, and CI signs with cosign right after its push, so a push is judged only
once its signature had time to appear. The function (``image_verifier.audits.push``) verifies the
pushed digest with the controller's policy (asking again while ECR's managed-signing status is
``IN_PROGRESS``); ``rejected`` (unsigned or badly signed) is counted
in ``PushesRejected`` and alarms through the topic you pass. Pushes the registry or AWS could not
judge go back to the queue and, after ``max_receive_count`` tries, to its dead-letter queue
(which alarms too).
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration, RemovalPolicy, Stack, Token
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from ..admission import _defaults as admission_defaults
from ..admission.controller import AdmissionController
from ._function import alarm_on, audit_function, audit_metric, unique

HANDLER = "image_verifier.audits.push.lambda_handler"
SERVICE_NAME = "image-push-audit"
DEFAULT_DELAY = Duration.minutes(5)  # managed signing usually completes within a minute or two of the push
MAX_DELAY_SECONDS = 900  # SQS DelaySeconds is at most 15 minutes
DEFAULT_MAX_RECEIVE_COUNT = 3  # tries while the registry or AWS does not answer, then the dead-letter queue
BATCH_SIZE = 10
# The IAM action is named after the API (DescribeImageSigningStatus), as ECR's actions are; if it were
# denied, the audit still reports the push (the status only ever postpones a report).
ECR_SIGNING_STATUS_ACTIONS = ("ecr:DescribeImageSigningStatus",)
# The documented event for a completed image push (ECR user guide, "Amazon ECR events and EventBridge").
PUSH_SOURCE, PUSH_DETAIL_TYPE = "aws.ecr", "ECR Image Action"


class PushAudit(Construct):
    """Verifies every push to the controller's repositories after ``delay``, and alarms on unsigned ones."""

    def __init__(self, scope: Construct, id: str, *, controller: AdmissionController,
                 repositories: Sequence[ecr.IRepository] | None = None, delay: Duration = DEFAULT_DELAY,
                 alarm_topic: sns.ITopic | None = None, max_receive_count: int = DEFAULT_MAX_RECEIVE_COUNT,
                 memory_size: int = admission_defaults.MEMORY_MB, timeout: Duration = admission_defaults.TIMEOUT,
                 log_retention: logs.RetentionDays = admission_defaults.LOG_RETENTION,
                 log_removal_policy: RemovalPolicy = admission_defaults.LOG_REMOVAL_POLICY) -> None:
        """
        :param controller: the admission controller whose policy judges the pushes.
        :param repositories: the repositories to watch (in this stack's account and region: ECR sends
            events to the registry's own account). :default: - the controller's repositories
        :param delay: how long after a push it is judged (at most 15 minutes, the SQS limit): longer
            than your managed signing and CI signing take. :default: 5 minutes
        :param alarm_topic: where the alarms (rejected pushes, unjudged pushes, audit faults) notify.
            :default: - no alarms (the metrics are still written)
        :param max_receive_count: tries for a push the registry or AWS did not answer. :default: 3
        :param memory_size: :default: 512
        :param timeout: :default: 60 seconds
        :param log_retention: :default: RetentionDays.ONE_YEAR
        :param log_removal_policy: :default: RemovalPolicy.RETAIN (the audit trail)
        """
        super().__init__(scope, id)
        repositories = tuple(controller.repositories if repositories is None else repositories)
        if not repositories:
            raise ValueError(f"PushAudit {self.node.path} watches no repository: the controller covers none; pass "
                             "repositories=[...]")
        seconds = delay.to_seconds()
        if not 0 <= seconds <= MAX_DELAY_SECONDS:
            raise ValueError(f"delay must be between 0 and 15 minutes (the SQS delivery delay limit), got {seconds:g} "
                             "seconds")
        if not 1 <= max_receive_count <= 100:
            raise ValueError(f"max_receive_count must be between 1 and 100, got {max_receive_count}")
        self._check_same_account(repositories)
        self.function, self.role, self.log_group = audit_function(
            self, controller=controller, handler=HANDLER, service_name=SERVICE_NAME,
            description="Verifies each image pushed to a signed repository with the admission policy (push audit)",
            environment={"AUDIT_MAX_RECEIVE_COUNT": str(max_receive_count)}, memory_size=memory_size,
            timeout=timeout, log_retention=log_retention, log_removal_policy=log_removal_policy)
        # A rejected push is checked against ECR's managed-signing status: IN_PROGRESS is asked again.
        self.role.add_to_principal_policy(iam.PolicyStatement(
            sid="ManagedSigningStatus", actions=list(ECR_SIGNING_STATUS_ACTIONS),
            resources=unique([r.repository_arn for r in repositories])))
        self.dead_letter_queue = sqs.Queue(self, "DeadLetters", encryption=sqs.QueueEncryption.SQS_MANAGED,
                                           enforce_ssl=True, retention_period=Duration.days(14))
        # Lambda needs the visibility timeout to cover the function's timeout; six times is AWS's advice.
        self.queue = sqs.Queue(
            self, "Queue", delivery_delay=delay, visibility_timeout=Duration.seconds(timeout.to_seconds() * 6),
            encryption=sqs.QueueEncryption.SQS_MANAGED, enforce_ssl=True, retention_period=Duration.days(4),
            dead_letter_queue=sqs.DeadLetterQueue(queue=self.dead_letter_queue, max_receive_count=max_receive_count))
        self.rule = events.Rule(self, "Pushes", description="ECR image pushes to signed repositories, for the push audit",
                                event_pattern=push_event_pattern(repositories))
        self.rule.add_target(targets.SqsQueue(self.queue))
        self.function.add_event_source(sources.SqsEventSource(self.queue, batch_size=BATCH_SIZE,
                                                              report_batch_item_failures=True))
        self.rejected_alarm = alarm_on(self, "RejectedAlarm", self.metric_rejected_pushes(), topic=alarm_topic,
                                       description="An image without a valid signature from a trusted signer was "
                                                   "pushed to a signed repository (push audit)")
        self.unjudged_alarm = alarm_on(self, "UnjudgedAlarm",
                                       self.dead_letter_queue.metric_approximate_number_of_messages_visible(),
                                       topic=alarm_topic, description="Pushes the push audit could not judge (the "
                                       "registry or AWS did not answer) are in its dead-letter queue")
        self.errors_alarm = alarm_on(self, "ErrorsAlarm", self.metric_errors(), topic=alarm_topic,
                                     description="The push audit met events it could not read or failed")

    def metric_rejected_pushes(self, **props: object) -> cloudwatch.Metric:
        """Pushes of images without a valid signature from a trusted signer. :default: Sum over 5 minutes"""
        return audit_metric(SERVICE_NAME, "PushesRejected", **props)

    def metric_verified_pushes(self, **props: object) -> cloudwatch.Metric:
        return audit_metric(SERVICE_NAME, "PushesVerified", **props)

    def metric_unavailable_pushes(self, **props: object) -> cloudwatch.Metric:
        """Pushes not judged this time (the registry or AWS did not answer); they are tried again."""
        return audit_metric(SERVICE_NAME, "PushesUnavailable", **props)

    def metric_errors(self, **props: object) -> cloudwatch.Metric:
        """Malformed events and unexpected failures of the audit itself."""
        return audit_metric(SERVICE_NAME, "AuditErrors", **props)

    def _check_same_account(self, repositories: Sequence[ecr.IRepository]) -> None:
        account = Stack.of(self).account
        for repository in repositories:
            theirs = repository.env.account
            if not Token.is_unresolved(theirs) and not Token.is_unresolved(account) and theirs != account:
                raise ValueError(
                    f"repository {repository.repository_name} is in account {theirs}, but PushAudit {self.node.path} "
                    f"is in {account}: ECR sends push events to the registry's own account; create a PushAudit there"
                )


def push_event_pattern(repositories: Sequence[ecr.IRepository]) -> events.EventPattern:
    """The documented ECR push event, for these repositories, successful pushes only."""
    return events.EventPattern(
        source=[PUSH_SOURCE], detail_type=[PUSH_DETAIL_TYPE],
        detail={"action-type": ["PUSH"], "result": ["SUCCESS"],
                "repository-name": unique([r.repository_name for r in repositories])},
    )
