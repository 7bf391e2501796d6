"""The two audit events, read strictly by pure functions (no I/O, no environment).

ECR push (ECR user guide, "Amazon ECR events and EventBridge", event for a completed image push)::

    {"version": "0", "detail-type": "ECR Image Action", "source": "aws.ecr", "account": "123456789012",
     "region": "us-west-2", "resources": [],
     "detail": {"result": "SUCCESS", "repository-name": "my-repository-name", "image-digest": "sha256:...",
                "action-type": "PUSH", "image-tag": "latest"}}

It reaches the push audit as the body of an SQS message (the rule's target is a queue with a
delivery delay), so the Lambda event is ``{"Records": [{"messageId", "body", "attributes"}, ...]}``.

ECS task state change (ECS developer guide, "Amazon ECS task state change events"; ``detail`` is
shaped like DescribeTasks' Task, and ``imageDigest`` is present for images hosted in ECR)::

    {"detail-type": "ECS Task State Change", "source": "aws.ecs", "account": "...", "region": "...",
     "detail": {"clusterArn": "...", "taskArn": "...", "taskDefinitionArn": "...",
                "group": "service:NAME" | "family:NAME", "startedBy": "ecs-svc/123..." | ...,
                "lastStatus": "RUNNING", "desiredStatus": "RUNNING",
                "attributes": [{"name": "ecs.cpu-architecture", "value": "arm64"}],
                "containers": [{"name": "app", "image": "...", "imageDigest": "sha256:..."}]}}
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..handler import _shape
from ..platform import Platform
from ..reference import is_digest

PUSH_DETAIL_TYPE = "ECR Image Action"
TASK_DETAIL_TYPE = "ECS Task State Change"
MAX_STRING = 2048  # an ARN, a repository name or an image reference is far shorter
MAX_BODY = 256 * 1024  # an SQS message body is at most 256 KiB
MAX_CONTAINERS = 64  # a task definition holds at most 10 containers (plus ECS-managed ones)
MAX_RECORDS = 10_000  # an SQS batch is at most 10,000 messages
_ACCOUNT = re.compile(r"[0-9]{12}")
_REGION = re.compile(r"[a-z]{2}(?:-[a-z]+)+-[0-9]{1,2}")
_REPOSITORY = re.compile(r"[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*")
_CLUSTER_ARN = re.compile(r"arn:aws(?:-[a-z]+)*:ecs:[a-z0-9-]+:[0-9]{12}:cluster/(?P<cluster>[A-Za-z0-9_-]{1,255})")
_TASK_ARN = re.compile(r"arn:aws(?:-[a-z]+)*:ecs:[a-z0-9-]+:[0-9]{12}:task/[A-Za-z0-9_/-]{1,600}")
_ARCHITECTURE_ATTRIBUTE = "ecs.cpu-architecture"


class AuditEventError(ValueError):
    """The event is not one the audit can act on; the message names the bad field."""


def _envelope(event: Any, detail_type: str, source: str) -> tuple[str, str, Mapping[str, Any]]:
    """(account, region, detail) of an EventBridge event of the given type."""
    event = _shape.mapping(event, "event", AuditEventError)
    if event.get("detail-type") != detail_type or event.get("source") != source:
        raise AuditEventError(f"event is not a {source} {detail_type!r} event, got detail-type "
                              f"{_shape.show(event.get('detail-type'))} from {_shape.show(event.get('source'))}")
    account = _shape.string(event.get("account"), "event.account", AuditEventError, max_length=12)
    region = _shape.string(event.get("region"), "event.region", AuditEventError, max_length=32)
    if not _ACCOUNT.fullmatch(account) or not _REGION.fullmatch(region):
        raise AuditEventError(f"event.account and event.region must be an account id and a region, got "
                              f"{_shape.show(account)} and {_shape.show(region)}")
    return account, region, _shape.mapping(event.get("detail"), "event.detail", AuditEventError)


# --- ECR pushes -------------------------------------------------------------------------------------

def ecr_host(account: str, region: str) -> str:
    """The private registry of an account and region (``.cn`` in the China partition)."""
    return f"{account}.dkr.ecr.{region}.amazonaws.com" + (".cn" if region.startswith("cn-") else "")


@dataclass(frozen=True, kw_only=True)
class PushedImage:
    account: str
    region: str
    repository: str
    digest: str
    tag: str | None  # absent for a push by digest

    @classmethod
    def from_event(cls, event: Any) -> PushedImage:
        account, region, detail = _envelope(event, PUSH_DETAIL_TYPE, "aws.ecr")
        action = detail.get("action-type")
        result = detail.get("result")
        if action != "PUSH" or result != "SUCCESS":
            raise AuditEventError(f"event.detail is not a successful push: action-type {_shape.show(action)}, "
                                  f"result {_shape.show(result)}")
        repository = _shape.string(detail.get("repository-name"), "event.detail.repository-name", AuditEventError,
                                   max_length=256)
        if not _REPOSITORY.fullmatch(repository):
            raise AuditEventError(f"event.detail.repository-name is not a repository name: {_shape.show(repository)}")
        digest = _shape.string(detail.get("image-digest"), "event.detail.image-digest", AuditEventError,
                               max_length=200)
        if not is_digest(digest):
            raise AuditEventError(f"event.detail.image-digest is not a digest: {_shape.show(digest)}")
        tag = _shape.optional_string(detail, "image-tag", "event.detail", AuditEventError, max_length=128)
        return cls(account=account, region=region, repository=repository, digest=digest, tag=tag)

    def image(self, registry: str | None = None) -> str:
        """``registry/repository@digest``; the registry is the account's ECR unless one is given."""
        return f"{registry or ecr_host(self.account, self.region)}/{self.repository}@{self.digest}"


@dataclass(frozen=True, kw_only=True)
class QueuedMessage:
    """One SQS record: its id (for batchItemFailures), how often it was received, and its body."""

    message_id: str
    receive_count: int
    body: str


def queued_messages(event: Any) -> list[QueuedMessage]:
    """The records of a Lambda SQS event; raises `AuditEventError` when the batch itself is unreadable."""
    event = _shape.mapping(event, "event", AuditEventError)
    records = _shape.array(event.get("Records"), "event.Records", AuditEventError, max_items=MAX_RECORDS)
    messages = []
    for index, raw in enumerate(records):
        where = f"event.Records[{index}]"
        record = _shape.mapping(raw, where, AuditEventError)
        message_id = _shape.string(record.get("messageId"), f"{where}.messageId", AuditEventError, max_length=200)
        body = _shape.string(record.get("body"), f"{where}.body", AuditEventError, max_length=MAX_BODY, empty=True)
        attributes = record.get("attributes") if isinstance(record.get("attributes"), Mapping) else {}
        count = str(attributes.get("ApproximateReceiveCount", "1"))
        messages.append(QueuedMessage(message_id=message_id, receive_count=int(count) if count.isdigit() else 1,
                                      body=body))
    return messages


def push_from_body(body: str) -> PushedImage:
    try:
        event = json.loads(body)
    except ValueError as exc:
        raise AuditEventError(f"the message body is not JSON: {exc}") from exc
    return PushedImage.from_event(event)


# --- ECS tasks ---------------------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class TaskContainer:
    name: str
    image: str
    digest: str | None  # what ECS resolved the image to; absent outside ECR (the tag is resolved then)


@dataclass(frozen=True, kw_only=True)
class RunningTask:
    account: str
    region: str
    cluster_arn: str
    task_arn: str
    task_definition_arn: str | None
    group: str | None
    started_by: str | None
    last_status: str
    containers: tuple[TaskContainer, ...]
    platform: Platform | None  # from the ecs.cpu-architecture attribute, when ECS sends it

    @property
    def cluster(self) -> str:
        match = _CLUSTER_ARN.fullmatch(self.cluster_arn)
        return match["cluster"] if match else self.cluster_arn

    @property
    def claimed_service(self) -> str | None:
        """The service named by ``group`` (``service:NAME``). RunTask may set any group: only a claim."""
        if self.group and self.group.startswith("service:"):
            return self.group.removeprefix("service:") or None
        return None

    @classmethod
    def from_event(cls, event: Any) -> RunningTask:
        account, region, detail = _envelope(event, TASK_DETAIL_TYPE, "aws.ecs")
        cluster_arn = _shape.string(detail.get("clusterArn"), "event.detail.clusterArn", AuditEventError,
                                    max_length=MAX_STRING)
        task_arn = _shape.string(detail.get("taskArn"), "event.detail.taskArn", AuditEventError, max_length=MAX_STRING)
        if not _CLUSTER_ARN.fullmatch(cluster_arn) or not _TASK_ARN.fullmatch(task_arn):
            raise AuditEventError(f"event.detail.clusterArn and taskArn must be ECS cluster and task ARNs, got "
                                  f"{_shape.show(cluster_arn)} and {_shape.show(task_arn)}")
        raw_containers = _shape.array(detail.get("containers"), "event.detail.containers", AuditEventError,
                                      max_items=MAX_CONTAINERS)
        containers = tuple(_container(c, f"event.detail.containers[{i}]") for i, c in enumerate(raw_containers))
        if not containers:
            raise AuditEventError("event.detail.containers is empty: nothing says what the task runs")
        return cls(
            account=account, region=region, cluster_arn=cluster_arn, task_arn=task_arn,
            task_definition_arn=_optional(detail, "taskDefinitionArn"),
            group=_optional(detail, "group"), started_by=_optional(detail, "startedBy"),
            last_status=_shape.string(detail.get("lastStatus"), "event.detail.lastStatus", AuditEventError,
                                      max_length=64),
            containers=containers, platform=_platform(detail),
        )


def _optional(detail: Mapping[str, Any], key: str) -> str | None:
    return _shape.optional_string(detail, key, "event.detail", AuditEventError, max_length=MAX_STRING)


def _container(raw: Any, where: str) -> TaskContainer:
    container = _shape.mapping(raw, where, AuditEventError)
    name = _shape.string(container.get("name"), f"{where}.name", AuditEventError, max_length=255)
    image = _shape.string(container.get("image"), f"{where}.image", AuditEventError, max_length=MAX_STRING)
    digest = _shape.optional_string(container, "imageDigest", where, AuditEventError, max_length=200)
    if digest is not None and not is_digest(digest):
        raise AuditEventError(f"{where}.imageDigest is not a digest: {_shape.show(digest)}")
    return TaskContainer(name=name, image=image, digest=digest)


def _platform(detail: Mapping[str, Any]) -> Platform | None:
    """linux/<arch> from the ecs.cpu-architecture attribute; None when absent or not a Linux task."""
    family = detail.get("platformFamily")
    if isinstance(family, str) and family and not family.upper().startswith("LINUX"):
        return None  # Windows: the verifier then checks the digest ECS reports, without choosing a platform
    attributes = detail.get("attributes")
    for attribute in attributes if isinstance(attributes, list) else ():
        if isinstance(attribute, Mapping) and attribute.get("name") == _ARCHITECTURE_ATTRIBUTE:
            value = attribute.get("value")
            if isinstance(value, str) and value and len(value) <= 32:
                try:
                    return Platform(os="linux", architecture=value)
                except ValueError:
                    return None
    return None


def protected_services(raw: Iterable[str]) -> frozenset[tuple[str, str]]:
    """``{(cluster name, service name)}`` from ``cluster/service`` strings (the construct writes them)."""
    found = set()
    for item in raw:
        cluster, _, service = str(item).partition("/")
        if not cluster or not service:
            raise ValueError(f"a protected service must be written cluster/service, got {item!r}")
        found.add((cluster, service))
    return frozenset(found)
