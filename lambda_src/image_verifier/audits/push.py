"""The push audit Lambda: every image pushed to a signed repository is verified after a delay.

Handler setting: ``image_verifier.audits.push.lambda_handler``. EventBridge sends each ECR
"ECR Image Action" PUSH to an SQS queue whose delivery delay gives managed signing (asynchronous)
time to finish; the queue invokes this function with a batch. For each push:

1. read the event (a malformed one is recorded as a fault and dropped: reading it again changes nothing);
2. skip artifacts about an image, judged by content (no filesystem layer, or an index of artifacts):
   cosign ``sha256-<hex>.sig`` signatures, referrers-tag indexes, Notation signatures, cosign bundles;
3. verify the pushed digest with the admission policy (in audit: nothing is blocked here);
4. for a rejected push, ask ECR for its managed-signing status (``DescribeImageSigningStatus``):
   while a signature is ``IN_PROGRESS`` the push goes back to the queue, until its last delivery
   (``AUDIT_MAX_RECEIVE_COUNT``); a ``FAILED`` status and its reason are recorded;
5. write one audit record and count the outcome. ``rejected`` (unsigned or badly signed) is what
   the construct's alarm watches; ``unavailable`` goes back to the queue (``batchItemFailures``)
   and is tried again until the queue's dead-letter queue takes it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from ..deadline import Deadline
from ..oci import Manifest
from ..reference import ImageReference
from ..verdict import Decision, Outcome, Verdict
from ..verifier import ImageRequest
from ._parts import DEFAULT_MAX_RECEIVE_COUNT, EntryPoint
from .events import (
    AuditEventError,
    PushedImage,
    QueuedMessage,
    ecr_host,
    push_from_body,
    queued_messages,
)
from .report import METRIC_PUSHES, PUSH_RECORD_VERSION, AuditReporter

MESSAGE = "image push audit"
# Layers a container runtime unpacks (OCI image spec, Docker image manifest v2.2): a manifest with
# none of them cannot run, whatever its tag says.
FILESYSTEM_LAYER = re.compile(r"application/vnd\.(?:oci\.image\.layer\.(?:nondistributable\.)?v1\.tar(?:\+gzip|\+zstd)?"
                              r"|docker\.image\.rootfs\.(?:foreign\.)?diff\.tar(?:\.gzip)?)")
FALLBACK_REMAINING_SECONDS = 30.0  # without a Lambda context (local runs)
PENDING_SIGNING = "pending-signing"  # rejected for now, but ECR managed signing is still IN_PROGRESS
MIN_DECISION_SECONDS = 1.0


class Verifier(Protocol):
    def decide(self, requests: Sequence[ImageRequest], *, deadline: Deadline) -> Decision: ...


class RegistrySessions(Protocol):
    def bound(self, deadline: Deadline) -> Any: ...


# ECR's DescribeImageSigningStatus for a push: [{"signingProfileArn", "status", "failureCode", "failureReason"}]
SigningStatuses = Callable[[PushedImage], Sequence[Mapping[str, Any]]]


class PushAuditHandler:
    """One SQS batch of push events in, one audit record per push out; clients are injected."""

    def __init__(self, *, verifier: Verifier, registry: RegistrySessions, reporter: AuditReporter, policy_hash: str,
                 deadline_margin: float, registry_host: Callable[[PushedImage], str] | None = None,
                 signing_statuses: SigningStatuses | None = None,
                 max_receive_count: int = DEFAULT_MAX_RECEIVE_COUNT) -> None:
        self._signing_statuses = signing_statuses
        self._max_receive_count = max_receive_count
        self._verifier = verifier
        self._registry = registry
        self._reporter = reporter
        self._policy_hash = policy_hash
        self._margin = deadline_margin
        # The registry a push event names (its account's ECR); tests point it at their own registry.
        self._registry_host = registry_host or (lambda pushed: ecr_host(pushed.account, pushed.region))

    def handle(self, event: Any, context: Any = None) -> dict[str, Any]:
        """``{"batchItemFailures": [...]}``: the messages to deliver again (unavailable, pending signing)."""
        try:
            return {"batchItemFailures": [{"itemIdentifier": i} for i in self._handle(event, context)]}
        finally:
            self._reporter.flush()

    def _handle(self, event: Any, context: Any) -> list[str]:
        try:
            messages = queued_messages(event)
        except AuditEventError as exc:
            self._reporter.record(PUSH_RECORD_VERSION, MESSAGE, {"outcome": "malformed", "error": str(exc)},
                                  metric=None, error=True)
            return []
        remaining = (context.get_remaining_time_in_millis() / 1000.0 if context is not None
                     else FALLBACK_REMAINING_SECONDS)
        deadline = Deadline.after(max(remaining - self._margin, MIN_DECISION_SECONDS))
        to_verify: list[tuple[QueuedMessage, PushedImage]] = []
        for message in messages:
            try:
                pushed = push_from_body(message.body)
            except AuditEventError as exc:
                self._write(message, None, "malformed", error=str(exc))
                continue
            skip = self._signature_artifact(pushed, deadline)
            if skip is not None:
                self._write(message, pushed, "skipped", reasons=[skip])
            else:
                to_verify.append((message, pushed))
        if not to_verify:
            return []
        requests = [ImageRequest(image=self._image(p), digest=p.digest) for _, p in to_verify]
        verdicts = self._verifier.decide(requests, deadline=deadline).verdicts
        retry = []
        for (message, pushed), verdict in zip(to_verify, verdicts, strict=True):
            outcome, managed = verdict.outcome.value, None
            if verdict.outcome is Outcome.REJECTED and self._signing_statuses is not None:
                # Managed signing is asynchronous: a signature still being made is asked about again
                # (the queue's visibility timeout later), until the last delivery, which reports it.
                managed = self._managed_signing(pushed)
                if managed["inProgress"] and message.receive_count < self._max_receive_count:
                    outcome = PENDING_SIGNING
            self._write(message, pushed, outcome, verdict=verdict, managed_signing=managed)
            if outcome in (Outcome.UNAVAILABLE.value, PENDING_SIGNING):
                retry.append(message.message_id)
        return retry

    def _managed_signing(self, pushed: PushedImage) -> dict[str, Any]:
        """ECR's signing status of the push, for the record; a failed call is recorded, never judged."""
        try:
            statuses = [{k: s.get(k) for k in ("signingProfileArn", "status", "failureCode", "failureReason")}
                        for s in self._signing_statuses(pushed)]  # type: ignore[misc] - checked by the caller
        except Exception as exc:  # noqa: BLE001 - the verdict stands; the record says why the status is unknown
            return {"statuses": [], "inProgress": False, "error": f"{type(exc).__name__}: {str(exc)[:300]}"}
        return {"statuses": statuses, "inProgress": any(s["status"] == "IN_PROGRESS" for s in statuses),
                "error": None}

    def _image(self, pushed: PushedImage) -> str:
        return pushed.image(self._registry_host(pushed))

    def _signature_artifact(self, pushed: PushedImage, deadline: Deadline) -> str | None:
        """Why this push is an artifact about an image (a signature) rather than a runnable image, or None.

        Judged by content, never by the tag alone: a runnable image pushed under a signature-looking tag
        (``sha256-<hex>.sig``) or with a ``subject`` is still verified. When the manifest cannot be read,
        the verifier reads it again and its verdict says why.
        """
        try:
            image = self._image(pushed)
            manifest = self._registry.bound(deadline).get_manifest(ImageReference.parse(image), pushed.digest)
        except Exception:  # noqa: BLE001 - judged by the verifier instead
            return None
        return artifact_reason(manifest)

    def _write(self, message: QueuedMessage, pushed: PushedImage | None, outcome: str, *,
               verdict: Verdict | None = None, reasons: Sequence[str] = (), error: str | None = None,
               managed_signing: dict[str, Any] | None = None) -> None:
        record: dict[str, Any] = {
            "outcome": outcome,
            "image": self._image(pushed) if pushed else None,
            "repository": pushed.repository if pushed else None,
            "tag": pushed.tag if pushed else None,
            "digest": pushed.digest if pushed else None,
            "account": pushed.account if pushed else None,
            "region": pushed.region if pushed else None,
            "messageId": message.message_id,
            "receiveCount": message.receive_count,
            "reasons": list(verdict.reasons if verdict else reasons),
            "verdict": verdict.to_json() if verdict else None,
            "managedSigning": managed_signing,
            "policyHash": self._policy_hash,
            "error": error,
        }
        self._reporter.record(PUSH_RECORD_VERSION, MESSAGE, record, metric=METRIC_PUSHES.get(outcome),
                              warn=outcome == Outcome.REJECTED.value, error=error is not None)


def artifact_reason(manifest: Manifest) -> str | None:
    """Why a manifest is not a runnable image (no filesystem layer; an index of artifacts), or None."""
    if manifest.is_index:
        entries = manifest.manifests
        if any(d.platform for d in entries):
            return None  # a multi-platform image
        if all(d.artifact_type for d in entries):
            return f"an index of {len(entries)} artifact(s) (a referrers tag-schema index), no runnable image"
        return None
    if any(FILESYSTEM_LAYER.fullmatch(layer.media_type) for layer in manifest.layers):
        return None
    kind = manifest.artifact_type or (manifest.config.media_type if manifest.config else "no config")
    about = f" about {manifest.subject.digest}" if manifest.subject is not None else ""
    return f"an artifact ({kind}){about} with no filesystem layer: a signature or attestation, not a runnable image"


# --- composition root ----------------------------------------------------------------------------------

def build_push_audit(environ: Mapping[str, str] | None = None, *, aws: Any = None, logger: Any = None,
                     metrics: Any = None, registry_host: Callable[[PushedImage], str] | None = None,
                     ) -> PushAuditHandler:
    """Build every part from the environment (the admission policy and its settings); tests inject clients."""
    from ..composition import AwsClients, build_verifier
    from ..registry import EcrCredentials, RegistryClient
    from ._parts import max_receive_count_from_env, reporter_for, settings_from_env

    settings = settings_from_env(environ, default_service="image-push-audit")
    aws = aws or AwsClients()

    def signing_statuses(pushed: PushedImage) -> Sequence[Mapping[str, Any]]:
        answer = aws.client("ecr", pushed.region).describe_image_signing_status(
            repositoryName=pushed.repository, imageId={"imageDigest": pushed.digest}, registryId=pushed.account)
        return answer.get("signingStatuses") or []

    registry = RegistryClient(insecure_registries=settings.insecure_registries,
                              ecr_auth=EcrCredentials(aws.for_service("ecr")))
    verifier = build_verifier(settings.policy, aws=aws, registry=registry)
    return PushAuditHandler(verifier=verifier, registry=registry, reporter=reporter_for(settings, logger, metrics),
                            policy_hash=settings.policy.policy_hash, deadline_margin=settings.deadline_margin,
                            registry_host=registry_host, signing_statuses=signing_statuses,
                            max_receive_count=max_receive_count_from_env(environ))


_entry = EntryPoint(build_push_audit, "the push audit")


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    return _entry.handle(event, context)
