"""The push and task audits: what the deployment hook cannot see, verified after the fact.

Two Lambda entry points over the same verifier core (see constructs_lib/audit/):

- ``push``: ECR "ECR Image Action" PUSH events, delivered through a delayed SQS queue (managed
  signing is asynchronous), verify the pushed digest with the admission policy; an unsigned or
  badly signed push is reported. Handler ``image_verifier.audits.push.lambda_handler``.
- ``task``: ECS "ECS Task State Change" events for RUNNING tasks that no protected service
  deployment started (RunTask, schedules, other services) verify the digests the task runs; a
  task whose images fail is reported and, when configured, stopped. Handler
  ``image_verifier.audits.task.lambda_handler``.

``events`` parses both event shapes as pure functions; ``report`` writes the audit records and
metrics. Importing this package builds nothing and reads no environment.
"""

from __future__ import annotations
