"""The task audit Lambda: a task that no protected deployment started has its images verified.

Handler setting: ``image_verifier.audits.task.lambda_handler``. EventBridge sends ECS
"ECS Task State Change" events of RUNNING tasks. Steps:

1. read the event (malformed: a fault record, nothing else);
2. a task of a protected service's deployment was decided by the hook: skip it. ``group``
   (``service:NAME``) and ``startedBy`` are only claims (RunTask sets both freely), so the claim is
   confirmed with ``ecs:DescribeServices``: ``startedBy`` must be one of that service's deployment
   ids. An unconfirmed claim is audited like any other task;
3. verify each container's digest (what the task actually runs; the tag when ECS has none) with the
   admission policy, for the task's CPU architecture when ECS says it;
4. write one audit record and count the decision; a task with a rejected image is ``rejected`` and,
   when ``AUDIT_STOP_UNVERIFIED_TASKS=true``, stopped with ``ecs:StopTask`` and a reason. An
   ``unavailable`` image never stops a task (a registry outage must not stop production).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from ..deadline import Deadline
from ..handler.telemetry import image_entry
from ..verdict import Decision, Outcome, Verdict
from ..verifier import ImageRequest
from ._parts import EntryPoint, TaskAuditSettings
from .events import AuditEventError, RunningTask
from .report import (
    METRIC_TASKS,
    METRIC_TASKS_STOPPED,
    TASK_RECORD_VERSION,
    AuditReporter,
)

MESSAGE = "image task audit"
FALLBACK_REMAINING_SECONDS = 30.0
MIN_DECISION_SECONDS = 1.0
MAX_STOP_REASON = 255  # StopTask's reason is at most 255 characters
STOP_REASON_PREFIX = "image-verifier task audit: "


class Verifier(Protocol):
    def decide(self, requests: Sequence[ImageRequest], *, deadline: Deadline) -> Decision: ...


class TaskAuditHandler:
    """One task event in, one audit record out (and maybe one StopTask); clients are injected."""

    def __init__(self, *, settings: TaskAuditSettings, verifier: Verifier, ecs_for_region: Callable[[str], Any],
                 reporter: AuditReporter, policy_hash: str, deadline_margin: float) -> None:
        self.settings = settings
        self._verifier = verifier
        self._ecs = ecs_for_region
        self._reporter = reporter
        self._policy_hash = policy_hash
        self._margin = deadline_margin

    def handle(self, event: Any, context: Any = None) -> dict[str, Any]:
        try:
            return self._handle(event, context)
        finally:
            self._reporter.flush()

    def _handle(self, event: Any, context: Any) -> dict[str, Any]:
        try:
            task = RunningTask.from_event(event)
        except AuditEventError as exc:
            self._reporter.record(TASK_RECORD_VERSION, MESSAGE, {"decision": "malformed", "error": str(exc)},
                                  metric=None, error=True)
            return {"decision": "malformed"}
        if task.last_status != "RUNNING":
            return {"decision": "ignored"}  # the rule sends RUNNING only; another state is not ours to judge
        protected, protection = self._protection(task)
        if protected:
            self._write(task, "protected", protection=protection)
            return {"decision": "protected"}
        remaining = (context.get_remaining_time_in_millis() / 1000.0 if context is not None
                     else FALLBACK_REMAINING_SECONDS)
        deadline = Deadline.after(max(remaining - self._margin, MIN_DECISION_SECONDS))
        requests = [ImageRequest(image=c.image, digest=c.digest, platform=task.platform) for c in task.containers]
        verdicts = self._verifier.decide(requests, deadline=deadline).verdicts
        outcomes = {v.outcome for v in verdicts}
        decision = ("rejected" if Outcome.REJECTED in outcomes else
                    "unavailable" if Outcome.UNAVAILABLE in outcomes else "verified")
        stopped, stop_error, stop_reason = False, None, None
        if decision == "rejected" and self.settings.stop_unverified_tasks:
            stop_reason = stop_reason_for(verdicts)
            stopped, stop_error = self._stop(task, stop_reason)
        self._write(task, decision, verdicts=verdicts, protection=protection, stopped=stopped, stop_error=stop_error,
                    stop_reason=stop_reason)
        return {"decision": decision, "stopped": stopped}

    def _protection(self, task: RunningTask) -> tuple[bool, str | None]:
        """(started by a protected service's deployment, why we think so or not)."""
        service = task.claimed_service
        if service is None or (task.cluster, service) not in self.settings.protected:
            return False, None
        claim = f"group {task.group} names protected service {task.cluster}/{service}"
        started_by = task.started_by or ""
        if not started_by.startswith("ecs-svc/"):
            return False, f"{claim}, but startedBy {started_by!r} is not the service scheduler's: audited"
        try:
            answer = self._ecs(task.region).describe_services(cluster=task.cluster_arn, services=[service])
            deployments = {d.get("id") for s in answer.get("services") or () for d in s.get("deployments") or ()}
        except Exception as exc:  # noqa: BLE001 - an unconfirmed claim is audited, never trusted
            return False, f"{claim}; DescribeServices failed ({type(exc).__name__}: {str(exc)[:200]}): audited"
        if started_by in deployments:
            return True, f"{claim}, started by its deployment {started_by}"
        return False, f"{claim}, but {started_by} is none of the service's deployments: audited"

    def _stop(self, task: RunningTask, reason: str) -> tuple[bool, str | None]:
        try:
            self._ecs(task.region).stop_task(cluster=task.cluster_arn, task=task.task_arn, reason=reason)
        except Exception as exc:  # noqa: BLE001 - recorded as a fault; the task keeps running and the alarm fires
            return False, f"{type(exc).__name__}: {str(exc)[:500]}"
        return True, None

    def _write(self, task: RunningTask, decision: str, *, verdicts: Sequence[Verdict] = (),
               protection: str | None = None, stopped: bool = False, stop_error: str | None = None,
               stop_reason: str | None = None) -> None:
        images = [image_entry(c.name, v, cached=False) for c, v in zip(task.containers, verdicts, strict=False)]
        record: dict[str, Any] = {
            "decision": decision,
            "task": task.task_arn,
            "cluster": task.cluster_arn,
            "group": task.group,
            "startedBy": task.started_by,
            "taskDefinition": task.task_definition_arn,
            "platform": str(task.platform) if task.platform else None,
            "protection": protection,
            "images": images,
            "counts": {o.value: sum(1 for v in verdicts if v.outcome is o) for o in Outcome},
            "stopRequested": decision == "rejected" and self.settings.stop_unverified_tasks,
            "stopped": stopped,
            "stopReason": stop_reason,
            "stopError": stop_error,
            "policyHash": self._policy_hash,
        }
        self._reporter.record(TASK_RECORD_VERSION, MESSAGE, record, metric=METRIC_TASKS.get(decision),
                              warn=decision == "rejected", error=stop_error is not None)
        if stopped:
            self._reporter.count(METRIC_TASKS_STOPPED)


def stop_reason_for(verdicts: Sequence[Verdict]) -> str:
    """StopTask's reason: the first rejected image and why, within ECS's 255 characters."""
    first = next(v for v in verdicts if v.outcome is Outcome.REJECTED)
    detail = f"{first.image} rejected" + (f": {first.reasons[0]}" if first.reasons else "")
    return (STOP_REASON_PREFIX + detail)[:MAX_STOP_REASON]


# --- composition root ----------------------------------------------------------------------------------

def build_task_audit(environ: Mapping[str, str] | None = None, *, aws: Any = None, logger: Any = None,
                     metrics: Any = None) -> TaskAuditHandler:
    """Build every part from the environment (the admission policy, the protected services); tests inject clients."""
    from ..composition import AwsClients, build_verifier
    from ._parts import reporter_for, settings_from_env, task_settings_from_env

    settings = settings_from_env(environ, default_service="image-task-audit")
    aws = aws or AwsClients()
    verifier = build_verifier(settings.policy, insecure_registries=settings.insecure_registries, aws=aws)
    return TaskAuditHandler(settings=task_settings_from_env(environ), verifier=verifier,
                            ecs_for_region=aws.for_service("ecs"), reporter=reporter_for(settings, logger, metrics),
                            policy_hash=settings.policy.policy_hash, deadline_margin=settings.deadline_margin)


_entry = EntryPoint(build_task_audit, "the task audit")


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    return _entry.handle(event, context)
