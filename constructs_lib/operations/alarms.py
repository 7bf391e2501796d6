"""`AdmissionAlarms`: opt-in alarms on the admission gate, to a topic the caller owns.

    topic = sns.Topic(stack, "GateAlarms", enforce_ssl=True)
    AdmissionController(stack, "Admission", ..., alarms=AdmissionAlarms(topic=topic))

Each alarm sends ALARM and OK to ``topic``; no topic is ever created here. The alarms and their
defaults (docs/constructs/operations.md has the table; docs/operations.md the runbooks):

- ``Errors``, ``Throttles``: the function crashed, timed out or was throttled (ECS gets no valid
  answer: it rolls back);
- ``Duration``: p99 duration above ``duration_ratio`` of the timeout (the next step is a timeout);
- ``HandlerErrors``: refusals caused by a fault (malformed input, ECS refused, misconfiguration);
- ``Unavailable``: final decisions that an unanswered registry or AWS call decided;
- ``Rejections``: refused deployments above a threshold (a signing pipeline is broken, or someone
  is trying to deploy what is not signed);
- ``BreakGlassAdmissions``: any deployment admitted on a break-glass signature;
- ``AdmittedWithWarnings``: any image admitted although a check failed (a signer below ``strict``);
- per protected service, ``<controller>NotCalled``: ECS deployed the service but the gate made no
  decision for it (the hook was removed, or ECS no longer calls it). See `GateAlarms.watch`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_events as events
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from constructs import Construct

from . import _names

if TYPE_CHECKING:
    from ..admission.controller import AdmissionController

RUNBOOK = "docs/operations.md"
# ECS's service deployment state change event (developer guide, "service deployment state change events").
DEPLOYMENT_EVENT_SOURCE = "aws.ecs"
DEPLOYMENT_DETAIL_TYPE = "ECS Deployment State Change"
DEPLOYMENT_STARTED = "SERVICE_DEPLOYMENT_IN_PROGRESS"  # sent when a deployment (or its rollback) starts
MAX_ALARM_PERIOD = Duration.days(1)  # CloudWatch: period x evaluation periods at most one day
DEFAULT_PERIOD_MINUTES = 5  # aws-cdk-lib's metric period; one deployment's failures show within minutes
DEFAULT_REJECTIONS_MINUTES = 15  # a team retrying one unsigned image a few times is not yet an alarm
DEFAULT_NOT_CALLED_HOURS = 1  # a deployment that skipped the gate is known within two hours at most


@dataclass(frozen=True, kw_only=True)
class AdmissionAlarms:
    """Which alarms the controller raises, their thresholds, and where they go.

    :param topic: every alarm's ALARM and OK actions publish here (the caller owns it: its key,
        its subscriptions).
    :param period: the window of the error, throttle, duration, unavailable, handler-error and
        break-glass alarms. :default: 5 minutes
    :param errors_threshold: Lambda errors (crashes, timeouts) per period. :default: 1
    :param throttles_threshold: Lambda throttles per period. :default: 1
    :param duration_ratio: alarm when p99 duration exceeds this fraction of the timeout. :default: 0.8
    :param handler_errors_threshold: refusals caused by a fault per period. :default: 1
    :param unavailable_threshold: final unavailable decisions per period. :default: 1
    :param rejections_threshold: refused decisions per ``rejections_period``. :default: 5
    :param rejections_period: :default: 15 minutes
    :param break_glass: alarm on any deployment admitted on a break-glass signature. :default: True
    :param admitted_with_warnings: alarm on any image admitted although a check failed (its
        signer's verification level only logs that check). :default: True
    :param not_called_period: the window in which a deployment of a protected service with no
        decision for it raises ``NotCalled`` (1 to 24 hours, whole hours). :default: 1 hour
    """

    topic: sns.ITopic
    period: Duration | None = None
    errors_threshold: int = 1
    throttles_threshold: int = 1
    duration_ratio: float = 0.8
    handler_errors_threshold: int = 1
    unavailable_threshold: int = 1
    rejections_threshold: int = 5
    rejections_period: Duration | None = None
    break_glass: bool = True
    admitted_with_warnings: bool = True
    not_called_period: Duration | None = None

    def __post_init__(self) -> None:
        # Durations are jsii objects: defaults are filled here rather than shared between instances.
        for name, default in (("period", DEFAULT_PERIOD_MINUTES), ("rejections_period", DEFAULT_REJECTIONS_MINUTES)):
            if getattr(self, name) is None:
                object.__setattr__(self, name, Duration.minutes(default))
        if self.not_called_period is None:
            object.__setattr__(self, "not_called_period", Duration.hours(DEFAULT_NOT_CALLED_HOURS))
        if self.topic is None:
            raise ValueError("topic is required: pass the SNS topic that receives the gate's alarms")
        for name in ("errors_threshold", "throttles_threshold", "handler_errors_threshold", "unavailable_threshold",
                     "rejections_threshold"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number of at least 1, got {value!r}")
        if not 0 < self.duration_ratio < 1:
            raise ValueError(f"duration_ratio must be between 0 and 1 (a fraction of the timeout), got "
                             f"{self.duration_ratio!r}")
        for name in ("period", "rejections_period"):
            seconds = getattr(self, name).to_seconds()
            if seconds < 60 or seconds % 60 or seconds > MAX_ALARM_PERIOD.to_seconds():
                raise ValueError(f"{name} must be whole minutes between 1 minute and 1 day, got {seconds:g} seconds")
        hours = self.not_called_period.to_seconds() / 3600
        if hours != int(hours) or not 1 <= hours <= 24:
            raise ValueError(f"not_called_period must be whole hours between 1 and 24, got "
                             f"{self.not_called_period.to_seconds():g} seconds")


class GateAlarms(Construct):
    """The alarms of one `AdmissionController` (created by it when given ``alarms=``)."""

    def __init__(self, scope: Construct, id: str, *, controller: AdmissionController, props: AdmissionAlarms) -> None:
        super().__init__(scope, id)
        self.props = props
        self._controller = controller
        self.alarms: list[cloudwatch.Alarm] = []
        p, c = props, controller
        timeout = c.function.timeout.to_seconds() if c.function.timeout else 3
        self._add("Errors", c.metric_errors(period=p.period), p.errors_threshold,
                  "the admission function crashed or timed out: ECS rolled those deployments back")
        self._add("Throttles", c.metric_throttles(period=p.period), p.throttles_threshold,
                  "Lambda throttled the admission function: ECS rolled those deployments back")
        self._add("Duration", c.metric_duration(period=p.period, statistic="p99"),
                  p.duration_ratio * timeout * 1000, f"p99 duration above {p.duration_ratio:.0%} of the {timeout:g} s "
                  "timeout: the next step is a timeout (a rollback without an audit record)",
                  comparison=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD)
        self._add("HandlerErrors", c.metric_handler_errors(period=p.period), p.handler_errors_threshold,
                  "refusals caused by a fault (malformed event or ECS answer, ECS refused, misconfiguration, a bug)")
        self._add("Unavailable", c.metric_unavailable(period=p.period), p.unavailable_threshold,
                  "decisions that a registry or AWS API that did not answer decided (blocked in block mode)")
        self._add("Rejections", c.metric_rejections(period=p.rejections_period), p.rejections_threshold,
                  "refused deployments above the threshold: unsigned images are being deployed")
        if p.break_glass:
            self._add("BreakGlassAdmissions", c.metric_break_glass_images(period=p.period), 1,
                      "a deployment was admitted on a break-glass signature: review it")
        if p.admitted_with_warnings:
            self._add("AdmittedWithWarnings", c.metric_admitted_with_warnings(period=p.period), 1,
                      "an image was admitted although a check failed (a signer's verification level only logs it)")
        # One metric per ECS service, from the audit records: what `watch` compares with deployments.
        logs.MetricFilter(
            self, "DecisionsByEcsService", log_group=c.log_group,
            filter_pattern=logs.FilterPattern.all(
                logs.FilterPattern.string_value("$.auditRecord", "=", _names.AUDIT_RECORD_VERSION),
                logs.FilterPattern.string_value("$.service", "=", "arn:*")),
            metric_namespace=_names.NAMESPACE, metric_name=_names.DECISIONS_BY_SERVICE, metric_value="1",
            dimensions={_names.ECS_SERVICE_DIMENSION: "$.service"}, unit=cloudwatch.Unit.COUNT,
        )

    def watch(self, service: ecs.BaseService) -> cloudwatch.Alarm:
        """Alarm when ``service`` is deployed and the gate makes no decision for it.

        An EventBridge rule (no target: its ``AWS/Events MatchedEvents`` metric counts) matches the
        service's ``SERVICE_DEPLOYMENT_IN_PROGRESS`` events; the audit records give the decisions per
        service. The alarm is ``IF(deployments > 0 AND decisions == 0)`` over ``not_called_period``.
        Both live in the service's stack, as the hook's role does (the service depends on the
        controller, never the other way round). Limits: docs/constructs/operations.md.
        """
        prefix = self._controller.node.id
        rule = events.Rule(service, f"{prefix}Deployments", description=(
            f"Counts deployments of {service.node.path}, for the alarm that the image admission gate is called"),
            event_pattern=events.EventPattern(source=[DEPLOYMENT_EVENT_SOURCE], detail_type=[DEPLOYMENT_DETAIL_TYPE],
                                              resources=[service.service_arn],
                                              detail={"eventName": [DEPLOYMENT_STARTED]}))
        period = self.props.not_called_period
        deployments = cloudwatch.Metric(namespace="AWS/Events", metric_name="MatchedEvents",
                                        dimensions_map={"RuleName": rule.rule_name}, statistic="Sum", period=period)
        decisions = cloudwatch.Metric(namespace=_names.NAMESPACE, metric_name=_names.DECISIONS_BY_SERVICE,
                                      dimensions_map={_names.ECS_SERVICE_DIMENSION: service.service_arn},
                                      statistic="Sum", period=period)
        expression = cloudwatch.MathExpression(
            expression="IF(FILL(deployments, 0) > 0 AND FILL(decisions, 0) == 0, 1, 0)",
            using_metrics={"deployments": deployments, "decisions": decisions}, period=period,
            label="deployments without an admission decision")
        alarm = expression.create_alarm(
            service, f"{prefix}NotCalled", threshold=1, evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=self._describe(
                f"{service.node.path} was deployed but the image admission gate made no decision for it in "
                f"{period.to_hours():g} h: the hook is not being called"))
        self._notify(alarm)
        return alarm

    def _add(self, id: str, metric: cloudwatch.IMetric, threshold: float, why: str, *,
             comparison: cloudwatch.ComparisonOperator = cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
             ) -> cloudwatch.Alarm:
        alarm = metric.create_alarm(self, id, threshold=threshold, evaluation_periods=1, comparison_operator=comparison,
                                    treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                                    alarm_description=self._describe(why))
        self._notify(alarm)
        return alarm

    def _describe(self, why: str) -> str:
        return f"Image admission gate {self._controller.node.path}: {why}. Runbook: {RUNBOOK}"

    def _notify(self, alarm: cloudwatch.Alarm) -> None:
        action = actions.SnsAction(self.props.topic)
        alarm.add_alarm_action(action)
        alarm.add_ok_action(action)
        self.alarms.append(alarm)

