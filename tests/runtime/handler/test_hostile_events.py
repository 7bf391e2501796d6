"""Named regressions for issue 9 classes 4b and 6: the hook answers FAILED, with a reason in the
audit record, to anything it did not expect: a hostile event, an ECS answer of the wrong shape, an
ECS refusal, an exception nobody expected. Only AWS or a registry that did not answer is
`unavailable` (IN_PROGRESS, then unavailableMode decides); and a throttling registry's Retry-After
sets how long ECS waits before it calls again.
"""

from __future__ import annotations

import pytest
from botocore.exceptions import EndpointConnectionError, NoCredentialsError, ReadTimeoutError

from image_verifier.errors import RegistryUnavailableError
from image_verifier.handler import app
from image_verifier.verdict import Outcome, Verdict
from tests.runtime.handler.hook_support import (
    APP,
    DIGEST,
    NO_CACHE,
    SIGNED,
    FakeVerifier,
    PlainEcs,
    StubbedEcs,
    admission_handler,
    answers,
    emf_metrics,
    hook_event,
    policy,
    revision_answer,
    task_definition_answer,
)

def handler_for(revisions, task_definition, *, verifier: FakeVerifier | None = None, **top):
    return admission_handler(policy(**top), PlainEcs(revisions, task_definition), env=NO_CACHE,
                             verifier=verifier or FakeVerifier(SIGNED))


def test_admits_the_valid_answers_that_the_hostile_cases_below_mutate():
    # Given the unmutated answers, When / Then the fake verifier admits exactly these requests
    verifier = FakeVerifier(SIGNED)
    assert handler_for(*answers(), verifier=verifier).handle(hook_event()) == {"hookStatus": "SUCCEEDED"}
    assert verifier.requests == SIGNED


# --- the event ------------------------------------------------------------------------------------

@pytest.mark.parametrize("stage", [["PRE_SCALE_UP"], {"PRE_SCALE_UP": 1}, 7, True])
def test_rejects_event_through_lambda_handler_when_lifecycle_stage_is_a_list_or_other_non_string(stage, monkeypatch):
    # Given a hostile event whose lifecycleStage is not a string (a list was unhashable and raised)
    admission = handler_for(*answers())
    monkeypatch.setattr(app, "_handler", admission.handler)
    event = hook_event()
    event["lifecycleStage"] = stage
    # When ECS (or anyone who may invoke the function) sends it
    response = app.lambda_handler(event, None)
    # Then the answer is FAILED and the audit record says which field was wrong
    assert response == {"hookStatus": "FAILED"}
    [record] = admission.audit_records()
    assert record["errorKind"] == "malformed-event"
    assert "lifecycleStage must be an ECS lifecycle stage" in record["reason"]


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda e: e.update(hookDetails="[" * 60_000), "hookDetails is a string but not JSON: RecursionError"),
    (lambda e: e.update(hookDetails={"imageAdmission": ["attempt", 2]}), "hookDetails.imageAdmission must be an object"),
    (lambda e: e["executionDetails"].update(serviceArn=[[[["deep"]]]] * 1000), "serviceArn must be an ARN like"),
    (lambda e: e.update(executionDetails=[e["executionDetails"]]), "executionDetails must be an object, got an array"),
    (lambda e: e.update(resourceArn={"arn": 1}), "resourceArn must be a string"),
    (lambda e: e.update({1: "not a string key"}, executionDetails=None), "the event has no serviceArn"),
])
def test_rejects_event_with_a_reason_when_its_shape_is_hostile(mutate, message):
    admission = handler_for(*answers())
    event = hook_event()
    mutate(event)
    assert admission.handle(event) == {"hookStatus": "FAILED"}
    [record] = admission.audit_records()
    assert message in record["error"]
    assert len(record["error"]) < 2000  # a hostile value is shown short


# --- ECS answers ----------------------------------------------------------------------------------

def _revision(answer: dict) -> dict:
    return answer["serviceRevisions"][0]


def _definition(answer: dict) -> dict:
    return answer["taskDefinition"]


@pytest.mark.parametrize(("where", "mutate", "message"), [
    ("task", lambda a: _definition(a).update(runtimePlatform="ARM64"),
     "taskDefinition.runtimePlatform must be an object, got a string"),
    ("task", lambda a: _definition(a).update(runtimePlatform=["ARM64", "LINUX"]),
     "taskDefinition.runtimePlatform must be an object, got an array"),
    ("task", lambda a: _definition(a)["runtimePlatform"].update(cpuArchitecture="arm64"),
     "runtimePlatform.cpuArchitecture must be X86_64 or ARM64"),
    ("task", lambda a: _definition(a)["runtimePlatform"].update(operatingSystemFamily=["LINUX"]),
     "operatingSystemFamily must be a string"),
    ("task", lambda a: _definition(a).update(containerDefinitions={"name": "app"}),
     "containerDefinitions must be an array, got an object"),
    ("task", lambda a: _definition(a).update(containerDefinitions=[]), "containerDefinitions lists no container"),
    ("task", lambda a: _definition(a)["containerDefinitions"][1].update(image=["evil"]),
     "containerDefinitions[1].image must be a string, got an array"),
    ("task", lambda a: _definition(a)["containerDefinitions"][0].pop("image"),
     "containerDefinitions[0].image must be a string, got null"),
    ("task", lambda a: a.update(taskDefinition=None), "taskDefinition must be an object, got null"),
    ("task", lambda a: _definition(a).update(taskDefinitionArn="arn:aws:ecs:us-east-1:111111111111:task-definition/x:1"),
     "described another task definition"),
    ("revision", lambda a: _revision(a).update(containerImages={"app": APP}), "containerImages must be an array"),
    ("revision", lambda a: _revision(a)["containerImages"][0].update(image=None),
     "containerImages[0].image must be a string, got null"),
    ("revision", lambda a: _revision(a)["containerImages"][0].update(imageDigest="sha256:short"),
     "imageDigest must be a sha256:/sha512: digest"),
    ("revision", lambda a: _revision(a)["containerImages"][0].update(containerName=5),
     "containerImages[0].containerName must be a string, got a number"),
    ("revision", lambda a: _revision(a).update(overrides={"runtimePlatform": "ARM64"}),
     "overrides.runtimePlatform must be an object"),
    ("revision", lambda a: _revision(a).update(overrides={"runtimePlatform": {"cpuArchitecture": ["ARM64"]}}),
     "overrides.runtimePlatform.cpuArchitecture must be X86_64 or ARM64, got an array"),
    ("revision", lambda a: _revision(a).update(taskDefinition={"arn": "x"}), "taskDefinition must be a string"),
    ("revision", lambda a: _revision(a).update(taskDefinition="payments-api:7"), "is not a task-definition ARN"),
    ("revision", lambda a: _revision(a).update(serviceRevisionArn=_revision(a)["serviceRevisionArn"] + "0"),
     "described another revision"),
    ("revision", lambda a: a.update(serviceRevisions=[_revision(a)] * 2), "has 2 items; at most 1 are read"),
    ("revision", lambda a: a.update(serviceRevisions=[]), "neither described"),
    ("revision", lambda a: a.update(serviceRevisions=[], failures=[{"reason": 7}]), "failures[0].reason must be a string"),
    ("revision", lambda a: a.clear(), "neither described"),
])
@pytest.mark.parametrize("mode", ["block", "audit"])
def test_rejects_revision_in_every_mode_naming_the_field_when_an_ecs_answer_is_malformed(where, mutate, message, mode):
    # Given an ECS answer with one field of the wrong shape, under block or audit modes
    revisions, task_definition = answers()
    mutate(revisions if where == "revision" else task_definition)
    admission = handler_for(revisions, task_definition, failureMode=mode, unavailableMode=mode)
    # When / Then the revision is refused: nothing is known of what it runs
    assert admission.handle(hook_event()) == {"hookStatus": "FAILED"}
    [record] = admission.audit_records()
    assert record["errorKind"] == "malformed-answer" and message in record["error"]
    assert record["admittedInAuditMode"] is False


@pytest.mark.parametrize(("runtime_platform", "got"), [("ARM64", "got a string: 'ARM64'"),
                                                      (["ARM64", "LINUX"], "got an array: ['ARM64', 'LINUX']")])
def test_rejects_revision_when_runtime_platform_is_a_string_or_a_list(runtime_platform, got):
    # Given a DescribeTaskDefinition answer whose runtimePlatform is a string or a list (it raised before)
    revisions, task_definition = answers()
    _definition(task_definition)["runtimePlatform"] = runtime_platform
    admission = handler_for(revisions, task_definition)
    # When / Then FAILED, with the field and what came in the record
    assert admission.handle(hook_event()) == {"hookStatus": "FAILED"}
    [record] = admission.audit_records()
    assert record["reason"] == ("ECS DescribeTaskDefinition: taskDefinition.runtimePlatform must be an object, "
                                f"{got}")


def test_rejects_revision_when_the_answer_is_not_an_object():
    admission = handler_for(["not", "an", "answer"], None)
    assert admission.handle(hook_event()) == {"hookStatus": "FAILED"}
    assert "the ECS DescribeServiceRevisions answer must be an object" in admission.audit_records()[0]["error"]


def test_rejects_revision_when_ecs_reports_a_failure_other_than_missing():
    revisions = {"serviceRevisions": [], "failures": [{"arn": "x", "reason": "ACCESS_DENIED", "detail": "no"}]}
    admission = handler_for(revisions, None, unavailableMode="audit")
    assert admission.handle(hook_event()) == {"hookStatus": "FAILED"}
    record = admission.audit_records()[0]
    assert record["errorKind"] == "aws-refused" and "ACCESS_DENIED: no" in record["error"]


# --- AWS errors: unavailable only when AWS did not answer -------------------------------------------

def _client_error(code: str, status: int):
    def queue(ecs: StubbedEcs) -> None:
        ecs.error(code, f"{code} from the test", http_status_code=status)
    return queue


@pytest.mark.parametrize(("failure", "judged"), [
    (_client_error("ThrottlingException", 400), "unavailable"),
    (_client_error("TooManyRequestsException", 429), "unavailable"),
    (_client_error("ServerException", 500), "unavailable"),
    (_client_error("SomethingNew", 503), "unavailable"),
    (EndpointConnectionError(endpoint_url="https://ecs.us-east-1.amazonaws.com"), "unavailable"),
    (ReadTimeoutError(endpoint_url="https://ecs.us-east-1.amazonaws.com"), "unavailable"),
    (_client_error("AccessDeniedException", 400), "refused"),
    (_client_error("ClientException", 400), "refused"),
    (_client_error("InvalidParameterException", 400), "refused"),
    (_client_error("ResourceNotFoundException", 400), "refused"),
    (_client_error("SomethingNew", 400), "refused"),
    (NoCredentialsError(), "refused"),
])
@pytest.mark.parametrize("mode", ["block", "audit"])
def test_judges_an_ecs_error_unavailable_only_when_ecs_did_not_answer(failure, judged, mode):
    # Given DescribeServiceRevisions failing with a botocore error
    if callable(failure):
        ecs = StubbedEcs()
        failure(ecs)
    else:
        ecs = PlainEcs(failure)
    admission = admission_handler(policy(unavailableMode=mode), ecs, verifier=FakeVerifier(SIGNED))
    # When the hook is called
    status = admission.handle(hook_event())["hookStatus"]
    # Then an unanswered call is unavailable (retry, then unavailableMode), a refusal is FAILED in every mode
    record = admission.audit_records()[0]
    if judged == "unavailable":
        assert status == ("IN_PROGRESS" if mode == "block" else "SUCCEEDED")
        assert record["errorKind"] == "unavailable"
    else:
        assert status == "FAILED"
        assert record["errorKind"] == "aws-refused" and record["level"] == "ERROR"


# --- unexpected errors ------------------------------------------------------------------------------

def test_refuses_when_an_internal_error_happens_under_unavailable_mode_audit(capsys):
    # Given a policy whose unavailableMode (and failureMode) is audit, and an ECS client with a bug
    admission = admission_handler(policy(unavailableMode="audit", failureMode="audit"), PlainEcs(KeyError("boom")),
                                  verifier=FakeVerifier(SIGNED))
    # When / Then the unexpected error is a rejection, never an admission, and the record says so
    assert admission.handle(hook_event()) == {"hookStatus": "FAILED"}
    [record] = admission.audit_records()
    assert record["errorKind"] == "internal" and record["error"].startswith("internal error: KeyError")
    assert record["admittedInAuditMode"] is False
    assert emf_metrics(capsys.readouterr().out)["HandlerErrors"] == 1


def test_answers_failed_when_even_the_audit_record_cannot_be_written(monkeypatch, capsys):
    # Given a telemetry that raises whenever it records a decision
    admission = handler_for(*answers())

    def broken(record, *, latency_ms):
        raise OSError("log pipe closed")

    monkeypatch.setattr(admission.handler._telemetry, "decision", broken)
    # When / Then an admission that cannot be recorded is not given: FAILED, and one line says why
    assert admission.handle(hook_event()) == {"hookStatus": "FAILED"}
    assert "OSError: log pipe closed" in capsys.readouterr().out


# --- Retry-After and callBackDelay ------------------------------------------------------------------

def _throttled(image: str, retry_after: float | None) -> Verdict:
    return Verdict(image=image, digest=None, outcome=Outcome.UNAVAILABLE, retry_after=retry_after,
                   reasons=(f"the registry answered 429 (Retry-After: {retry_after})",))


@pytest.mark.parametrize(("waits", "delay"), [
    ((90, None), 90),  # the largest Retry-After is covered
    ((12.2, 45.5), 46),  # rounded up
    ((5,), 30),  # never shorter than the configured callBackDelay
    ((None,), 30),
    ((10**9,), 300),  # bounded: a hostile registry cannot park the deployment
    ((float("inf"), -3), 30),  # nonsense is ignored
])
def test_defers_with_a_callback_delay_that_covers_the_registrys_retry_after(waits, delay):
    # Given images whose registries throttled with these Retry-After values
    images = [f"registry.example.com/team/app{n}:v1" for n in range(len(waits))]
    revisions = revision_answer([(f"c{n}", image, None) for n, image in enumerate(images)])
    task_definition = task_definition_answer([(f"c{n}", image) for n, image in enumerate(images)])
    verifier = FakeVerifier(verdicts={image: _throttled(image, wait) for image, wait in zip(images, waits, strict=True)})
    admission = handler_for(revisions, task_definition, verifier=verifier)
    # When / Then ECS is asked to call again once the registry is willing to answer
    response = admission.handle(hook_event())
    assert response["hookStatus"] == "IN_PROGRESS" and response["callBackDelay"] == delay
    assert admission.audit_records()[0]["callBackDelay"] == delay


class _ThrottledError(RegistryUnavailableError):
    def __init__(self, message: str, *, retry_after: float | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def test_defers_with_a_callback_delay_that_covers_retry_after_when_the_throttling_error_reaches_the_handler():
    # Given a verifier that lets a registry's "429, Retry-After: 120" escape as an error (not as a verdict)
    admission = handler_for(*answers())

    def throttled(requests, *, deadline):
        raise _ThrottledError("the registry answered 429 (Retry-After: 120 s)", retry_after=120)

    admission.handler._verifier.decide = throttled  # type: ignore[method-assign]
    # When / Then it is unavailable, and ECS waits as long as the registry asked
    assert admission.handle(hook_event())["callBackDelay"] == 120
    record = admission.audit_records()[0]
    assert (record["errorKind"], record["retryAfter"]) == ("unavailable", 120)


def test_records_warnings_and_counts_images_admitted_with_them(capsys):
    # Given a verdict admitted with a logged (not enforced) failure
    warned = Verdict(image=APP, digest=DIGEST, outcome=Outcome.VERIFIED, rule="signed",
                     warnings=("authenticity: the root is not trusted (level audit logs it)",))
    admission = handler_for(*answers(), verifier=FakeVerifier(SIGNED, verdicts={APP: warned}))
    # When / Then the deployment goes on, and the record and the metrics say so
    assert admission.handle(hook_event()) == {"hookStatus": "SUCCEEDED"}
    entry = admission.audit_records()[0]["images"][0]
    assert entry["warnings"] == ["authenticity: the root is not trusted (level audit logs it)"]
    assert emf_metrics(capsys.readouterr().out)["AdmittedWithWarnings"] == 1

