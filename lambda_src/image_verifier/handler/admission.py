"""`AdmissionHandler`: one lifecycle-hook event in, one hook response out, one audit record written.

Steps: parse the event (a malformed one is answered FAILED); read the revision's images and
platform from ECS; take final verdicts from the warm cache; verify the rest in parallel under one
deadline (the Lambda's remaining time minus a margin); judge them with the policy's two modes.
A call that overruns the deadline (boto3 calls cannot be interrupted) is not waited for past half
the margin: the answer is then "unavailable", so ECS always gets one before the Lambda times out.
When only `unavailable` verdicts stand in the way and attempts remain, answer IN_PROGRESS so that
ECS calls again after `callBackDelay` (long enough for the largest `Retry-After` a throttling
registry sent, up to a bound); the attempt counter travels in `hookDetails`.

Fail closed: only "AWS or a registry did not answer" is `unavailable` (judged by
`unavailableMode`). A malformed event, an ECS answer of the wrong shape, an ECS refusal (access
denied, not found) and any exception nobody expected are answered FAILED in every mode, each with
an audit record whose `errorKind` and `error` say why (docs/admission.md has the table).

Every client is injected (see `handler.app` for the composition root), so this module is pure
orchestration and is tested with real parts: the registry, a botocore-stubbed ECS client.
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time
from typing import Any, Callable, Iterable, Protocol, Sequence, TypeVar

from ..deadline import Deadline
from ..errors import DeadlineExceededError, UnavailableError
from ..policy import Mode, Policy
from ..verdict import Decision, Outcome, Verdict
from ..verifier import ImageRequest
from ..aws_errors import AwsRefusedError, MalformedAnswerError
from .cache import VerdictCache
from .ecs import Revision, RevisionReader
from .events import EventError, HookEvent, HookStatus, respond
from .settings import MIN_DECISION_SECONDS, Settings
from .telemetry import Telemetry, image_entry

FALLBACK_REMAINING_SECONDS = 30.0  # when called without a Lambda context (local runs)
# errorKind in the audit record: why no verdict over the images was reached.
ERROR_MALFORMED_EVENT = "malformed-event"  # FAILED in every mode
ERROR_MALFORMED_ANSWER = "malformed-answer"  # an ECS answer we cannot read: FAILED in every mode
ERROR_AWS_REFUSED = "aws-refused"  # ECS refused (access denied, not found, validation): FAILED in every mode
ERROR_INTERNAL = "internal"  # an exception nobody expected: FAILED in every mode
ERROR_UNAVAILABLE = "unavailable"  # ECS did not answer, or no time was left: judged by unavailableMode
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
        """Always a valid hook response: whatever goes wrong, ECS is answered (FAILED unless decided)."""
        started = self._clock()
        try:
            return self._handle(event, context, started)
        except Exception as exc:  # noqa: BLE001 - even the refusal could not be recorded; still answer
            _last_resort(exc)
            return respond(HookStatus.FAILED)
        finally:
            try:
                self._telemetry.flush()
            except Exception:  # noqa: BLE001 - lost metrics must not change the answer
                self._telemetry.logger.exception("could not flush metrics")

    def _handle(self, event: Any, context: LambdaContext | None, started: float) -> dict[str, Any]:
        self._telemetry.invocation(context)  # request id and cold start in every line, the audit record too
        try:
            hook = HookEvent.parse(event)
        except EventError as exc:
            return self._refuse(None, started, ERROR_MALFORMED_EVENT,
                                f"the event is not a lifecycle-hook event we can act on: {exc}", event=event)
        try:
            return self._decide(hook, context, started)
        except Exception as exc:  # noqa: BLE001 - an error nobody expected is a rejection in every mode
            self._telemetry.logger.exception("unexpected error while deciding; answered FAILED")
            return self._refuse(hook, started, ERROR_INTERNAL, f"internal error: {type(exc).__name__}: {str(exc)[:1000]}")

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
            delay, retry_after = self._callback_delay([getattr(exc, "retry_after", None)])
            record = self._record(hook, status, images=[], revision=None, started=started, error=str(exc),
                                  error_kind=ERROR_UNAVAILABLE, retry_after=retry_after)
            return self._answer(hook, status, record, callback_delay=delay)
        except AwsRefusedError as exc:  # ECS said no (access denied, not found): asking again changes nothing
            return self._refuse(hook, started, ERROR_AWS_REFUSED, str(exc))
        except MalformedAnswerError as exc:  # nothing is known of what the revision runs
            return self._refuse(hook, started, ERROR_MALFORMED_ANSWER, str(exc))
        decision = Decision.judge(tuple(v for v, _ in verdicts), self._policy)
        status = self._status(decision, hook)
        images = [image_entry(c.container_name, v, cached=cached) for c, (v, cached) in zip(revision.images, verdicts, strict=True)]
        delay, retry_after = self._callback_delay(v.retry_after for v in decision.verdicts
                                                  if v.outcome is Outcome.UNAVAILABLE)
        record = self._record(hook, status, images=images, revision=revision, started=started, retry_after=retry_after)
        # Counted only when the deployment goes ahead: those images run although a check failed.
        record["admittedWithWarnings"] = decision.admitted_with_warnings if status is HookStatus.SUCCEEDED else 0
        return self._answer(hook, status, record, callback_delay=delay)

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

    def _callback_delay(self, asked: Iterable[Any]) -> tuple[int, float | None]:
        """ECS's wait before it calls again, and the largest Retry-After that a throttling registry asked for.

        `asked`: `Verdict.retry_after` of each unavailable verdict, or the `retry_after` of the
        `UnavailableError` that stopped the decision (`RegistryThrottledError` has one). A registry that said "retry
        after N seconds" (429/503) is not asked again sooner: the delay covers the largest such N,
        bounded so that a hostile registry cannot park a deployment.
        """
        waits = [_seconds(a) for a in asked]
        retry_after = max((w for w in waits if w is not None), default=None)
        delay = self.settings.callback_delay
        if retry_after is not None:
            delay = max(delay, min(math.ceil(retry_after), self.settings.max_callback_delay))
        return delay, retry_after

    def _refuse(self, hook: HookEvent | None, started: float, kind: str, error: str, *, event: Any = None) -> dict[str, Any]:
        """FAILED in every mode, with an audit record that says why."""
        record = self._record(hook, HookStatus.FAILED, images=[], revision=None, started=started, error=error,
                              error_kind=kind)
        if hook is None:
            record["eventKeys"] = _event_keys(event)
        self._telemetry.decision(record, latency_ms=record["latencyMs"])
        return respond(HookStatus.FAILED)

    def _answer(self, hook: HookEvent, status: HookStatus, record: dict[str, Any], *, callback_delay: int) -> dict[str, Any]:
        if status is HookStatus.IN_PROGRESS:
            record["callBackDelay"] = callback_delay
        self._telemetry.decision(record, latency_ms=record["latencyMs"])
        return respond(status, callback_delay=callback_delay, attempt=hook.attempt + 1)

    def _record(self, hook: HookEvent | None, status: HookStatus, *, images: list[dict[str, Any]],
                revision: Revision | None, started: float, error: str | None = None, error_kind: str | None = None,
                retry_after: float | None = None) -> dict[str, Any]:
        counts = {o.value: sum(1 for i in images if i["outcome"] == o.value) for o in Outcome}
        blocked = counts[Outcome.REJECTED.value] + counts[Outcome.UNAVAILABLE.value] > 0 or error is not None
        return {
            "hookStatus": status.value,
            "decision": {HookStatus.SUCCEEDED: "admitted", HookStatus.FAILED: "refused",
                         HookStatus.IN_PROGRESS: "deferred"}[status],
            "reason": _reason(images, error),
            "admittedInAuditMode": status is HookStatus.SUCCEEDED and blocked,
            "service": hook.service_arn if hook else None,
            "revision": hook.revision_arn if hook else None,
            "stage": hook.stage if hook else None,
            "executionId": hook.execution_id if hook else None,
            "deployment": hook.deployment_arn if hook else None,
            "taskDefinition": revision.task_definition if revision else None,
            "platform": str(revision.platform) if revision else None,
            "attempt": hook.attempt if hook else None,
            "maxAttempts": self.settings.max_attempts,
            "policyHash": self._policy.policy_hash,
            "failureMode": self._policy.failure_mode.value,
            "unavailableMode": self._policy.unavailable_mode.value,
            "latencyMs": round((self._clock() - started) * 1000.0, 1),
            "images": images,
            "counts": counts,
            "breakGlass": any(i["breakGlass"] for i in images),
            "admittedWithWarnings": 0,
            "retryAfter": retry_after,
            "error": error,
            "errorKind": error_kind,
        }


def _reason(images: list[dict[str, Any]], error: str | None) -> str | None:
    """One line saying why the deployment did not simply go ahead: the error, or the first image that stopped it."""
    if error:
        return error
    for outcome in (Outcome.REJECTED, Outcome.UNAVAILABLE):
        for image in images:
            if image["outcome"] == outcome.value:
                first = next(iter(image.get("reasons") or ()), None)
                return f"{image['container'] or image['image']}: {outcome.value}" + (f": {first}" if first else "")
    return None


def _seconds(value: Any) -> float | None:
    """A usable Retry-After in seconds, or None (absent, negative, not a finite number)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        return None
    return float(value)


def _event_keys(event: Any) -> list[str] | None:
    """The top-level keys of an event we could not read (for the record; bounded, never the values)."""
    if not isinstance(event, dict):
        return None
    return sorted(str(k)[:100] for k in list(event)[:50])


def _last_resort(exc: Exception) -> None:
    """The audit record itself could not be written: leave one JSON line by hand, then answer FAILED."""
    try:
        print(json.dumps({"level": "ERROR", "message": "the admission function failed while refusing; answered FAILED",
                          "error": f"{type(exc).__name__}: {str(exc)[:1000]}"}), file=sys.stdout, flush=True)
    except Exception:  # noqa: BLE001, S110 - nothing is left to report with; the answer still goes out
        pass


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
