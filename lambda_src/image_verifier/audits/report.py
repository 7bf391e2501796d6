"""Audit records and metrics of the push and task audits.

One structured log line per pushed image or started task (Powertools Logger: the fields are
top-level JSON keys), found in CloudWatch Logs Insights with
``filter auditRecord = "image-push-audit/v1"`` (or ``image-task-audit/v1``), and EMF counts in the
namespace the construct sets (dimension ``service``). docs/operations.md lists every field.
"""

from __future__ import annotations

from typing import Any

from ..handler.telemetry import Logger, Metrics

PUSH_RECORD_VERSION = "image-push-audit/v1"
TASK_RECORD_VERSION = "image-task-audit/v1"

# Push audit: one count per pushed image, by outcome.
METRIC_PUSHES = {
    "verified": "PushesVerified",
    "exempt": "PushesExempt",
    "rejected": "PushesRejected",  # unsigned or badly signed: the alarm
    "unavailable": "PushesUnavailable",  # the registry or AWS did not answer: retried through the queue
    "skipped": "PushesSkipped",  # a signature, attestation or referrers index: not an image
    "pending-signing": "PushesPendingSigning",  # unsigned while ECR managed signing is IN_PROGRESS: asked again
}
# Task audit: one count per task, by decision.
METRIC_TASKS = {
    "verified": "TasksVerified",  # every image verified or exempt
    "rejected": "TasksRejected",  # an image failed the policy: the alarm
    "unavailable": "TasksUnavailable",  # not decided: a registry or AWS did not answer
    "protected": "TasksOfProtectedServices",  # started by a protected service's deployment: the hook decided
}
METRIC_TASKS_STOPPED = "TasksStopped"
METRIC_ERRORS = "AuditErrors"  # malformed events, failed StopTask calls, misconfiguration, unexpected exceptions


class AuditReporter:
    """Writes audit records through a Powertools Logger and counts them in EMF."""

    def __init__(self, logger: Logger, metrics: Metrics) -> None:
        self.logger = logger
        self._metrics = metrics

    def record(self, version: str, message: str, record: dict[str, Any], *, metric: str | None,
               warn: bool = False, error: bool = False) -> None:
        """Log one record (at WARNING for a failed check, ERROR for a fault) and count it under `metric`."""
        log = self.logger.error if error else self.logger.warning if warn else self.logger.info
        log(message, extra={"auditRecord": version, **record})
        if metric is not None:
            self.count(metric)
        if error:
            self.count(METRIC_ERRORS)

    def count(self, name: str, value: float = 1) -> None:
        from aws_lambda_powertools.metrics import MetricUnit

        self._metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)

    def flush(self) -> None:
        try:
            self._metrics.flush_metrics(raise_on_empty_metrics=False)
        except Exception:
            self.logger.exception("could not flush metrics")
