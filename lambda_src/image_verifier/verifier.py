"""The verifier: one image in, one `Verdict` out, following the policy.

Steps for each image: parse the reference; look up its rule and exemptions, and reject an image
that neither names *before any network call* (a host that no rule names is never contacted, and a
registry that does not answer cannot turn "no rule" into `unavailable`); resolve it to a digest
(once); an unexpired exemption makes it `exempt`; otherwise the rule with the highest precedence
must be satisfied by valid signatures on the resolved digest (an index), or, when a platform is
given, on that platform's manifest. An all-of rule needs a distinct signature by a distinct key for
each signer. Errors never escape: they become verdicts.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Executor, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Callable, Iterator, Protocol, Sequence

from .cosign.keys import CosignKeyResolver
from .deadline import Deadline
from .errors import ImageVerifierError, InvalidReferenceError, UnavailableError, VerificationError
from .evidence import Evidence
from .oci import Registry
from .platform import Platform, platform_conflict, select_platform
from .policy import CosignKeyTrust, Policy, Rule, SignerKind, TrustedSigner
from .reference import ImageReference, is_digest
from .signer_checks import cosign_matches, distinct_assignment, notation_matches
from .verdict import Decision, Outcome, SignerMatch, Verdict

if TYPE_CHECKING:  # a cosign-only run never imports the Notation stack (or botocore)
    from .notation.awssigner import RevocationChecker

# Every image of a decision is verified at once up to this bound (a task definition holds at most 10
# containers; a CLI run or a pipeline may name more). Threads mostly wait on I/O. The registry
# connection pool (registry/_transport.py, POOL_CONNECTIONS_PER_HOST) is sized to match.
MAX_PARALLEL_IMAGES = 64
FETCHES_PER_IMAGE = 2  # fetch threads per image: the cosign .sig tag and the referrers listing
# Sent at once per image: those two, the subject manifest (read by the image's own thread) and the
# referrers tag lookup (its own thread, beside the API call).
REQUESTS_AT_ONCE_PER_IMAGE = FETCHES_PER_IMAGE + 2
DEADLINE_GRACE_SECONDS = 0.25  # lets a call that fails at the deadline give its own, more precise reason
logger = logging.getLogger(__name__)


class RegistrySessions(Protocol):
    """What the verifier needs from a registry client: a session bound to one decision's deadline."""

    def bound(self, deadline: Deadline) -> Registry: ...


@dataclass(frozen=True, kw_only=True)
class ImageRequest:
    image: str
    digest: str | None = None  # a digest someone else already resolved (ECS), verified instead of the tag
    platform: Platform | None = None


class ImageVerifier:
    """Verifies images against one policy. Thread-safe; clients are injected (composition root)."""

    def __init__(self, policy: Policy, *, registry: RegistrySessions, cosign_keys: CosignKeyResolver,
                 revocation: RevocationChecker | None = None, clock: Callable[[], datetime] | None = None) -> None:
        self.policy = policy
        self._registry = registry
        self._cosign_keys = cosign_keys
        self._revocation = revocation
        self._clock = clock or (lambda: datetime.now(timezone.utc))
        self._pools_lock = threading.Lock()
        self._pools: tuple[ThreadPoolExecutor, ThreadPoolExecutor] | None = None

    def _executors(self) -> tuple[ThreadPoolExecutor, ThreadPoolExecutor]:
        """The image and fetch threads, made on first use and kept: a warm Lambda's later decisions
        start no thread (starting 150 threads for 50 images cost more than their round trips).
        Fetches get their own pool: an image thread waits on them, so sharing one could deadlock."""
        with self._pools_lock:
            if self._pools is None:
                self._pools = (ThreadPoolExecutor(max_workers=MAX_PARALLEL_IMAGES, thread_name_prefix="verify"),
                               ThreadPoolExecutor(max_workers=MAX_PARALLEL_IMAGES * FETCHES_PER_IMAGE,
                                                  thread_name_prefix="fetch"))
            return self._pools

    def decide(self, requests: Sequence[ImageRequest], *, deadline: Deadline) -> Decision:
        """Verify every image in parallel under one deadline and judge them together.

        Registry calls honour the deadline themselves, but boto3 calls (KMS, Signer) cannot be cut
        short; an image still being verified when the deadline passes is judged `unavailable` and
        its thread is left to finish on its own (images still queued then never start).
        """
        session = self._registry.bound(deadline)
        if not requests:
            return Decision.judge((), self.policy)
        images, fetches = self._executors()
        futures = [images.submit(self._verify, r, session, fetches) for r in requests]
        try:
            wait(futures, timeout=max(deadline.remaining(), 0.0) + DEADLINE_GRACE_SECONDS)
        finally:
            for future in futures:
                future.cancel()  # only those not started yet; their fetches fail fast past the deadline
        verdicts = tuple(f.result() if f.done() and not f.cancelled() else self._overdue(r)
                         for r, f in zip(requests, futures, strict=True))
        return Decision.judge(verdicts, self.policy)

    @staticmethod
    def _overdue(request: ImageRequest) -> Verdict:
        return Verdict(image=request.image, digest=request.digest, outcome=Outcome.UNAVAILABLE,
                       reasons=("the verification deadline passed before this image was verified",))

    def _verify(self, request: ImageRequest, registry: Registry, fetches: Executor | None = None) -> Verdict:
        try:
            return self._verify_or_raise(request, registry, fetches)
        except InvalidReferenceError as exc:
            return Verdict(image=request.image, digest=None, outcome=Outcome.REJECTED, reasons=(str(exc),))
        except Exception as exc:  # noqa: BLE001 - fail closed: a bug is a rejection, never an admission
            logger.exception("unexpected error verifying %s", request.image)
            return Verdict(image=request.image, digest=request.digest, outcome=Outcome.REJECTED,
                           reasons=(f"internal error while verifying: {type(exc).__name__}: {exc}",))

    def _verify_or_raise(self, request: ImageRequest, registry: Registry, fetches: Executor | None) -> Verdict:
        ref = ImageReference.parse(request.image)
        if request.digest is not None:
            if not is_digest(request.digest):
                raise InvalidReferenceError(f"invalid digest {request.digest!r} for {request.image}")
            if ref.digest and ref.digest != request.digest:
                return self._verdict(request, None, Outcome.REJECTED,
                                     [f"the reference pins {ref.digest} but the deployment runs {request.digest}"])
            ref = ref.with_digest(request.digest)
        now = self._clock()
        rule = self.policy.rule_for(ref.name)
        if rule is None and not self.policy.may_exempt(ref.name, ref.digest, now):
            return self._verdict(request, ref.digest, Outcome.REJECTED, [
                f"no rule matches {ref.name} and no exemption covers it, so it was not looked up; "
                "add a rule (or an exemption) for it to the policy"])
        cosign, notation = self._evidence_kinds(rule) if rule is not None else (False, False)
        if ref.digest and self.policy.exemption_for(ref.name, ref.digest, now) is not None:
            cosign = notation = False  # exempt by its pinned digest: no signature will be read
        evidence: Evidence | None = None
        try:
            if ref.digest:
                # Pinned: the manifest goes out together with the signature lookups, not before them.
                evidence = Evidence.fetching(registry, ref, ref.digest, fetch_subject=lambda: registry.resolve(ref),
                                             executor=fetches, cosign=cosign, notation=notation)
                subject = evidence.subject
            else:
                subject = registry.resolve(ref)
        except UnavailableError as exc:
            exemption = self.policy.exemption_for(ref.name, ref.digest, now)
            if exemption is not None and not exemption.digests:
                return self._verdict(request, ref.digest, Outcome.EXEMPT,
                                     [f"exempt: {exemption.reason}", f"digest not resolved: {exc}"],
                                     exemption=exemption.reason, valid_until=exemption.expires,
                                     warnings=[f"admitted without knowing which digest runs: {exc}"])
            return self._verdict(request, ref.digest, Outcome.UNAVAILABLE, [f"could not resolve {ref}: {exc}"],
                                 retry_after=_retry_after(exc))
        except VerificationError as exc:
            return self._verdict(request, ref.digest, Outcome.REJECTED, [f"could not resolve {ref}: {exc}"])
        digest = subject.digest
        exemption = self.policy.exemption_for(ref.name, digest, now)
        if exemption is not None:
            return self._verdict(request, digest, Outcome.EXEMPT, [f"exempt until {exemption.expires.isoformat()}: "
                                                                    f"{exemption.reason}"], exemption=exemption.reason,
                                 valid_until=exemption.expires)
        if rule is None:
            return self._verdict(request, digest, Outcome.REJECTED,
                                 [f"no rule matches {ref.name}; add a rule (or an exemption) to the policy"])
        if evidence is None:  # resolved by tag: the signature lookups start now, together
            evidence = Evidence(registry, ref, subject, executor=fetches)
            evidence.prefetch(cosign=cosign, notation=notation)
        targets = [evidence]
        platform_digest = platform_problem = None
        if subject.is_index and request.platform is not None:
            try:
                chosen = select_platform(subject, request.platform)
                platform_digest = chosen.digest
                # A signature on the chosen manifest alone counts only if it is all the runtime could pick.
                platform_problem = platform_conflict(subject, request.platform, chosen.digest)
            except VerificationError as exc:
                return self._verdict(request, digest, Outcome.REJECTED, [str(exc)], rule=rule.name)
            if platform_problem is None:
                # Its manifest and signature lookups go out now, beside the index's own.
                targets.append(Evidence.fetching(
                    registry, ref, chosen.digest, fetch_subject=lambda: registry.get_manifest(ref, chosen.digest),
                    executor=fetches, cosign=cosign, notation=notation))
                problem = self._platform_problem(request, digest, rule, targets[1])
                if problem is not None:
                    return problem
        reasons: list[str] = [platform_problem] if platform_problem else []
        unavailable = False
        waits: list[float] = []
        for target in targets:
            label = "index" if target.subject.is_index else ("platform manifest" if target is not evidence else "manifest")
            outcome, matches, target_reasons = self._satisfy(rule, target, now, waits)
            if outcome is Outcome.VERIFIED:
                signed_by = ", ".join(m.signer for m in matches)
                return Verdict(image=request.image, digest=digest, outcome=Outcome.VERIFIED, rule=rule.name,
                               signers=tuple(matches), platform_digest=platform_digest,
                               reasons=(f"signed by {signed_by} on the {label} {target.digest}",),
                               valid_until=self._keys_valid_until(matches),
                               warnings=tuple(w for m in matches for w in m.warnings))
            unavailable = unavailable or outcome is Outcome.UNAVAILABLE
            reasons.extend(f"{label} {target.digest}: {r}" for r in target_reasons)
        return Verdict(image=request.image, digest=digest, rule=rule.name, platform_digest=platform_digest,
                       outcome=Outcome.UNAVAILABLE if unavailable else Outcome.REJECTED, reasons=tuple(reasons),
                       retry_after=max(waits, default=None) if unavailable else None)

    def _evidence_kinds(self, rule: Rule) -> tuple[bool, bool]:
        """Which signature evidence the rule's signers read: (cosign `.sig` tag, referrers listing)."""
        kinds = {self.policy.signer(name).kind for name in rule.signer_names}
        cosign_kinds = {SignerKind.COSIGN_KEY, SignerKind.COSIGN_KEYLESS}  # `.sig` first, referrers only if needed
        return bool(kinds & cosign_kinds), bool(kinds - cosign_kinds)

    def _platform_problem(self, request: ImageRequest, digest: str, rule: Rule, target: Evidence) -> Verdict | None:
        """The verdict when the platform's manifest cannot be read or is not an image manifest."""
        try:
            if target.subject.is_index:  # the entry said image manifest; the bytes say otherwise
                raise VerificationError(f"the manifest {target.digest} listed for platform {request.platform} "
                                        f"is not an image manifest ({target.subject.media_type})")
        except VerificationError as exc:
            return self._verdict(request, digest, Outcome.REJECTED, [str(exc)], rule=rule.name)
        except UnavailableError as exc:
            return self._verdict(request, digest, Outcome.UNAVAILABLE,
                                 [f"could not read the manifest for platform {request.platform}: {exc}"], rule=rule.name,
                                 retry_after=_retry_after(exc))
        return None

    def _satisfy(self, rule: Rule, evidence: Evidence, now: datetime,
                 waits: list[float]) -> tuple[Outcome, list[SignerMatch], list[str]]:
        """Check the rule's signers on one digest.

        any-of stops at the first valid signature. all-of collects every valid signature of each
        signer and needs one per signer that shares neither its signature nor its public key with
        another signer's: names are not evidence, key material is. A throttling registry's
        Retry-After is appended to `waits`.
        """
        options: list[list[SignerMatch]] = []
        reasons: list[str] = []
        rejected = unavailable = False
        for name in rule.signer_names:
            try:
                found = self._matches(self.policy.signer(name), rule, evidence, now)
                if not rule.requires_all:
                    return Outcome.VERIFIED, [next(found)], []
                options.append(list(found))
            except UnavailableError as exc:
                unavailable = True
                reasons.append(f"unavailable: {exc}")
                if _retry_after(exc) is not None:
                    waits.append(_retry_after(exc))
            except ImageVerifierError as exc:
                rejected = True
                reasons.append(str(exc))
        if rule.requires_all and len(options) == len(rule.signer_names):
            chosen, conflicts = distinct_assignment(rule.signer_names, options)
            if chosen is not None:
                return Outcome.VERIFIED, list(chosen), []
            return Outcome.REJECTED, [], conflicts  # more requests cannot add a key the policy does not name
        if rule.requires_all and rejected:
            return Outcome.REJECTED, [], reasons  # a signer that is certainly missing decides
        return (Outcome.UNAVAILABLE if unavailable else Outcome.REJECTED), [], reasons

    def _matches(self, signer: TrustedSigner, rule: Rule, evidence: Evidence, now: datetime) -> Iterator[SignerMatch]:
        if signer.kind is SignerKind.COSIGN_KEY:
            return cosign_matches(signer, rule, evidence, self._cosign_keys, now)
        if signer.kind is SignerKind.COSIGN_KEYLESS:  # judged at the log's time, not `now`; imported when used
            from .cosign.keyless.matches import keyless_matches

            return keyless_matches(signer, rule, evidence)
        return notation_matches(signer, rule, evidence, now, self._revocation)

    def _keys_valid_until(self, matches: list[SignerMatch]) -> datetime | None:
        """The earliest end of a validity window among the cosign keys that satisfied the rule."""
        ends = [trust.valid_until for trust in (self.policy.signer(m.signer).trust for m in matches)
                if isinstance(trust, CosignKeyTrust) and trust.valid_until is not None]
        return min(ends, default=None)

    @staticmethod
    def _verdict(request: ImageRequest, digest: str | None, outcome: Outcome, reasons: list[str], *,
                 rule: str | None = None, exemption: str | None = None, valid_until: datetime | None = None,
                 warnings: Sequence[str] = (), retry_after: float | None = None) -> Verdict:
        return Verdict(image=request.image, digest=digest, outcome=outcome, reasons=tuple(reasons), rule=rule,
                       exemption=exemption, valid_until=valid_until, warnings=tuple(warnings),
                       retry_after=retry_after)


def _retry_after(exc: UnavailableError) -> float | None:
    """Seconds a throttling registry asked us to wait (`RegistryThrottledError.retry_after`), if any."""
    return getattr(exc, "retry_after", None)
