"""Image references and patterns: one spelling per image, no smuggled characters."""

from __future__ import annotations

import pytest

from image_verifier.errors import InvalidReferenceError
from image_verifier.platform import Platform
from image_verifier.policy import ImagePattern, Policy
from image_verifier.reference import ImageReference, is_digest
from tests.support.cosign_material import KeyPair, cosign_policy

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize("raw", [
    "reg.io/app\n:v1",  # a newline before the tag passed the end-of-line anchors
    "reg.io\n/app:v1",
    "reg.io/team\n/app",
    f"reg.io/app:v1\n@{DIGEST}",
    "reg.io/app:v\u00e9",  # non-ASCII tags are not tags
    "reg.io/app:\u0661\u0662",
])
def test_rejects_reference_when_a_component_hides_a_newline_or_non_ascii_character(raw):
    with pytest.raises(InvalidReferenceError, match="invalid"):
        ImageReference.parse(raw)


def test_rejects_digest_when_it_ends_with_a_newline():
    assert is_digest(DIGEST)
    assert not is_digest(DIGEST + "\n")


def test_rejects_platform_and_pattern_when_they_end_with_a_newline():
    with pytest.raises(ValueError, match="invalid platform"):
        Platform.parse("linux/arm64\n")
    with pytest.raises(ValueError, match="characters outside"):
        ImagePattern.parse("reg.io/app\n")


def test_matches_registry_host_case_insensitively_so_no_spelling_reaches_a_weaker_rule():
    # Given a strict exact rule for one repository and a weak catch-all glob
    strong, weak = KeyPair.generate(), KeyPair.generate()
    document = cosign_policy({"release": {"publicKeyPem": strong.public_pem}, "dev": {"publicKeyPem": weak.public_pem}},
                             images="reg.example.com/prod", any_of=["release"])
    document["rules"].append({"name": "anything", "images": ["*/**"], "anyOf": ["dev"]})
    policy = Policy.from_json(document)
    # When the same registry is written in capitals (DNS names are case-insensitive)
    ref = ImageReference.parse("REG.Example.COM/prod:v1")
    # Then it is the same image name, governed by the strict rule
    assert ref.name == "reg.example.com/prod"
    assert policy.rule_for(ref.name).name == "signed"
