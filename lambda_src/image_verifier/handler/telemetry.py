"""The audit record (one structured log line per decision) and the EMF metrics.

The record is written with Powertools' Logger, so its fields are top-level JSON keys next to
`level`, `message` and `service`: find decisions in CloudWatch Logs Insights with
`filter auditRecord = "image-admission/v1"`. docs/operations.md explains every field.
"""

from __future__ import annotations

from typing import Any, Protocol

from ..verdict import Outcome, Verdict

AUDIT_RECORD_VERSION = "image-admission/v1"
AUDIT_MESSAGE = "image admission decision"

# Metric names (namespace from POWERTOOLS_METRICS_NAMESPACE, dimension "service").
METRIC_ADMITTED = "Admitted"  # decisions answered SUCCEEDED
METRIC_REJECTED = "Rejected"  # decisions answered FAILED
METRIC_IN_PROGRESS = "InProgress"  # decisions deferred with IN_PROGRESS
METRIC_ERRORS = "HandlerErrors"  # malformed events or ECS answers, ECS refusals, misconfiguration, unexpected exceptions
METRIC_IMAGES = {
    Outcome.VERIFIED: "ImagesVerified",
    Outcome.EXEMPT: "ImagesExempt",
    Outcome.REJECTED: "ImagesRejected",
    Outcome.UNAVAILABLE: "ImagesUnavailable",
}
METRIC_BREAK_GLASS = "BreakGlassImages"  # images admitted on a break-glass signature: alarm on any
METRIC_LATENCY = "DecisionLatency"  # milliseconds from invocation to answer
# Images admitted with warnings (Decision.admitted_with_warnings: a signer at verificationLevel audit
# or permissive logged a failed check instead of enforcing it, ...) in a decision answered SUCCEEDED. Alarm on any.
METRIC_ADMITTED_WITH_WARNINGS = "AdmittedWithWarnings"
# Final decisions (not IN_PROGRESS) that an unanswered registry or AWS call decided: errorKind
# "unavailable", or an image whose verdict is unavailable. Blocked in block mode, admitted in audit mode.
METRIC_UNAVAILABLE_DECISIONS = "UnavailableDecisions"
METRIC_CACHE_HITS = "CacheHits"  # images whose verdict came from the warm function's cache
METRIC_COLD_STARTS = "ColdStarts"  # decisions made by the first invocation of this handler (it built every client)
# The Lambda context in every log line, under the keys Powertools' inject_lambda_context uses.
LAMBDA_CONTEXT_KEYS = {"function_request_id": "aws_request_id", "function_name": "function_name",
                       "function_arn": "invoked_function_arn", "function_memory_size": "memory_limit_in_mb"}
# errorKind values that are not a fault of the handler or its inputs: AWS or a registry did not answer.
_NOT_AN_ERROR = frozenset({None, "unavailable"})


class Logger(Protocol):
    def info(self, msg: str, *args: Any, **kwargs: Any) -> None: ...

    def warning(self, msg: str, *args: Any, **kwargs: Any) -> None: ...

    def append_keys(self, **additional_keys: Any) -> None: ...

    def error(self, msg: str, *args: Any, **kwargs: Any) -> None: ...

    def exception(self, msg: str, *args: Any, **kwargs: Any) -> None: ...


class Metrics(Protocol):
    def add_metric(self, name: str, unit: Any, value: float, **kwargs: Any) -> None: ...

    def flush_metrics(self, raise_on_empty_metrics: bool = False) -> None: ...


def image_entry(container: str, verdict: Verdict, *, cached: bool) -> dict[str, Any]:
    """One image in the audit record: the verdict as the CLI prints it, plus the container and cache hit."""
    return {"container": container, **verdict.to_json(), "cached": cached}


class Telemetry:
    """Writes audit records through a Powertools Logger and counts them in EMF."""

    def __init__(self, logger: Logger, metrics: Metrics) -> None:
        self.logger = logger
        self._metrics = metrics
        self._invocations = 0
        self.cold_start = True

    def invocation(self, context: Any) -> None:
        """Start an invocation: its log lines (the audit record too) carry the request id and cold-start flag."""
        self._invocations += 1
        self.cold_start = self._invocations == 1
        keys = {key: getattr(context, attribute, None) for key, attribute in LAMBDA_CONTEXT_KEYS.items()}
        self.logger.append_keys(cold_start=self.cold_start, **keys)

    def decision(self, record: dict[str, Any], *, latency_ms: float) -> None:
        from aws_lambda_powertools.metrics import MetricUnit

        # A refusal because of a fault (malformed input, ECS refused, a bug) is logged at ERROR level.
        fault = record.get("errorKind") not in _NOT_AN_ERROR
        log = self.logger.error if fault else self.logger.info
        log(AUDIT_MESSAGE, extra={"auditRecord": AUDIT_RECORD_VERSION, **record})
        status = record["hookStatus"]
        self._count({"SUCCEEDED": METRIC_ADMITTED, "FAILED": METRIC_REJECTED, "IN_PROGRESS": METRIC_IN_PROGRESS}[status])
        for outcome, name in METRIC_IMAGES.items():
            self._count(name, sum(1 for i in record["images"] if i["outcome"] == outcome.value))
        self._count(METRIC_BREAK_GLASS, sum(1 for i in record["images"] if i["breakGlass"]))
        self._count(METRIC_ADMITTED_WITH_WARNINGS, record.get("admittedWithWarnings") or 0)
        self._count(METRIC_CACHE_HITS, sum(1 for i in record["images"] if i.get("cached")))
        unavailable = record.get("errorKind") == "unavailable" or any(
            i["outcome"] == Outcome.UNAVAILABLE.value for i in record["images"])
        if unavailable and status != "IN_PROGRESS":
            self._count(METRIC_UNAVAILABLE_DECISIONS)
        if self.cold_start:
            self._count(METRIC_COLD_STARTS)
        if fault:
            self._count(METRIC_ERRORS)
        self._metrics.add_metric(name=METRIC_LATENCY, unit=MetricUnit.Milliseconds, value=latency_ms)

    def flush(self) -> None:
        self._metrics.flush_metrics(raise_on_empty_metrics=False)

    def _count(self, name: str, value: float = 1) -> None:
        from aws_lambda_powertools.metrics import MetricUnit

        self._metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
