"""When to try a throttled (429) or unavailable (503) request again, and when to give up at once.

The registry's `Retry-After` (delta-seconds or an HTTP-date, RFC 9110 §10.2.3) is a floor; without
one, a capped exponential back-off with jitter spreads the retries of many parallel images (and of
many warm Lambdas) so they do not hit the registry in the same instant again. A wait that would pass
the decision's deadline is not started: the caller fails at once with `RegistryThrottledError`,
whose `retry_after` lets the ECS hook ask to be called back (`callBackDelay`) when the registry is ready.
"""

from __future__ import annotations

import random
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Callable

from ..errors import RegistryUnavailableError

MAX_THROTTLE_ATTEMPTS = 4  # one request and three retries; the deadline usually ends it sooner
BACKOFF_INITIAL_SECONDS = 0.2  # first pause without Retry-After; doubles per retry
BACKOFF_CAP_SECONDS = 5.0  # no single pause longer than this without the registry asking for it
MAX_RETRY_AFTER_SECONDS = 3600.0  # a longer Retry-After is a misconfiguration; reported capped
MIN_ATTEMPT_SECONDS = 0.1  # a retry that would leave less than this for the request itself is not made


class RegistryThrottledError(RegistryUnavailableError):
    """The registry answered 429/503 and the deadline leaves no time to wait as long as it asked.

    `retry_after`: seconds the registry asked us to wait (`Retry-After`), or None when it named none.
    """

    def __init__(self, message: str, *, retry_after: float | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def parse_retry_after(value: str | None, *, now: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> float | None:
    """Seconds to wait from a `Retry-After` value, capped; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_SECONDS)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None  # an unreadable hint is no hint: the back-off still applies
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)  # HTTP-dates are GMT
    return min(max((when - now()).total_seconds(), 0.0), MAX_RETRY_AFTER_SECONDS)


def backoff_seconds(attempt: int, *, jitter: Callable[[float, float], float] = random.uniform) -> float:
    """Capped exponential back-off with "equal jitter": between half and all of min(cap, initial * 2**attempt)."""
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_INITIAL_SECONDS * (2 ** attempt))
    return jitter(ceiling / 2, ceiling)


def pause_before_retry(attempt: int, retry_after: float | None) -> float:
    """How long to wait before retry number `attempt + 1`: never less than the registry asked for."""
    return max(retry_after or 0.0, backoff_seconds(attempt))
