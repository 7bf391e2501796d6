"""Thread-safe request counters, so a test can say "this verification made exactly 2 requests"."""

from __future__ import annotations

import threading

MAX_REQUEST_LOG = 256  # the log is for diagnostics in tests and logs; older entries are dropped


class RequestCounter:
    """Counts registry-content requests and bearer-token requests separately, and logs the former."""

    def __init__(self) -> None:
        self._counter_lock = threading.Lock()
        self._content_requests = 0
        self._token_requests = 0
        self._log: list[str] = []

    @property
    def request_count(self) -> int:
        """HTTP requests sent for registry content: 401 challenges, retries and redirect hops included."""
        with self._counter_lock:
            return self._content_requests

    @property
    def token_request_count(self) -> int:
        """HTTP requests sent to bearer-token realms (not part of `request_count`)."""
        with self._counter_lock:
            return self._token_requests

    @property
    def request_log(self) -> list[str]:
        """"METHOD url" of the content requests sent (the last MAX_REQUEST_LOG)."""
        with self._counter_lock:
            return list(self._log)

    def count_request(self, method: str, url: str) -> None:
        with self._counter_lock:
            self._content_requests += 1
            self._log.append(f"{method} {url}")
            del self._log[:-MAX_REQUEST_LOG]

    def count_token(self) -> None:
        with self._counter_lock:
            self._token_requests += 1
