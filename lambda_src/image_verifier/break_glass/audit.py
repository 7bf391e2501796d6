"""One structured audit record (a JSON log line) per break-glass event: requested, approved,
rejected, signed, signing failed.

Find them in CloudWatch Logs Insights with ``filter auditRecord = "break-glass/v1"``; each record
names the request, the image by digest, the ticket, the requester and every vote so far, so one
record tells the whole story up to that point. The execution history holds the same facts.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, TextIO

from .approval import ApprovalState

AUDIT_RECORD_VERSION = "break-glass/v1"
EVENTS = ("requested", "approved", "rejected", "signed", "signingFailed", "refused")


def audit_record(event: str, state: ApprovalState | None, **fields: Any) -> dict[str, Any]:
    """The record for ``event``; ``fields`` add what the event knows (the caller, the signature digest)."""
    if event not in EVENTS:
        raise ValueError(f"unknown audit event {event!r}; one of {', '.join(EVENTS)}")
    record: dict[str, Any] = {"auditRecord": AUDIT_RECORD_VERSION, "event": event, "level": "INFO",
                              "message": f"break-glass {event}"}
    if state is not None:
        request = state.request
        record.update({
            "requestId": request.request_id, "image": request.image, "ticket": request.ticket,
            "reason": request.reason, "requester": request.requester.arn, "expiresAt": request.expires_at,
            "approvals": [vote.to_json() for vote in state.approvals],
            "rejection": state.rejection.to_json() if state.rejection else None,
        })
    record.update(fields)
    return record


def stdout_writer(stream: TextIO | None = None) -> Callable[[dict[str, Any]], None]:
    """Write each record as one JSON line (Lambda sends stdout to the function's log group)."""
    def write(record: dict[str, Any]) -> None:
        print(json.dumps(record, sort_keys=True, default=str), file=stream or sys.stdout, flush=True)
    return write
