"""`AdmissionMetrics`: the ``metric_*()`` methods of `AdmissionController`, the aws-cdk-lib way.

Modelled on ``lambda.Function.metric_errors()``: each method returns a ``cloudwatch.Metric`` whose
props (``period``, ``statistic``, ``label``, ...) the caller may override. The admission metrics
are the ones the function writes in embedded metric format (namespace ``SignedImages/Admission``,
dimension ``service``; names in ``_names``); the function's own metrics (errors, throttles,
duration, invocations) come from ``AWS/Lambda`` through ``self.function``.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch

from . import _names

if TYPE_CHECKING:
    from aws_cdk import aws_lambda as lambda_

DEFAULT_PERIOD = Duration.minutes(5)  # aws-cdk-lib's default period for metric_*()


class DecisionOutcome(enum.Enum):
    """What a decision told ECS (the audit record's ``decision``)."""

    ADMITTED = _names.ADMITTED
    """``SUCCEEDED``: the deployment goes ahead."""
    REFUSED = _names.REJECTED
    """``FAILED``: ECS rolls the deployment back."""
    DEFERRED = _names.IN_PROGRESS
    """``IN_PROGRESS``: ECS calls again after ``callBackDelay``."""


class ImageOutcome(enum.Enum):
    """One image's verdict (the audit record's ``images[].outcome``)."""

    VERIFIED = _names.IMAGES_VERIFIED
    EXEMPT = _names.IMAGES_EXEMPT
    REJECTED = _names.IMAGES_REJECTED
    UNAVAILABLE = _names.IMAGES_UNAVAILABLE


class AdmissionMetrics:
    """Mixed into `AdmissionController`; needs only its ``function`` attribute."""

    function: lambda_.Function

    def metric(self, metric_name: str, **props: Any) -> cloudwatch.Metric:
        """Any metric the admission function emits, by name. :default: - Sum over 5 minutes"""
        options: dict[str, Any] = {"statistic": cloudwatch.Stats.SUM, "period": DEFAULT_PERIOD,
                                   "dimensions_map": {_names.SERVICE_DIMENSION: _names.SERVICE}}
        options.update(props)
        return cloudwatch.Metric(namespace=_names.NAMESPACE, metric_name=metric_name, **options)

    def metric_decisions(self, *, outcome: DecisionOutcome = DecisionOutcome.REFUSED, **props: Any) -> cloudwatch.Metric:
        """Decisions that told ECS ``outcome``. :default: - refused decisions, Sum over 5 minutes"""
        if not isinstance(outcome, DecisionOutcome):
            raise TypeError(f"outcome must be a DecisionOutcome (ADMITTED, REFUSED, DEFERRED), got {outcome!r}")
        return self.metric(outcome.value, **props)

    def metric_rejections(self, **props: Any) -> cloudwatch.Metric:
        """Decisions answered ``FAILED`` (rejected or, in block mode, unavailable images; errors)."""
        return self.metric_decisions(outcome=DecisionOutcome.REFUSED, **props)

    def metric_admissions(self, **props: Any) -> cloudwatch.Metric:
        """Decisions answered ``SUCCEEDED``."""
        return self.metric_decisions(outcome=DecisionOutcome.ADMITTED, **props)

    def metric_unavailable(self, **props: Any) -> cloudwatch.Metric:
        """Final decisions (not ``IN_PROGRESS``) that a registry or AWS API that did not answer decided."""
        return self.metric(_names.UNAVAILABLE_DECISIONS, **props)

    def metric_images(self, *, outcome: ImageOutcome, **props: Any) -> cloudwatch.Metric:
        """Images judged ``outcome``."""
        if not isinstance(outcome, ImageOutcome):
            raise TypeError(f"outcome must be an ImageOutcome (VERIFIED, EXEMPT, REJECTED, UNAVAILABLE), got {outcome!r}")
        return self.metric(outcome.value, **props)

    def metric_break_glass_images(self, **props: Any) -> cloudwatch.Metric:
        """Images admitted on a break-glass signature (each one deserves a review)."""
        return self.metric(_names.BREAK_GLASS_IMAGES, **props)

    def metric_admitted_with_warnings(self, **props: Any) -> cloudwatch.Metric:
        """Images admitted although a check failed (a signer below verification level ``strict``)."""
        return self.metric(_names.ADMITTED_WITH_WARNINGS, **props)

    def metric_cache_hits(self, **props: Any) -> cloudwatch.Metric:
        """Images whose verdict came from the warm function's cache."""
        return self.metric(_names.CACHE_HITS, **props)

    def metric_cold_starts(self, **props: Any) -> cloudwatch.Metric:
        """Decisions made by the first invocation of an execution environment."""
        return self.metric(_names.COLD_STARTS, **props)

    def metric_handler_errors(self, **props: Any) -> cloudwatch.Metric:
        """Refusals caused by a fault: malformed event or ECS answer, ECS refusal, misconfiguration, a bug."""
        return self.metric(_names.HANDLER_ERRORS, **props)

    def metric_decision_latency(self, **props: Any) -> cloudwatch.Metric:
        """Milliseconds from invocation to answer, as the function measured it. :default: - p99 over 5 minutes"""
        return self.metric(_names.DECISION_LATENCY, **{"statistic": "p99", "unit": cloudwatch.Unit.MILLISECONDS,
                                                         **props})

    # -- the function's own metrics (AWS/Lambda) ----------------------------------------------------
    def metric_errors(self, **props: Any) -> cloudwatch.Metric:
        """Invocations that ended in an error (a crash or a timeout: ECS then rolls back)."""
        return self.function.metric_errors(**props)

    def metric_throttles(self, **props: Any) -> cloudwatch.Metric:
        """Invocations Lambda throttled (ECS gets no answer: a rollback)."""
        return self.function.metric_throttles(**props)

    def metric_duration(self, **props: Any) -> cloudwatch.Metric:
        """The function's duration. :default: - Average over 5 minutes (aws-cdk-lib's default)"""
        return self.function.metric_duration(**props)

    def metric_invocations(self, **props: Any) -> cloudwatch.Metric:
        return self.function.metric_invocations(**props)
