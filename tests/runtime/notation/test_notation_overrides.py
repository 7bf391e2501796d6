"""Issue 14 item 1: the Notary Project trust policy's per-step `override` on notationX509 and awsSigner.

The spec ("Custom Verification Level"): a level may be adjusted per step; `authenticity`,
`authenticTimestamp` and `expiry` take enforce|log, `revocation` enforce|log|skip, and `integrity`
can never be overridden. Every step's action and outcome reaches the verdict (`steps`), the CLI
output and the audit record (both are `Verdict.to_json()`).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from image_verifier.cli import _human
from image_verifier.cosign.keys import CosignKeyResolver
from image_verifier.deadline import Deadline
from image_verifier.errors import (
    AwsUnavailableError,
    PolicyError,
    SignatureAuthenticityError,
    SignatureExpiredError,
    SignatureIntegrityError,
)
from image_verifier.notation import SignerRevocationChecker, verify_notation
from image_verifier.notation.levels import LEVELS, OVERRIDABLE, Action, Step, effective_level
from image_verifier.oci import Descriptor
from image_verifier.policy import Policy
from image_verifier.verdict import Outcome
from image_verifier.verifier import ImageRequest, ImageVerifier
from tests.support import notation_vectors as nv
from tests.support import pki
from tests.support.images import push_image, unique_repository

from tests.runtime.test_all_of_distinct import notation_policy, push_notation_signature

_, SUBJECT = nv.image_subject("overrides")
CHAIN = pki.code_signing_chain("p384", role_prefix="Override ")
OTHER = pki.code_signing_chain("p384", role_prefix="Override Other ")
EXPIRED_LEAF = pki.code_signing_chain("p384", role_prefix="Override Old ", leaf_not_after=pki.NOW - timedelta(days=1))

# Every combination the spec allows: each overridable step, each value it may take, on each level.
ALLOWED = [(level, step.value, action.value) for level in LEVELS for step, actions in OVERRIDABLE.items()
           for action in actions]


def _verify(vector: nv.SignedVector, trust: Any, **options: Any):  # type: ignore[no-untyped-def]
    return verify_notation(envelope=vector.envelope, media_type=vector.media_type, subject=SUBJECT, trust=trust,
                           now=pki.NOW, **options)


def _expired_signature() -> nv.SignedVector:
    return nv.sign(SUBJECT, CHAIN, signing_time=pki.NOW - timedelta(days=2), expiry=pki.NOW - timedelta(days=1))


def _steps(result: Any) -> dict[str, tuple[str, str]]:
    return {s.step.value: (s.action.value, s.outcome) for s in result.steps}


# --- the table ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("level", "step", "action"), ALLOWED)
def test_override_changes_only_its_step_for_every_combination_the_spec_allows(level: str, step: str, action: str) -> None:
    # Given / When
    table = effective_level(level, {step: action})
    # Then the step takes the override; every other step keeps the level's action; integrity stays enforced
    for other, value in table.items():
        expected = Action(action) if other.value == step else LEVELS[level][other]
        assert value is expected, other
    assert table[Step.INTEGRITY] is Action.ENFORCE


@pytest.mark.parametrize(("key", "value", "message"), [
    ("integrity", "log", "integrity can never be overridden"),
    ("integrity", "enforce", "integrity can never be overridden"),
    ("authenticity", "skip", "authenticity may be overridden to enforce or log, got 'skip'"),
    ("authenticTimestamp", "skip", "authenticTimestamp may be overridden to enforce or log, got 'skip'"),
    ("expiry", "skip", "expiry may be overridden to enforce or log, got 'skip'"),
    ("revocation", "ignore", "revocation may be overridden to enforce or log or skip, got 'ignore'"),
    ("expiry", "Log", "expiry may be overridden to enforce or log, got 'Log'"),
    ("signingIdentity", "log", "unknown verification step 'signingIdentity'"),
])
def test_rejects_override_when_the_spec_forbids_it(key: str, value: str, message: str) -> None:
    # Given a policy whose signer overrides a step as the spec forbids
    document = notation_policy("registry.example", CHAIN, ["corp"])
    document["trustedSigners"][0]["notationX509"]["override"] = {key: value}
    # When / Then the loader names the field
    with pytest.raises(PolicyError, match=message) as caught:
        Policy.from_json(document)
    assert caught.value.path.startswith("trustedSigners[0].notationX509.override")


def test_rejects_override_when_it_is_not_an_object_or_a_value_is_not_a_string() -> None:
    document = notation_policy("registry.example", CHAIN, ["corp"])
    document["trustedSigners"][0]["notationX509"]["override"] = ["expiry"]
    with pytest.raises(PolicyError, match="expected an object of verification step -> action"):
        Policy.from_json(document)
    document["trustedSigners"][0]["notationX509"]["override"] = {"expiry": True}
    with pytest.raises(PolicyError, match="override.expiry: expected a string action"):
        Policy.from_json(document)


# --- behaviour of each overridable step -----------------------------------------------------------

def test_accepts_expired_signature_with_a_logged_step_when_strict_overrides_expiry_to_log() -> None:
    # Given the spec's own example: strict, expiry logged
    result = _verify(_expired_signature(), nv.x509_trust(CHAIN, override={"expiry": "log"}))
    # Then
    assert result.warnings == ("expiry: the signature expired at 2026-05-31T12:00:00+00:00",)
    expiry = next(s for s in result.steps if s.step is Step.EXPIRY)
    assert (expiry.action, expiry.outcome, expiry.message) == (
        Action.LOG, "failed", "the signature expired at 2026-05-31T12:00:00+00:00")


def test_rejects_expired_signature_when_permissive_overrides_expiry_to_enforce() -> None:
    with pytest.raises(SignatureExpiredError, match="^expiry: the signature expired"):
        _verify(_expired_signature(), nv.x509_trust(CHAIN, verification_level="permissive",
                                                    override={"expiry": "enforce"}))


def test_accepts_expired_leaf_with_a_logged_step_when_strict_overrides_authentic_timestamp_to_log() -> None:
    vector = nv.sign(SUBJECT, EXPIRED_LEAF, signing_time=pki.NOW - timedelta(days=10))
    result = _verify(vector, nv.x509_trust(EXPIRED_LEAF, override={"authenticTimestamp": "log"}))
    assert _steps(result)["authenticTimestamp"] == ("log", "failed")
    assert result.warnings[0].startswith("authenticTimestamp: certificate")


def test_rejects_expired_leaf_when_permissive_overrides_authentic_timestamp_to_enforce() -> None:
    vector = nv.sign(SUBJECT, EXPIRED_LEAF, signing_time=pki.NOW - timedelta(days=10))
    with pytest.raises(SignatureExpiredError, match="^authenticTimestamp: certificate .* is not valid now"):
        _verify(vector, nv.x509_trust(EXPIRED_LEAF, verification_level="permissive",
                                      override={"authenticTimestamp": "enforce"}))


def test_accepts_untrusted_root_with_a_logged_step_when_strict_overrides_authenticity_to_log() -> None:
    result = _verify(nv.sign(SUBJECT, CHAIN), nv.x509_trust(OTHER, override={"authenticity": "log"}))
    assert _steps(result)["authenticity"] == ("log", "failed")
    assert "does not end in a trusted root" in next(s.message for s in result.steps if s.step is Step.AUTHENTICITY)


def test_rejects_untrusted_root_when_audit_overrides_authenticity_to_enforce() -> None:
    with pytest.raises(SignatureAuthenticityError, match="^authenticity: certificate chain does not end"):
        _verify(nv.sign(SUBJECT, CHAIN), nv.x509_trust(OTHER, verification_level="audit",
                                                       override={"authenticity": "enforce"}))


@pytest.mark.parametrize("override", [{"authenticity": "log", "expiry": "log", "authenticTimestamp": "log",
                                       "revocation": "skip"}, {}])
def test_rejects_tampered_signature_whatever_the_override(override: dict[str, str]) -> None:
    vector = nv.sign(SUBJECT, CHAIN, payload=nv.payload_for(SUBJECT, digest="sha256:" + "2" * 64))
    with pytest.raises(SignatureIntegrityError, match="^integrity: "):
        _verify(vector, nv.x509_trust(CHAIN, verification_level="audit", override=override))


@pytest.mark.parametrize(("override", "expected"), [
    ({}, ("enforce", "notChecked")),
    ({"revocation": "log"}, ("log", "notChecked")),
    ({"revocation": "skip"}, ("skip", "skipped")),
])
def test_reports_x509_revocation_as_not_checked_unless_skipped(override: dict[str, str], expected: tuple[str, str]) -> None:
    # Given a valid signature: OCSP/CRL is never fetched, and the verdict says so instead of "passed"
    result = _verify(nv.sign(SUBJECT, CHAIN), nv.x509_trust(CHAIN, override=override))
    # Then every step is reported, in the spec's order
    assert [s.step.value for s in result.steps] == [
        "integrity", "authenticity", "authenticTimestamp", "expiry", "revocation"]
    assert _steps(result)["revocation"] == expected
    assert all(outcome == "passed" for name, (_, outcome) in _steps(result).items() if name != "revocation")


# --- awsSigner ------------------------------------------------------------------------------------

SIGNED_AT = pki.NOW - timedelta(days=1)


@pytest.fixture
def signer_client():  # type: ignore[no-untyped-def]
    client = boto3.client("signer", region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def test_skips_get_revocation_status_when_aws_signer_overrides_revocation_to_skip(signer_client) -> None:  # type: ignore[no-untyped-def]
    # Given a Stubber with no response queued: any GetRevocationStatus call would fail the test
    client, _ = signer_client
    vector = nv.aws_signer_signature(SUBJECT, signing_time=SIGNED_AT)
    trust = nv.aws_trust(vector.chain, revocation_check=True, override={"revocation": "skip"})
    # When
    result = _verify(vector, trust, revocation=SignerRevocationChecker(lambda region: client))
    # Then
    assert _steps(result)["revocation"] == ("skip", "skipped")


def test_accepts_with_a_logged_step_when_aws_signer_logs_revocation_and_signer_is_throttled(signer_client) -> None:  # type: ignore[no-untyped-def]
    client, stubber = signer_client
    vector = nv.aws_signer_signature(SUBJECT, signing_time=SIGNED_AT)
    stubber.add_client_error("get_revocation_status", service_error_code="TooManyRequestsException",
                             http_status_code=429)
    trust = nv.aws_trust(vector.chain, revocation_check=True, override={"revocation": "log"})
    result = _verify(vector, trust, revocation=SignerRevocationChecker(lambda region: client))
    assert _steps(result)["revocation"] == ("log", "failed")
    assert result.warnings[0].startswith("revocation: signer:GetRevocationStatus failed")


def test_rejects_when_aws_signer_enforces_revocation_and_signer_is_throttled(signer_client) -> None:  # type: ignore[no-untyped-def]
    client, stubber = signer_client
    vector = nv.aws_signer_signature(SUBJECT, signing_time=SIGNED_AT)
    stubber.add_client_error("get_revocation_status", service_error_code="TooManyRequestsException",
                             http_status_code=429)
    with pytest.raises(AwsUnavailableError, match="^revocation: "):
        _verify(vector, nv.aws_trust(vector.chain, revocation_check=True),
                revocation=SignerRevocationChecker(lambda region: client))


def test_reports_revocation_skipped_when_aws_signer_revocation_check_is_false() -> None:
    vector = nv.aws_signer_signature(SUBJECT, signing_time=SIGNED_AT)
    result = _verify(vector, nv.aws_trust(vector.chain, revocation_check=False))
    revocation = next(s for s in result.steps if s.step is Step.REVOCATION)
    assert (revocation.outcome, revocation.message) == ("skipped", "revocationCheck is false")


def _aws_document(**body: Any) -> dict[str, Any]:
    return {"version": "1", "failureMode": body.pop("failureMode", "block"),
            "trustedSigners": [{"name": "signer", "awsSigner": {"signingProfileArns": [nv.PROFILE_ARN], **body}}],
            "rules": [{"name": "all", "images": ["registry.example/**"], "anyOf": ["signer"]}]}


def test_rejects_aws_signer_override_when_revocation_check_false_contradicts_it() -> None:
    with pytest.raises(PolicyError, match="revocationCheck is false, which skips revocation, but override asks for 'log'"
                       ) as caught:
        Policy.from_json(_aws_document(revocationCheck=False, override={"revocation": "log"}))
    assert caught.value.path == "trustedSigners[0].awsSigner.override.revocation"


def test_rejects_aws_signer_override_when_it_names_integrity() -> None:
    with pytest.raises(PolicyError, match="integrity can never be overridden"):
        Policy.from_json(_aws_document(override={"integrity": "log"}))


# --- the audit rule: authenticity logged is as weak as level audit ---------------------------------

@pytest.mark.parametrize("kind", ["notationX509", "awsSigner"])
def test_rejects_authenticity_log_override_when_failure_mode_blocks(kind: str) -> None:
    # Given authenticity logged (anyone's signature would verify) in a blocking policy
    if kind == "awsSigner":
        document = _aws_document(override={"authenticity": "log"})
    else:
        document = notation_policy("registry.example", CHAIN, ["corp"])
        document["trustedSigners"][0]["notationX509"]["override"] = {"authenticity": "log"}
    # When / Then: the same refusal as level audit, at the override's path
    with pytest.raises(PolicyError, match="authenticity 'log' accepts signatures from untrusted roots") as caught:
        Policy.from_json(document)
    assert caught.value.path == f"trustedSigners[0].{kind}.override.authenticity"
    # And an audit policy may hold it, with a warning that names the weakened steps
    document["failureMode"] = "audit"
    warning = Policy.from_json(document).warnings[0]
    assert warning.startswith(f"trustedSigners[0].{kind}.override: signer")
    assert "does not enforce authenticity: log" in warning


def test_accepts_audit_level_in_a_blocking_policy_when_authenticity_is_overridden_to_enforce() -> None:
    # Given level audit with authenticity enforced: untrusted roots are refused, so blocking is safe
    document = notation_policy("registry.example", CHAIN, ["corp"])
    document["trustedSigners"][0]["notationX509"].update(verificationLevel="audit", override={"authenticity": "enforce"})
    policy = Policy.from_json(document)
    # Then the policy warns about the steps still only logged
    assert "does not enforce authenticTimestamp: log, expiry: log, revocation: log" in policy.warnings[0]


def test_round_trips_override_through_to_json() -> None:
    document = notation_policy("registry.example", CHAIN, ["corp"])
    document["trustedSigners"][0]["notationX509"]["override"] = {"expiry": "log", "revocation": "skip"}
    policy = Policy.from_json(document)
    again = Policy.from_json(policy.to_json())
    assert again == policy and again.trusted_signers[0].trust.override == {"expiry": "log", "revocation": "skip"}


# --- through the registry: the verdict, its JSON (CLI --json, audit record) and the CLI text ------

def test_verdict_json_and_cli_text_carry_each_step_when_expiry_is_logged_by_override(registry, registry_client):
    # Given a real image with an expired (but otherwise valid) Notation signature, and strict + expiry: log
    chain = pki.code_signing_chain("p256", role_prefix="override-e2e-")
    image = push_image(registry, unique_repository(), "v1")
    subject = Descriptor(media_type=image.media_type, digest=image.digest, size=image.size)
    expired = datetime.now(timezone.utc) - timedelta(days=1)
    vector = nv.sign(subject, chain, signing_time=expired - timedelta(days=1), expiry=expired)
    push_notation_signature(registry, image, chain, vector=vector)
    document = notation_policy(registry.host, chain, ["corp"])
    document["trustedSigners"][0]["notationX509"]["override"] = {"expiry": "log", "revocation": "skip"}
    verifier = ImageVerifier(Policy.from_json(document), registry=registry_client, cosign_keys=CosignKeyResolver())

    # When
    [verdict] = verifier.decide([ImageRequest(image=str(image.ref))], deadline=Deadline.after(30)).verdicts

    # Then the verdict is verified with the logged step, and its JSON lists every step
    assert verdict.outcome is Outcome.VERIFIED
    steps = json.loads(json.dumps(verdict.to_json()))["signers"][0]["steps"]
    assert [(s["step"], s["action"], s["outcome"]) for s in steps] == [
        ("integrity", "enforce", "passed"), ("authenticity", "enforce", "passed"),
        ("authenticTimestamp", "enforce", "passed"), ("expiry", "log", "failed"), ("revocation", "skip", "skipped")]
    assert steps[3]["message"].startswith("the signature expired at")
    assert verdict.warnings[0].startswith("signer 'corp': expiry: the signature expired at")
    # And the CLI's text for people shows them too
    text = _human(verdict)
    assert "signer 'corp' steps: integrity=enforce:passed" in text
    assert "expiry=log:failed (the signature expired at" in text and "revocation=skip:skipped" in text


def test_shipped_schema_accepts_the_override_the_loader_writes_and_refuses_integrity() -> None:
    # Given the published JSON Schema
    import jsonschema
    from importlib import resources

    schema = json.loads(resources.files("image_verifier.policy").joinpath("schema.json").read_text())
    document = notation_policy("registry.example", CHAIN, ["corp"])
    document["trustedSigners"][0]["notationX509"]["override"] = {"expiry": "log", "revocation": "skip"}
    # When / Then what the loader writes validates, and an integrity override does not
    jsonschema.validate(json.loads(Policy.from_json(document).to_json()), schema)
    document["trustedSigners"][0]["notationX509"]["override"] = {"integrity": "log"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, schema)


def test_audit_record_carries_each_step_of_a_notation_signer() -> None:
    # Given the admission handler, and a verdict whose Notation signer logged expiry and skipped revocation
    from image_verifier.verdict import SignerMatch, Verdict
    from tests.runtime.handler.hook_support import APP, DIGEST, SIGNED, FakeVerifier, answers, hook_event
    from tests.runtime.handler.test_hostile_events import handler_for

    result = _verify(_expired_signature(), nv.x509_trust(CHAIN, override={"expiry": "log", "revocation": "skip"}))
    match = SignerMatch(signer="corp", kind="notationX509", identity=result.identity, format="notation-jws",
                        verified_digest=DIGEST, warnings=result.warnings, steps=result.steps)
    verdict = Verdict(image=APP, digest=DIGEST, outcome=Outcome.VERIFIED, rule="signed", signers=(match,),
                      warnings=result.warnings)
    admission = handler_for(*answers(), verifier=FakeVerifier(SIGNED, verdicts={APP: verdict}))
    # When the deployment is decided
    assert admission.handle(hook_event()) == {"hookStatus": "SUCCEEDED"}
    # Then the audit record's image entry lists every step with its action and outcome
    steps = admission.audit_records()[0]["images"][0]["signers"][0]["steps"]
    assert [(s["step"], s["action"], s["outcome"]) for s in steps] == [
        ("integrity", "enforce", "passed"), ("authenticity", "enforce", "passed"),
        ("authenticTimestamp", "enforce", "passed"), ("expiry", "log", "failed"), ("revocation", "skip", "skipped")]
