"""Test support for the admission handler: ECS-shaped events, a botocore-stubbed ECS client, a
handler wired like the Lambda's composition root but with injected clients and a captured log.

    ecs = StubbedEcs()
    ecs.revision(REVISION_ARN, [("app", image_ref, digest)], runtime_platform={"cpuArchitecture": "ARM64"})
    admission = admission_handler(policy_doc, ecs, insecure_registries=[registry.host])
    response = admission.handle(hook_event(), LambdaContext())
    [record] = admission.audit_records()
"""

from __future__ import annotations

import io
import json
import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Mapping, Sequence

import boto3
from aws_lambda_powertools import Logger, Metrics
from botocore.stub import Stubber

from image_verifier.handler.admission import AdmissionHandler
from image_verifier.handler.app import build_handler
from image_verifier.handler.telemetry import AUDIT_RECORD_VERSION
from image_verifier.platform import Platform
from image_verifier.policy import Mode
from image_verifier.verdict import Decision, Outcome, Verdict
from image_verifier.verifier import ImageRequest
from tests.support.cosign_material import KeyPair, cosign_policy

REGION = "us-east-1"
ACCOUNT = "111111111111"
CLUSTER, SERVICE = "prod", "payments-api"
SERVICE_ARN = f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/{CLUSTER}/{SERVICE}"
REVISION_ARN = f"arn:aws:ecs:{REGION}:{ACCOUNT}:service-revision/{CLUSTER}/{SERVICE}/4185236470873826688"
DEPLOYMENT_ARN = f"arn:aws:ecs:{REGION}:{ACCOUNT}:service-deployment/{CLUSTER}/{SERVICE}/hXHRwrpxmcVJXQxEA7xm0"
TASK_DEFINITION_ARN = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/payments-api:7"


def hook_event(*, stage: str = "PRE_SCALE_UP", revision_arn: str = REVISION_ARN, service_arn: str = SERVICE_ARN,
               hook_details: Mapping[str, Any] | None = None, flat: bool = False) -> dict[str, Any]:
    """The event exactly as ECS sends it (developer guide, "Lifecycle payloads"), or the older flat shape."""
    details = {"serviceArn": service_arn, "targetServiceRevisionArn": revision_arn,
               "testTrafficWeights": {}, "productionTrafficWeights": {}}
    if flat:
        event: dict[str, Any] = dict(details)
    else:
        event = {"executionId": "a3e5c0f8-bd7a-4a1e-9a3b-0f1c2d3e4f50", "lifecycleStage": stage,
                 "resourceArn": DEPLOYMENT_ARN, "executionDetails": details}
    if hook_details is not None:
        event["hookDetails"] = dict(hook_details)
    return event


@dataclass
class LambdaContext:
    remaining_ms: int = 60_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def revision_answer(containers: Sequence[tuple[str, str, str | None]], *, revision_arn: str = REVISION_ARN,
                    task_definition: str = TASK_DEFINITION_ARN,
                    overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A DescribeServiceRevisions answer as ECS documents it (AWS API reference)."""
    revision: dict[str, Any] = {
        "serviceRevisionArn": revision_arn, "serviceArn": SERVICE_ARN,
        "clusterArn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{CLUSTER}",
        "taskDefinition": task_definition, "launchType": "FARGATE", "platformVersion": "1.4.0",
        "containerImages": [{"containerName": name, "image": image, **({"imageDigest": d} if d else {})}
                            for name, image, d in containers],
        "guardDutyEnabled": False, "createdAt": datetime(2026, 11, 22, tzinfo=timezone.utc),
    }
    if overrides:
        revision["overrides"] = dict(overrides)
    return {"serviceRevisions": [revision], "failures": []}


def task_definition_answer(containers: Sequence[tuple[str, str]], *, task_definition: str = TASK_DEFINITION_ARN,
                           runtime_platform: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A DescribeTaskDefinition answer as ECS documents it."""
    definition: dict[str, Any] = {
        "taskDefinitionArn": task_definition, "family": "payments-api", "revision": 7,
        "containerDefinitions": [{"name": name, "image": image} for name, image in containers],
        "requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc", "cpu": "256", "memory": "512",
    }
    if runtime_platform is not None:
        definition["runtimePlatform"] = dict(runtime_platform)
    return {"taskDefinition": definition}


class StubbedEcs:
    """A real boto3 ECS client behind botocore's Stubber (responses validated against the model)."""

    def __init__(self) -> None:
        self.client = boto3.client("ecs", region_name=REGION, aws_access_key_id="testing",
                                   aws_secret_access_key="testing")
        self.stubber = Stubber(self.client)
        self.stubber.activate()

    def revision(self, containers: Sequence[tuple[str, str, str | None]], *, revision_arn: str = REVISION_ARN,
                 task_definition: str = TASK_DEFINITION_ARN, runtime_platform: Mapping[str, str] | None = None,
                 overrides: Mapping[str, Any] | None = None, describe_task_definition: bool = True,
                 task_containers: Sequence[tuple[str, str]] | None = None) -> None:
        """Queue DescribeServiceRevisions (and DescribeTaskDefinition) answers for one decision.

        The task definition's containers are the revision's unless `task_containers` names others.
        """
        self.stubber.add_response(
            "describe_service_revisions",
            revision_answer(containers, revision_arn=revision_arn, task_definition=task_definition, overrides=overrides),
            {"serviceRevisionArns": [revision_arn]})
        if describe_task_definition:
            self.stubber.add_response(
                "describe_task_definition",
                task_definition_answer(task_containers or [(n, i) for n, i, _ in containers],
                                       task_definition=task_definition, runtime_platform=runtime_platform),
                {"taskDefinition": task_definition})

    def missing(self, revision_arn: str = REVISION_ARN) -> None:
        self.stubber.add_response("describe_service_revisions", {
            "serviceRevisions": [], "failures": [{"arn": revision_arn, "reason": "MISSING"}]},
            {"serviceRevisionArns": [revision_arn]})

    def error(self, code: str = "ThrottlingException", message: str = "Rate exceeded", http_status_code: int = 400) -> None:
        self.stubber.add_client_error("describe_service_revisions", service_error_code=code, service_message=message,
                                      http_status_code=http_status_code)


class PlainEcs:
    """An ECS client that answers exactly what it is given, unvalidated: for the hostile shapes that
    botocore's Stubber (rightly) refuses to return. An answer that is an exception is raised."""

    def __init__(self, revisions: Any, task_definition: Any = None) -> None:
        self.client = self
        self.revisions = revisions
        self.task_definition = task_definition
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def describe_service_revisions(self, **kwargs: Any) -> Any:
        return self._answer("describe_service_revisions", kwargs, self.revisions)

    def describe_task_definition(self, **kwargs: Any) -> Any:
        return self._answer("describe_task_definition", kwargs, self.task_definition)

    def _answer(self, name: str, kwargs: dict[str, Any], answer: Any) -> Any:
        self.calls.append((name, kwargs))
        if isinstance(answer, BaseException):
            raise answer
        return answer


class FakeVerifier:
    """Verifies exactly the requests it is told are signed and rejects everything else; records what it
    was asked. `verdicts` overrides the answer for one image name (e.g. an unavailable, throttled one)."""

    def __init__(self, signed: Sequence[ImageRequest] = (), verdicts: Mapping[str, Verdict] | None = None) -> None:
        self.signed = set(signed)
        self.verdicts = dict(verdicts or {})
        self.requests: list[ImageRequest] = []

    def decide(self, requests: Sequence[ImageRequest], *, deadline: Any) -> Decision:
        self.requests.extend(requests)
        verdicts = tuple(self.verdicts.get(r.image) or self._judge(r) for r in requests)
        return Decision(verdicts=verdicts, failure_mode=Mode.BLOCK, unavailable_mode=Mode.BLOCK, policy_hash="fake")

    def _judge(self, request: ImageRequest) -> Verdict:
        if request in self.signed:
            return Verdict(image=request.image, digest=request.digest, outcome=Outcome.VERIFIED, rule="signed")
        return Verdict(image=request.image, digest=request.digest, outcome=Outcome.REJECTED,
                       reasons=(f"fake verifier: {request} is not one of the signed requests",))


class _Aws:
    """What build_verifier and the revision reader ask for: ECS is stubbed, nothing else may be used."""

    def __init__(self, ecs: Any, others: Mapping[str, Any] | None = None) -> None:
        self._ecs = ecs
        self._others = dict(others or {})  # e.g. {"kms": FakeKms(...)}: clients a test answers itself

    def client(self, service: str, region: str) -> Any:
        if service == "ecs":
            return self._ecs
        if service in self._others:
            return self._others[service]
        raise AssertionError(f"the test did not expect a {service} client in {region}")

    def for_service(self, service: str) -> Any:
        return lambda region: self.client(service, region)


@dataclass
class Admission:
    handler: AdmissionHandler
    log: io.StringIO
    ecs: StubbedEcs | PlainEcs
    records: list[dict[str, Any]] = field(default_factory=list)

    def handle(self, event: Any, context: Any = None) -> dict[str, Any]:
        return self.handler.handle(event, LambdaContext() if context is None else context)

    def log_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.getvalue().split("\n") if line.strip()]

    def audit_records(self) -> list[dict[str, Any]]:
        return [line for line in self.log_lines() if line.get("auditRecord") == AUDIT_RECORD_VERSION]


def admission_handler(policy: Mapping[str, Any], ecs: StubbedEcs | PlainEcs | None = None, *,
                      insecure_registries: Sequence[str] = (), env: Mapping[str, str] | None = None,
                      verifier: FakeVerifier | None = None, clients: Mapping[str, Any] | None = None) -> Admission:
    """A handler built by the real composition root from an environment, with ECS stubbed (and the
    verifier replaced by `verifier` when one is given; `clients` answers other AWS services, e.g. KMS)."""
    ecs = ecs or StubbedEcs()
    environ = {"ADMISSION_POLICY": json.dumps(policy), "ADMISSION_INSECURE_REGISTRIES": ",".join(insecure_registries),
               **(env or {})}
    log = io.StringIO()
    # A fresh service name per handler: Powertools loggers of one name share their handlers.
    logger = Logger(service=f"admission-test-{uuid.uuid4().hex[:8]}", logger_handler=logging.StreamHandler(log))
    metrics = Metrics(namespace="SignedImages/Test", service="admission-test")
    handler = build_handler(environ, aws=_Aws(ecs.client, clients), logger=logger, metrics=metrics)
    if verifier is not None:
        handler._verifier = verifier
    return Admission(handler=handler, log=log, ecs=ecs)


def emf_metrics(stdout: str) -> dict[str, float]:
    """Sum the EMF metric values printed on stdout (Powertools writes one JSON object per flush)."""
    totals: dict[str, float] = {}
    for line in stdout.splitlines():
        if '"_aws"' not in line:
            continue
        blob = json.loads(line)
        for directive in blob["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                values = blob[metric["Name"]]
                totals[metric["Name"]] = totals.get(metric["Name"], 0.0) + sum(
                    values if isinstance(values, list) else [values])
    return totals


# A two-container arm64 revision that FakeVerifier(SIGNED) admits: the base the hostile tests change.
APP = "registry.example.com/team/app:v1"
SIDECAR = "registry.example.com/team/sidecar:v2"
DIGEST = "sha256:" + "ab" * 32
ARM = Platform(os="linux", architecture="arm64")
SIGNED = [ImageRequest(image=APP, digest=DIGEST, platform=ARM), ImageRequest(image=SIDECAR, digest=None, platform=ARM)]
NO_CACHE = {"ADMISSION_VERDICT_CACHE_SIZE": "0"}


def policy(**top: Any) -> dict[str, Any]:
    """A cosign policy for registry.example.com (its key is never used by the fake verifier)."""
    doc = cosign_policy({"ci": {"publicKeyPem": KeyPair.generate().public_pem}}, images="registry.example.com/**")
    doc.update(top)
    return doc


def answers() -> tuple[dict[str, Any], dict[str, Any]]:
    """A valid DescribeServiceRevisions and DescribeTaskDefinition pair for an arm64 task with two containers."""
    return (revision_answer([("app", APP, DIGEST), ("sidecar", SIDECAR, None)]),
            task_definition_answer([("app", APP), ("sidecar", SIDECAR)],
                                   runtime_platform={"cpuArchitecture": "ARM64", "operatingSystemFamily": "LINUX"}))
