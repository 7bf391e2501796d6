"""The policy loader: every bad document is a PolicyError naming the field."""

from __future__ import annotations

import re

import pytest

from image_verifier.errors import PolicyError
from image_verifier.policy import Policy
from tests.support.cosign_material import KeyPair, cosign_policy


def _doc() -> dict:
    return cosign_policy({"ci": {"publicKeyPem": KeyPair.generate().public_pem}}, images="reg.example.com/**")


@pytest.mark.parametrize(("where", "value", "path"), [
    ("failureMode", [], "failureMode"),
    ("unavailableMode", {"mode": "audit"}, "unavailableMode"),
    ("state", ["revoked"], "trustedSigners[0].cosignKey.state"),
])
def test_rejects_policy_naming_the_field_when_a_choice_is_not_a_string(where, value, path):
    document = _doc()
    if where == "state":
        document["trustedSigners"][0]["cosignKey"]["state"] = value
    else:
        document[where] = value
    with pytest.raises(PolicyError, match="^" + re.escape(path) + ": expected one of"):
        Policy.from_json(document)
