"""Verdicts remembered within a warm function, per (image name, digest, platform, policy hash).

Only final outcomes are kept (verified, exempt, rejected), each for a bounded time; `unavailable`
is never cached, since the next call may well reach the registry. A different policy has a
different hash, so a policy change never reuses an old verdict. A verdict is stored under the
digest that was verified; an image that ECS gives only by tag is not looked up (its tag must be
resolved again: tags move).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import replace
from datetime import datetime, timezone
from typing import Callable

from ..platform import Platform
from ..reference import ImageReference
from ..verdict import Outcome, Verdict

_Key = tuple[str, str, str, str]


class VerdictCache:
    def __init__(self, *, ttl: float, rejection_ttl: float, max_entries: int,
                 clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        self._ttl = {Outcome.VERIFIED: ttl, Outcome.EXEMPT: ttl, Outcome.REJECTED: rejection_ttl}
        self._max = max_entries
        self._clock = clock
        self._wall_clock = wall_clock
        self._entries: OrderedDict[_Key, tuple[float, Verdict]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(image: str, digest: str | None, platform: Platform | None, policy_hash: str) -> _Key | None:
        if not digest:
            return None
        try:
            ref = ImageReference.parse(image)
        except Exception:  # noqa: BLE001 - an unparsable reference is simply not cached
            return None
        if ref.digest and ref.digest != digest:
            return None  # the verifier refuses a pin that ECS does not run; a cached verdict must not hide that
        return (ref.name, digest, str(platform or ""), policy_hash)

    def get(self, image: str, digest: str | None, platform: Platform | None, policy_hash: str) -> Verdict | None:
        key = self.key(image, digest, platform, policy_hash)
        if key is None:
            return None
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            expires, verdict = entry
            if self._clock() >= expires:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
        return replace(verdict, image=image)  # the same digest may be deployed under another tag

    def put(self, verdict: Verdict, platform: Platform | None, policy_hash: str) -> None:
        """Remember a final verdict under the digest that was verified (a tag was resolved once)."""
        ttl = self._ttl.get(verdict.outcome, 0.0)
        if verdict.valid_until is not None:  # an exemption or a key window ends sooner than the TTL
            ttl = min(ttl, (verdict.valid_until - self._wall_clock()).total_seconds())
        key = self.key(verdict.image, verdict.digest, platform, policy_hash)
        if key is None or ttl <= 0 or self._max <= 0:
            return
        with self._lock:
            self._entries[key] = (self._clock() + ttl, verdict)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
