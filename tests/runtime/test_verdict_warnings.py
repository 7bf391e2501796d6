"""Issue 9, class 4c: failures a Notation level logs reach the verdict, and level `audit` is a visible choice.

A `notationX509` signer at level `audit` accepts a signature from an untrusted root; at level
`permissive` an expired one. Either way the image is admitted *with warnings*, and the verdict
(its JSON: the CLI's `--json` and the audit record) carries them. Real signatures, real registry.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from image_verifier.cosign.keys import CosignKeyResolver
from image_verifier.deadline import Deadline
from image_verifier.errors import PolicyError
from image_verifier.oci import Descriptor
from image_verifier.policy import Policy
from image_verifier.verdict import Decision, Outcome
from image_verifier.verifier import ImageRequest, ImageVerifier
from tests.support.images import push_image, unique_repository
from tests.support.notation_vectors import sign as notation_sign
from tests.support.pki import code_signing_chain

from .test_all_of_distinct import notation_policy, push_notation_signature


def _policy(registry_host: str, chain: Any, level: str, **extra: Any) -> dict[str, Any]:
    document = notation_policy(registry_host, chain, ["corp"], **extra)
    document["trustedSigners"][0]["notationX509"]["verificationLevel"] = level
    return document


def _decide(registry_client, document: dict[str, Any], image: Any) -> Decision:
    verifier = ImageVerifier(Policy.from_json(document), registry=registry_client, cosign_keys=CosignKeyResolver())
    return verifier.decide([ImageRequest(image=str(image.ref))], deadline=Deadline.after(30))


def test_verdict_carries_warnings_when_audit_level_admits_a_signature_from_an_untrusted_root(registry, registry_client):
    # Given an image signed under another PKI, and an audit policy whose signer is at level audit
    trusted, stranger = code_signing_chain("p256", role_prefix="warn-trusted-"), code_signing_chain(
        "p256", role_prefix="warn-stranger-")
    image = push_image(registry, unique_repository(), "v1")
    push_notation_signature(registry, image, stranger)
    document = _policy(registry.host, trusted, "audit", failureMode="audit")
    # When it is verified
    decision = _decide(registry_client, document, image)
    # Then it is verified only with warnings, which the JSON (CLI --json, audit record) shows
    [verdict] = decision.verdicts
    assert verdict.outcome is Outcome.VERIFIED
    assert verdict.warnings and verdict.warnings[0].startswith("signer 'corp': authenticity: certificate chain does not end")
    assert verdict.to_json()["warnings"] == list(verdict.warnings)
    assert verdict.to_json()["signers"][0]["warnings"] == list(verdict.warnings)
    assert decision.admitted_with_warnings == 1


def test_verdict_carries_warnings_when_permissive_level_admits_an_expired_signature(registry, registry_client):
    chain = code_signing_chain("p256", role_prefix="warn-permissive-")
    image = push_image(registry, unique_repository(), "v1")
    subject = Descriptor(media_type=image.media_type, digest=image.digest, size=image.size)
    expired = datetime.now(timezone.utc) - timedelta(days=1)
    vector = notation_sign(subject, chain, signing_time=expired - timedelta(days=1), expiry=expired)
    push_notation_signature(registry, image, chain, vector=vector)
    decision = _decide(registry_client, _policy(registry.host, chain, "permissive"), image)
    [verdict] = decision.verdicts
    assert verdict.outcome is Outcome.VERIFIED
    assert len(verdict.warnings) == 1 and "expiry: the signature expired at" in verdict.warnings[0]
    assert decision.admitted and decision.admitted_with_warnings == 1


def test_verdict_has_no_warnings_when_strict_level_verifies(registry, registry_client):
    chain = code_signing_chain("p256", role_prefix="warn-strict-")
    image = push_image(registry, unique_repository(), "v1")
    push_notation_signature(registry, image, chain)
    decision = _decide(registry_client, _policy(registry.host, chain, "strict"), image)
    assert decision.verdicts[0].outcome is Outcome.VERIFIED
    assert decision.verdicts[0].to_json()["warnings"] == []
    assert decision.admitted_with_warnings == 0


@pytest.mark.parametrize("failure_mode", [None, "block"])
def test_rejects_policy_when_a_signer_is_at_audit_level_and_failure_mode_blocks(failure_mode):
    # Given a blocking policy (explicitly, or by default) with a signer at level audit
    extra = {"failureMode": failure_mode} if failure_mode else {}
    document = _policy("registry.example.com", code_signing_chain("p256", role_prefix="warn-policy-"), "audit", **extra)
    # When it is loaded, Then it is refused at the field, with the fix
    with pytest.raises(PolicyError, match="level 'audit' accepts signatures from untrusted roots") as caught:
        Policy.from_json(document)
    assert caught.value.path == "trustedSigners[0].notationX509.verificationLevel"
    assert "set failureMode to 'audit'" in str(caught.value)


@pytest.mark.parametrize(("level", "failure_mode", "logged"), [
    ("permissive", "block", "expired signatures"), ("audit", "audit", "untrusted roots and identities")])
def test_policy_warns_at_load_when_a_signer_is_below_strict(level, failure_mode, logged):
    document = _policy("registry.example.com", code_signing_chain("p256", role_prefix="warn-load-"), level,
                       failureMode=failure_mode)
    [warning] = Policy.from_json(document).warnings
    assert warning.startswith("trustedSigners[0].notationX509.verificationLevel: signer 'corp' is at level")
    assert logged in warning


def test_policy_has_no_warnings_when_every_signer_is_strict():
    document = _policy("registry.example.com", code_signing_chain("p256", role_prefix="warn-none-"), "strict")
    assert Policy.from_json(document).warnings == ()


def test_handler_logs_each_policy_warning_when_it_is_built():
    # Given a policy with a permissive signer, When the Lambda's handler is built from it
    from tests.runtime.handler.hook_support import admission_handler

    document = _policy("registry.example.com", code_signing_chain("p256", role_prefix="warn-handler-"), "permissive")
    admission = admission_handler(document)
    # Then the warning is logged once, as a structured field
    [line] = [entry for entry in admission.log_lines() if "policyWarning" in entry]
    assert line["level"] == "WARNING"
    assert "signer 'corp' is at level 'permissive'" in line["policyWarning"]
