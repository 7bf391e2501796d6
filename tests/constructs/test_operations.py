"""Operating the gate (issue 11): metric_*() on AdmissionController, AdmissionAlarms, AdmissionDashboard,
X-Ray tracing; names agree with what the runtime's telemetry emits; cdk-nag v3 and cfn-lint clean."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from aws_cdk import Duration, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_sns as sns
from image_verifier.handler import settings as runtime_settings
from image_verifier.handler import telemetry

from constructs_lib import AdmissionAlarms, AdmissionDashboard, CosignSigningKey
from constructs_lib.admission import AdmissionController
from constructs_lib.admission import _defaults as admission_defaults
from constructs_lib.operations import DecisionOutcome, ImageOutcome, _names
from constructs_lib.operations.alarms import (
    DEPLOYMENT_DETAIL_TYPE,
    DEPLOYMENT_EVENT_SOURCE,
    DEPLOYMENT_STARTED,
)
from constructs_lib.operations.dashboard import (
    BREAK_GLASS_ADMISSIONS,
    REFUSALS_BY_REASON,
)
from tests.constructs.checks import (
    lint_errors,
    nag_findings,
    new_app,
    new_stack,
    resources,
)
from tests.runtime.handler.hook_support import (
    SERVICE_ARN,
    SIGNED,
    FakeVerifier,
    PlainEcs,
    admission_handler,
    answers,
    hook_event,
    policy,
)
from tests.runtime.handler.test_lambda_context import FakeLambdaContext

ECR = "111111111111.dkr.ecr.us-east-1.amazonaws.com"
# The documented ECS "service deployment in progress" event (developer guide, service deployment events).
DEPLOYMENT_EVENT = {
    "version": "0", "id": "ddca6449-b258-46c0-8653-e0e3a6EXAMPLE", "detail-type": "ECS Deployment State Change",
    "source": "aws.ecs", "account": "111111111111", "time": "2020-05-23T12:31:14Z", "region": "us-east-1",
    "resources": ["arn:aws:ecs:us-east-1:111111111111:service/default/servicetest"],
    "detail": {"eventType": "INFO", "eventName": "SERVICE_DEPLOYMENT_IN_PROGRESS", "deploymentId": "ecs-svc/123",
               "updatedAt": "2020-05-23T11:11:11Z", "reason": "ECS deployment deploymentId in progress."},
}


def _world(*, alarm_props: dict[str, Any] | None = None, dashboard: bool = False, **controller_props: Any):
    """A stack with a key, a repository and a BLUE_GREEN service protected by a controller."""
    app = new_app()
    stack = new_stack(app)
    topic = None
    if alarm_props is not None:
        topic = sns.Topic(stack, "GateAlarmsTopic", enforce_ssl=True)
        controller_props["alarms"] = AdmissionAlarms(topic=topic, **alarm_props)
    key = CosignSigningKey(stack, "CosignKey", alias="alias/team/cosign")
    repo = ecr.Repository(stack, "Repo", repository_name="team/app", image_scan_on_push=True)
    vpc = ec2.Vpc(stack, "Vpc", max_azs=2, nat_gateways=0, subnet_configuration=[
        ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC)])
    cluster = ecs.Cluster(stack, "Cluster", vpc=vpc)
    controller = AdmissionController(stack, "Admission", signing_keys=[key], repositories=[repo],
                                     image_patterns=[f"{ECR}/team/**"], **controller_props)
    task = ecs.FargateTaskDefinition(stack, "Task", runtime_platform=ecs.RuntimePlatform(
        cpu_architecture=ecs.CpuArchitecture.ARM64, operating_system_family=ecs.OperatingSystemFamily.LINUX))
    task.add_container("app", image=ecs.ContainerImage.from_registry(f"{ECR}/team/app:v1"))
    service = ecs.FargateService(stack, "Service", cluster=cluster, task_definition=task,
                                 deployment_strategy=ecs.DeploymentStrategy.BLUE_GREEN)
    controller.protect(service)
    if dashboard:
        AdmissionDashboard(stack, "GateDashboard", controller=controller)
    return app, stack, controller


@pytest.fixture(scope="module")
def operated():
    """A gate with default alarms to a topic the app owns, a dashboard, and tracing on."""
    app, stack, controller = _world(alarm_props={}, dashboard=True, tracing=True)
    template = app.synth().get_stack_by_name(stack.stack_name).template
    return app, stack, controller, template


@pytest.fixture(scope="module")
def plain():
    """A gate with nothing of issue 11 switched on."""
    app, stack, _controller = _world()
    return app.synth().get_stack_by_name(stack.stack_name).template


def _alarm(template: dict[str, Any], suffix: str) -> dict[str, Any]:
    [props] = [r["Properties"] for k, r in resources(template, "AWS::CloudWatch::Alarm").items()
               if re.fullmatch(rf"\w*{suffix}[0-9A-F]{{8}}", k)]
    return props


def _topic_ref(template: dict[str, Any]) -> dict[str, str]:
    [topic] = resources(template, "AWS::SNS::Topic")
    return {"Ref": topic}


def _mine(finding: str) -> bool:
    """Findings on what this issue adds: the controller (alarms, tracing), the service's rule and alarm, the dashboard."""
    return any(part in finding for part in ("/Admission/", "AdmissionDeployments", "AdmissionNotCalled", "GateDashboard"))


# --- names: the constructs read what the runtime writes --------------------------------------------

def test_metric_names_namespace_and_dimension_agree_with_the_runtime_telemetry():
    # Given the runtime's own constants (what the handler emits) and the construct's defaults
    runtime = {name: value for name, value in vars(telemetry).items() if name.startswith("METRIC_")}
    emitted = {v for value in runtime.values() for v in (value.values() if isinstance(value, dict) else [value])}
    known = {value for name, value in vars(_names).items() if name.isupper() and isinstance(value, str)}
    # Then every metric the runtime emits is one the constructs know, under the same namespace and dimension
    assert emitted <= known, emitted - known
    assert _names.NAMESPACE == runtime_settings.DEFAULT_NAMESPACE == admission_defaults.METRICS_NAMESPACE
    assert _names.SERVICE == runtime_settings.DEFAULT_SERVICE == admission_defaults.SERVICE_NAME
    assert _names.AUDIT_RECORD_VERSION == telemetry.AUDIT_RECORD_VERSION
    assert {o.value for o in ImageOutcome} == set(telemetry.METRIC_IMAGES.values())
    assert {o.value for o in DecisionOutcome} == {telemetry.METRIC_ADMITTED, telemetry.METRIC_REJECTED,
                                                  telemetry.METRIC_IN_PROGRESS}


def test_powertools_adds_the_service_dimension_the_metrics_name():
    # Given Powertools Metrics as the handler builds it (namespace and service from the controller's environment)
    from aws_lambda_powertools import Metrics
    from aws_lambda_powertools.metrics import MetricUnit

    metrics = Metrics(namespace=_names.NAMESPACE, service=_names.SERVICE)
    metrics.add_metric(name=telemetry.METRIC_REJECTED, unit=MetricUnit.Count, value=1)
    # When it serializes the EMF blob
    blob = metrics.serialize_metric_set()
    metrics.clear_metrics()
    [directive] = blob["_aws"]["CloudWatchMetrics"]
    # Then the namespace and the one dimension are the ones metric_*() reads
    assert directive["Namespace"] == _names.NAMESPACE
    assert directive["Dimensions"] == [[_names.SERVICE_DIMENSION]] and blob[_names.SERVICE_DIMENSION] == _names.SERVICE


def test_metric_methods_read_the_emitted_metrics_and_take_overrides(operated):
    _, stack, controller, _ = operated
    # When / Then each admission metric names the runtime's metric, namespace and dimension
    cases = {
        controller.metric_rejections(): telemetry.METRIC_REJECTED,
        controller.metric_admissions(): telemetry.METRIC_ADMITTED,
        controller.metric_decisions(outcome=DecisionOutcome.DEFERRED): telemetry.METRIC_IN_PROGRESS,
        controller.metric_unavailable(): telemetry.METRIC_UNAVAILABLE_DECISIONS,
        controller.metric_admitted_with_warnings(): telemetry.METRIC_ADMITTED_WITH_WARNINGS,
        controller.metric_cache_hits(): telemetry.METRIC_CACHE_HITS,
        controller.metric_cold_starts(): telemetry.METRIC_COLD_STARTS,
        controller.metric_break_glass_images(): telemetry.METRIC_BREAK_GLASS,
        controller.metric_handler_errors(): telemetry.METRIC_ERRORS,
        controller.metric_decision_latency(): telemetry.METRIC_LATENCY,
        controller.metric_images(outcome=ImageOutcome.UNAVAILABLE): "ImagesUnavailable",
    }
    for metric, name in cases.items():
        assert (metric.namespace, metric.metric_name) == (_names.NAMESPACE, name)
        assert metric.dimensions == {_names.SERVICE_DIMENSION: _names.SERVICE}
    assert controller.metric_rejections().statistic == "Sum"
    assert controller.metric_rejections().period.to_seconds() == 300
    # And props override the defaults, as aws-cdk-lib's metric_*() do
    custom = controller.metric_rejections(period=Duration.hours(1), statistic="Maximum", label="refused")
    assert (custom.period.to_seconds(), custom.statistic, custom.label) == (3600, "Maximum", "refused")
    # And the function's own metrics come from AWS/Lambda
    errors = controller.metric_errors()
    assert (errors.namespace, errors.metric_name) == ("AWS/Lambda", "Errors")
    assert stack.resolve(errors.dimensions["FunctionName"]) == stack.resolve(controller.function.function_name)
    assert controller.metric_throttles().metric_name == "Throttles"
    assert controller.metric_duration().metric_name == "Duration"


def test_rejects_metric_decisions_when_outcome_is_not_a_decision_outcome(operated):
    _, _, controller, _ = operated
    with pytest.raises(TypeError, match=r"outcome must be a DecisionOutcome .* got 'refused'"):
        controller.metric_decisions(outcome="refused")


# --- alarms ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("suffix", "namespace", "metric", "threshold", "period", "comparison"), [
    ("Errors", "AWS/Lambda", "Errors", 1, 300, "GreaterThanOrEqualToThreshold"),
    ("Throttles", "AWS/Lambda", "Throttles", 1, 300, "GreaterThanOrEqualToThreshold"),
    ("Duration", "AWS/Lambda", "Duration", 48_000, 300, "GreaterThanThreshold"),  # 80 % of the 60 s timeout
    ("HandlerErrors", _names.NAMESPACE, "HandlerErrors", 1, 300, "GreaterThanOrEqualToThreshold"),
    ("Unavailable", _names.NAMESPACE, "UnavailableDecisions", 1, 300, "GreaterThanOrEqualToThreshold"),
    ("Rejections", _names.NAMESPACE, "Rejected", 5, 900, "GreaterThanOrEqualToThreshold"),
    ("BreakGlassAdmissions", _names.NAMESPACE, "BreakGlassImages", 1, 300, "GreaterThanOrEqualToThreshold"),
    ("AdmittedWithWarnings", _names.NAMESPACE, "AdmittedWithWarnings", 1, 300, "GreaterThanOrEqualToThreshold"),
])
def test_alarms_have_the_documented_defaults_and_notify_the_callers_topic(operated, suffix, namespace, metric,
                                                                          threshold, period, comparison):
    _, _, _, template = operated
    alarm = _alarm(template, f"AdmissionAlarms{suffix}")
    assert (alarm["Namespace"], alarm["MetricName"]) == (namespace, metric)
    assert (alarm["Threshold"], alarm["Period"], alarm["EvaluationPeriods"]) == (threshold, period, 1)
    assert alarm["ComparisonOperator"] == comparison and alarm["TreatMissingData"] == "notBreaching"
    assert alarm["AlarmActions"] == [_topic_ref(template)] == alarm["OKActions"]
    assert "Runbook: docs/operations.md" in alarm["AlarmDescription"]
    if suffix == "Duration":
        assert alarm["ExtendedStatistic"] == "p99"
    elif namespace == _names.NAMESPACE:
        assert alarm["Dimensions"] == [{"Name": "service", "Value": "image-admission"}]


def test_alarms_never_create_a_topic(operated):
    # Given one topic, made by the app
    _, _, _, template = operated
    # Then it is the only one: the alarms use it and add none
    assert len(resources(template, "AWS::SNS::Topic")) == 1


def test_thresholds_and_periods_are_overridable():
    # Given non-default thresholds and a 30 s timeout
    app, stack, _ = _world(timeout=Duration.seconds(30), alarm_props={
        "rejections_threshold": 2, "rejections_period": Duration.minutes(60), "duration_ratio": 0.5, "break_glass": False,
        "admitted_with_warnings": False,
        "not_called_period": Duration.hours(6), "period": Duration.minutes(1)})
    template = app.synth().get_stack_by_name(stack.stack_name).template
    # Then the alarms follow them
    rejections = _alarm(template, "AdmissionAlarmsRejections")
    assert (rejections["Threshold"], rejections["Period"]) == (2, 3600)
    duration = _alarm(template, "AdmissionAlarmsDuration")
    assert (duration["Threshold"], duration["Period"]) == (15_000, 60)
    assert not [k for k in resources(template, "AWS::CloudWatch::Alarm") if "BreakGlass" in k or "Warnings" in k]
    not_called = _alarm(template, "ServiceAdmissionNotCalled")
    assert {m["MetricStat"]["Period"] for m in not_called["Metrics"] if "MetricStat" in m} == {6 * 3600}


@pytest.mark.parametrize(("props", "message"), [
    ({"topic": None}, "topic is required"),
    ({"rejections_threshold": 0}, "rejections_threshold must be a whole number of at least 1, got 0"),
    ({"errors_threshold": True}, "errors_threshold must be a whole number of at least 1, got True"),
    ({"duration_ratio": 1.2}, r"duration_ratio must be between 0 and 1 .* got 1.2"),
    ({"period": Duration.seconds(90)}, "period must be whole minutes between 1 minute and 1 day, got 90 seconds"),
    ({"not_called_period": Duration.minutes(30)}, "not_called_period must be whole hours between 1 and 24, got 1800"),
    ({"not_called_period": Duration.hours(25)}, "not_called_period must be whole hours between 1 and 24"),
])
def test_rejects_alarm_props_when_a_value_is_out_of_range(props, message):
    app = new_app()
    stack = Stack(app, "S")
    with pytest.raises(ValueError, match=message):
        AdmissionAlarms(**{"topic": sns.Topic(stack, "T"), **props})


# --- the gate is not called while deployments happen -----------------------------------------------

def test_deployment_rule_matches_the_documented_ecs_deployment_event_of_the_protected_service(operated):
    _, _, _, template = operated
    [(rule_id, rule)] = resources(template, "AWS::Events::Rule").items()
    pattern = rule["Properties"]["EventPattern"]
    [service_id] = resources(template, "AWS::ECS::Service")
    # Then it names the protected service (its Ref is the service ARN) and the deployment start
    assert pattern == {"source": [DEPLOYMENT_EVENT_SOURCE], "detail-type": [DEPLOYMENT_DETAIL_TYPE],
                       "resources": [{"Ref": service_id}], "detail": {"eventName": [DEPLOYMENT_STARTED]}}
    # And the literals are the documented event's
    assert DEPLOYMENT_EVENT["source"] in pattern["source"]
    assert DEPLOYMENT_EVENT["detail-type"] in pattern["detail-type"]
    assert DEPLOYMENT_EVENT["detail"]["eventName"] in pattern["detail"]["eventName"]
    # And no target: the rule exists only for its AWS/Events MatchedEvents metric
    assert "Targets" not in rule["Properties"] and rule_id.startswith("ServiceAdmissionDeployments")


def test_not_called_alarm_compares_the_services_deployments_with_its_decisions(operated):
    _, _, _, template = operated
    alarm = _alarm(template, "ServiceAdmissionNotCalled")
    [rule_id] = resources(template, "AWS::Events::Rule")
    [service_id] = resources(template, "AWS::ECS::Service")
    metrics = {m["Id"]: m for m in alarm["Metrics"]}
    [expression] = [m for m in alarm["Metrics"] if "Expression" in m]
    # Then: ALARM when the service was deployed in the window and the gate decided nothing for it
    assert expression["Expression"] == "IF(FILL(deployments, 0) > 0 AND FILL(decisions, 0) == 0, 1, 0)"
    assert (alarm["Threshold"], alarm["EvaluationPeriods"], alarm["TreatMissingData"]) == (1, 1, "notBreaching")
    deployments = metrics["deployments"]["MetricStat"]
    assert deployments["Metric"] == {"Namespace": "AWS/Events", "MetricName": "MatchedEvents",
                                     "Dimensions": [{"Name": "RuleName", "Value": {"Ref": rule_id}}]}
    decisions = metrics["decisions"]["MetricStat"]
    assert decisions["Metric"] == {"Namespace": _names.NAMESPACE, "MetricName": _names.DECISIONS_BY_SERVICE,
                                   "Dimensions": [{"Name": _names.ECS_SERVICE_DIMENSION, "Value": {"Ref": service_id}}]}
    assert deployments["Period"] == decisions["Period"] == 3600
    assert alarm["AlarmActions"] == [_topic_ref(template)]


def test_decisions_by_service_filter_reads_fields_a_real_audit_record_has(operated):
    # Given a real audit record written by the runtime
    admission = admission_handler(policy(), PlainEcs(*answers()), verifier=FakeVerifier(SIGNED))
    admission.handle(hook_event())
    [record] = admission.audit_records()
    _, _, _, template = operated
    [metric_filter] = [r["Properties"] for r in resources(template, "AWS::Logs::MetricFilter").values()]
    [transformation] = metric_filter["MetricTransformations"]
    # Then the filter selects it (auditRecord, and a service ARN) and its dimension is the ECS service ARN
    assert metric_filter["FilterPattern"] == (
        f'{{ ($.auditRecord = "{record["auditRecord"]}") && ($.service = "arn:*") }}')
    assert record["service"] == SERVICE_ARN and record["service"].startswith("arn:")
    assert transformation["Dimensions"] == [{"Key": _names.ECS_SERVICE_DIMENSION, "Value": "$.service"}]
    assert (transformation["MetricNamespace"], transformation["MetricName"]) == (_names.NAMESPACE,
                                                                                _names.DECISIONS_BY_SERVICE)


# --- dashboard -------------------------------------------------------------------------------------

def _dashboard_body(stack: Stack, template: dict[str, Any]) -> str:
    [dashboard] = resources(template, "AWS::CloudWatch::Dashboard").values()
    body = dashboard["Properties"]["DashboardBody"]
    parts = body["Fn::Join"][1] if isinstance(body, dict) else [body]
    return "".join(p if isinstance(p, str) else json.dumps(p) for p in parts)


def test_dashboard_shows_decisions_latency_cache_break_glass_refusals_and_alarms(operated):
    _, stack, _, template = operated
    body = _dashboard_body(stack, template)
    # Then the metric widgets read the emitted metrics
    for name in ("Admitted", "Rejected", "InProgress", "ImagesVerified", "ImagesRejected", "DecisionLatency",
                 "CacheHits", "ColdStarts", "BreakGlassImages", "UnavailableDecisions", "HandlerErrors"):
        assert f'"{name}"' in body, name
    assert '"p50"' in body and '"p99"' in body
    # And the Logs Insights widgets query the audit records by their fields
    assert 'filter auditRecord = \\"image-admission/v1\\" and hookStatus = \\"FAILED\\"' in body
    assert "stats count(*) as refusals by errorKind, reason" in body
    assert "and breakGlass = 1" in body
    # And the alarm status widget lists the controller's alarms (and the service's NotCalled one is on the service)
    assert '"type":"alarm"' in body.replace(" ", "")


def test_dashboard_queries_name_fields_that_a_real_audit_record_has():
    # Given a real record
    admission = admission_handler(policy(), PlainEcs(*answers()), verifier=FakeVerifier([]))
    admission.handle(hook_event(), FakeLambdaContext())
    [record] = admission.audit_records()
    # Then every field the queries read is in it
    for query, fields in ((REFUSALS_BY_REASON, ("auditRecord", "hookStatus", "reason")),
                          (BREAK_GLASS_ADMISSIONS, ("auditRecord", "breakGlass", "service", "revision", "deployment",
                                                    "decision", "function_request_id"))):
        for field in fields:
            assert field in query and field in record, field
    assert record["hookStatus"] == "FAILED" and record["breakGlass"] is False


# --- tracing and defaults --------------------------------------------------------------------------

def test_tracing_is_off_by_default_and_nothing_of_this_issue_is_created(plain):
    [function] = resources(plain, "AWS::Lambda::Function").values()
    assert "TracingConfig" not in function["Properties"]
    assert function["Properties"]["Environment"]["Variables"]["POWERTOOLS_TRACE_DISABLED"] == "true"
    for type_ in ("AWS::CloudWatch::Alarm", "AWS::Events::Rule", "AWS::Logs::MetricFilter", "AWS::CloudWatch::Dashboard"):
        assert resources(plain, type_) == {}, type_


def test_tracing_on_sets_active_and_powertools(operated):
    _, _, _, template = operated
    [function] = resources(template, "AWS::Lambda::Function").values()
    assert function["Properties"]["TracingConfig"] == {"Mode": "Active"}
    assert function["Properties"]["Environment"]["Variables"]["POWERTOOLS_TRACE_DISABLED"] == "false"


def test_operated_gate_is_clean_under_cdk_nag_and_cfn_lint(operated):
    app, _, _, template = operated
    # Then nothing this issue adds (alarms, rule, dashboard, the X-Ray grant) is a cdk-nag finding
    assert [f for f in nag_findings(app) if _mine(f)] == []
    # And the template has no cfn-lint error
    assert lint_errors(template) == []


# --- the reference app -----------------------------------------------------------------------------

def test_reference_app_alarms_on_its_gate_and_has_its_dashboard(reference_app):
    _, assembly = reference_app
    template = assembly.get_stack_by_name("SignedImagesAdmission").template
    # Then the gate's alarms (and the service's NotCalled) go to the app's own topic, and the dashboard exists
    topic = _topic_ref(template)
    alarms = resources(template, "AWS::CloudWatch::Alarm")
    assert {re.sub(r"[0-9A-F]{8}$", "", k) for k in alarms} >= {
        "AdmissionAlarmsErrors", "AdmissionAlarmsThrottles", "AdmissionAlarmsDuration", "AdmissionAlarmsUnavailable",
        "AdmissionAlarmsRejections", "AdmissionAlarmsHandlerErrors", "ServiceAdmissionNotCalled"}
    assert all(a["Properties"]["AlarmActions"] == [topic] for a in alarms.values())
    assert len(resources(template, "AWS::CloudWatch::Dashboard")) == 1
