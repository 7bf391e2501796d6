"""The ECS lifecycle-hook Lambda: admit a service revision only when its images pass the policy.

Entry point: ``image_verifier.handler.app.lambda_handler`` (see ``app`` for the composition root,
``settings`` for the environment it reads, ``telemetry`` for the audit record and metrics).
Importing this package builds nothing and reads no environment.
"""

from __future__ import annotations

from .admission import AdmissionHandler
from .events import EventError, HookEvent, HookStatus
from .settings import Settings, SettingsError

__all__ = ["AdmissionHandler", "EventError", "HookEvent", "HookStatus", "Settings", "SettingsError"]
