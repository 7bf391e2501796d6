"""`Settings`: everything the admission Lambda reads from its environment, read in one place.

The policy comes from `ADMISSION_POLICY` (the JSON text) or `ADMISSION_POLICY_FILE` (a path,
relative to the function's code directory when not absolute); its `{"fromEnv": "NAME"}` values are
resolved from the same environment. Nothing here runs at import time: `Settings.from_env()` is
called once by the composition root (`handler.app`), on the first invocation.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from ..policy import Policy

POLICY_ENV = "ADMISSION_POLICY"
POLICY_FILE_ENV = "ADMISSION_POLICY_FILE"
DEADLINE_MARGIN_ENV = "ADMISSION_DEADLINE_MARGIN_SECONDS"
MAX_ATTEMPTS_ENV = "ADMISSION_MAX_ATTEMPTS"
CALLBACK_DELAY_ENV = "ADMISSION_CALLBACK_DELAY_SECONDS"
MAX_CALLBACK_DELAY_ENV = "ADMISSION_MAX_CALLBACK_DELAY_SECONDS"
CACHE_SECONDS_ENV = "ADMISSION_VERDICT_CACHE_SECONDS"
REJECTION_CACHE_SECONDS_ENV = "ADMISSION_REJECTION_CACHE_SECONDS"
CACHE_SIZE_ENV = "ADMISSION_VERDICT_CACHE_SIZE"
INSECURE_REGISTRIES_ENV = "ADMISSION_INSECURE_REGISTRIES"
NAMESPACE_ENV = "POWERTOOLS_METRICS_NAMESPACE"
SERVICE_ENV = "POWERTOOLS_SERVICE_NAME"
TASK_ROOT_ENV = "LAMBDA_TASK_ROOT"

DEFAULT_DEADLINE_MARGIN = 5.0  # seconds kept back from the Lambda timeout to log, flush metrics and answer
DEFAULT_MAX_ATTEMPTS = 3  # invocations per hook before "unavailable" is final (IN_PROGRESS in between)
DEFAULT_CALLBACK_DELAY = 30  # seconds; ECS's own default callBackDelay
# A registry's Retry-After lengthens callBackDelay up to this: a hostile or confused registry asking
# for hours cannot park a deployment (max_attempts of these is the longest wait).
DEFAULT_MAX_CALLBACK_DELAY = 300
DEFAULT_CACHE_SECONDS = 300.0  # a verified or exempt verdict is reused this long in a warm function
DEFAULT_REJECTION_CACHE_SECONDS = 30.0  # short: someone may sign the image and redeploy at once
DEFAULT_CACHE_SIZE = 1024  # verdicts; a few hundred bytes each
DEFAULT_NAMESPACE = "SignedImages/Admission"
DEFAULT_SERVICE = "image-admission"
MIN_DECISION_SECONDS = 1.0  # below this a decision cannot finish; answer from what is known


class SettingsError(ValueError):
    """The function is misconfigured (policy missing or invalid, a bad number)."""


@dataclass(frozen=True, kw_only=True)
class Settings:
    policy: Policy
    deadline_margin: float = DEFAULT_DEADLINE_MARGIN
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    callback_delay: int = DEFAULT_CALLBACK_DELAY
    max_callback_delay: int = DEFAULT_MAX_CALLBACK_DELAY
    cache_seconds: float = DEFAULT_CACHE_SECONDS
    rejection_cache_seconds: float = DEFAULT_REJECTION_CACHE_SECONDS
    cache_size: int = DEFAULT_CACHE_SIZE
    insecure_registries: frozenset[str] = frozenset()  # tests only: registries reached over plain http
    metrics_namespace: str = DEFAULT_NAMESPACE
    service_name: str = DEFAULT_SERVICE

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and validate the settings; raises `SettingsError` or `PolicyError` naming the fix."""
        env = os.environ if environ is None else environ
        return cls(
            policy=_policy(env),
            deadline_margin=_number(env, DEADLINE_MARGIN_ENV, DEFAULT_DEADLINE_MARGIN, minimum=0.0),
            max_attempts=int(_number(env, MAX_ATTEMPTS_ENV, DEFAULT_MAX_ATTEMPTS, minimum=1, integer=True)),
            callback_delay=int(_number(env, CALLBACK_DELAY_ENV, DEFAULT_CALLBACK_DELAY, minimum=1, integer=True)),
            max_callback_delay=int(_number(env, MAX_CALLBACK_DELAY_ENV, DEFAULT_MAX_CALLBACK_DELAY, minimum=1,
                                           integer=True)),
            cache_seconds=_number(env, CACHE_SECONDS_ENV, DEFAULT_CACHE_SECONDS, minimum=0.0),
            rejection_cache_seconds=_number(env, REJECTION_CACHE_SECONDS_ENV, DEFAULT_REJECTION_CACHE_SECONDS,
                                            minimum=0.0),
            cache_size=int(_number(env, CACHE_SIZE_ENV, DEFAULT_CACHE_SIZE, minimum=0, integer=True)),
            insecure_registries=frozenset(h.strip() for h in env.get(INSECURE_REGISTRIES_ENV, "").split(",")
                                          if h.strip()),
            metrics_namespace=env.get(NAMESPACE_ENV) or DEFAULT_NAMESPACE,
            service_name=env.get(SERVICE_ENV) or DEFAULT_SERVICE,
        )


def _policy(env: Mapping[str, str]) -> Policy:
    text, path = env.get(POLICY_ENV), env.get(POLICY_FILE_ENV)
    if bool(text) == bool(path):
        raise SettingsError(f"set exactly one of {POLICY_ENV} (the policy JSON) or {POLICY_FILE_ENV} (a path to it)")
    if path:
        file = Path(path)
        if not file.is_absolute():
            file = Path(env.get(TASK_ROOT_ENV) or Path.cwd()) / file
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as exc:
            raise SettingsError(f"{POLICY_FILE_ENV}={path}: cannot read the policy: {exc}") from exc
    return Policy.from_json(text or "", environ=env)


def _number(env: Mapping[str, str], name: str, default: float, *, minimum: float, integer: bool = False) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError as exc:
        raise SettingsError(f"{name}={raw!r} is not a {'whole ' if integer else ''}number") from exc
    if value < minimum:
        raise SettingsError(f"{name}={raw!r} must be at least {minimum:g}")
    return value
