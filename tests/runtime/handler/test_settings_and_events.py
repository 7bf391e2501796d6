"""Settings.from_env and the hook event parser: every problem named, nothing guessed."""

from __future__ import annotations

import json

import pytest

from image_verifier.errors import PolicyError
from image_verifier.handler.events import EventError, HookEvent, HookStatus, respond
from image_verifier.handler.settings import Settings, SettingsError
from tests.runtime.handler.hook_support import REVISION_ARN, SERVICE_ARN, hook_event
from tests.support.cosign_material import cosign_policy

POLICY = cosign_policy({"ci": {"kmsKeyArn": {"fromEnv": "CI_KEY_ARN"}}}, images="registry.example.com/**")
KEY_ARN = "arn:aws:kms:us-east-1:111111111111:key/0f2e8a5c-1b7d-4c3e-9a6f-2d4b8e1c7a90"


def test_reads_policy_from_the_environment_and_resolves_from_env_values():
    settings = Settings.from_env({"ADMISSION_POLICY": json.dumps(POLICY), "CI_KEY_ARN": KEY_ARN,
                                  "ADMISSION_INSECURE_REGISTRIES": "127.0.0.1:5000, localhost:5001",
                                  "ADMISSION_MAX_ATTEMPTS": "5"})
    assert settings.policy.signer("ci").trust.kms_key_arn == KEY_ARN
    assert settings.insecure_registries == {"127.0.0.1:5000", "localhost:5001"}
    assert settings.max_attempts == 5 and settings.callback_delay == 30 and settings.deadline_margin == 5.0
    assert settings.max_callback_delay == 300  # the longest callBackDelay a registry's Retry-After may ask for


def test_reads_policy_file_relative_to_the_task_root(tmp_path):
    (tmp_path / "admission_policy.json").write_text(json.dumps(POLICY))
    settings = Settings.from_env({"ADMISSION_POLICY_FILE": "admission_policy.json", "LAMBDA_TASK_ROOT": str(tmp_path),
                                  "CI_KEY_ARN": KEY_ARN})
    assert settings.policy.rules[0].name == "signed"


@pytest.mark.parametrize(("env", "message"), [
    ({}, "set exactly one of ADMISSION_POLICY"),
    ({"ADMISSION_POLICY": "{}", "ADMISSION_POLICY_FILE": "p.json"}, "set exactly one of ADMISSION_POLICY"),
    ({"ADMISSION_POLICY_FILE": "/nonexistent/p.json"}, "cannot read the policy"),
    ({"ADMISSION_POLICY": json.dumps(POLICY), "CI_KEY_ARN": KEY_ARN, "ADMISSION_MAX_ATTEMPTS": "three"},
     "ADMISSION_MAX_ATTEMPTS='three' is not a whole number"),
    ({"ADMISSION_POLICY": json.dumps(POLICY), "CI_KEY_ARN": KEY_ARN, "ADMISSION_DEADLINE_MARGIN_SECONDS": "-1"},
     "must be at least 0"),
    ({"ADMISSION_POLICY": json.dumps(POLICY), "CI_KEY_ARN": KEY_ARN, "ADMISSION_MAX_CALLBACK_DELAY_SECONDS": "0"},
     "ADMISSION_MAX_CALLBACK_DELAY_SECONDS='0' must be at least 1"),
])
def test_rejects_settings_when_misconfigured(env, message):
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env)


def test_rejects_settings_when_a_from_env_variable_is_missing():
    with pytest.raises(PolicyError, match="environment variable CI_KEY_ARN is not set"):
        Settings.from_env({"ADMISSION_POLICY": json.dumps(POLICY)})


def test_parses_the_current_and_the_older_event_shape_alike():
    current, older = HookEvent.parse(hook_event()), HookEvent.parse(hook_event(flat=True))
    assert (current.service_arn, current.revision_arn) == (older.service_arn, older.revision_arn) == (SERVICE_ARN,
                                                                                                       REVISION_ARN)
    assert current.stage == "PRE_SCALE_UP" and older.stage is None
    assert current.region == "us-east-1" and current.attempt == 1


def test_reads_the_attempt_from_hook_details_given_as_object_or_json_string():
    as_object = HookEvent.parse(hook_event(hook_details={"imageAdmission": {"attempt": 2}}))
    event = hook_event()
    event["hookDetails"] = json.dumps({"imageAdmission": {"attempt": 3}, "owner": "payments"})
    assert (as_object.attempt, HookEvent.parse(event).attempt) == (2, 3)
    assert HookEvent.parse(hook_event(hook_details={"imageAdmission": {"attempt": 10**9}})).attempt == 1000


@pytest.mark.parametrize(("event", "message"), [
    ([], "the event must be an object, got an array"),
    ({"executionDetails": {"serviceArn": SERVICE_ARN}}, "has no targetServiceRevisionArn"),
    (hook_event(service_arn="arn:aws:ecs:us-east-1:111111111111:cluster/prod"), "serviceArn"),
    ({**hook_event(), "hookDetails": "not json"}, "hookDetails is a string but not JSON"),
    ({**hook_event(), "hookDetails": [1]}, "hookDetails must be an object"),
    ({**hook_event(), "executionId": 7}, "executionId must be a string"),
])
def test_rejects_event_when_malformed(event, message):
    with pytest.raises(EventError, match=message):
        HookEvent.parse(event)


def test_responses_carry_state_only_when_in_progress():
    assert respond(HookStatus.SUCCEEDED, callback_delay=30, attempt=2) == {"hookStatus": "SUCCEEDED"}
    assert respond(HookStatus.IN_PROGRESS, callback_delay=45, attempt=2) == {
        "hookStatus": "IN_PROGRESS", "callBackDelay": 45, "hookDetails": {"imageAdmission": {"attempt": 2}}}
