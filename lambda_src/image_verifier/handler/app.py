"""The Lambda entry point and the composition root of the admission function.

Handler setting: ``image_verifier.handler.app.lambda_handler``. The first invocation builds the
settings, the Powertools Logger and Metrics, the boto3 clients, the registry client, the verifier
and the verdict cache, and keeps them for the life of the warm function; nothing is built at
import time. A function that cannot build them (no policy, an invalid policy) answers FAILED,
says why in the log, and tries again on the next invocation.
"""

from __future__ import annotations

import threading
from typing import Any

from .admission import AdmissionHandler
from .events import HookStatus, respond

_lock = threading.Lock()
_handler: AdmissionHandler | None = None


def build_handler(environ: Any = None, *, aws: Any = None, logger: Any = None, metrics: Any = None) -> AdmissionHandler:
    """Build every part from the environment; the arguments let tests inject their own."""
    from aws_lambda_powertools import Logger, Metrics

    from ..composition import AwsClients, build_verifier
    from .cache import VerdictCache
    from .ecs import RevisionReader
    from .settings import Settings
    from .telemetry import Telemetry

    settings = Settings.from_env(environ)
    aws = aws or AwsClients()
    telemetry = Telemetry(
        logger or Logger(service=settings.service_name),
        metrics or Metrics(namespace=settings.metrics_namespace, service=settings.service_name),
    )
    for warning in settings.policy.warnings:  # a signer below level strict is a choice that must stay visible
        telemetry.logger.warning("the policy weakens verification", extra={"policyWarning": warning})
    verifier = build_verifier(settings.policy, insecure_registries=settings.insecure_registries, aws=aws)
    cache = VerdictCache(ttl=settings.cache_seconds, rejection_ttl=settings.rejection_cache_seconds,
                         max_entries=settings.cache_size)
    return AdmissionHandler(settings=settings, verifier=verifier, revisions=RevisionReader(aws.for_service("ecs")),
                            telemetry=telemetry, cache=cache)


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    global _handler
    try:
        with _lock:
            if _handler is None:
                _handler = build_handler()
            handler = _handler
    except Exception as exc:  # noqa: BLE001 - a broken setup must still answer ECS, and fail closed
        _log_setup_failure(exc)
        return respond(HookStatus.FAILED)
    try:
        return handler.handle(event, context)
    except Exception as exc:  # noqa: BLE001 - handle() answers every case; this is the last line of defence
        _log_setup_failure(exc, "the admission function failed unexpectedly; answered FAILED")
        return respond(HookStatus.FAILED)


def _log_setup_failure(exc: Exception,
                       message: str = "the admission function is misconfigured; answered FAILED") -> None:
    import json
    import sys

    # Powertools may be what failed to build: write one JSON line by hand.
    print(json.dumps({"level": "ERROR", "message": message, "error": f"{type(exc).__name__}: {exc}"}),
          file=sys.stdout, flush=True)
