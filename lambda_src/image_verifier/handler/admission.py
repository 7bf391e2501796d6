"""`AdmissionHandler`: one lifecycle-hook event in, one hook response out, one audit record written.

Steps: parse the event (a malformed one is answered FAILED); read the revision's images and
platform from ECS; take final verdicts from the warm cache; verify the rest in parallel under one
deadline (the Lambda's remaining time minus a margin); judge them with the policy's two modes.
A call that overruns the deadline (boto3 calls cannot be interrupted) is not waited for past half
the margin: the answer is then "unavailable", so ECS always gets one before the Lambda times out.
When only `unavailable` verdicts stand in the way and attempts remain, answer IN_PROGRESS so that
ECS calls again after `callBackDelay`; the attempt counter travels in `hookDetails`.

Every client is injected (see `handler.app` for the composition root), so this module is pure
orchestration and is tested with real parts: the registry, a botocore-stubbed ECS client.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Protocol, Sequence, TypeVar

from ..deadline import Deadline
from ..errors import DeadlineExceededError, UnavailableError
from ..policy import Mode, Policy
from ..verdict import Decision, Outcome, Verdict
from ..verifier import ImageRequest
from .cache import VerdictCache
from .ecs import Revision, RevisionReader
from .events import EventError, HookEvent, HookStatus, respond
from .settings import MIN_DECISION_SECONDS, Settings
from .telemetry import Telemetry, image_entry

FALLBACK_REMAINING_SECONDS = 30.0  # when called without a Lambda context (local runs)
T = TypeVar("T")


class LambdaContext(Protocol):
    def get_remaining_time_in_millis(self) -> int: ...


class Verifier(Protocol):
    def decide(self, requests: Sequence[ImageRequest], *, deadline: Deadline) -> Decision: ...


class AdmissionHandler:
    def __init__(self, *, settings: Settings, verifier: Verifier, revisions: RevisionReader, telemetry: Telemetry,
                 cache: VerdictCache, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self._policy: Policy = settings.policy
        self._verifier = verifier
        self._revisions = revisions
        self._telemetry = telemetry
        self._cache = cache
        self._clock = clock

    def handle(self, event: Any, context: LambdaContext | None) -> dict[str, Any]:
        started = self._clock()
        try:
            try:
                hook = HookEvent.parse(event)
            except EventError as exc:
                self._telemetry.problem(f"answered FAILED to an event that is not a lifecycle-hook event: {exc}",
                                        eventKeys=sorted(event)[:20] if isinstance(event, dict) else None)
                return respond(HookStatus.FAILED)
            try:
                return self._decide(hook, context, started)
            except Exception as exc:  # noqa: BLE001 - ECS must always get a valid answer
                self._telemetry.logger.exception("unexpected error while deciding; judged as unavailable")
                status = HookStatus.FAILED if self._policy.unavailable_mode is Mode.BLOCK else HookStatus.SUCCEEDED
                record = self._record(hook, status, images=[], revision=None, started=started,
                                      error=f"internal error: {type(exc).__name__}: {exc}")
                self._telemetry.decision(record, latency_ms=record["latencyMs"])
                return respond(status)
        finally:
            try:
                self._telemetry.flush()
            except Exception:  # noqa: BLE001 - lost metrics must not change the answer
                self._telemetry.logger.exception("could not flush metrics")

    def _decide(self, hook: HookEvent, context: LambdaContext | None, started: float) -> dict[str, Any]:
        remaining = (context.get_remaining_time_in_millis() / 1000.0 if context is not None
                     else FALLBACK_REMAINING_SECONDS)
        budget = remaining - self.settings.deadline_margin
        deadline = Deadline.after(max(budget, 0.0))
        try:
            if budget < MIN_DECISION_SECONDS:
                raise UnavailableError(f"only {remaining:.1f}s left in the invocation; no time to verify")
            # boto3 calls (ECS here; KMS, Signer, ECR login in the verifier) cannot be cut short by the
            # deadline. Wait for them until half the margin is gone, then answer without them: a Lambda
            # that times out gives ECS no answer (a rollback whatever the modes say) and leaves no record.
            revision, verdicts = _finish_within(budget + self.settings.deadline_margin / 2,
                                                lambda: self._read_and_verify(hook, deadline))
        except UnavailableError as exc:
            status = self._judge_unavailable(hook)
            record = self._record(hook, status, images=[], revision=None, started=started, error=str(exc))
            return self._answer(hook, status, record)
        decision = Decision.judge(tuple(v for v, _ in verdicts), self._policy)
        status = self._status(decision, hook)
        images = [image_entry(c.container_name, v, cached=cached) for c, (v, cached) in zip(revision.images, verdicts, strict=True)]
        record = self._record(hook, status, images=images, revision=revision, started=started)
        return self._answer(hook, status, record)

    def _read_and_verify(self, hook: HookEvent, deadline: Deadline) -> tuple[Revision, list[tuple[Verdict, bool]]]:
        revision = self._revisions.read(hook.revision_arn, hook.region)
        return revision, self._verdicts(revision, deadline)

    def _verdicts(self, revision: Revision, deadline: Deadline) -> list[tuple[Verdict, bool]]:
        """One verdict per container, in order, each with whether it came from the cache."""
        policy_hash = self._policy.policy_hash
        found: list[Verdict | None] = [self._cache.get(c.image, c.digest, revision.platform, policy_hash)
                                       for c in revision.images]
        missing = [i for i, v in enumerate(found) if v is None]
        if missing:
            requests = [ImageRequest(image=revision.images[i].image, digest=revision.images[i].digest,
                                     platform=revision.platform) for i in missing]
            fresh = self._verifier.decide(requests, deadline=deadline).verdicts
            for i, verdict in zip(missing, fresh, strict=True):
                found[i] = verdict
                self._cache.put(verdict, revision.platform, policy_hash)
        return [(v, i not in missing) for i, v in enumerate(found)]  # type: ignore[misc] - zip(strict) filled all

    def _status(self, decision: Decision, hook: HookEvent) -> HookStatus:
        if decision.admitted:
            return HookStatus.SUCCEEDED
        if not decision.blocked_by_rejection and decision.count(Outcome.UNAVAILABLE) > 0:
            return self._judge_unavailable(hook)
        return HookStatus.FAILED

    def _judge_unavailable(self, hook: HookEvent) -> HookStatus:
        """Nothing could be decided: try again later while attempts remain, then unavailableMode decides."""
        if self._policy.unavailable_mode is Mode.AUDIT:
            return HookStatus.SUCCEEDED
        if hook.attempt < self.settings.max_attempts:
            return HookStatus.IN_PROGRESS
        return HookStatus.FAILED

    def _answer(self, hook: HookEvent, status: HookStatus, record: dict[str, Any]) -> dict[str, Any]:
        self._telemetry.decision(record, latency_ms=record["latencyMs"])
        return respond(status, callback_delay=self.settings.callback_delay, attempt=hook.attempt + 1)

    def _record(self, hook: HookEvent, status: HookStatus, *, images: list[dict[str, Any]], revision: Revision | None,
                started: float, error: str | None = None) -> dict[str, Any]:
        counts = {o.value: sum(1 for i in images if i["outcome"] == o.value) for o in Outcome}
        blocked = counts[Outcome.REJECTED.value] + counts[Outcome.UNAVAILABLE.value] > 0 or error is not None
        return {
            "hookStatus": status.value,
            "decision": {HookStatus.SUCCEEDED: "admitted", HookStatus.FAILED: "refused",
                         HookStatus.IN_PROGRESS: "deferred"}[status],
            "admittedInAuditMode": status is HookStatus.SUCCEEDED and blocked,
            "service": hook.service_arn,
            "revision": hook.revision_arn,
            "stage": hook.stage,
            "executionId": hook.execution_id,
            "deployment": hook.deployment_arn,
            "taskDefinition": revision.task_definition if revision else None,
            "platform": str(revision.platform) if revision else None,
            "attempt": hook.attempt,
            "maxAttempts": self.settings.max_attempts,
            "policyHash": self._policy.policy_hash,
            "failureMode": self._policy.failure_mode.value,
            "unavailableMode": self._policy.unavailable_mode.value,
            "latencyMs": round((self._clock() - started) * 1000.0, 1),
            "images": images,
            "counts": counts,
            "breakGlass": any(i["breakGlass"] for i in images),
            "error": error,
        }


def _finish_within(seconds: float, work: Callable[[], T]) -> T:
    """`work()`'s result, or `DeadlineExceededError` once `seconds` have passed without one.

    The work runs in a daemon thread that is left behind on overrun: it ends with its own call's
    timeout, and what it finishes then (a cached verdict) is still correct.
    """
    outcome: dict[str, Any] = {}
    done = threading.Event()

    def run() -> None:
        try:
            outcome["value"] = work()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller, which judges it
            outcome["error"] = exc
        finally:
            done.set()

    threading.Thread(target=run, name="admission-decision", daemon=True).start()
    if not done.wait(max(seconds, 0.0)):
        raise DeadlineExceededError(f"the decision did not finish before the deadline ({seconds:.1f}s): a call to "
                                    "ECS, KMS, Signer or a registry overran it")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
