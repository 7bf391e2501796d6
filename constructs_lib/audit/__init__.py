"""Watching what the deployment hook cannot see: pushes and tasks, verified after the fact.

    from constructs_lib.audit import PushAudit, TaskAudit

    PushAudit(stack, "PushAudit", controller=admission, alarm_topic=topic)        # unsigned pushes
    TaskAudit(stack, "TaskAudit", controller=admission, alarm_topic=topic,
              stop_unverified_tasks=True)                                       # RunTask, schedules

Both run the admission controller's policy (same runtime package, same bundle) in audit: they
report, count and alarm; only TaskAudit may act, by stopping a task. docs/constructs/audits.md.
"""

from __future__ import annotations

from .push import PushAudit
from .task import TaskAudit

__all__ = ["PushAudit", "TaskAudit"]
