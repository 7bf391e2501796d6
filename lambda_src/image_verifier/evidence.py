"""Signature evidence for one digest, fetched at most once per decision, and early where it can be.

Several signers of a rule (or several rules' checks) look at the same `.sig` manifest, the same
referrers and the same blobs; this cache is why a legacy cosign verification costs exactly two
registry requests per signature once the digest is known.

Round trips: once the digest is known, the requests that do not depend on each other go out
together (`Evidence.fetching` / `prefetch`): the subject manifest, the cosign `sha256-<hex>.sig` tag
and the referrers listing (whose API call and tag lookup run side by side, registry/referrers.py).
A legacy cosign signature then costs one more round (its payload blob), a Notation signature two
(its signature manifest, then its envelope). Without an executor every fetch runs in the caller's
thread when first asked for, as before.
"""

from __future__ import annotations

import threading
from concurrent.futures import Executor, Future
from typing import Callable

from .cosign.legacy import signature_tag
from .errors import HostileArtifactError, ImageNotFoundError, VerificationError
from .oci import Descriptor, Manifest, Registry
from .reference import ImageReference

MAX_SIGNATURE_CANDIDATES = 16  # signature manifests tried per digest; notation's CLI default is far higher, we fail closed sooner
_SUBJECT, _SIGNATURES, _REFERRERS = "subject", "sig", "referrers"


class Evidence:
    """What a registry holds about one digest. Thread-safe; every fetch is memoized, errors too."""

    def __init__(self, registry: Registry, ref: ImageReference, subject: Manifest, *,
                 executor: Executor | None = None) -> None:
        self._setup(registry, ref, subject.digest, executor)
        done: Future[object] = Future()
        done.set_result(subject)
        self._memo[_SUBJECT] = done

    @classmethod
    def fetching(cls, registry: Registry, ref: ImageReference, digest: str, *, fetch_subject: Callable[[], Manifest],
                 executor: Executor | None, cosign: bool, notation: bool) -> Evidence:
        """Evidence whose subject manifest is still to be read: it is fetched together with the
        signature evidence the rule's signers will read (`cosign`: the `.sig` tag; `notation`: the
        referrers), instead of before it. Those lookups start now, on the executor; the manifest is
        read by the first caller of `subject` in its own thread (one thread fewer per image), which
        raises what `fetch_subject` raised."""
        evidence = cls.__new__(cls)
        evidence._setup(registry, ref, digest, executor)
        evidence._fetch_subject = fetch_subject
        evidence.prefetch(cosign=cosign, notation=notation)
        return evidence

    def _setup(self, registry: Registry, ref: ImageReference, digest: str, executor: Executor | None) -> None:
        self.registry = registry
        self.ref = ref
        self.digest = digest
        self._executor = executor
        self._lock = threading.Lock()
        self._memo: dict[object, Future[object]] = {}
        self._fetch_subject: Callable[[], Manifest] = _never

    def prefetch(self, *, cosign: bool, notation: bool) -> None:
        """Start the lookups a rule's signers will need, without waiting (no-op without an executor).

        cosign signers read the `.sig` tag first; the referrers (where cosign v3 bundles live) are
        read for them only when the tag held no valid signature, so an image signed the classic way
        costs no speculative requests. Notation signers read the referrers.
        """
        if cosign:
            self._start(_SIGNATURES, self._fetch_signatures)
        if notation:
            self._start(_REFERRERS, self._fetch_referrers)

    @property
    def subject(self) -> Manifest:
        return self._once(_SUBJECT, self._fetch_subject)  # type: ignore[return-value]

    def subject_descriptor(self) -> Descriptor:
        """The descriptor of the manifest being verified, as Notation payloads must name it."""
        return self.subject.descriptor

    def cosign_signatures(self) -> Manifest | None:
        """The legacy `sha256-<hex>.sig` manifest, or None when the tag does not exist."""
        return self._once(_SIGNATURES, self._fetch_signatures)  # type: ignore[return-value]

    def blob(self, descriptor: Descriptor, *, max_bytes: int) -> bytes:
        if descriptor.size > max_bytes:
            raise HostileArtifactError(f"blob {descriptor.digest} declares {descriptor.size} bytes, more than {max_bytes}")
        # Keyed by size too: a cached blob must still be what this descriptor (and its limit) allows.
        return self._once(("blob", descriptor.digest, descriptor.size),  # type: ignore[return-value]
                          lambda: self.registry.get_blob(self.ref, descriptor, max_bytes=max_bytes))

    def referrers(self) -> tuple[Descriptor, ...]:
        return self._once(_REFERRERS, self._fetch_referrers)  # type: ignore[return-value]

    def referrer_manifests(self, accept: Callable[[Descriptor], bool]) -> tuple[list[Manifest], list[str]]:
        """Referrer manifests whose descriptors `accept` admits, capped, each fetched by digest once
        (all of them at once when there is an executor: one round trip, however many signatures).

        Also returns a reason for each referrer that could not be used: one junk referrer must not
        hide the valid signatures beside it.
        """
        chosen = [d for d in self.referrers() if accept(d)][:MAX_SIGNATURE_CANDIDATES]
        fetches = [(d, lambda d=d: self.registry.get_manifest(self.ref, d.digest)) for d in chosen]
        for descriptor, fetch in fetches:
            self._start(("manifest", descriptor.digest), fetch)
        manifests: list[Manifest] = []
        problems: list[str] = []
        for descriptor, fetch in fetches:
            try:
                manifests.append(self._once(("manifest", descriptor.digest), fetch))  # type: ignore[arg-type]
            except ImageNotFoundError:
                continue  # a referrer deleted between listing and fetching is simply not evidence
            except VerificationError as exc:
                problems.append(f"referrer {descriptor.digest}: {exc}")
        return manifests, problems

    # -- memo ---------------------------------------------------------------------------------------

    def _fetch_signatures(self) -> Manifest | None:
        return self.registry.find_tag(self.ref, signature_tag(self.digest))

    def _fetch_referrers(self) -> tuple[Descriptor, ...]:
        return tuple(self.registry.referrers(self.ref, self.digest))

    def _start(self, key: object, fetch: Callable[[], object]) -> None:
        """Run `fetch` on the executor unless it already ran or runs; without one, leave it for `_once`."""
        if self._executor is None:
            return
        with self._lock:
            if key not in self._memo:
                self._memo[key] = self._executor.submit(fetch)

    def _once(self, key: object, fetch: Callable[[], object]) -> object:
        with self._lock:
            future = self._memo.get(key)
            owner = future is None
            if owner:
                future = self._memo[key] = Future()
        assert future is not None
        if owner:
            try:
                future.set_result(fetch())
            except BaseException as exc:  # noqa: BLE001 - kept for every later reader, raised below
                future.set_exception(exc)
        return future.result()  # waits for a prefetch in flight; the fetch itself honours the deadline


def _never() -> Manifest:
    raise AssertionError("the subject manifest is always given or fetchable when Evidence is made")
