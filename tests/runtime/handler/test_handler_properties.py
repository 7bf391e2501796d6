"""Property-based tests (hypothesis) of the hook handler over hostile shapes (issue 9 class 6).

One valid hook event, one valid DescribeServiceRevisions answer and one valid DescribeTaskDefinition
answer; each example changes one of them at one position (replaces the value with a random JSON-like
value, deletes a key, or adds one) and calls `lambda_handler`. Whatever the change:

- no exception escapes, and the answer is a valid hook response;
- every invocation writes one audit record, and every FAILED says why in it (`reason`);
- in block mode, SUCCEEDED only when what the verifier was asked to verify is exactly what the
  unchanged answers run (same images, digests, platform): a change can never get something else admitted;
- a value of another JSON type where the handler reads a field is FAILED, naming the problem;
- a shape problem, an ECS refusal or an internal error is FAILED in every mode.

The verifier is a fake (FakeVerifier) so each example costs a few milliseconds; the real verifier's
parsers have their own property tests.
"""

from __future__ import annotations

import copy
from typing import Any, Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from image_verifier.handler import app
from image_verifier.handler.ecs import RevisionReader
from tests.runtime.handler.hook_support import (
    APP,
    DIGEST,
    NO_CACHE,
    REVISION_ARN,
    SERVICE_ARN,
    TASK_DEFINITION_ARN,
    Admission,
    FakeVerifier,
    SIDECAR,
    SIGNED,
    PlainEcs,
    admission_handler,
    answers,
    hook_event,
    policy,
)

EXAMPLES = 250  # per document; the three documents and the audit-mode run take about 15 s on 2 cores
VALID_STATUSES = {"SUCCEEDED", "FAILED", "IN_PROGRESS"}
REFUSING_KINDS = {"malformed-event", "malformed-answer", "aws-refused", "internal"}

# Strings the handler gives meaning to, so that a change often swaps one valid value for another.
MEANINGFUL = st.sampled_from([
    "ARM64", "X86_64", "arm64", "LINUX", "WINDOWS_SERVER_2022_CORE", "PRE_SCALE_UP", "POST_SCALE_UP", "MISSING",
    REVISION_ARN, SERVICE_ARN, TASK_DEFINITION_ARN, DIGEST, "sha256:" + "cd" * 32, APP, SIDECAR, "app", "",
    "imageAdmission", "registry.example.com/team/other:v1",
])
SCALARS = (st.none() | st.booleans() | st.integers(min_value=-(2**64), max_value=2**64) | st.floats()
           | st.text(max_size=24) | MEANINGFUL)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12) | MEANINGFUL, children,
                                                                       max_size=4),
    max_leaves=12,
)

# Where the handler reads a field (paths with "*" for any index): a non-null value of another JSON
# type there must be refused. hookDetails is left out: it may be an object or that object as a JSON string.
READ_FIELDS = {
    "event": [(), ("executionDetails",), ("executionDetails", "serviceArn"),
              ("executionDetails", "targetServiceRevisionArn"), ("lifecycleStage",), ("executionId",), ("resourceArn",),
              ("hookDetails", "imageAdmission"), ("hookDetails", "imageAdmission", "attempt")],
    "revisions": [(), ("serviceRevisions",), ("serviceRevisions", "*"), ("serviceRevisions", "*", "serviceRevisionArn"),
                  ("serviceRevisions", "*", "taskDefinition"), ("serviceRevisions", "*", "containerImages"),
                  ("serviceRevisions", "*", "containerImages", "*"),
                  ("serviceRevisions", "*", "containerImages", "*", "image"),
                  ("serviceRevisions", "*", "containerImages", "*", "imageDigest"),
                  ("serviceRevisions", "*", "containerImages", "*", "containerName"), ("failures",)],
    "task_definition": [(), ("taskDefinition",), ("taskDefinition", "runtimePlatform"),
                        ("taskDefinition", "runtimePlatform", "cpuArchitecture"),
                        ("taskDefinition", "runtimePlatform", "operatingSystemFamily"),
                        ("taskDefinition", "containerDefinitions"), ("taskDefinition", "containerDefinitions", "*"),
                        ("taskDefinition", "containerDefinitions", "*", "name"),
                        ("taskDefinition", "containerDefinitions", "*", "image")],
}


def documents() -> dict[str, Any]:
    revisions, task_definition = answers()
    event = hook_event(hook_details={"imageAdmission": {"attempt": 1}, "team": "payments"})
    return {"event": event, "revisions": revisions, "task_definition": task_definition}


def paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every position in a JSON-like document, the root included."""
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += paths(child, (*prefix, index))
    return found


def _parent(document: Any, path: tuple) -> Any:
    for step in path[:-1]:
        document = document[step]
    return document


def replaced(document: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    _parent(document, path)[path[-1]] = value
    return document


def deleted(document: Any, path: tuple, _: Any) -> Any:
    parent = _parent(document, path) if path else None
    if isinstance(parent, dict):
        del parent[path[-1]]
    elif isinstance(parent, list):
        parent.pop(path[-1])
    return document


def added(document: Any, path: tuple, value: Any) -> Any:
    target = _parent(document, (*path, None))
    if isinstance(target, dict):
        target["unexpectedField"] = value
    elif isinstance(target, list):
        target.append(value)
    return document


def kind(value: Any) -> str:
    for python_type, name in ((bool, "boolean"), ((int, float), "number"), (str, "string"), (dict, "object"),
                              (list, "array"), (type(None), "null")):
        if isinstance(value, python_type):
            return name
    return type(value).__name__


def _reads(name: str, path: tuple) -> bool:
    return any(len(p) == len(path) and all(a in ("*", b) for a, b in zip(p, path, strict=True)) for p in READ_FIELDS[name])


@st.composite
def changes(draw: Callable, names: tuple[str, ...] = ("event", "revisions", "task_definition")) -> tuple:
    name = draw(st.sampled_from(names))
    base = documents()[name]
    path = draw(st.sampled_from(paths(base)))
    how = draw(st.sampled_from([replaced, replaced, replaced, deleted, added]))
    return name, path, how, draw(JSON_VALUES)


_admissions: dict[str, Admission] = {}


def _admission(mode: str) -> Admission:
    """One handler per mode for the whole run (a Powertools Logger per example would be slow)."""
    if mode not in _admissions:
        _admissions[mode] = admission_handler(policy(failureMode=mode, unavailableMode=mode), PlainEcs(None),
                                              env=NO_CACHE)
    return _admissions[mode]


def _invoke(mode: str, change: tuple) -> tuple[dict, list[dict], FakeVerifier, Any, Any]:
    name, path, how, value = change
    docs = documents()
    original = copy.deepcopy(docs[name])
    docs[name] = how(docs[name], path, value)
    admission = _admission(mode)
    admission.log.seek(0)
    admission.log.truncate()
    verifier = FakeVerifier(SIGNED)
    ecs = PlainEcs(docs["revisions"], docs["task_definition"])
    admission.handler._verifier = verifier
    admission.handler._revisions = RevisionReader(lambda region: ecs)  # a fresh task-definition cache
    saved, app._handler = app._handler, admission.handler
    try:
        response = app.lambda_handler(docs["event"], None)
    finally:
        app._handler = saved
    return response, admission.audit_records(), verifier, original, docs[name]


def _assert_valid_response(response: Any) -> None:
    assert isinstance(response, dict) and response.get("hookStatus") in VALID_STATUSES, response
    if response["hookStatus"] == "IN_PROGRESS":
        assert set(response) == {"hookStatus", "callBackDelay", "hookDetails"}
        assert isinstance(response["callBackDelay"], int) and response["callBackDelay"] >= 1
        assert isinstance(response["hookDetails"], dict)
    else:
        assert set(response) == {"hookStatus"}


def _check(mode: str, change: tuple) -> None:
    name, path, how, value = change
    response, records, verifier, original, _ = _invoke(mode, change)
    _assert_valid_response(response)
    status = response["hookStatus"]
    assert len(records) == 1, records
    record = records[0]
    assert record["hookStatus"] == status
    if status == "FAILED":
        assert record.get("reason"), record
    if record.get("errorKind") in REFUSING_KINDS:
        assert status == "FAILED", record
    if mode == "block" and status == "SUCCEEDED":
        # (a container listed twice may be verified twice; what matters is what was verified)
        assert set(verifier.requests) == set(SIGNED), (change, verifier.requests)
    if how is replaced and value is not None and _reads(name, path):
        before = _parent(original, path)[path[-1]] if path else original
        if kind(before) != kind(value):
            assert status == "FAILED" and record.get("errorKind") in REFUSING_KINDS, (change, record)


SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@SETTINGS
@given(changes(("event",)))
def test_any_change_to_the_event_is_answered_and_never_admits_something_else(change):
    _check("block", change)


@SETTINGS
@given(changes(("revisions",)))
def test_any_change_to_describe_service_revisions_is_answered_and_never_admits_something_else(change):
    _check("block", change)


@SETTINGS
@given(changes(("task_definition",)))
def test_any_change_to_describe_task_definition_is_answered_and_never_admits_something_else(change):
    _check("block", change)


@settings(SETTINGS, max_examples=EXAMPLES // 2)
@given(changes())
def test_a_shape_problem_is_refused_even_when_both_modes_are_audit(change):
    _check("audit", change)
