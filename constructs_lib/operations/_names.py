"""The names the admission function's telemetry emits, as the constructs read them.

The runtime (``image_verifier.handler.telemetry``) writes these metrics in embedded metric format
under the namespace and ``service`` dimension that the controller passes it through
``POWERTOOLS_METRICS_NAMESPACE`` and ``POWERTOOLS_SERVICE_NAME``. The constructs must not import
the Lambda's handler package at synth (it pulls the verifier and its clients), so the names are
repeated here; tests/constructs/test_operations.py imports the runtime's constants and fails when
the two disagree.
"""

from __future__ import annotations

from ..admission._defaults import METRICS_NAMESPACE, SERVICE_NAME

NAMESPACE = METRICS_NAMESPACE
SERVICE_DIMENSION = "service"  # Powertools Metrics(service=...) adds this dimension to every metric
SERVICE = SERVICE_NAME

# Decisions (one per invocation), by what ECS was told.
ADMITTED = "Admitted"  # SUCCEEDED
REJECTED = "Rejected"  # FAILED: ECS rolls the deployment back
IN_PROGRESS = "InProgress"  # IN_PROGRESS: ECS calls again after callBackDelay
UNAVAILABLE_DECISIONS = "UnavailableDecisions"  # final decisions that an unanswered call decided
HANDLER_ERRORS = "HandlerErrors"  # malformed input, ECS refusals, misconfiguration, internal errors
# Images, by verdict.
IMAGES_VERIFIED = "ImagesVerified"
IMAGES_EXEMPT = "ImagesExempt"
IMAGES_REJECTED = "ImagesRejected"
IMAGES_UNAVAILABLE = "ImagesUnavailable"
BREAK_GLASS_IMAGES = "BreakGlassImages"
ADMITTED_WITH_WARNINGS = "AdmittedWithWarnings"
CACHE_HITS = "CacheHits"  # images whose verdict came from the warm function's cache
COLD_STARTS = "ColdStarts"  # decisions made by a function's first invocation
DECISION_LATENCY = "DecisionLatency"  # milliseconds, invocation to answer

# Written by a metric filter on the audit records (not EMF): one per decision, dimension = the
# ECS service ARN the event named. The "gate is not called" alarm compares it with deployments.
DECISIONS_BY_SERVICE = "DecisionsByEcsService"
ECS_SERVICE_DIMENSION = "EcsService"

AUDIT_RECORD_VERSION = "image-admission/v1"  # the audit record's `auditRecord` field
