"""Signature evidence for one digest, fetched lazily and at most once per decision.

Several signers of a rule (or several rules' checks) look at the same `.sig` manifest, the same
referrers and the same blobs; this cache is why a legacy cosign verification costs exactly two
registry requests per signature once the digest is known.
"""

from __future__ import annotations

import threading
from typing import Callable

from .cosign.legacy import signature_tag
from .errors import HostileArtifactError, ImageNotFoundError, VerificationError
from .oci import Descriptor, Manifest, Registry
from .reference import ImageReference

MAX_SIGNATURE_CANDIDATES = 16  # signature manifests tried per digest; notation's CLI default is far higher, we fail closed sooner


class Evidence:
    def __init__(self, registry: Registry, ref: ImageReference, subject: Manifest) -> None:
        self.registry = registry
        self.ref = ref
        self.subject = subject
        self.digest = subject.digest
        self._lock = threading.Lock()
        self._memo: dict[object, object] = {}

    def _once(self, key: object, fetch: Callable[[], object]) -> object:
        with self._lock:
            if key in self._memo:
                return self._memo[key]
        value = fetch()
        with self._lock:
            return self._memo.setdefault(key, value)

    def subject_descriptor(self) -> Descriptor:
        """The descriptor of the manifest being verified, as Notation payloads must name it."""
        return self.subject.descriptor

    def cosign_signatures(self) -> Manifest | None:
        """The legacy `sha256-<hex>.sig` manifest, or None when the tag does not exist."""
        return self._once("sig", lambda: self.registry.find_tag(self.ref, signature_tag(self.digest)))  # type: ignore[return-value]

    def blob(self, descriptor: Descriptor, *, max_bytes: int) -> bytes:
        if descriptor.size > max_bytes:
            raise HostileArtifactError(f"blob {descriptor.digest} declares {descriptor.size} bytes, more than {max_bytes}")
        # Keyed by size too: a cached blob must still be what this descriptor (and its limit) allows.
        return self._once(("blob", descriptor.digest, descriptor.size),  # type: ignore[return-value]
                          lambda: self.registry.get_blob(self.ref, descriptor, max_bytes=max_bytes))

    def referrers(self) -> tuple[Descriptor, ...]:
        return self._once("referrers", lambda: tuple(self.registry.referrers(self.ref, self.digest)))  # type: ignore[return-value]

    def referrer_manifests(self, accept: Callable[[Descriptor], bool]) -> tuple[list[Manifest], list[str]]:
        """Referrer manifests whose descriptors `accept` admits, capped, each fetched by digest once.

        Also returns a reason for each referrer that could not be used: one junk referrer must not
        hide the valid signatures beside it.
        """
        chosen = [d for d in self.referrers() if accept(d)][:MAX_SIGNATURE_CANDIDATES]
        manifests: list[Manifest] = []
        problems: list[str] = []
        for descriptor in chosen:
            try:
                manifests.append(self._once(("manifest", descriptor.digest),  # type: ignore[arg-type]
                                            lambda d=descriptor: self.registry.get_manifest(self.ref, d.digest)))
            except ImageNotFoundError:
                continue  # a referrer deleted between listing and fetching is simply not evidence
            except VerificationError as exc:
                problems.append(f"referrer {descriptor.digest}: {exc}")
        return manifests, problems
