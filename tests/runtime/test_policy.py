"""The policy model: round trip, the schema, field paths in errors, deterministic matching."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from importlib import resources

import jsonschema
import pytest

from image_verifier.errors import PolicyError
from image_verifier.policy import Mode, Policy
from image_verifier.policy.patterns import ImagePattern, find_overlap
from tests.support.cosign_material import KeyPair

PEM = KeyPair.generate().public_pem
REG = "123456789012.dkr.ecr.us-east-1.amazonaws.com"


def _doc(**overrides):
    document = {
        "version": "1",
        "failureMode": "block",
        "unavailableMode": "audit",
        "trustedSigners": [
            {"name": "ci", "cosignKey": {"publicKeyPem": PEM}},
            {"name": "break-glass", "cosignKey": {"kmsKeyArn": "arn:aws:kms:us-east-1:222222222222:key/abc-123",
                                                  "breakGlass": True}},
        ],
        "rules": [
            {"name": "team", "images": [f"{REG}/team/*"], "anyOf": ["ci", "break-glass"],
             "requiredAnnotations": {"git-sha": "[0-9a-f]{40}"}},
            {"name": "everything", "images": [f"{REG}/**"], "allOf": ["ci"]},
        ],
        "exemptions": [{"images": ["docker.io/library/busybox"], "reason": "OPS-1: debugging sidecar, owner ops",
                        "expires": "2030-01-01T00:00:00Z"}],
    }
    document.update(overrides)
    return document


def _schema():
    return json.loads(resources.files("image_verifier.policy").joinpath("schema.json").read_text())


def test_round_trips_through_json():
    policy = Policy.from_json(_doc())
    assert Policy.from_json(policy.to_json()) == policy
    assert policy.unavailable_mode is Mode.AUDIT
    assert policy.policy_hash == Policy.from_json(json.dumps(_doc())).policy_hash


def test_shipped_schema_accepts_what_the_loader_writes():
    jsonschema.validate(json.loads(Policy.from_json(_doc()).to_json()), _schema())


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (lambda d: d["rules"][1].update(allOf=["nobody"]), "rules[1].allOf[0]"),
        (lambda d: d["rules"][0]["images"].append("app:latest"), "rules[0].images[1]"),
        (lambda d: d["trustedSigners"][1]["cosignKey"].update(kmsKeyArn="alias/x"), "trustedSigners[1].cosignKey.kmsKeyArn"),
        (lambda d: d["exemptions"][0].update(expires="next year"), "exemptions[0].expires"),
        (lambda d: d["exemptions"][0].update(reason="because"), "exemptions[0].reason"),
        (lambda d: d["rules"][0].update(requiredAnnotations={"x": "("}), "rules[0].requiredAnnotations.x"),
        (lambda d: d.update(failureMode="warn"), "failureMode"),
        (lambda d: d["rules"][0].update(colour="red"), "rules[0].colour"),
    ],
)
def test_rejects_policy_naming_the_bad_field_when_a_field_is_invalid(mutate, path):
    document = _doc()
    mutate(document)
    with pytest.raises(PolicyError) as caught:
        Policy.from_json(document)
    assert caught.value.path == path
    # The shipped schema refuses the same documents where it can express the rule
    if path not in ("rules[1].allOf[0]", "rules[0].requiredAnnotations.x", "exemptions[0].reason"):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(document, _schema())


def test_rejects_policy_when_two_rules_match_one_image_with_equal_precedence():
    document = _doc(rules=[
        {"name": "a", "images": [f"{REG}/team/*"], "anyOf": ["ci"]},
        {"name": "b", "images": [f"{REG}/team/*"], "anyOf": ["break-glass"]},
    ])
    with pytest.raises(PolicyError, match=r"rule 'b' and rule 'a' both match") as caught:
        Policy.from_json(document)
    assert caught.value.path == "rules[1]"


def test_rejects_policy_when_duplicate_keys_appear():
    with pytest.raises(PolicyError, match="appears twice"):
        Policy.from_json('{"version": "1", "version": "1"}')


def test_rejects_policy_when_from_env_variable_is_missing():
    document = _doc()
    document["trustedSigners"][1]["cosignKey"]["kmsKeyArn"] = {"fromEnv": "BREAK_GLASS_KEY_ARN"}
    with pytest.raises(PolicyError, match="BREAK_GLASS_KEY_ARN is not set"):
        Policy.from_json(document, environ={})
    policy = Policy.from_json(document, environ={"BREAK_GLASS_KEY_ARN": "arn:aws:kms:us-east-1:222222222222:key/k1"})
    assert policy.signer("break-glass").trust.kms_key_arn.endswith("key/k1")


def test_most_specific_rule_wins_and_unmatched_images_have_no_rule():
    policy = Policy.from_json(_doc())
    assert policy.rule_for(f"{REG}/team/app").name == "team"
    assert policy.rule_for(f"{REG}/team/app/sub").name == "everything"  # `*` stops at '/'
    assert policy.rule_for(f"{REG}/other").name == "everything"
    assert policy.rule_for("docker.io/library/nginx") is None


def test_exemption_applies_only_before_expiry_and_to_pinned_digests():
    digest = "sha256:" + "a" * 64
    policy = Policy.from_json(_doc(exemptions=[{"images": ["docker.io/library/busybox"], "digests": [digest],
                                                "reason": "OPS-1: pinned debugging image", "expires": "2030-01-01T00:00:00Z"}]))
    now = datetime(2029, 1, 1, tzinfo=timezone.utc)
    assert policy.exemption_for("docker.io/library/busybox", digest, now) is not None
    assert policy.exemption_for("docker.io/library/busybox", "sha256:" + "b" * 64, now) is None
    assert policy.exemption_for("docker.io/library/busybox", digest, now + timedelta(days=400)) is None


@pytest.mark.parametrize(
    ("a", "b", "overlap"),
    [("r.io/a/*", "r.io/*/b", "r.io/a/b"), ("r.io/a/*", "r.io/b/*", None), ("r.io/*", "r.io/x/y", None),
     ("r.io/**", "*.io/x/y", "r.io/x/y")],
)
def test_finds_an_image_both_patterns_match(a, b, overlap):
    assert find_overlap(ImagePattern.parse(a), ImagePattern.parse(b)) == overlap


@pytest.mark.parametrize("text", ["nginx", "r.io/app:latest", "r.io/App", "r.io/a/***", ""])
def test_rejects_image_pattern_when_it_is_malformed(text):
    with pytest.raises(ValueError):
        ImagePattern.parse(text)


def test_rejects_policy_when_two_signers_share_one_key():
    # Given two names for one key, which would let one signature satisfy an all-of rule twice
    document = _doc()
    document["trustedSigners"].append({"name": "ci-again", "cosignKey": {"publicKeyPem": PEM}})
    # When / Then
    with pytest.raises(PolicyError, match="uses the same key as signer 'ci'") as caught:
        Policy.from_json(document)
    assert caught.value.path == "trustedSigners[2]"
