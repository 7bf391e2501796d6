"""The Lambda context in the audit record (request id, cold start) and the metrics issue 11 added:
ColdStarts, CacheHits, UnavailableDecisions. The context is a fake with the attributes the Lambda
Python runtime's context has; the record's keys are the ones Powertools' inject_lambda_context writes.
"""

from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass

from aws_lambda_powertools import Logger
from image_verifier.handler import app
from image_verifier.handler.telemetry import (
    METRIC_CACHE_HITS,
    METRIC_COLD_STARTS,
    METRIC_UNAVAILABLE_DECISIONS,
)
from image_verifier.verdict import Outcome, Verdict

from tests.runtime.handler.hook_support import (
    APP,
    DIGEST,
    SIGNED,
    FakeVerifier,
    PlainEcs,
    admission_handler,
    answers,
    emf_metrics,
    hook_event,
    policy,
)

FUNCTION_ARN = "arn:aws:lambda:us-east-1:111111111111:function:image-admission"


@dataclass
class FakeLambdaContext:
    """The attributes of the Lambda Python runtime's context object that the handler reads."""

    aws_request_id: str = "c6af9ac6-7b61-11e6-9a41-93e812345678"
    function_name: str = "image-admission"
    invoked_function_arn: str = FUNCTION_ARN
    memory_limit_in_mb: int = 512
    function_version: str = "$LATEST"
    log_group_name: str = "/aws/lambda/image-admission"
    log_stream_name: str = "2026/11/30/[$LATEST]abcdef"
    remaining_ms: int = 60_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def _admission(**env):
    return admission_handler(policy(), PlainEcs(*answers()), env=env, verifier=FakeVerifier(SIGNED))


def test_audit_record_carries_the_request_id_and_cold_start_of_each_invocation():
    # Given a fresh handler (as the composition root builds it on the first invocation)
    admission = _admission()
    # When ECS invokes it twice
    admission.handle(hook_event(), FakeLambdaContext(aws_request_id="request-1"))
    admission.handle(hook_event(), FakeLambdaContext(aws_request_id="request-2"))
    # Then each audit record names its own request, and only the first is a cold start
    first, second = admission.audit_records()
    assert (first["function_request_id"], first["cold_start"]) == ("request-1", True)
    assert (second["function_request_id"], second["cold_start"]) == ("request-2", False)
    assert first["function_arn"] == FUNCTION_ARN and first["function_name"] == "image-admission"


def test_lambda_context_keys_are_the_ones_powertools_inject_lambda_context_writes():
    # Given Powertools' own decorator run on the same context
    stream = io.StringIO()
    logger = Logger(service="inject-reference", logger_handler=logging.StreamHandler(stream))

    @logger.inject_lambda_context
    def handler(event, context):
        logger.info("reference")

    context = FakeLambdaContext()
    handler({}, context)
    reference = json.loads(stream.getvalue().splitlines()[-1])
    # When the admission handler decides with that context
    admission = _admission()
    admission.handle(hook_event(), context)
    [record] = admission.audit_records()
    # Then every request key Powertools writes is in the record with the same value
    for key in ("function_request_id", "function_name", "function_arn", "function_memory_size"):
        assert record[key] == reference[key], key
    assert isinstance(record["cold_start"], bool)


def test_a_context_without_lambda_attributes_still_gives_a_record(monkeypatch):
    # Given the entry point invoked with no context at all (a local run)
    admission = _admission()
    monkeypatch.setattr(app, "_handler", admission.handler)
    # When it decides
    assert app.lambda_handler(hook_event(), None) == {"hookStatus": "SUCCEEDED"}
    # Then the record has the cold-start flag and no request id (Powertools leaves out nulls)
    [record] = admission.audit_records()
    assert record["cold_start"] is True and "function_request_id" not in record


def test_counts_one_cold_start_and_the_cache_hits(capsys):
    # Given a handler with its verdict cache on
    admission = _admission()
    # When it decides the same revision twice
    admission.handle(hook_event(), FakeLambdaContext())
    first = emf_metrics(capsys.readouterr().out)
    admission.handle(hook_event(), FakeLambdaContext())
    second = emf_metrics(capsys.readouterr().out)
    # Then the first decision is the cold start and verified everything itself
    assert first[METRIC_COLD_STARTS] == 1 and first[METRIC_CACHE_HITS] == 0
    # And the second is warm and took the pinned digest's verdict from the cache
    assert METRIC_COLD_STARTS not in second
    [_, record] = admission.audit_records()
    assert second[METRIC_CACHE_HITS] == sum(1 for i in record["images"] if i["cached"]) >= 1


def test_counts_an_unavailable_decision_only_when_it_is_final(capsys):
    # Given a registry that does not answer for the app image
    unavailable = Verdict(image=APP, digest=DIGEST, outcome=Outcome.UNAVAILABLE, reasons=("registry timed out",))
    admission = admission_handler(policy(), PlainEcs(*answers()), env={"ADMISSION_MAX_ATTEMPTS": "2"},
                                  verifier=FakeVerifier(SIGNED, verdicts={APP: unavailable}))
    # When the first attempt is deferred (IN_PROGRESS) and the last one refused
    first = admission.handle(hook_event(), FakeLambdaContext())
    deferred = emf_metrics(capsys.readouterr().out)
    last = admission.handle(hook_event(hook_details=first["hookDetails"]), FakeLambdaContext())
    final = emf_metrics(capsys.readouterr().out)
    # Then only the final decision counts as unavailable
    assert (first["hookStatus"], last["hookStatus"]) == ("IN_PROGRESS", "FAILED")
    assert METRIC_UNAVAILABLE_DECISIONS not in deferred
    assert final[METRIC_UNAVAILABLE_DECISIONS] == 1
