"""PushAudit and TaskAudit: their EventBridge patterns against the documented events, the queue,
the functions (the controller's bundle and policy), scoped IAM, alarms, cdk-nag and cfn-lint."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from aws_cdk import Duration, Environment, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk.assertions import Match, Template

from constructs_lib import CosignSigningKey
from constructs_lib.admission import AdmissionController
from constructs_lib.audit import PushAudit, TaskAudit
from tests.constructs.checks import (
    as_list,
    lint_errors,
    nag_findings,
    new_app,
    new_stack,
    resources,
)
from tests.support.audit_events import CLUSTER_ARN, ecr_push_event, task_state_change

ECR = "111111111111.dkr.ecr.us-east-1.amazonaws.com"


def _world(*, topic: bool = True, stop: bool = True):
    app = new_app()
    stack = new_stack(app)
    key = CosignSigningKey(stack, "CosignKey", alias="alias/team/cosign")
    repo = ecr.Repository(stack, "Repo", repository_name="team/app")
    vpc = ec2.Vpc(stack, "Vpc", max_azs=2, nat_gateways=0, subnet_configuration=[
        ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC)])
    vpc.add_flow_log("FlowLog")
    cluster = ecs.Cluster(stack, "Cluster", vpc=vpc, cluster_name="prod",
                          container_insights_v2=ecs.ContainerInsights.ENABLED)
    controller = AdmissionController(stack, "Admission", signing_keys=[key], repositories=[repo],
                                     image_patterns=[f"{ECR}/team/**"])
    alarm_topic = sns.Topic(stack, "Alarms", enforce_ssl=True) if topic else None
    push = PushAudit(stack, "PushAudit", controller=controller, alarm_topic=alarm_topic)
    task = TaskAudit(stack, "TaskAudit", controller=controller, clusters=[cluster], stop_unverified_tasks=stop,
                     alarm_topic=alarm_topic)
    definition = ecs.FargateTaskDefinition(stack, "ServiceTask")
    definition.add_container("app", image=ecs.ContainerImage.from_registry(f"{ECR}/team/app:v1"),
                             logging=ecs.LogDrivers.aws_logs(stream_prefix="app", log_group=logs.LogGroup(
                                 stack, "AppLogs", retention=logs.RetentionDays.ONE_MONTH)))
    service = ecs.FargateService(stack, "Service", cluster=cluster, task_definition=definition,
                                 deployment_strategy=ecs.DeploymentStrategy.BLUE_GREEN, service_name="payments-api")
    controller.protect(service)  # after TaskAudit: the protected services are read at synth
    return app, stack, push, task


@pytest.fixture(scope="module")
def synthesized():
    app, stack, _, _ = _world()
    assembly = app.synth()
    return app, assembly, stack, Template.from_stack(stack)


def _matches(pattern: Any, event: Any) -> bool:
    """EventBridge matching for what these patterns use: nested objects and lists of exact values."""
    if isinstance(pattern, dict):
        return isinstance(event, dict) and all(k in event and _matches(v, event[k]) for k, v in pattern.items())
    values = event if isinstance(event, list) else [event]
    return any(v in pattern for v in values)


def _deployed(template: Template, value: Any) -> Any:
    """`value` with the repository names and cluster ARNs that CloudFormation fills in at deploy time."""
    found = template.to_json()["Resources"]
    if isinstance(value, list):
        return [_deployed(template, v) for v in value]
    if isinstance(value, dict):
        ref = value.get("Ref")
        if ref in found and found[ref]["Type"] == "AWS::ECR::Repository":
            return found[ref]["Properties"]["RepositoryName"]
        attribute = value.get("Fn::GetAtt")
        if attribute and found.get(attribute[0], {}).get("Type") == "AWS::ECS::Cluster":
            return CLUSTER_ARN.replace("/prod", "/" + found[attribute[0]]["Properties"]["ClusterName"])
        return {k: _deployed(template, v) for k, v in value.items()}
    return value


def _rule(template: Template, source: str) -> dict[str, Any]:
    [rule] = [r for r in resources(template.to_json(), "AWS::Events::Rule").values()
              if r["Properties"]["EventPattern"]["source"] == [source]]
    return rule["Properties"]


def _function(template: Template, handler: str) -> dict[str, Any]:
    [function] = [f for f in resources(template.to_json(), "AWS::Lambda::Function").values()
                  if f["Properties"]["Handler"] == handler]
    return function["Properties"]


# --- the EventBridge patterns against the documented events --------------------------------------------

def test_push_rule_matches_the_documented_ecr_push_event(synthesized):
    # Given the rule as synthesized
    pattern = _deployed(synthesized[3], _rule(synthesized[3], "aws.ecr")["EventPattern"])
    # Then the documented push event of a watched repository matches, and nothing else does
    assert _matches(pattern, ecr_push_event("team/app", "sha256:" + "ab" * 32, "v1"))
    assert _matches(pattern, ecr_push_event("team/app", "sha256:" + "ab" * 32, None))  # pushed by digest
    assert not _matches(pattern, ecr_push_event("team/other", "sha256:" + "ab" * 32, "v1"))
    assert not _matches(pattern, ecr_push_event("team/app", "sha256:" + "ab" * 32, "v1", action="DELETE"))
    assert not _matches(pattern, ecr_push_event("team/app", "sha256:" + "ab" * 32, "v1", result="FAILURE"))
    assert pattern == {"source": ["aws.ecr"], "detail-type": ["ECR Image Action"],
                       "detail": {"action-type": ["PUSH"], "result": ["SUCCESS"], "repository-name": ["team/app"]}}


def test_task_rule_matches_the_documented_task_state_change_event_of_running_tasks(synthesized):
    template = synthesized[3]
    # The cluster ARN is a deploy-time value (the watched cluster's), filled in as CloudFormation would
    pattern = _deployed(template, _rule(template, "aws.ecs")["EventPattern"])
    assert pattern["detail"]["clusterArn"] == [CLUSTER_ARN]
    running = task_state_change([("app", f"{ECR}/team/app:v1", "sha256:" + "ab" * 32)])
    assert _matches(pattern, running)
    assert not _matches(pattern, task_state_change([("app", "x:v1", None)], last_status="PENDING"))
    stopping = task_state_change([("app", "x:v1", None)])
    stopping["detail"]["desiredStatus"] = "STOPPED"
    assert not _matches(pattern, stopping)
    other = task_state_change([("app", "x:v1", None)])
    other["detail"]["clusterArn"] = CLUSTER_ARN.replace("/prod", "/staging")
    assert not _matches(pattern, other)
    assert pattern["source"] == ["aws.ecs"] and pattern["detail-type"] == ["ECS Task State Change"]


# --- the push audit's queue and function --------------------------------------------------------------

def test_push_audit_delays_pushes_in_an_encrypted_queue_with_a_dead_letter_queue(synthesized):
    template = synthesized[3]
    template.has_resource_properties("AWS::SQS::Queue", {
        "DelaySeconds": 300, "SqsManagedSseEnabled": True, "VisibilityTimeout": 360,
        "RedrivePolicy": {"deadLetterTargetArn": Match.any_value(), "maxReceiveCount": 3}})
    rule = _rule(template, "aws.ecr")
    [target] = rule["Targets"]
    assert "Fn::GetAtt" in target["Arn"] and "PushAuditQueue" in target["Arn"]["Fn::GetAtt"][0]
    template.has_resource_properties("AWS::SQS::QueuePolicy", {"PolicyDocument": {"Statement": Match.array_with([
        Match.object_like({"Action": Match.array_with(["sqs:SendMessage"]), "Principal": {"Service": "events.amazonaws.com"},
                           "Condition": {"ArnEquals": {"aws:SourceArn": Match.any_value()}}})])}})
    template.has_resource_properties("AWS::Lambda::EventSourceMapping", {
        "BatchSize": 10, "FunctionResponseTypes": ["ReportBatchItemFailures"]})


def test_audit_functions_run_the_controllers_bundle_and_policy(synthesized):
    template = synthesized[3]
    hook = _function(template, "image_verifier.handler.app.lambda_handler")
    for handler in ("image_verifier.audits.push.lambda_handler", "image_verifier.audits.task.lambda_handler"):
        function = _function(template, handler)
        # the same asset (same files, same policy document), runtime and architecture
        assert function["Code"] == hook["Code"]
        assert (function["Runtime"], function["Architectures"]) == (hook["Runtime"], hook["Architectures"])
        env = function["Environment"]["Variables"]
        assert env["ADMISSION_POLICY_FILE"] == hook["Environment"]["Variables"]["ADMISSION_POLICY_FILE"]
        # the policy's deploy-time values travel as the hook's variables
        for name, value in hook["Environment"]["Variables"].items():
            if name.startswith(("ADMISSION_KMS_KEY_", "ADMISSION_IMAGES_")):
                assert env[name] == value


def test_push_audit_may_read_the_managed_signing_status_of_its_repositories(synthesized):
    template = synthesized[3]
    [statement] = [s for s in _role_policy(template, "PushAuditRole")
                   if "ecr:DescribeImageSigningStatus" in as_list(s["Action"])]
    [repository] = resources(template.to_json(), "AWS::ECR::Repository")
    assert statement["Resource"] == {"Fn::GetAtt": [repository, "Arn"]}
    env = _function(template, "image_verifier.audits.push.lambda_handler")["Environment"]["Variables"]
    assert env["AUDIT_MAX_RECEIVE_COUNT"] == "3"


def test_task_audit_reads_the_protected_services_at_synth_and_may_stop_tasks(synthesized):
    template = synthesized[3]
    env = _function(template, "image_verifier.audits.task.lambda_handler")["Environment"]["Variables"]
    assert env["AUDIT_STOP_UNVERIFIED_TASKS"] == "true"
    # protect() ran after TaskAudit was created, and the service is still listed (cluster/service)
    assert json.loads(env["AUDIT_PROTECTED_SERVICES"]) == ["prod/payments-api"]
    policy = _role_policy(template, "TaskAuditRole")
    stop = [s for s in policy if "ecs:StopTask" in as_list(s["Action"])]
    assert len(stop) == 1 and _arn_text(stop[0]["Resource"]) == "arn:<AWS::Partition>:ecs:us-east-1:111111111111:task/<Cluster>/*"
    describe = [s for s in policy if "ecs:DescribeServices" in as_list(s["Action"])]
    assert _arn_text(describe[0]["Resource"]) == "arn:<AWS::Partition>:ecs:us-east-1:111111111111:service/<Cluster>/*"


def test_task_audit_reads_generated_service_names_of_its_own_stack_at_deploy_time():
    app = new_app()
    stack = new_stack(app)
    controller = _controller(stack)
    task = TaskAudit(stack, "TaskAudit", controller=controller)
    controller.protect(_fargate_service(stack, "Service", _cluster(stack, "Cluster")))
    rendered = json.dumps(_task_environment(stack)["AUDIT_PROTECTED_SERVICES"])
    assert '"Ref": "Cluster' in rendered and '{"Fn::GetAtt": ["Service' in rendered
    assert task.node.validate() == []


def test_task_audit_reads_literal_names_of_a_service_in_another_stack():
    # Given the audit in the controller's stack and a service with literal names in another stack
    app = new_app()
    stack = new_stack(app)
    controller = _controller(stack)
    task = TaskAudit(stack, "TaskAudit", controller=controller)
    services = new_stack(app, "Services")
    controller.protect(_fargate_service(services, "Service", _cluster(services, "Cluster", name="prod"),
                                        name="payments-api"))
    # Then the names are written as literals: no reference, so no cycle between the stacks
    assert json.loads(_task_environment(stack)["AUDIT_PROTECTED_SERVICES"]) == ["prod/payments-api"]
    assert task.node.validate() == []


def test_rejects_protected_service_when_its_generated_name_is_in_another_stack():
    app = new_app()
    stack = new_stack(app)
    controller = _controller(stack)
    task = TaskAudit(stack, "TaskAudit", controller=controller)
    services = new_stack(app, "Services")
    controller.protect(_fargate_service(services, "Service", _cluster(services, "Cluster")))
    [error] = [str(e) for e in task.node.validate()]
    assert "protected service Services/Service is in stack Services" in error
    assert "give the service a literal service_name" in error and "or create the TaskAudit in the service's stack" in error


def _task_environment(stack) -> dict[str, Any]:
    """The task audit function's environment as synthesized (synth fails on a cycle between stacks)."""
    return _function(Template.from_stack(stack), "image_verifier.audits.task.lambda_handler")["Environment"]["Variables"]


def _cluster(stack, id: str, *, name: str | None = None) -> ecs.Cluster:
    vpc = ec2.Vpc(stack, f"{id}Vpc", max_azs=2, nat_gateways=0, subnet_configuration=[
        ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC)])
    return ecs.Cluster(stack, id, vpc=vpc, cluster_name=name)


def _fargate_service(stack, id: str, cluster: ecs.Cluster, *, name: str | None = None) -> ecs.FargateService:
    definition = ecs.FargateTaskDefinition(stack, f"{id}Task")
    definition.add_container("app", image=ecs.ContainerImage.from_registry(f"{ECR}/team/app:v1"))
    return ecs.FargateService(stack, id, cluster=cluster, task_definition=definition, service_name=name,
                              deployment_strategy=ecs.DeploymentStrategy.BLUE_GREEN)


def test_task_audit_may_not_stop_tasks_unless_asked():
    _, stack, _, _ = _world(stop=False)
    template = Template.from_stack(stack)
    assert not [s for s in _role_policy(template, "TaskAuditRole") if "ecs:StopTask" in as_list(s["Action"])]
    assert _function(template, "image_verifier.audits.task.lambda_handler")["Environment"]["Variables"][
        "AUDIT_STOP_UNVERIFIED_TASKS"] == "false"


def test_audit_roles_read_only_what_the_policy_names(synthesized):
    template = synthesized[3]
    for role in ("PushAuditRole", "TaskAuditRole"):
        actions = {a for s in _role_policy(template, role) for a in as_list(s["Action"])}
        assert "ecs:DescribeServiceRevisions" not in actions and "ecs:DescribeTaskDefinition" not in actions
        assert {"ecr:GetAuthorizationToken", "ecr:BatchGetImage", "kms:GetPublicKey"} <= actions
        assert not any(a.endswith("*") for a in actions)


def test_alarms_notify_the_topic_passed_and_none_exist_without_one(synthesized):
    template = synthesized[3]
    alarms = resources(template.to_json(), "AWS::CloudWatch::Alarm")
    names = {m["Properties"].get("MetricName") for m in alarms.values()}
    assert {"PushesRejected", "TasksRejected", "AuditErrors", "ApproximateNumberOfMessagesVisible"} <= names
    for alarm in alarms.values():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": Match.any_value()}] or alarm["Properties"]["AlarmActions"]
        assert alarm["Properties"]["TreatMissingData"] == "notBreaching"
    _, stack, _, _ = _world(topic=False)
    assert resources(Template.from_stack(stack).to_json(), "AWS::CloudWatch::Alarm") == {}


def test_rejected_push_metric_is_the_one_the_function_writes(synthesized):
    push = PushAudit.metric_rejected_pushes
    assert push is not None
    template = synthesized[3]
    [alarm] = [a for a in resources(template.to_json(), "AWS::CloudWatch::Alarm").values()
               if a["Properties"].get("MetricName") == "PushesRejected"]
    assert alarm["Properties"]["Namespace"] == "SignedImages/Admission"
    assert alarm["Properties"]["Dimensions"] == [{"Name": "service", "Value": "image-push-audit"}]
    assert alarm["Properties"]["Statistic"] == "Sum" and alarm["Properties"]["Threshold"] == 1


def test_audits_are_clean_under_cdk_nag_and_cfn_lint(synthesized):
    app, assembly = synthesized[0], synthesized[1]
    assert nag_findings(app) == []
    for stack in assembly.stacks:
        assert lint_errors(stack.template) == [], stack.stack_name


# --- refusals -----------------------------------------------------------------------------------------

def test_rejects_delay_when_longer_than_the_sqs_limit():
    app = new_app()
    stack = new_stack(app)
    controller = _controller(stack)
    with pytest.raises(ValueError, match="delay must be between 0 and 15 minutes"):
        PushAudit(stack, "PushAudit", controller=controller, delay=Duration.minutes(16))


def test_rejects_repository_when_in_another_account():
    app = new_app()
    stack = new_stack(app)
    controller = _controller(stack)
    other = ecr.Repository.from_repository_arn(stack, "Other", "arn:aws:ecr:us-east-1:222222222222:repository/team/other")
    with pytest.raises(ValueError, match="ECR sends push events to the registry's own account"):
        PushAudit(stack, "PushAudit", controller=controller, repositories=[other])


def test_rejects_controller_when_not_an_admission_controller():
    app = new_app()
    stack = Stack(app, "Stack", env=Environment(account="111111111111", region="us-east-1"))
    with pytest.raises(TypeError, match="controller must be an AdmissionController"):
        TaskAudit(stack, "TaskAudit", controller=object())  # type: ignore[arg-type]


def _arn_text(value: Any) -> str:
    """An Fn::Join ARN as text, each Ref written <LogicalIdPrefix> (hashes dropped)."""
    parts = value["Fn::Join"][1]
    return "".join(p if isinstance(p, str) else "<" + re.sub(r"[0-9A-F]{8}$", "", p["Ref"]) + ">" for p in parts)


def _controller(stack) -> AdmissionController:
    key = CosignSigningKey(stack, "CosignKey", alias="alias/team/cosign")
    repo = ecr.Repository(stack, "Repo", repository_name="team/app")
    return AdmissionController(stack, "Admission", signing_keys=[key], repositories=[repo],
                               image_patterns=[f"{ECR}/team/**"])


def _role_policy(template: Template, role_prefix: str) -> list[dict[str, Any]]:
    statements = []
    for policy in resources(template.to_json(), "AWS::IAM::Policy").values():
        roles = json.dumps(policy["Properties"].get("Roles"))
        if role_prefix in roles:
            statements += policy["Properties"]["PolicyDocument"]["Statement"]
    assert statements, role_prefix
    return statements
