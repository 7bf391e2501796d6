"""What both audit Lambdas build the same way: settings, the reporter, the entry point, a setup failure's log line.

The policy and the verifier settings are the admission function's own (``handler.settings``): the
audits run the admission controller's policy document with the same environment variables, so a
policy the hook accepts is a policy the audits accept.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..handler.settings import SERVICE_ENV, Settings, SettingsError
from .events import protected_services
from .report import AuditReporter

PROTECTED_SERVICES_ENV = "AUDIT_PROTECTED_SERVICES"  # JSON list of "cluster/service"
STOP_UNVERIFIED_TASKS_ENV = "AUDIT_STOP_UNVERIFIED_TASKS"  # "true" stops a task whose images fail
MAX_RECEIVE_COUNT_ENV = "AUDIT_MAX_RECEIVE_COUNT"  # the push queue's maxReceiveCount (its last delivery reports)
DEFAULT_MAX_RECEIVE_COUNT = 3


@dataclass(frozen=True, kw_only=True)
class TaskAuditSettings:
    protected: frozenset[tuple[str, str]]
    stop_unverified_tasks: bool


def settings_from_env(environ: Mapping[str, str] | None, *, default_service: str) -> Settings:
    env = os.environ if environ is None else environ
    settings = Settings.from_env(env)
    if not env.get(SERVICE_ENV):
        settings = dataclasses.replace(settings, service_name=default_service)
    return settings


def task_settings_from_env(environ: Mapping[str, str] | None) -> TaskAuditSettings:
    env = os.environ if environ is None else environ
    raw = env.get(PROTECTED_SERVICES_ENV) or "[]"
    try:
        names = json.loads(raw)
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError("not a list of strings")
        protected = protected_services(names)
    except ValueError as exc:
        raise SettingsError(f"{PROTECTED_SERVICES_ENV} must be a JSON list of \"cluster/service\" names, got "
                            f"{raw[:200]!r}: {exc}") from exc
    stop = env.get(STOP_UNVERIFIED_TASKS_ENV, "false").strip().lower()
    if stop not in ("true", "false"):
        raise SettingsError(f"{STOP_UNVERIFIED_TASKS_ENV} must be true or false, got {stop!r}")
    return TaskAuditSettings(protected=protected, stop_unverified_tasks=stop == "true")


def max_receive_count_from_env(environ: Mapping[str, str] | None) -> int:
    env = os.environ if environ is None else environ
    raw = env.get(MAX_RECEIVE_COUNT_ENV) or str(DEFAULT_MAX_RECEIVE_COUNT)
    if not raw.isdigit() or int(raw) < 1:
        raise SettingsError(f"{MAX_RECEIVE_COUNT_ENV} must be a whole number of at least 1, got {raw!r}")
    return int(raw)


def reporter_for(settings: Settings, logger: Any = None, metrics: Any = None) -> AuditReporter:
    from aws_lambda_powertools import Logger, Metrics

    return AuditReporter(logger or Logger(service=settings.service_name),
                         metrics or Metrics(namespace=settings.metrics_namespace, service=settings.service_name))


def log_setup_failure(message: str, exc: Exception) -> None:
    # Powertools may be what failed to build: write one JSON line by hand.
    print(json.dumps({"level": "ERROR", "message": message, "error": f"{type(exc).__name__}: {str(exc)[:1000]}"}),
          file=sys.stdout, flush=True)


class EntryPoint:
    """A Lambda entry point whose handler is built on the first invocation and kept while warm.

    A handler that cannot be built (no policy, an invalid one) is said in one JSON line, and the
    invocation fails, so that the event source delivers it again (SQS, EventBridge's retries) and
    the function's Errors metric shows it; the next invocation tries to build again.
    """

    def __init__(self, build: Callable[[], Any], what: str) -> None:
        self._build = build
        self._what = what
        self._lock = threading.Lock()
        self._handler: Any = None

    def handle(self, event: Any, context: Any) -> dict[str, Any]:
        try:
            with self._lock:
                if self._handler is None:
                    self._handler = self._build()
                handler = self._handler
        except Exception as exc:
            log_setup_failure(f"{self._what} is misconfigured", exc)
            raise
        return handler.handle(event, context)
