"""Events shaped exactly as AWS documents them, for the push and task audits.

- `ecr_push_event`: ECR user guide, "Amazon ECR events and EventBridge", event for a completed image push.
- `sqs_batch`: the Lambda SQS event that an EventBridge rule with an SQS target delivers (the event is the body).
- `task_state_change`: ECS developer guide, "Amazon ECS task state change events" (``detail`` is a Task).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

REGION = "us-east-1"
ACCOUNT = "111111111111"
CLUSTER = "prod"
CLUSTER_ARN = f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{CLUSTER}"


def ecr_push_event(repository: str, digest: str, tag: str | None = "latest", *, account: str = ACCOUNT,
                   region: str = REGION, result: str = "SUCCESS", action: str = "PUSH") -> dict[str, Any]:
    detail: dict[str, Any] = {"result": result, "repository-name": repository, "image-digest": digest,
                              "action-type": action}
    if tag is not None:
        detail["image-tag"] = tag
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "ECR Image Action", "source": "aws.ecr",
            "account": account, "time": "2026-11-30T01:54:34Z", "region": region, "resources": [],
            "detail": detail}


def sqs_batch(bodies: Sequence[Any], *, receive_count: int = 1) -> dict[str, Any]:
    """A Lambda SQS event; a body that is not a string is sent as its JSON text."""
    return {"Records": [{
        "messageId": f"msg-{index}-{uuid.uuid4().hex[:8]}", "receiptHandle": "AQEB...",
        "body": body if isinstance(body, str) else json.dumps(body),
        "attributes": {"ApproximateReceiveCount": str(receive_count), "SentTimestamp": "1764467674000",
                       "SenderId": "AIDAEXAMPLE", "ApproximateFirstReceiveTimestamp": "1764467974000"},
        "messageAttributes": {}, "md5OfBody": "0" * 32, "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:push-audit", "awsRegion": REGION,
    } for index, body in enumerate(bodies)]}


def task_state_change(containers: Sequence[tuple[str, str, str | None]], *, group: str = "family:nightly-report",
                      started_by: str | None = None, last_status: str = "RUNNING", architecture: str | None = "x86_64",
                      task_id: str | None = None, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A task state change event; `containers` are (name, image, imageDigest or None)."""
    task_id = task_id or uuid.uuid4().hex
    task_arn = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/{CLUSTER}/{task_id}"
    detail: dict[str, Any] = {
        "attachments": [], "availabilityZone": f"{REGION}a", "clusterArn": CLUSTER_ARN,
        "containers": [{
            "containerArn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:container/{CLUSTER}/{task_id}/{uuid.uuid4()}",
            "lastStatus": last_status, "name": name, "image": image,
            **({"imageDigest": digest} if digest else {}),
            "runtimeId": f"{task_id}-{index}", "taskArn": task_arn, "networkInterfaces": [], "cpu": "0",
        } for index, (name, image, digest) in enumerate(containers)],
        "cpu": "256", "createdAt": "2026-11-30T02:00:00.000Z", "desiredStatus": "RUNNING",
        "enableExecuteCommand": False, "group": group, "launchType": "FARGATE", "lastStatus": last_status,
        "memory": "512", "platformVersion": "1.4.0", "taskArn": task_arn,
        "taskDefinitionArn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/nightly-report:3",
        "updatedAt": "2026-11-30T02:00:30.000Z", "version": 3,
    }
    if architecture is not None:
        detail["attributes"] = [{"name": "ecs.cpu-architecture", "value": architecture}]
    if started_by is not None:
        detail["startedBy"] = started_by
    detail.update(extra or {})
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "ECS Task State Change", "source": "aws.ecs",
            "account": ACCOUNT, "time": "2026-11-30T02:00:30Z", "region": REGION, "resources": [task_arn],
            "detail": detail}
