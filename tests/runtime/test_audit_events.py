"""The audit events read as pure functions: the documented shapes, and what is refused with the field named."""

from __future__ import annotations

import json

import pytest
from image_verifier.audits._parts import task_settings_from_env
from image_verifier.audits.events import (
    AuditEventError,
    PushedImage,
    RunningTask,
    push_from_body,
    queued_messages,
)
from image_verifier.handler.settings import SettingsError
from image_verifier.platform import Platform

from tests.support.audit_events import (
    CLUSTER_ARN,
    ecr_push_event,
    sqs_batch,
    task_state_change,
)

DIGEST = "sha256:" + "7f" * 32


def test_reads_the_documented_push_event():
    pushed = PushedImage.from_event(ecr_push_event("team/app", DIGEST, "latest", region="us-west-2"))
    assert (pushed.repository, pushed.digest, pushed.tag) == ("team/app", DIGEST, "latest")
    assert pushed.image() == f"111111111111.dkr.ecr.us-west-2.amazonaws.com/team/app@{DIGEST}"
    assert PushedImage.from_event(ecr_push_event("a", DIGEST, "v1", region="cn-north-1")).image().startswith(
        "111111111111.dkr.ecr.cn-north-1.amazonaws.com.cn/")


@pytest.mark.parametrize(("change", "message"), [
    ({"source": "aws.s3"}, "not a aws.ecr 'ECR Image Action' event"),
    ({"account": "12345"}, "must be an account id and a region"),
    ({"detail": {"result": "FAILURE", "action-type": "PUSH"}}, "not a successful push"),
    ({"detail": {"result": "SUCCESS", "action-type": "PUSH", "repository-name": "Team/App",
                 "image-digest": DIGEST}}, "not a repository name"),
    ({"detail": {"result": "SUCCESS", "action-type": "PUSH", "repository-name": "team/app",
                 "image-digest": "latest"}}, "image-digest is not a digest"),
])
def test_rejects_push_event_when_a_field_is_wrong(change, message):
    event = {**ecr_push_event("team/app", DIGEST), **change}
    with pytest.raises(AuditEventError, match=message):
        PushedImage.from_event(event)


def test_reads_an_sqs_batch_and_refuses_a_body_that_is_not_json():
    [message] = queued_messages(sqs_batch(["{"], receive_count=3))
    assert message.receive_count == 3
    with pytest.raises(AuditEventError, match="not JSON"):
        push_from_body(message.body)
    with pytest.raises(AuditEventError, match="event.Records must be an array"):
        queued_messages({"Records": "x"})


def test_reads_the_documented_task_state_change_event():
    event = task_state_change([("app", "repo/app:v1", DIGEST), ("sidecar", "public.ecr.aws/x/y:1", None)],
                              group="service:payments-api", started_by="ecs-svc/123", architecture="arm64")
    task = RunningTask.from_event(event)
    assert task.cluster_arn == CLUSTER_ARN and task.cluster == "prod"
    assert task.claimed_service == "payments-api" and task.started_by == "ecs-svc/123"
    assert [(c.name, c.digest) for c in task.containers] == [("app", DIGEST), ("sidecar", None)]
    assert task.platform == Platform(os="linux", architecture="arm64")


def test_a_run_task_claims_no_service_and_a_windows_task_has_no_platform():
    task = RunningTask.from_event(task_state_change([("app", "a:v1", None)], extra={"platformFamily": "WINDOWS_SERVER_2022_CORE"}))
    assert task.claimed_service is None and task.platform is None


@pytest.mark.parametrize(("field", "value", "message"), [
    ("containers", [], "nothing says what the task runs"),
    ("containers", [{"name": "app"}], r"containers\[0\].image must be a string"),
    ("containers", [{"name": "app", "image": "a:v1", "imageDigest": "md5:1"}], "imageDigest is not a digest"),
    ("clusterArn", "prod", "must be ECS cluster and task ARNs"),
    ("lastStatus", 7, "lastStatus must be a string"),
])
def test_rejects_task_event_when_a_field_is_wrong(field, value, message):
    event = task_state_change([("app", "a:v1", None)])
    event["detail"][field] = value
    with pytest.raises(AuditEventError, match=message):
        RunningTask.from_event(event)


def test_reads_protected_services_and_the_stop_switch():
    settings = task_settings_from_env({"AUDIT_PROTECTED_SERVICES": json.dumps(["prod/payments-api"]),
                                       "AUDIT_STOP_UNVERIFIED_TASKS": "true"})
    assert settings.protected == frozenset({("prod", "payments-api")}) and settings.stop_unverified_tasks
    assert task_settings_from_env({}).stop_unverified_tasks is False


@pytest.mark.parametrize(("env", "message"), [
    ({"AUDIT_PROTECTED_SERVICES": "payments-api"}, "must be a JSON list"),
    ({"AUDIT_PROTECTED_SERVICES": '["payments-api"]'}, "cluster/service"),
    ({"AUDIT_STOP_UNVERIFIED_TASKS": "yes"}, "must be true or false"),
])
def test_rejects_task_audit_settings_when_malformed(env, message):
    with pytest.raises(SettingsError, match=message):
        task_settings_from_env(env)


def test_entry_point_fails_the_invocation_and_builds_again_when_misconfigured(monkeypatch, capsys):
    # Given an audit function without a policy in its environment
    from image_verifier.audits import push

    monkeypatch.delenv("ADMISSION_POLICY", raising=False)
    monkeypatch.delenv("ADMISSION_POLICY_FILE", raising=False)
    monkeypatch.setattr(push, "_entry", push.EntryPoint(push.build_push_audit, "the push audit"))
    # When it is invoked, twice
    for _ in range(2):
        with pytest.raises(SettingsError, match="set exactly one of ADMISSION_POLICY"):
            push.lambda_handler(sqs_batch([]), None)
    # Then each invocation fails (the queue delivers the batch again) and says why in one JSON line
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["message"] for line in lines] == ["the push audit is misconfigured"] * 2
    assert "ADMISSION_POLICY" in lines[0]["error"]
