"""The handler answers before the Lambda timeout even when a call it cannot interrupt overruns.

boto3 calls (ECS, KMS, Signer, ECR login) cannot be cut short by the decision's deadline: botocore
retries and timeouts are fixed when the client is built. A Lambda that times out gives ECS no
answer, which ECS treats as a failure (rollback, whatever the modes say) and leaves no audit
record. These tests stall such a call past the deadline and expect an answer in time.
"""

from __future__ import annotations

import time

import pytest

from tests.runtime.handler.hook_support import LambdaContext, StubbedEcs, admission_handler, hook_event
from tests.support.cosign_material import KeyPair, cosign_policy

IMAGE = "registry.example.com/team/app@sha256:" + "ab" * 32
MARGIN = {"ADMISSION_DEADLINE_MARGIN_SECONDS": "1"}
REMAINING_MS = 2_500  # budget 1.5 s after the 1 s margin; the answer must come before 2.5 s
STALL_SECONDS = 4.0


def _policy(**top) -> dict:
    doc = cosign_policy({"ci": {"publicKeyPem": KeyPair.generate().public_pem}}, images="registry.example.com/**")
    doc.update(top)
    return doc


def _stall(*args, **kwargs):
    time.sleep(STALL_SECONDS)


@pytest.mark.parametrize(("mode", "status"), [("block", "IN_PROGRESS"), ("audit", "SUCCEEDED")])
def test_answers_in_time_when_a_verification_call_overruns_the_deadline(mode, status):
    # Given a verifier stuck in a call that ignores the deadline (a boto3 call to KMS, say)
    ecs = StubbedEcs()
    ecs.revision([("app", IMAGE, None)])
    admission = admission_handler(_policy(unavailableMode=mode), ecs, env=MARGIN)
    admission.handler._verifier.decide = _stall  # type: ignore[method-assign]
    # When ECS invokes the hook with little time left
    started = time.monotonic()
    response = admission.handle(hook_event(), LambdaContext(remaining_ms=REMAINING_MS))
    elapsed = time.monotonic() - started
    # Then it answers before the Lambda would time out, judged as unavailable, and says why
    assert elapsed < REMAINING_MS / 1000.0
    assert response["hookStatus"] == status
    [record] = admission.audit_records()
    assert "did not finish before the deadline" in record["error"]


def test_answers_in_time_when_the_ecs_call_overruns_the_deadline():
    # Given DescribeServiceRevisions that stalls (connect and read timeouts, one retry)
    ecs = StubbedEcs()
    ecs.revision([("app", IMAGE, None)])
    describe = ecs.client.describe_service_revisions
    ecs.client.describe_service_revisions = lambda **kwargs: (_stall(), describe(**kwargs))[1]
    admission = admission_handler(_policy(), ecs, env=MARGIN)
    # When / Then the answer comes in time and defers
    started = time.monotonic()
    response = admission.handle(hook_event(), LambdaContext(remaining_ms=REMAINING_MS))
    assert time.monotonic() - started < REMAINING_MS / 1000.0
    assert response["hookStatus"] == "IN_PROGRESS"
    assert "did not finish before the deadline" in admission.audit_records()[0]["error"]
