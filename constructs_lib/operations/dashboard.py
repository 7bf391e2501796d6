"""`AdmissionDashboard`: one CloudWatch dashboard for an admission gate.

    AdmissionDashboard(stack, "GateDashboard", controller=admission)

Rows: decisions by outcome and images by verdict; latency (the function's p50/p99 measure and
Lambda's own duration against the timeout) and Lambda errors/throttles; cache hits and cold
starts; the refusals by reason and the break-glass admissions, read from the audit records with
Logs Insights; and the state of the controller's alarms (when it has ``alarms=``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from constructs import Construct

from . import _names
from .metrics import DecisionOutcome, ImageOutcome

if TYPE_CHECKING:
    from ..admission.controller import AdmissionController

WIDTH = 24  # the dashboard grid is 24 units wide
_AUDIT = f'filter auditRecord = "{_names.AUDIT_RECORD_VERSION}"'
# Logs Insights queries over the audit records (field names: docs/operations.md, "The audit record").
REFUSALS_BY_REASON = "\n".join([
    f'{_AUDIT} and hookStatus = "FAILED"',
    "| stats count(*) as refusals by errorKind, reason",
    "| sort refusals desc",
    "| limit 20",
])
# Logs Insights reads a JSON true as 1.
BREAK_GLASS_ADMISSIONS = "\n".join([
    f"{_AUDIT} and breakGlass = 1",
    "| fields @timestamp, service, revision, deployment, decision, function_request_id",
    "| sort @timestamp desc",
    "| limit 50",
])


class AdmissionDashboard(Construct):
    """A dashboard of one gate's decisions, latency, refusals, break-glass uses and alarms.

    :param controller: the gate to show.
    :param dashboard_name: :default: - a name CloudFormation generates
    :param alarms: alarms to show besides the controller's own. :default: - the controller's alarms only
    :param period: the period of every metric graph. :default: 5 minutes
    """

    def __init__(self, scope: Construct, id: str, *, controller: AdmissionController, dashboard_name: str | None = None,
                 alarms: Sequence[cloudwatch.IAlarm] = (), period: Duration | None = None) -> None:
        super().__init__(scope, id)
        c, period = controller, period or Duration.minutes(5)
        log_groups = [c.log_group.log_group_name]
        own_alarms = list(c.alarms.alarms) if getattr(c, "alarms", None) is not None else []
        self.dashboard = cloudwatch.Dashboard(self, "Resource", dashboard_name=dashboard_name)
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(title="Decisions by outcome", width=12, stacked=True, left=[
                c.metric_decisions(outcome=o, period=period, label=o.name.lower()) for o in DecisionOutcome]),
            cloudwatch.GraphWidget(title="Images by verdict", width=12, stacked=True, left=[
                c.metric_images(outcome=o, period=period, label=o.name.lower()) for o in ImageOutcome]),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(title="Decision latency (ms)", width=8, left=[
                c.metric_decision_latency(statistic="p50", period=period, label="p50"),
                c.metric_decision_latency(statistic="p99", period=period, label="p99")]),
            cloudwatch.GraphWidget(title="Lambda duration (ms) and timeout", width=8, left=[
                c.metric_duration(statistic="p50", period=period, label="p50"),
                c.metric_duration(statistic="p99", period=period, label="p99")],
                left_annotations=[cloudwatch.HorizontalAnnotation(
                    value=c.function.timeout.to_seconds() * 1000 if c.function.timeout else 3000, label="timeout")]),
            cloudwatch.GraphWidget(title="Faults", width=8, left=[
                c.metric_errors(period=period, label="Lambda errors"),
                c.metric_throttles(period=period, label="throttles"),
                c.metric_handler_errors(period=period, label="handler errors"),
                c.metric_unavailable(period=period, label="unavailable decisions")]),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(title="Cache hits and cold starts", width=8, left=[
                c.metric_cache_hits(period=period, label="cache hits"),
                c.metric_cold_starts(period=period, label="cold starts")]),
            cloudwatch.GraphWidget(title="Break-glass and warnings", width=8, left=[
                c.metric_break_glass_images(period=period, label="break-glass images"),
                c.metric_admitted_with_warnings(period=period, label="admitted with warnings")]),
            cloudwatch.AlarmStatusWidget(title="Alarms", width=8, alarms=[*own_alarms, *alarms])
            if own_alarms or alarms else cloudwatch.TextWidget(
                width=8, markdown="No alarms: pass `alarms=AdmissionAlarms(topic=...)` to the controller."),
        )
        self.dashboard.add_widgets(
            cloudwatch.LogQueryWidget(title="Refusals by reason (audit records)", width=12, height=8,
                                      log_group_names=log_groups, query_string=REFUSALS_BY_REASON,
                                      view=cloudwatch.LogQueryVisualizationType.TABLE),
            cloudwatch.LogQueryWidget(title="Break-glass admissions (audit records)", width=12, height=8,
                                      log_group_names=log_groups, query_string=BREAK_GLASS_ADMISSIONS,
                                      view=cloudwatch.LogQueryVisualizationType.TABLE),
        )
