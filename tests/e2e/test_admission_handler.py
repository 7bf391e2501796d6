"""The admission Lambda end to end: real images and signatures in the real registry, ECS answers
from a botocore-stubbed client, events shaped as ECS sends them, responses and audit records checked.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.runtime.handler.hook_support import (
    REVISION_ARN,
    SERVICE_ARN,
    TASK_DEFINITION_ARN,
    LambdaContext,
    StubbedEcs,
    admission_handler,
    emf_metrics,
    hook_event,
)
from tests.support.cosign_material import KeyPair, cosign_policy
from tests.support.images import push_image, push_index, unique_repository

from .cli_helpers import sign

pytestmark = pytest.mark.registry


@pytest.fixture(scope="module")
def break_glass_key() -> KeyPair:
    return KeyPair.generate()


def _policy(registry, key: KeyPair, break_glass: KeyPair | None = None, **top) -> dict:
    signers = {"ci": {"publicKeyPem": key.public_pem}}
    if break_glass is not None:
        signers["break-glass"] = {"publicKeyPem": break_glass.public_pem, "breakGlass": True}
    doc = cosign_policy(signers, images=f"{registry.host}/**")
    doc.update(top)
    return doc


def _exempting(doc: dict, pattern: str) -> dict:
    doc["exemptions"] = [{"images": [pattern], "reason": "vendor sidecar, ticket SEC-142", "expires": "2099-01-01T00:00:00Z"}]
    return doc


def _signed(registry, key_file: Path, tag: str = "v1", layer: bytes = b"app"):
    image = push_image(registry, unique_repository(), tag, layer_bytes=layer)
    assert sign(registry.host, key_file, str(image.ref)).code == 0
    return image


# --- admitted -------------------------------------------------------------------------------------

def test_admits_revision_when_every_image_is_signed(registry, key, key_file, capsys):
    # Given a revision whose one image ECS already resolved to a digest
    image = _signed(registry, key_file)
    ecs = StubbedEcs()
    ecs.revision([("app", str(image.tag_ref), image.digest)])
    admission = admission_handler(_policy(registry, key), ecs, insecure_registries=[registry.host])
    # When ECS calls the hook at PRE_SCALE_UP
    response = admission.handle(hook_event())
    # Then the deployment may go on, and one audit record says why
    assert response == {"hookStatus": "SUCCEEDED"}
    [record] = admission.audit_records()
    assert record["decision"] == "admitted"
    assert record["service"] == SERVICE_ARN and record["revision"] == REVISION_ARN
    assert record["stage"] == "PRE_SCALE_UP"
    assert record["taskDefinition"] == TASK_DEFINITION_ARN
    assert record["platform"] == "linux/amd64"
    assert record["policyHash"].startswith("sha256:")
    assert (record["failureMode"], record["unavailableMode"]) == ("block", "block")
    assert record["latencyMs"] >= 0
    [entry] = record["images"]
    assert entry["container"] == "app"
    assert entry["digest"] == image.digest
    assert entry["outcome"] == "verified"
    assert entry["signers"][0]["signer"] == "ci" and entry["signers"][0]["identity"]
    assert entry["breakGlass"] is False
    ecs.stubber.assert_no_pending_responses()
    metrics = emf_metrics(capsys.readouterr().out)
    assert metrics["Admitted"] == 1 and metrics["ImagesVerified"] == 1 and metrics["ImagesRejected"] == 0
    assert "DecisionLatency" in metrics


def test_admits_revision_when_ecs_has_no_digest_yet_and_resolves_the_tag(registry, key, key_file):
    # Given PRE_SCALE_UP before ECS resolved the tag (imageDigest absent)
    image = _signed(registry, key_file)
    ecs = StubbedEcs()
    ecs.revision([("app", str(image.tag_ref), None)])
    admission = admission_handler(_policy(registry, key), ecs, insecure_registries=[registry.host])
    # When / Then the tag is resolved once and the digest verified and logged
    assert admission.handle(hook_event())["hookStatus"] == "SUCCEEDED"
    assert admission.audit_records()[0]["images"][0]["digest"] == image.digest


def test_admits_revision_when_event_has_the_older_flat_shape(registry, key, key_file):
    image = _signed(registry, key_file)
    ecs = StubbedEcs()
    ecs.revision([("app", str(image.ref), image.digest)])
    admission = admission_handler(_policy(registry, key), ecs, insecure_registries=[registry.host])
    assert admission.handle(hook_event(flat=True)) == {"hookStatus": "SUCCEEDED"}
    assert admission.audit_records()[0].get("stage") is None  # Powertools leaves out null fields


def test_admits_exempt_image_and_records_the_exemption(registry, key):
    image = push_image(registry, unique_repository("vendor"), "v1", layer_bytes=b"vendor")
    ecs = StubbedEcs()
    ecs.revision([("sidecar", str(image.ref), image.digest)])
    policy = _exempting(_policy(registry, key), f"{registry.host}/{image.repository}")
    admission = admission_handler(policy, ecs, insecure_registries=[registry.host])
    assert admission.handle(hook_event()) == {"hookStatus": "SUCCEEDED"}
    [entry] = admission.audit_records()[0]["images"]
    assert entry["outcome"] == "exempt"
    assert "SEC-142" in entry["exemption"]


def test_admits_break_glass_signature_and_flags_it(registry, key, break_glass_key, tmp_path, capsys):
    image = push_image(registry, unique_repository(), "v1", layer_bytes=b"hotfix")
    glass = tmp_path / "glass.key"
    glass.write_bytes(break_glass_key.private_pem)
    sign(registry.host, glass, str(image.ref))
    ecs = StubbedEcs()
    ecs.revision([("app", str(image.ref), image.digest)])
    admission = admission_handler(_policy(registry, key, break_glass_key), ecs, insecure_registries=[registry.host])
    assert admission.handle(hook_event())["hookStatus"] == "SUCCEEDED"
    record = admission.audit_records()[0]
    assert record["breakGlass"] is True
    assert record["images"][0]["signers"][0]["signer"] == "break-glass"
    assert emf_metrics(capsys.readouterr().out)["BreakGlassImages"] == 1


# --- refused ---------------------------------------------------------------------------------------

def test_refuses_revision_when_an_image_is_unsigned(registry, key, capsys):
    image = push_image(registry, unique_repository(), "v1", layer_bytes=b"unsigned")
    ecs = StubbedEcs()
    ecs.revision([("app", str(image.ref), image.digest)])
    admission = admission_handler(_policy(registry, key), ecs, insecure_registries=[registry.host])
    assert admission.handle(hook_event()) == {"hookStatus": "FAILED"}
    record = admission.audit_records()[0]
    assert record["decision"] == "refused"
    assert record["images"][0]["outcome"] == "rejected"
    assert "no cosign signature" in record["images"][0]["reasons"][0]
    metrics = emf_metrics(capsys.readouterr().out)
    assert metrics["Rejected"] == 1 and metrics["ImagesRejected"] == 1


def test_refuses_mixed_revision_and_records_every_image(registry, key, key_file):
    # Given one signed and one unsigned container
    signed = _signed(registry, key_file, layer=b"mixed-signed")
    unsigned = push_image(registry, unique_repository(), "v1", layer_bytes=b"mixed-unsigned")
    ecs = StubbedEcs()
    ecs.revision([("app", str(signed.ref), signed.digest), ("worker", str(unsigned.tag_ref), None)])
    admission = admission_handler(_policy(registry, key), ecs, insecure_registries=[registry.host])
    # When / Then the revision is refused, and the record names each container's verdict
    assert admission.handle(hook_event()) == {"hookStatus": "FAILED"}
    record = admission.audit_records()[0]
    assert [(i["container"], i["outcome"]) for i in record["images"]] == [("app", "verified"), ("worker", "rejected")]
    assert record["images"][1]["digest"] == unsigned.digest
    assert record["counts"] == {"verified": 1, "exempt": 0, "rejected": 1, "unavailable": 0}


def test_refuses_revision_when_an_unsigned_container_is_only_in_the_task_definition(registry, key, key_file):
    # Given a revision whose containerImages lists only the signed container of its task definition
    signed = _signed(registry, key_file, layer=b"listed-signed")
    unsigned = push_image(registry, unique_repository(), "v1", layer_bytes=b"unlisted-unsigned")
    ecs = StubbedEcs()
    ecs.revision([("app", str(signed.ref), signed.digest)],
                 task_containers=[("app", str(signed.ref)), ("worker", str(unsigned.tag_ref))])
    admission = admission_handler(_policy(registry, key), ecs, insecure_registries=[registry.host])
    # When / Then the task definition decides what runs: the unlisted container is verified and refused
    assert admission.handle(hook_event()) == {"hookStatus": "FAILED"}
    record = admission.audit_records()[0]
    assert [(i["container"], i["outcome"]) for i in record["images"]] == [("app", "verified"), ("worker", "rejected")]


def test_admits_unsigned_image_in_audit_mode_and_says_so(registry, key):
    image = push_image(registry, unique_repository(), "v1", layer_bytes=b"audit-mode")
    ecs = StubbedEcs()
    ecs.revision([("app", str(image.ref), image.digest)])
    admission = admission_handler(_policy(registry, key, failureMode="audit"), ecs, insecure_registries=[registry.host])
    assert admission.handle(hook_event()) == {"hookStatus": "SUCCEEDED"}
    record = admission.audit_records()[0]
    assert record["admittedInAuditMode"] is True
    assert record["failureMode"] == "audit"
    assert record["images"][0]["outcome"] == "rejected"


def test_refuses_image_whose_tag_ecs_resolved_to_another_digest(registry, key, key_file):
    # Given the revision pins one digest in its image reference, but ECS reports another
    signed = _signed(registry, key_file, layer=b"pinned")
    other = push_image(registry, signed.repository, "other", layer_bytes=b"pinned-other")
    ecs = StubbedEcs()
    ecs.revision([("app", str(signed.ref), other.digest)])
    admission = admission_handler(_policy(registry, key), ecs, insecure_registries=[registry.host])
    assert admission.handle(hook_event()) == {"hookStatus": "FAILED"}
    assert "deployment runs" in admission.audit_records()[0]["images"][0]["reasons"][0]


# --- multi-arch: the task definition's runtime platform picks the manifest --------------------------

@pytest.mark.parametrize(("runtime_platform", "overrides", "status"), [
    ({"cpuArchitecture": "ARM64", "operatingSystemFamily": "LINUX"}, None, "SUCCEEDED"),
    ({"cpuArchitecture": "X86_64", "operatingSystemFamily": "LINUX"}, None, "FAILED"),
    (None, None, "FAILED"),  # absent runtimePlatform means linux/amd64
    ({"cpuArchitecture": "X86_64"}, {"runtimePlatform": {"cpuArchitecture": "ARM64"}}, "SUCCEEDED"),
])
def test_verifies_the_manifest_of_the_task_platform(registry, key, key_file, runtime_platform, overrides, status):
    # Given an index where only the arm64 manifest is signed
    repo = unique_repository()
    amd = push_image(registry, repo, None, layer_bytes=b"amd-hook", platform="linux/amd64")
    arm = push_image(registry, repo, None, layer_bytes=b"arm-hook", platform="linux/arm64")
    index = push_index(registry, repo, "multi", [amd, arm])
    sign(registry.host, key_file, str(arm.ref))
    ecs = StubbedEcs()
    ecs.revision([("app", str(index.tag_ref), None)], runtime_platform=runtime_platform, overrides=overrides)
    admission = admission_handler(_policy(registry, key), ecs, insecure_registries=[registry.host])
    # When / Then only a task that runs on arm64 is admitted
    assert admission.handle(hook_event())["hookStatus"] == status
    entry = admission.audit_records()[0]["images"][0]
    assert entry["digest"] == index.digest
    if status == "SUCCEEDED":
        assert entry["platformDigest"] == arm.digest
        assert admission.audit_records()[0]["platform"] == "linux/arm64"


# --- unavailable: IN_PROGRESS a bounded number of times, then unavailableMode decides ---------------

def _unreachable(key: KeyPair) -> tuple[dict, str]:
    host = "127.0.0.1:9"  # discard port: nothing listens, connections are refused at once
    return cosign_policy({"ci": {"publicKeyPem": key.public_pem}}, images=f"{host}/**"), host


def test_defers_with_in_progress_when_the_registry_is_unreachable(key):
    policy, host = _unreachable(key)
    ecs = StubbedEcs()
    ecs.revision([("app", f"{host}/app:v1", None)])
    admission = admission_handler(policy, ecs, insecure_registries=[host])
    response = admission.handle(hook_event())
    assert response == {"hookStatus": "IN_PROGRESS", "callBackDelay": 30, "hookDetails": {"imageAdmission": {"attempt": 2}}}
    record = admission.audit_records()[0]
    assert record["decision"] == "deferred" and record["attempt"] == 1
    assert record["images"][0]["outcome"] == "unavailable"


def test_refuses_when_the_registry_stays_unreachable_after_the_last_attempt(key):
    policy, host = _unreachable(key)
    ecs = StubbedEcs()
    ecs.revision([("app", f"{host}/app:v1", None)])
    admission = admission_handler(policy, ecs, insecure_registries=[host])
    # The third invocation (ECS merged our hookDetails into the event) is the last one
    event = hook_event(hook_details={"imageAdmission": {"attempt": 3}, "team": "payments"})
    assert admission.handle(event) == {"hookStatus": "FAILED"}
    assert admission.audit_records()[0]["attempt"] == 3


def test_admits_when_unreachable_and_unavailable_mode_is_audit(key):
    policy, host = _unreachable(key)
    policy["unavailableMode"] = "audit"
    ecs = StubbedEcs()
    ecs.revision([("app", f"{host}/app:v1", None)])
    admission = admission_handler(policy, ecs, insecure_registries=[host])
    assert admission.handle(hook_event()) == {"hookStatus": "SUCCEEDED"}
    assert admission.audit_records()[0]["admittedInAuditMode"] is True


def test_refuses_at_once_when_one_image_is_rejected_and_another_unavailable(registry, key):
    # A rejection is final: waiting for the unreachable registry cannot change the answer
    unsigned = push_image(registry, unique_repository(), "v1", layer_bytes=b"final")
    policy = cosign_policy({"ci": {"publicKeyPem": key.public_pem}}, images="127.0.0.1:*/**")
    ecs = StubbedEcs()
    ecs.revision([("app", str(unsigned.ref), unsigned.digest), ("gone", "127.0.0.1:9/app:v1", None)])
    admission = admission_handler(policy, ecs, insecure_registries=[registry.host, "127.0.0.1:9"])
    assert admission.handle(hook_event()) == {"hookStatus": "FAILED"}


@pytest.mark.parametrize("queue", ["error", "missing"])
def test_defers_when_ecs_cannot_describe_the_revision(registry, key, queue):
    ecs = StubbedEcs()
    getattr(ecs, queue)()
    admission = admission_handler(_policy(registry, key), ecs, insecure_registries=[registry.host])
    assert admission.handle(hook_event())["hookStatus"] == "IN_PROGRESS"
    record = admission.audit_records()[0]
    assert record["images"] == []
    assert ("ThrottlingException" if queue == "error" else "MISSING") in record["error"]


def test_defers_without_calling_anything_when_the_invocation_has_no_time_left(registry, key):
    ecs = StubbedEcs()  # no responses queued: any ECS call would fail the test
    admission = admission_handler(_policy(registry, key), ecs, insecure_registries=[registry.host])
    assert admission.handle(hook_event(), LambdaContext(remaining_ms=3_000))["hookStatus"] == "IN_PROGRESS"
    assert "no time to verify" in admission.audit_records()[0]["error"]


# --- malformed events and unexpected errors ---------------------------------------------------------

@pytest.mark.parametrize(("event", "message"), [
    ("not an object", "the event must be an object"),
    ({}, "has no serviceArn"),
    ({"executionDetails": "x"}, "executionDetails must be an object"),
    (hook_event(revision_arn="arn:aws:ecs:us-east-1:111111111111:task/abc"), "must be an ARN like"),
    (hook_event(revision_arn=REVISION_ARN.replace("payments-api", "other")), "does not belong to serviceArn"),
    (hook_event(stage="PRE_FLIGHT"), "must be an ECS lifecycle stage"),
    (hook_event(hook_details={"imageAdmission": {"attempt": "2"}}), "must be a positive whole number"),
])
def test_rejects_event_when_it_is_malformed(registry, key, event, message, capsys):
    ecs = StubbedEcs()
    admission = admission_handler(_policy(registry, key), ecs, insecure_registries=[registry.host])
    assert admission.handle(event) == {"hookStatus": "FAILED"}
    [record] = admission.audit_records()
    assert record["level"] == "ERROR" and record["errorKind"] == "malformed-event"
    assert message in record["error"] and record["reason"] == record["error"]
    assert emf_metrics(capsys.readouterr().out)["HandlerErrors"] == 1


@pytest.mark.parametrize("mode", ["block", "audit"])
def test_refuses_in_every_mode_when_verification_raises(registry, key, key_file, mode):
    # Given a verifier that raises (a bug), under either unavailableMode and failureMode
    image = _signed(registry, key_file, layer=b"boom")
    ecs = StubbedEcs()
    ecs.revision([("app", str(image.ref), image.digest)])
    admission = admission_handler(_policy(registry, key, unavailableMode=mode, failureMode=mode), ecs,
                                  insecure_registries=[registry.host])

    def explode(*args, **kwargs):
        raise RuntimeError("injected failure")

    admission.handler._verifier.decide = explode  # type: ignore[method-assign]
    # When / Then an error nobody expected is a rejection in every mode, and the record says what happened
    assert admission.handle(hook_event()) == {"hookStatus": "FAILED"}
    record = admission.audit_records()[0]
    assert record["errorKind"] == "internal" and "internal error: RuntimeError: injected failure" in record["error"]
    assert record["admittedInAuditMode"] is False
    assert any(line.get("exception") for line in admission.log_lines())


# --- the warm cache ---------------------------------------------------------------------------------

def test_reuses_a_verdict_within_a_warm_function(registry, key, key_file):
    image = _signed(registry, key_file, layer=b"cached")
    ecs = StubbedEcs()
    ecs.revision([("app", str(image.ref), image.digest)])
    ecs.revision([("app", str(image.ref), image.digest)], describe_task_definition=False)  # immutable: cached
    admission = admission_handler(_policy(registry, key), ecs, insecure_registries=[registry.host])
    assert admission.handle(hook_event())["hookStatus"] == "SUCCEEDED"
    assert admission.handle(hook_event())["hookStatus"] == "SUCCEEDED"
    first, second = admission.audit_records()
    assert (first["images"][0]["cached"], second["images"][0]["cached"]) == (False, True)
    assert second["images"][0]["digest"] == image.digest
    ecs.stubber.assert_no_pending_responses()


def test_never_caches_an_unavailable_verdict(key):
    policy, host = _unreachable(key)
    ecs = StubbedEcs()
    ecs.revision([("app", f"{host}/app@sha256:{'a' * 64}", None)])
    ecs.revision([("app", f"{host}/app@sha256:{'a' * 64}", None)], describe_task_definition=False)
    admission = admission_handler(policy, ecs, insecure_registries=[host])
    admission.handle(hook_event())
    admission.handle(hook_event())
    assert [r["images"][0]["cached"] for r in admission.audit_records()] == [False, False]
