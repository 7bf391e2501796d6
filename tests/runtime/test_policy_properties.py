"""Property-based tests over the policy loader: whatever the document, a `Policy` or a `PolicyError`
with the path of the bad field, never another exception.

Three sources of documents: arbitrary JSON (and arbitrary bytes), mutations of a valid policy
(replace, delete, add or re-case one field anywhere in the tree), and valid policies written back
with `to_json()`, which must read back to the same policy. Budget: a few seconds each.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from image_verifier.errors import PolicyError
from image_verifier.policy import Policy
from tests.support.cosign_material import KeyPair
from tests.support.pki import code_signing_chain

KEY_PEM = KeyPair.generate().public_pem
ROOT_PEM = code_signing_chain("p256", role_prefix="properties-").root.pem
VALID: dict[str, Any] = {
    "version": "1",
    "failureMode": "block",
    "unavailableMode": "audit",
    "trustedSigners": [
        {"name": "ci", "cosignKey": {"publicKeyPem": KEY_PEM, "state": "active", "validFrom": "2026-01-01T00:00:00Z",
                                     "validUntil": "2027-01-01T00:00:00Z", "breakGlass": False}},
        {"name": "kms", "cosignKey": {"kmsKeyArn": "arn:aws:kms:us-east-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab"}},
        {"name": "corp", "notationX509": {"rootCertificates": [ROOT_PEM], "trustedIdentities": ["x509.subject: C=US, ST=WA, O=Acme"],
                                          "verificationLevel": "permissive", "verifyTimestamp": "always"}},
    ],
    "rules": [
        {"name": "apps", "images": ["registry.example.com/apps/*"], "anyOf": ["ci", "corp"],
         "requiredAnnotations": {"git-sha": "[0-9a-f]{40}"}, "matchDockerReference": True},
        {"name": "rest", "images": ["registry.example.com/**"], "allOf": ["ci", "kms"]},
    ],
    "exemptions": [{"images": ["docker.io/library/busybox"], "digests": ["sha256:" + "a" * 64],
                    "reason": "TICKET-9: vendor image, owner platform", "expires": "2027-01-01T00:00:00Z"}],
}
# Derandomized: the suite sees the same examples on every run (a one-off run of 3,000 per property found nothing).
PROPERTY_SETTINGS = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                             suppress_health_check=[HealthCheck.too_slow])

json_scalars = st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | st.text(max_size=20)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=12)
# Values that look like what the loader expects somewhere, so mutations get past the first check.
plausible = st.sampled_from(["1", "block", "audit", "strict", "registry.example.com/**", "**", "ci", "corp",
                             "2027-01-01T00:00:00Z", "sha256:" + "b" * 64, KEY_PEM, ROOT_PEM, "", "fromEnv",
                             {"fromEnv": "NAME"}, [], {}, True, 0, -1, 1e308])


def _load(document: Any) -> Policy | None:
    """Load; a PolicyError must name a field. Any other exception fails the property."""
    try:
        return Policy.from_json(document, environ={"NAME": "registry.example.com/**"})
    except PolicyError as exc:
        assert exc.path, f"a PolicyError without a path: {exc}"
        assert exc.message
        return None


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, prefix + (key,))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, prefix + (index,))
    return found


@given(json_values)
@PROPERTY_SETTINGS
def test_loads_or_refuses_with_a_path_when_the_document_is_any_json(document):
    _load(document if isinstance(document, dict) else json.dumps(document))


@given(st.binary(max_size=200) | st.text(max_size=200))
@PROPERTY_SETTINGS
def test_refuses_with_a_path_when_the_document_is_any_bytes(raw):
    assert _load(raw) is None or raw.strip().startswith(b"{" if isinstance(raw, bytes) else "{")


@given(st.data())
@PROPERTY_SETTINGS
def test_loads_or_refuses_with_a_path_when_one_field_of_a_valid_policy_is_mutated(data):
    # Given a valid policy and one place in it
    document = copy.deepcopy(VALID)
    path = data.draw(st.sampled_from(_paths(document)[1:]), label="path")
    parent = document
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    # When that place is replaced, removed, re-cased, or joined by an unknown key
    action = data.draw(st.sampled_from(["replace", "plausible", "delete", "recase", "add"]), label="action")
    if action == "replace":
        parent[last] = data.draw(json_values, label="value")
    elif action == "plausible":
        parent[last] = data.draw(plausible, label="value")
    elif action == "delete":
        del parent[last]
    elif action == "recase" and isinstance(last, str):
        parent[last.upper() if last != last.upper() else last.lower()] = parent.pop(last)
    elif action == "add" and isinstance(parent, dict):
        parent[data.draw(st.text(min_size=1, max_size=12), label="key")] = data.draw(json_values, label="value")
    # Then it loads, or is refused naming a field, as an object and as JSON text alike
    as_object = _load(document)
    as_text = _load(json.dumps(document))
    assert (as_object is None) == (as_text is None)
    if as_object is not None:
        assert as_object.policy_hash == as_text.policy_hash


def test_refuses_re_cased_keys_naming_the_field():
    # Go-style key folding is not how the policy is read: a re-cased key is an unknown field
    document = copy.deepcopy(VALID)
    document["FailureMode"] = document.pop("failureMode")
    assert _load(document) is None


@given(st.data())
@PROPERTY_SETTINGS
def test_reads_back_the_same_policy_when_a_loaded_policy_is_written_with_to_json(data):
    # Given a valid policy with some optional parts dropped
    document = copy.deepcopy(VALID)
    for optional in ("failureMode", "unavailableMode", "exemptions"):
        if data.draw(st.booleans(), label=f"drop {optional}"):
            document.pop(optional)
    policy = Policy.from_json(document)
    # When it is written and read again, Then it is the same policy
    again = Policy.from_json(policy.to_json())
    assert again == policy and again.policy_hash == policy.policy_hash
