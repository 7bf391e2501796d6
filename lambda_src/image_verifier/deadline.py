"""One deadline for a whole decision: every network call asks it how long it may take."""

from __future__ import annotations

import time
from dataclasses import dataclass

from .errors import DeadlineExceededError


@dataclass(frozen=True)
class Deadline:
    """An absolute point on the monotonic clock. `Deadline.after(5.0)` ends five seconds from now."""

    expires_at: float

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        return cls(time.monotonic() + seconds)

    def remaining(self) -> float:
        return self.expires_at - time.monotonic()

    def timeout(self, cap: float) -> float:
        """Seconds a single call may take: at most `cap`, never past the deadline."""
        left = self.remaining()
        if left <= 0:
            raise DeadlineExceededError("the verification deadline passed before the work was done")
        return min(cap, left)

    def check(self) -> None:
        self.timeout(float("inf"))
