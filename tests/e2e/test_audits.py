"""The push and task audits end to end: real images and cosign signatures in the real registry,
events shaped as ECR and ECS document them, ECS answers from a botocore-stubbed client, the audit
records and EMF metrics checked.
"""

from __future__ import annotations

import io
import json
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from aws_lambda_powertools import Logger, Metrics
from botocore.stub import ANY, Stubber
from image_verifier.audits.push import build_push_audit
from image_verifier.audits.report import PUSH_RECORD_VERSION, TASK_RECORD_VERSION
from image_verifier.audits.task import STOP_REASON_PREFIX, build_task_audit
from image_verifier.deadline import Deadline
from image_verifier.reference import ImageReference

from tests.runtime.handler.hook_support import LambdaContext, _Aws, emf_metrics
from tests.support.audit_events import (
    CLUSTER,
    CLUSTER_ARN,
    ecr_push_event,
    sqs_batch,
    task_state_change,
)
from tests.support.cosign_material import (
    KeyPair,
    cosign_policy,
    fetch_raw,
    in_toto_statement,
    push_bundle_referrer,
    sigstore_bundle,
)
from tests.support.images import push_image, sha256_digest, unique_repository

from .cli_helpers import sign

pytestmark = pytest.mark.registry
SERVICE = "payments-api"
PROFILE_ARN = "arn:aws:signer:us-east-1:111111111111:/signing-profiles/team_images"


@dataclass
class Audit:
    handler: Any
    log: io.StringIO
    ecs: Any = None  # the task audit's stubbed ECS client
    ecr: Any = None  # the push audit's stubbed ECR client (_Ecr)
    records: list[dict[str, Any]] = field(default_factory=list)

    def handle(self, event: Any) -> dict[str, Any]:
        return self.handler.handle(event, LambdaContext())

    def audit_records(self, version: str) -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in self.log.getvalue().splitlines() if line.strip()]
        return [line for line in lines if line.get("auditRecord") == version]


def _logging() -> tuple[io.StringIO, Logger, Metrics]:
    log = io.StringIO()
    logger = Logger(service=f"audit-test-{uuid.uuid4().hex[:8]}", logger_handler=logging.StreamHandler(log))
    return log, logger, Metrics(namespace="SignedImages/Test", service="audit-test")


def _env(policy: dict[str, Any], registry_host: str, **extra: str) -> dict[str, str]:
    return {"ADMISSION_POLICY": json.dumps(policy), "ADMISSION_INSECURE_REGISTRIES": registry_host, **extra}


def _policy(registry, key: KeyPair, host: str | None = None) -> dict[str, Any]:
    return cosign_policy({"ci": {"publicKeyPem": key.public_pem}}, images=f"{host or registry.host}/**")


class _Ecr:
    """What the push audit asks AWS for: ECR's DescribeImageSigningStatus, from a botocore-stubbed client."""

    def __init__(self) -> None:
        self.ecr = boto3.client("ecr", region_name="us-east-1", aws_access_key_id="testing",
                                aws_secret_access_key="testing")
        self.stubber = Stubber(self.ecr)
        self.stubber.activate()

    def signing(self, repository: str, digest: str, *statuses: tuple[str, str | None]) -> None:
        """Queue one answer: (status, failureReason) per signing profile; none means no managed signing rule."""
        self.stubber.add_response("describe_image_signing_status", {
            "repositoryName": repository, "imageId": {"imageDigest": digest}, "registryId": "111111111111",
            "signingStatuses": [{"signingProfileArn": PROFILE_ARN, "status": status,
                                 **({"failureCode": "SIGNING_FAILED", "failureReason": reason} if reason else {})}
                                for status, reason in statuses]},
            {"repositoryName": repository, "imageId": {"imageDigest": digest}, "registryId": "111111111111"})

    def client(self, service: str, region: str) -> Any:
        assert service == "ecr", f"the test did not expect a {service} client in {region}"
        return self.ecr

    def for_service(self, service: str) -> Any:
        return lambda region: self.client(service, region)


def push_audit(registry, key: KeyPair, *, host: str | None = None, max_receive_count: int = 3) -> Audit:
    log, logger, metrics = _logging()
    target = host or registry.host
    aws = _Ecr()
    env = _env(_policy(registry, key, target), target, AUDIT_MAX_RECEIVE_COUNT=str(max_receive_count))
    handler = build_push_audit(env, aws=aws, logger=logger, metrics=metrics, registry_host=lambda pushed: target)
    return Audit(handler=handler, log=log, ecr=aws)


def task_audit(registry, key: KeyPair, *, stop: bool, protected: tuple[str, ...] = (f"{CLUSTER}/{SERVICE}",)) -> Audit:
    log, logger, metrics = _logging()
    client = boto3.client("ecs", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
    stubber = Stubber(client)
    stubber.activate()
    env = _env(_policy(registry, key), registry.host, AUDIT_STOP_UNVERIFIED_TASKS=str(stop).lower(),
               AUDIT_PROTECTED_SERVICES=json.dumps(list(protected)))
    handler = build_task_audit(env, aws=_Aws(client), logger=logger, metrics=metrics)
    return Audit(handler=handler, log=log, ecs=stubber)


def _signed(registry, key_file, tag: str = "v1", layer: bytes = b"app"):
    image = push_image(registry, unique_repository("audit"), tag, layer_bytes=layer)
    assert sign(registry.host, key_file, str(image.ref)).code == 0
    return image


# --- push audit ---------------------------------------------------------------------------------------

def test_push_audit_records_a_signed_push_as_verified(registry, key, key_file, capsys):
    # Given a pushed image that CI signed with the trusted key
    image = _signed(registry, key_file)
    audit = push_audit(registry, key)
    # When the delayed push event arrives
    response = audit.handle(sqs_batch([ecr_push_event(image.repository, image.digest, "v1")]))
    # Then nothing is delivered again, and one record says verified
    assert response == {"batchItemFailures": []}
    [record] = audit.audit_records(PUSH_RECORD_VERSION)
    assert record["outcome"] == "verified"
    assert record["digest"] == image.digest and record["repository"] == image.repository and record["tag"] == "v1"
    assert record["image"] == f"{registry.host}/{image.repository}@{image.digest}"
    assert record["verdict"]["signers"][0]["signer"] == "ci"
    assert record["policyHash"].startswith("sha256:")
    metrics = emf_metrics(capsys.readouterr().out)
    assert metrics["PushesVerified"] == 1 and "PushesRejected" not in metrics


def test_push_audit_reports_an_unsigned_push_as_rejected(registry, key, capsys):
    # Given an image pushed without a signature
    image = push_image(registry, unique_repository("audit"), "v1", layer_bytes=b"unsigned")
    audit = push_audit(registry, key)
    audit.ecr.signing(image.repository, image.digest)  # no managed signing rule covers it
    # When its push is audited
    response = audit.handle(sqs_batch([ecr_push_event(image.repository, image.digest, "v1")]))
    # Then it is counted as rejected (what the alarm watches), at WARNING, with the reason
    assert response == {"batchItemFailures": []}
    [record] = audit.audit_records(PUSH_RECORD_VERSION)
    assert record["outcome"] == "rejected" and record["level"] == "WARNING"
    assert record["managedSigning"] == {"statuses": [], "inProgress": False, "error": None}
    audit.ecr.stubber.assert_no_pending_responses()
    assert record["reasons"] and "signature" in " ".join(record["reasons"]).lower()
    assert emf_metrics(capsys.readouterr().out)["PushesRejected"] == 1


def test_push_audit_reports_a_push_signed_by_an_untrusted_key_as_rejected(registry, key, tmp_path, capsys):
    # Given an image signed by a key the policy does not trust
    other = tmp_path / "other.key"
    other.write_bytes(KeyPair.generate().private_pem)
    image = push_image(registry, unique_repository("audit"), "v1", layer_bytes=b"foreign")
    assert sign(registry.host, other, str(image.ref)).code == 0
    # When / Then
    audit = push_audit(registry, key)
    audit.ecr.signing(image.repository, image.digest)
    audit.handle(sqs_batch([ecr_push_event(image.repository, image.digest, "v1")]))
    assert audit.audit_records(PUSH_RECORD_VERSION)[0]["outcome"] == "rejected"
    assert emf_metrics(capsys.readouterr().out)["PushesRejected"] == 1


def test_push_audit_asks_again_while_managed_signing_is_in_progress(registry, key, capsys):
    # Given a push that ECR managed signing has not signed yet
    image = push_image(registry, unique_repository("audit"), "v1", layer_bytes=b"signing-slowly")
    audit = push_audit(registry, key)
    audit.ecr.signing(image.repository, image.digest, ("IN_PROGRESS", None))
    batch = sqs_batch([ecr_push_event(image.repository, image.digest, "v1")], receive_count=1)
    # When it is audited before the signature exists
    response = audit.handle(batch)
    # Then it is not reported yet: the queue delivers it again after its visibility timeout
    assert response == {"batchItemFailures": [{"itemIdentifier": batch["Records"][0]["messageId"]}]}
    [record] = audit.audit_records(PUSH_RECORD_VERSION)
    assert record["outcome"] == "pending-signing" and record["managedSigning"]["inProgress"] is True
    metrics = emf_metrics(capsys.readouterr().out)
    assert metrics["PushesPendingSigning"] == 1 and "PushesRejected" not in metrics


def test_push_audit_reports_a_push_still_unsigned_at_its_last_delivery(registry, key, capsys):
    image = push_image(registry, unique_repository("audit"), "v1", layer_bytes=b"never-signed")
    audit = push_audit(registry, key, max_receive_count=3)
    audit.ecr.signing(image.repository, image.digest, ("IN_PROGRESS", None))
    response = audit.handle(sqs_batch([ecr_push_event(image.repository, image.digest, "v1")], receive_count=3))
    assert response == {"batchItemFailures": []}
    assert audit.audit_records(PUSH_RECORD_VERSION)[0]["outcome"] == "rejected"
    assert emf_metrics(capsys.readouterr().out)["PushesRejected"] == 1


def test_push_audit_records_why_managed_signing_failed(registry, key):
    image = push_image(registry, unique_repository("audit"), "v1", layer_bytes=b"signing-failed")
    audit = push_audit(registry, key)
    audit.ecr.signing(image.repository, image.digest, ("FAILED", "the pusher is not allowed signer:SignPayload"))
    audit.handle(sqs_batch([ecr_push_event(image.repository, image.digest, "v1")]))
    [record] = audit.audit_records(PUSH_RECORD_VERSION)
    assert record["outcome"] == "rejected"
    [status] = record["managedSigning"]["statuses"]
    assert (status["status"], status["failureReason"]) == ("FAILED", "the pusher is not allowed signer:SignPayload")


def test_push_audit_keeps_the_verdict_when_the_signing_status_cannot_be_read(registry, key):
    image = push_image(registry, unique_repository("audit"), "v1", layer_bytes=b"status-denied")
    audit = push_audit(registry, key)
    audit.ecr.stubber.add_client_error("describe_image_signing_status", service_error_code="AccessDeniedException",
                                       service_message="not authorized")
    audit.handle(sqs_batch([ecr_push_event(image.repository, image.digest, "v1")]))
    [record] = audit.audit_records(PUSH_RECORD_VERSION)
    assert record["outcome"] == "rejected" and "AccessDenied" in record["managedSigning"]["error"]


def test_push_audit_skips_the_cosign_signature_tag_it_pushes_itself(registry, key, key_file, registry_client):
    # Given the sha256-<hex>.sig tag that signing pushed next to the image (its own push event)
    image = _signed(registry, key_file)
    tag = image.digest.replace(":", "-") + ".sig"
    signature = registry_client.bound(Deadline.after(10)).find_tag(ImageReference.parse(str(image.ref)), tag)
    assert signature is not None
    audit = push_audit(registry, key)
    # When that push is audited
    audit.handle(sqs_batch([ecr_push_event(image.repository, signature.digest, tag)]))
    # Then it is skipped (a simple-signing payload, no filesystem layer), not reported as an unsigned image
    [record] = audit.audit_records(PUSH_RECORD_VERSION)
    assert record["outcome"] == "skipped" and "not a runnable image" in record["reasons"][0]


def test_push_audit_verifies_a_runnable_image_pushed_under_a_signature_tag(registry, key):
    # Given an unsigned, runnable image pushed under a tag that looks like a cosign signature's
    image = push_image(registry, unique_repository("audit"), "sha256-" + "ab" * 32 + ".sig", layer_bytes=b"disguised")
    audit = push_audit(registry, key)
    audit.ecr.signing(image.repository, image.digest)
    # When its push is audited
    audit.handle(sqs_batch([ecr_push_event(image.repository, image.digest, image.ref.tag)]))
    # Then the content decides: it is an image, and it is rejected
    assert audit.audit_records(PUSH_RECORD_VERSION)[0]["outcome"] == "rejected"


def test_push_audit_skips_the_referrers_tag_index_of_an_image(registry, key):
    image = push_image(registry, unique_repository("audit"), "v1", layer_bytes=b"indexed")
    push_bundle_referrer(registry, image, sigstore_bundle(key, in_toto_statement(image.digest)))
    tag = image.digest.replace(":", "-")
    index = fetch_raw(registry, image.repository, f"manifests/{tag}", "application/vnd.oci.image.index.v1+json")
    audit = push_audit(registry, key)
    audit.handle(sqs_batch([ecr_push_event(image.repository, sha256_digest(index), tag)]))
    [record] = audit.audit_records(PUSH_RECORD_VERSION)
    assert record["outcome"] == "skipped" and "index of 1 artifact" in record["reasons"][0]


def test_push_audit_skips_an_untagged_referrer_pushed_by_digest(registry, key):
    # Given a cosign v3 bundle pushed as an OCI referrer (by digest, with a subject)
    image = push_image(registry, unique_repository("audit"), "v1", layer_bytes=b"bundled")
    referrer = push_bundle_referrer(registry, image, sigstore_bundle(key, in_toto_statement(image.digest)))
    audit = push_audit(registry, key)
    # When its push event (no image-tag) is audited
    audit.handle(sqs_batch([ecr_push_event(image.repository, referrer.digest, None)]))
    # Then it is an artifact about the image, not an image
    [record] = audit.audit_records(PUSH_RECORD_VERSION)
    assert record["outcome"] == "skipped" and f"about {image.digest}" in record["reasons"][0]


def test_push_audit_verifies_an_untagged_image_pushed_by_digest(registry, key):
    image = push_image(registry, unique_repository("audit"), None, layer_bytes=b"by-digest")
    audit = push_audit(registry, key)
    audit.ecr.signing(image.repository, image.digest)
    audit.handle(sqs_batch([ecr_push_event(image.repository, image.digest, None)]))
    assert audit.audit_records(PUSH_RECORD_VERSION)[0]["outcome"] == "rejected"


def test_push_audit_returns_an_unavailable_push_to_the_queue(registry, key, capsys):
    # Given a registry that does not answer (nothing listens on loopback port 9)
    audit = push_audit(registry, key, host="127.0.0.1:9")
    batch = sqs_batch([ecr_push_event("team/app", "sha256:" + "ab" * 32, "v1")])
    # When the push is audited
    response = audit.handle(batch)
    # Then the message goes back to the queue (tried again, then the dead-letter queue)
    assert response == {"batchItemFailures": [{"itemIdentifier": batch["Records"][0]["messageId"]}]}
    assert audit.audit_records(PUSH_RECORD_VERSION)[0]["outcome"] == "unavailable"
    assert emf_metrics(capsys.readouterr().out)["PushesUnavailable"] == 1


def test_push_audit_records_a_malformed_message_as_a_fault_and_drops_it(registry, key, key_file, capsys):
    # Given a batch with one unreadable body and one signed push
    image = _signed(registry, key_file)
    audit = push_audit(registry, key)
    response = audit.handle(sqs_batch(["{not json", ecr_push_event(image.repository, image.digest, "v1")]))
    # Then the bad one is a fault (not delivered again: reading it again changes nothing), the good one verified
    assert response == {"batchItemFailures": []}
    malformed, verified = audit.audit_records(PUSH_RECORD_VERSION)
    assert malformed["outcome"] == "malformed" and "not JSON" in malformed["error"]
    assert verified["outcome"] == "verified"
    metrics = emf_metrics(capsys.readouterr().out)
    assert metrics["AuditErrors"] == 1 and metrics["PushesVerified"] == 1


def test_push_audit_rejects_a_delete_event_as_malformed(registry, key):
    audit = push_audit(registry, key)
    audit.handle(sqs_batch([ecr_push_event("team/app", "sha256:" + "cd" * 32, "v1", action="DELETE")]))
    [record] = audit.audit_records(PUSH_RECORD_VERSION)
    assert record["outcome"] == "malformed" and "not a successful push" in record["error"]


# --- task audit ---------------------------------------------------------------------------------------

def test_task_audit_verifies_a_run_task_whose_images_are_signed(registry, key, key_file, capsys):
    # Given a task started by RunTask (family group), running a signed image by digest
    image = _signed(registry, key_file)
    audit = task_audit(registry, key, stop=True)
    # When ECS reports it RUNNING
    result = audit.handle(task_state_change([("app", str(image.tag_ref), image.digest)]))
    # Then it is verified and left alone
    assert result == {"decision": "verified", "stopped": False}
    [record] = audit.audit_records(TASK_RECORD_VERSION)
    assert record["decision"] == "verified" and record["platform"] == "linux/amd64"
    assert record["images"][0]["digest"] == image.digest and record["images"][0]["container"] == "app"
    audit.ecs.assert_no_pending_responses()
    assert emf_metrics(capsys.readouterr().out)["TasksVerified"] == 1


def test_task_audit_stops_a_task_whose_image_is_unsigned_when_asked(registry, key, key_file, capsys):
    # Given a scheduled task with a signed app and an unsigned sidecar, and stop_unverified_tasks
    app = _signed(registry, key_file)
    sidecar = push_image(registry, unique_repository("audit"), "v2", layer_bytes=b"sidecar")
    event = task_state_change([("app", str(app.tag_ref), app.digest), ("sidecar", str(sidecar.tag_ref), sidecar.digest)],
                              started_by="events-rule/nightly")
    task_arn = event["detail"]["taskArn"]
    audit = task_audit(registry, key, stop=True)
    audit.ecs.add_response("stop_task", {"task": {"taskArn": task_arn}}, {
        "cluster": CLUSTER_ARN, "task": task_arn,
        "reason": ANY})
    # When it is audited
    result = audit.handle(event)
    # Then it is reported and stopped, with a reason naming the image
    assert result == {"decision": "rejected", "stopped": True}
    [record] = audit.audit_records(TASK_RECORD_VERSION)
    assert record["decision"] == "rejected" and record["stopped"] is True and record["level"] == "WARNING"
    assert [i["outcome"] for i in record["images"]] == ["verified", "rejected"]
    assert record["stopReason"].startswith(STOP_REASON_PREFIX + str(sidecar.tag_ref))
    assert len(record["stopReason"]) <= 255
    audit.ecs.assert_no_pending_responses()
    metrics = emf_metrics(capsys.readouterr().out)
    assert metrics["TasksRejected"] == 1 and metrics["TasksStopped"] == 1


def test_task_audit_only_reports_an_unsigned_task_when_stopping_is_off(registry, key):
    image = push_image(registry, unique_repository("audit"), "v1", layer_bytes=b"unsigned-task")
    audit = task_audit(registry, key, stop=False)
    # The stubbed ECS client has no answer queued: a StopTask call would fail the test.
    result = audit.handle(task_state_change([("app", str(image.tag_ref), image.digest)]))
    assert result == {"decision": "rejected", "stopped": False}
    [record] = audit.audit_records(TASK_RECORD_VERSION)
    assert record["stopRequested"] is False and record["stopped"] is False


def test_task_audit_skips_a_task_its_protected_service_deployment_started(registry, key):
    # Given an unsigned image in a task that the protected service's current deployment started
    image = push_image(registry, unique_repository("audit"), "v1", layer_bytes=b"service-task")
    audit = task_audit(registry, key, stop=True)
    audit.ecs.add_response("describe_services", _services_answer("ecs-svc/1234567890123456789"),
                           {"cluster": CLUSTER_ARN, "services": [SERVICE]})
    # When it is audited
    result = audit.handle(task_state_change([("app", str(image.tag_ref), image.digest)], group=f"service:{SERVICE}",
                                            started_by="ecs-svc/1234567890123456789"))
    # Then the hook decided it: it is recorded as protected and not verified again
    assert result == {"decision": "protected"}
    [record] = audit.audit_records(TASK_RECORD_VERSION)
    assert record["images"] == [] and "started by its deployment" in record["protection"]
    audit.ecs.assert_no_pending_responses()


def test_task_audit_audits_a_run_task_that_claims_a_protected_service_group(registry, key):
    # Given RunTask --group service:payments-api --started-by ecs-svc/forged (both are free strings)
    image = push_image(registry, unique_repository("audit"), "v1", layer_bytes=b"forged")
    audit = task_audit(registry, key, stop=False)
    audit.ecs.add_response("describe_services", _services_answer("ecs-svc/1234567890123456789"),
                           {"cluster": CLUSTER_ARN, "services": [SERVICE]})
    result = audit.handle(task_state_change([("app", str(image.tag_ref), image.digest)], group=f"service:{SERVICE}",
                                            started_by="ecs-svc/forged"))
    # Then the claim is not confirmed and the task is audited like any other
    assert result["decision"] == "rejected"
    [record] = audit.audit_records(TASK_RECORD_VERSION)
    assert "none of the service's deployments" in record["protection"]


def test_task_audit_records_a_failed_stop_as_a_fault(registry, key, capsys):
    image = push_image(registry, unique_repository("audit"), "v1", layer_bytes=b"unstoppable")
    audit = task_audit(registry, key, stop=True)
    audit.ecs.add_client_error("stop_task", service_error_code="AccessDeniedException",
                               service_message="not authorized to perform ecs:StopTask")
    result = audit.handle(task_state_change([("app", str(image.tag_ref), image.digest)]))
    assert result == {"decision": "rejected", "stopped": False}
    [record] = audit.audit_records(TASK_RECORD_VERSION)
    assert record["level"] == "ERROR" and "AccessDenied" in record["stopError"]
    metrics = emf_metrics(capsys.readouterr().out)
    assert metrics["AuditErrors"] == 1 and "TasksStopped" not in metrics


def test_task_audit_records_a_malformed_event_as_a_fault(registry, key):
    audit = task_audit(registry, key, stop=True)
    event = task_state_change([("app", "registry.example.com/app:v1", None)])
    event["detail"]["containers"] = []
    assert audit.handle(event) == {"decision": "malformed"}
    [record] = audit.audit_records(TASK_RECORD_VERSION)
    assert "nothing says what the task runs" in record["error"]


def _services_answer(deployment_id: str) -> dict[str, Any]:
    return {"services": [{
        "serviceArn": f"arn:aws:ecs:us-east-1:111111111111:service/{CLUSTER}/{SERVICE}", "serviceName": SERVICE,
        "clusterArn": CLUSTER_ARN, "status": "ACTIVE",
        "deployments": [{"id": deployment_id, "status": "PRIMARY", "desiredCount": 1, "runningCount": 1}],
    }], "failures": []}

