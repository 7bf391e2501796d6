"""The break-glass signing Lambda against the real test registry: KMS and Step Functions through
botocore's Stubber with the documented shapes, signatures made by a real P-256 key, and the result
verified by the project's verifier (the CLI's `verify`)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from image_verifier.break_glass.approval import (
    ApprovalError,
    ApprovalState,
    BreakGlassRequest,
    Caller,
)
from image_verifier.break_glass.signer import (
    REQUEST_ANNOTATION,
    TICKET_ANNOTATION,
    BreakGlassSigner,
    SignerSettings,
)
from image_verifier.cosign.legacy import signature_tag
from image_verifier.cosign.payload import SimpleSigningPayload
from image_verifier.deadline import Deadline
from image_verifier.reference import ImageReference
from image_verifier.registry import RegistryClient

from tests.support.cosign_material import KeyPair, cosign_policy
from tests.support.images import push_image, unique_repository

from .cli_helpers import verify, write_policy

pytestmark = pytest.mark.registry

ACCOUNT = "222222222222"
KEY_ARN = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/0a1b2c3d-1111-2222-3333-444455556666"
STATE_MACHINE = f"arn:aws:states:us-east-1:{ACCOUNT}:stateMachine:BreakGlassSigning"
APPROVERS = (f"arn:aws:iam::{ACCOUNT}:role/BreakGlassApprover",)


def _caller(role: str, person: str) -> Caller:
    return Caller.from_arn(f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{person}")


def _approved_state(image: str, *, approvers: tuple[str, ...] = ("bob", "carol")) -> ApprovalState:
    now = int(datetime.now(UTC).timestamp())
    request = BreakGlassRequest.create(request_id="bg-1", image=image, reason="hotfix for CVE-2026-0001",
                                       ticket="INC-4711", requester=_caller("BreakGlassRequester", "alice"),
                                       now=now, timeout_seconds=3600)
    state = ApprovalState.new(request)
    for offset, person in enumerate(approvers, 1):
        state = state.approve(_caller("BreakGlassApprover", person), now=now + offset, approvers=APPROVERS)
    return state


def _execution_arn() -> str:
    return STATE_MACHINE.replace(":stateMachine:", ":execution:") + ":bg-1"


def _stub_execution(states: Stubber, recorded: dict[str, Any]) -> None:
    """DescribeExecution and GetExecutionHistory as Step Functions answers them while the signer runs."""
    arn, started = _execution_arn(), datetime.now(UTC)
    states.add_response("describe_execution", {
        "executionArn": arn, "stateMachineArn": STATE_MACHINE, "name": "bg-1", "status": "RUNNING",
        "startDate": started}, {"executionArn": arn})
    events = [
        {"timestamp": started, "type": "TaskScheduled", "id": 12, "previousEventId": 11,
         "taskScheduledEventDetails": {"resourceType": "lambda", "resource": "invoke", "region": "us-east-1",
                                       "parameters": json.dumps({"FunctionName": "signer", "Payload": {}})}},
        {"timestamp": started, "type": "TaskSucceeded", "id": 9, "previousEventId": 8,
         "taskSucceededEventDetails": {"resourceType": "lambda", "resource": "invoke.waitForTaskToken",
                                       "output": json.dumps({"state": recorded, "status": "approved"})}},
    ]
    states.add_response("get_execution_history", {"events": events},
                        {"executionArn": arn, "reverseOrder": True, "maxResults": 50, "includeExecutionData": True})


@pytest.fixture
def aws_env(monkeypatch):
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def _signer(registry, kms, states, records) -> BreakGlassSigner:
    settings = SignerSettings(key_arn=KEY_ARN, approvers=APPROVERS, state_machine_arn=STATE_MACHINE,
                              insecure_registries=frozenset({registry.host}))
    client = RegistryClient(insecure_registries={registry.host})
    return BreakGlassSigner(settings=settings, kms_client_for_region=lambda region: kms, states=states,
                            registry=lambda: client.bound(Deadline.after(30)), write=records.append)


def test_signer_signs_an_approved_digest_that_the_verifier_admits_as_break_glass(registry, tmp_path, aws_env):
    # Given an image in the registry, a request two people approved, and the execution that recorded it
    key = KeyPair.generate()
    image = push_image(registry, unique_repository("break-glass"), "v1")
    state = _approved_state(str(image.ref)).to_json()
    payload = SimpleSigningPayload(docker_reference=image.ref.name, manifest_digest=image.digest,
                                   annotations={REQUEST_ANNOTATION: "bg-1", TICKET_ANNOTATION: "INC-4711"}).to_bytes()
    digest = hashlib.sha256(payload).digest()
    kms, states = boto3.client("kms", region_name="us-east-1"), boto3.client("stepfunctions", region_name="us-east-1")
    kms_stub, states_stub = Stubber(kms), Stubber(states)
    _stub_execution(states_stub, state)
    kms_stub.add_response("get_public_key", {"KeyId": KEY_ARN, "PublicKey": key.public_der, "KeySpec": "ECC_NIST_P256",
                                             "KeyUsage": "SIGN_VERIFY", "SigningAlgorithms": ["ECDSA_SHA_256"]},
                          {"KeyId": KEY_ARN})
    kms_stub.add_response(
        "sign", {"KeyId": KEY_ARN, "Signature": key.private.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256()))),
                 "SigningAlgorithm": "ECDSA_SHA_256"},
        {"KeyId": KEY_ARN, "Message": digest, "MessageType": "DIGEST", "SigningAlgorithm": "ECDSA_SHA_256"})
    records: list[dict[str, Any]] = []
    # When the signing Lambda runs
    with kms_stub, states_stub:
        result = _signer(registry, kms, states, records).handle({"state": state, "executionArn": _execution_arn()})
        kms_stub.assert_no_pending_responses()
    # Then the project's verifier admits the image on the break-glass key, with the signed annotations
    policy = cosign_policy({"break-glass": {"publicKeyPem": key.public_pem, "breakGlass": True}},
                           images=f"{registry.host}/**", requiredAnnotations={TICKET_ANNOTATION: "INC-[0-9]+"})
    verdict = verify(registry.host, write_policy(tmp_path, policy), str(image.ref))
    assert verdict.code == 0, verdict
    assert verdict.verdicts[0]["outcome"] == "verified"
    assert verdict.verdicts[0]["breakGlass"] is True
    # and one audit record says who asked, who approved, and what was written
    [record] = records
    assert record["event"] == "signed"
    assert record["signatureManifest"] == result["signatureManifest"]
    assert [a["caller"]["arn"].rsplit("/", 1)[1] for a in record["approvals"]] == ["bob", "carol"]
    assert record["requester"].endswith("/alice")


def test_rejects_signing_when_only_one_person_approved(registry, aws_env):
    # Given a state with one approval (a direct invocation could send one)
    image = push_image(registry, unique_repository("break-glass"), "v1")
    state = _approved_state(str(image.ref), approvers=("bob",)).to_json()
    kms, states = boto3.client("kms", region_name="us-east-1"), boto3.client("stepfunctions", region_name="us-east-1")
    records: list[dict[str, Any]] = []
    # When / Then nothing is called, nothing is written, and the failure is audited
    with Stubber(kms), Stubber(states), pytest.raises(ApprovalError, match="1 distinct approvals, 2 are required"):
        _signer(registry, kms, states, records).handle({"state": state, "executionArn": _execution_arn()})
    assert _signature_tag_absent(registry, str(image.ref))
    assert [r["event"] for r in records] == ["signingFailed"]


def test_rejects_signing_when_the_state_differs_from_the_execution_history(registry, aws_env):
    # Given a state approved by two people for one image, but the execution approved another image
    image = push_image(registry, unique_repository("break-glass"), "v1")
    other = push_image(registry, unique_repository("break-glass"), "v2", layer_bytes=b"other")
    forged = _approved_state(str(image.ref)).to_json()
    recorded = _approved_state(str(other.ref)).to_json()
    kms, states = boto3.client("kms", region_name="us-east-1"), boto3.client("stepfunctions", region_name="us-east-1")
    states_stub = Stubber(states)
    _stub_execution(states_stub, recorded)
    records: list[dict[str, Any]] = []
    # When / Then
    with Stubber(kms), states_stub, pytest.raises(ApprovalError, match="differs from execution"):
        _signer(registry, kms, states, records).handle({"state": forged, "executionArn": _execution_arn()})
    assert _signature_tag_absent(registry, str(image.ref))
    assert records[0]["event"] == "signingFailed" and "differs" in records[0]["error"]


def _signature_tag_absent(registry, image: str) -> bool:
    ref = ImageReference.parse(image)
    session = RegistryClient(insecure_registries={registry.host}).bound(Deadline.after(10))
    return session.find_tag(ref, signature_tag(ref.digest)) is None
