"""The ECS deployment lifecycle-hook event, parsed strictly, and the response ECS expects.

Event (ECS developer guide, "Lifecycle payloads")::

    {"executionId": "...", "lifecycleStage": "PRE_SCALE_UP",
     "resourceArn": "arn:aws:ecs:<r>:<acct>:service-deployment/<cluster>/<service>/<id>",
     "executionDetails": {"serviceArn": "arn:aws:ecs:<r>:<acct>:service/<cluster>/<service>",
                          "targetServiceRevisionArn": "arn:aws:ecs:<r>:<acct>:service-revision/<cluster>/<service>/<n>",
                          "testTrafficWeights": {}, "productionTrafficWeights": {}},
     "hookDetails": {...}}

Older documentation shows `serviceArn` and `targetServiceRevisionArn` at the top level; both
shapes are read. Response: `{"hookStatus": "SUCCEEDED" | "FAILED" | "IN_PROGRESS"}`, with
`callBackDelay` (seconds) and `hookDetails` (merged into the next invocation's event) for
`IN_PROGRESS`. Our own state in `hookDetails` lives under one key, `imageAdmission`, so hook
details configured by the user pass through untouched.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Mapping

from . import _shape

STATE_KEY = "imageAdmission"  # our key inside hookDetails
MAX_ATTEMPT = 1000  # a hostile or corrupted attempt counter is clamped, never trusted to be small
MAX_STRING = 2048  # an ARN or an id is far shorter; bounds the regexes and what is logged
MAX_HOOK_DETAILS = 64 * 1024  # hookDetails given as a JSON string; ours is a few dozen bytes

_ARN_HEAD = r"arn:aws(?:-[a-z]+)*:ecs:(?P<region>[a-z0-9-]+):(?P<account>[0-9]{12}):"
SERVICE_ARN = re.compile(_ARN_HEAD + r"service/(?P<cluster>[A-Za-z0-9_-]{1,255})/(?P<service>[A-Za-z0-9_-]{1,255})")
REVISION_ARN = re.compile(
    _ARN_HEAD + r"service-revision/(?P<cluster>[A-Za-z0-9_-]{1,255})/(?P<service>[A-Za-z0-9_-]{1,255})/[0-9A-Za-z]{1,64}"
)
STAGES = frozenset({
    "RECONCILE_SERVICE", "PRE_SCALE_UP", "POST_SCALE_UP", "TEST_TRAFFIC_SHIFT", "POST_TEST_TRAFFIC_SHIFT",
    "PRE_PRODUCTION_TRAFFIC_SHIFT", "PRODUCTION_TRAFFIC_SHIFT", "POST_PRODUCTION_TRAFFIC_SHIFT",
})


class HookStatus(StrEnum):
    SUCCEEDED = "SUCCEEDED"  # the deployment goes on
    FAILED = "FAILED"  # ECS rolls back to the last good revision
    IN_PROGRESS = "IN_PROGRESS"  # ECS calls again after callBackDelay seconds


class EventError(ValueError):
    """The event is not a lifecycle-hook event we can act on; the message says what was wrong."""


@dataclass(frozen=True, kw_only=True)
class HookEvent:
    service_arn: str
    revision_arn: str
    stage: str | None  # None only in the older shape, which had no lifecycleStage
    execution_id: str | None
    deployment_arn: str | None  # resourceArn: the service deployment
    attempt: int  # 1 on the first invocation of this hook; carried in hookDetails after IN_PROGRESS
    hook_details: Mapping[str, Any]

    @property
    def region(self) -> str:
        match = REVISION_ARN.fullmatch(self.revision_arn)
        assert match is not None  # checked by parse
        return match["region"]

    @classmethod
    def parse(cls, event: Any) -> HookEvent:
        """The event, or `EventError` naming the field that is missing or of the wrong shape."""
        event = _shape.mapping(event, "the event", EventError)
        details = event.get("executionDetails")
        if details is None:
            details = event  # the older, flat shape
        else:
            details = _shape.mapping(details, "executionDetails", EventError)
        service = _arn(details, "serviceArn", SERVICE_ARN, "arn:aws:ecs:<region>:<account>:service/<cluster>/<service>")
        revision = _arn(details, "targetServiceRevisionArn", REVISION_ARN,
                        "arn:aws:ecs:<region>:<account>:service-revision/<cluster>/<service>/<id>")
        s, r = SERVICE_ARN.fullmatch(service), REVISION_ARN.fullmatch(revision)
        assert s is not None and r is not None
        if (s["region"], s["account"], s["cluster"], s["service"]) != (r["region"], r["account"], r["cluster"],
                                                                       r["service"]):
            raise EventError(f"targetServiceRevisionArn {revision} does not belong to serviceArn {service}")
        stage = event.get("lifecycleStage")
        # The type first: a list or an object here is not hashable, and must be refused, not raised on.
        if stage is not None and (not isinstance(stage, str) or stage not in STAGES):
            raise EventError(f"lifecycleStage must be an ECS lifecycle stage ({', '.join(sorted(STAGES))}), "
                             f"{_shape.got(stage)}")
        hook_details = _hook_details(event.get("hookDetails"))
        return cls(
            service_arn=service,
            revision_arn=revision,
            stage=stage,
            execution_id=_optional_string(event, "executionId"),
            deployment_arn=_optional_string(event, "resourceArn"),
            attempt=_attempt(hook_details),
            hook_details=hook_details,
        )


def respond(status: HookStatus, *, callback_delay: int | None = None, attempt: int | None = None) -> dict[str, Any]:
    """The response ECS reads. Only IN_PROGRESS carries callBackDelay and our state."""
    response: dict[str, Any] = {"hookStatus": status.value}
    if status is HookStatus.IN_PROGRESS:
        response["callBackDelay"] = callback_delay
        response["hookDetails"] = {STATE_KEY: {"attempt": attempt}}
    return response


def _arn(details: Mapping[str, Any], key: str, pattern: re.Pattern[str], shape: str) -> str:
    value = details.get(key)
    if value is None:
        raise EventError(f"the event has no {key} (looked in executionDetails and at the top level)")
    if not isinstance(value, str) or len(value) > MAX_STRING or not pattern.fullmatch(value):
        raise EventError(f"{key} must be an ARN like {shape}, {_shape.got(value)}")
    return value


def _optional_string(event: Mapping[str, Any], key: str) -> str | None:
    value = event.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_STRING:
        raise EventError(f"{key} must be a string of at most {MAX_STRING} characters, {_shape.got(value)}")
    return value


def _hook_details(value: Any) -> Mapping[str, Any]:
    # CloudFormation documents HookDetails as "a JSON object as a string"; ECS may pass either form.
    if value is None:
        return {}
    if isinstance(value, str):
        if len(value) > MAX_HOOK_DETAILS:
            raise EventError(f"hookDetails is {len(value)} characters long; at most {MAX_HOOK_DETAILS} are read")
        try:
            value = json.loads(value)
        except (ValueError, RecursionError) as exc:  # RecursionError: nested deeper than the parser's stack
            raise EventError(f"hookDetails is a string but not JSON: {type(exc).__name__}: {str(exc)[:200]}") from exc
    return _shape.mapping(value, "hookDetails", EventError)


def _attempt(hook_details: Mapping[str, Any]) -> int:
    state = hook_details.get(STATE_KEY)
    if state is None:
        return 1
    attempt = _shape.mapping(state, f"hookDetails.{STATE_KEY}", EventError).get("attempt")
    if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
        raise EventError(f"hookDetails.{STATE_KEY}.attempt must be a positive whole number, {_shape.got(attempt)}")
    return min(attempt, MAX_ATTEMPT)
