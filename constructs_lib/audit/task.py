"""`TaskAudit`: tasks that no protected deployment started have their images verified.

    audit = TaskAudit(stack, "TaskAudit", controller=admission, alarm_topic=security_topic,
                      stop_unverified_tasks=True)

The deployment hook sees service deployments only. ``RunTask``, scheduled tasks (EventBridge
Scheduler, rules) and services the controller does not protect start images without asking it.
An EventBridge rule takes ECS's "ECS Task State Change" events of RUNNING tasks; the function
(``image_verifier.audits.task``) skips tasks that a protected service's deployment started
(confirmed with ``ecs:DescribeServices``, since RunTask can set any ``group`` and ``startedBy``),
verifies the digests every other task runs with the controller's policy, reports a task whose
images fail (``TasksRejected``, alarm through your topic) and, with ``stop_unverified_tasks``,
stops it with ``ecs:StopTask`` and a reason. The task runs between its start and the stop: see
docs/operations.md, "The task audit's window".
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import ArnFormat, Duration, RemovalPolicy, Stack, Token
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from constructs import Construct

from .._nag import acknowledge_wildcards
from .._tree import add_validation
from ..admission import _defaults as admission_defaults
from ..admission.controller import AdmissionController
from ._function import alarm_on, audit_function, audit_metric, lazy_string, unique

HANDLER = "image_verifier.audits.task.lambda_handler"
SERVICE_NAME = "image-task-audit"
ECS_DESCRIBE_SERVICES_ACTIONS = ("ecs:DescribeServices",)
ECS_STOP_TASK_ACTIONS = ("ecs:StopTask",)
# The documented event (ECS developer guide, "Amazon ECS task state change events").
TASK_SOURCE, TASK_DETAIL_TYPE = "aws.ecs", "ECS Task State Change"
DEFAULT_RETRY_ATTEMPTS = 2  # EventBridge's retries when the function fails (a misconfiguration, an outage)


class TaskAudit(Construct):
    """Verifies the images of every task a protected deployment did not start; optionally stops it."""

    def __init__(self, scope: Construct, id: str, *, controller: AdmissionController,
                 clusters: Sequence[ecs.ICluster] = (), stop_unverified_tasks: bool = False,
                 alarm_topic: sns.ITopic | None = None, memory_size: int = admission_defaults.MEMORY_MB,
                 timeout: Duration = admission_defaults.TIMEOUT,
                 log_retention: logs.RetentionDays = admission_defaults.LOG_RETENTION,
                 log_removal_policy: RemovalPolicy = admission_defaults.LOG_REMOVAL_POLICY) -> None:
        """
        :param controller: the admission controller: its policy judges the images, and the services
            it protects (``protect()``, read at synth) are skipped.
        :param clusters: watch (and stop tasks in) these clusters only. :default: - every cluster in
            this stack's account and region
        :param stop_unverified_tasks: stop a task with a rejected image (``ecs:StopTask``, with a
            reason). An ``unavailable`` image never stops a task. :default: False (report only)
        :param alarm_topic: where the alarms (rejected tasks, audit faults) notify.
            :default: - no alarms (the metrics are still written)
        :param memory_size: :default: 512
        :param timeout: :default: 60 seconds
        :param log_retention: :default: RetentionDays.ONE_YEAR
        :param log_removal_policy: :default: RemovalPolicy.RETAIN (the audit trail)
        """
        super().__init__(scope, id)
        if not isinstance(stop_unverified_tasks, bool):
            raise TypeError(f"stop_unverified_tasks must be True or False, got {stop_unverified_tasks!r}")
        self._controller = controller
        self.clusters = tuple(clusters)
        self.stop_unverified_tasks = stop_unverified_tasks
        self.function, self.role, self.log_group = audit_function(
            self, controller=controller, handler=HANDLER, service_name=SERVICE_NAME,
            description="Verifies the images of ECS tasks started outside protected deployments (task audit)",
            environment={"AUDIT_PROTECTED_SERVICES": lazy_string(self._protected_services),
                         "AUDIT_STOP_UNVERIFIED_TASKS": "true" if stop_unverified_tasks else "false"},
            memory_size=memory_size, timeout=timeout, log_retention=log_retention,
            log_removal_policy=log_removal_policy)
        self._grant_ecs()
        add_validation(self, self._check_names)
        self.rule = events.Rule(self, "RunningTasks", event_pattern=task_event_pattern(self.clusters),
                                description="ECS tasks that reached RUNNING, for the task audit")
        self.rule.add_target(targets.LambdaFunction(self.function, retry_attempts=DEFAULT_RETRY_ATTEMPTS))
        self.rejected_alarm = alarm_on(self, "RejectedAlarm", self.metric_rejected_tasks(), topic=alarm_topic,
                                       description="An ECS task started outside a protected deployment runs an image "
                                                   "without a valid signature from a trusted signer (task audit)")
        self.errors_alarm = alarm_on(self, "ErrorsAlarm", self.metric_errors(), topic=alarm_topic,
                                     description="The task audit met events it could not read, or StopTask failed")

    def metric_rejected_tasks(self, **props: object) -> cloudwatch.Metric:
        """Tasks running an image without a valid signature from a trusted signer. :default: Sum over 5 minutes"""
        return audit_metric(SERVICE_NAME, "TasksRejected", **props)

    def metric_stopped_tasks(self, **props: object) -> cloudwatch.Metric:
        return audit_metric(SERVICE_NAME, "TasksStopped", **props)

    def metric_unavailable_tasks(self, **props: object) -> cloudwatch.Metric:
        """Tasks not judged (the registry or AWS did not answer): never stopped, not retried."""
        return audit_metric(SERVICE_NAME, "TasksUnavailable", **props)

    def metric_errors(self, **props: object) -> cloudwatch.Metric:
        """Malformed events, failed StopTask calls and unexpected failures of the audit itself."""
        return audit_metric(SERVICE_NAME, "AuditErrors", **props)

    def _protected_services(self) -> str:
        """``["cluster/service", ...]`` of the controller's protected services, resolved at deploy time."""
        names = [name for name in (self._service_name(s) for s in self._controller.protected_services) if name]
        return Stack.of(self).to_json_string(unique(names))

    def _service_name(self, service: ecs.BaseService) -> str | None:
        """``cluster/service``: literal names where the app gave them, else deploy-time values of this stack.

        A name only known at deploy time in another stack would be imported from that stack, which
        already depends on this one through the hook: a cycle. ``_check_names`` says so at synth.
        """
        cluster, name = _physical_name(service.cluster, "cluster_name"), _physical_name(service, "service_name")
        if Stack.of(service) is not Stack.of(self):
            return f"{cluster}/{name}" if cluster and name else None
        return f"{cluster or service.cluster.cluster_name}/{name or service.service_name}"

    def _check_names(self) -> list[str]:
        return [
            f"protected service {s.node.path} is in stack {Stack.of(s).stack_name}, and TaskAudit {self.node.path} in "
            f"{Stack.of(self).stack_name}: its name is known only at deploy time, and reading it here would make the "
            "two stacks depend on each other; give the service a literal service_name and its cluster a literal "
            "cluster_name, or create the TaskAudit in the service's stack"
            for s in self._controller.protected_services if self._service_name(s) is None
        ]

    def _grant_ecs(self) -> None:
        stack = Stack.of(self)
        names = [c.cluster_name for c in self.clusters] or ["*"]

        def arns(resource: str) -> list[str]:
            return [stack.format_arn(service="ecs", resource=resource, resource_name=f"{n}/*" if n != "*" else "*",
                                     arn_format=ArnFormat.SLASH_RESOURCE_NAME) for n in names]

        # Confirming a task's claim to be a protected service's: its deployments (read-only).
        described = arns("service")
        self.role.add_to_principal_policy(iam.PolicyStatement(sid="ConfirmServiceTasks",
                                                              actions=list(ECS_DESCRIBE_SERVICES_ACTIONS),
                                                              resources=described))
        scoped = list(described)
        if self.stop_unverified_tasks:
            stopped = arns("task")
            self.role.add_to_principal_policy(iam.PolicyStatement(sid="StopUnverifiedTasks",
                                                                  actions=list(ECS_STOP_TASK_ACTIONS),
                                                                  resources=stopped))
            scoped += stopped
        acknowledge_wildcards(self.role, scoped, "ECS task and service ids are generated: the statements name the "
                              "watched clusters' tasks and services (every cluster of the account and region when no "
                              "cluster is given), and StopTask is granted only with stop_unverified_tasks.")


def _physical_name(construct: object, prop: str) -> str | None:
    """The literal name given to an ECS service or cluster (its L1 property), or None."""
    cfn = getattr(getattr(construct, "node", None), "default_child", None)
    value = getattr(cfn, prop, None)
    return value if isinstance(value, str) and not Token.is_unresolved(value) else None


def task_event_pattern(clusters: Sequence[ecs.ICluster] = ()) -> events.EventPattern:
    """The documented task state change event, for tasks that reached RUNNING (in these clusters)."""
    detail: dict[str, object] = {"lastStatus": ["RUNNING"], "desiredStatus": ["RUNNING"]}
    if clusters:
        detail["clusterArn"] = unique([c.cluster_arn for c in clusters])
    return events.EventPattern(source=[TASK_SOURCE], detail_type=[TASK_DETAIL_TYPE], detail=detail)
