"""Issue 14 item 3: a rule's `matchDockerReference` applies to cosign v3 bundles too.

cosign v3 (`signDigestBundle`) writes the in-toto subject with the digest and the `-a` annotations
only, no `name`: such a bundle cannot say which repository it was made for. Under a rule that asks
for the repository, it therefore does not count (before, it was accepted: the rule was silently
not applied to bundles). A subject that does carry a `name` is held to the rule like the legacy
payload's `docker-reference`. Real images and real bundle referrers in the real test registry.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.cosign_material import KeyPair, cosign_policy, in_toto_statement, push_bundle_referrer, sigstore_bundle
from tests.support.images import push_image, unique_repository

from .cli_helpers import verify, write_policy

pytestmark = pytest.mark.registry


def _policy(tmp_path: Path, registry_host: str, key: KeyPair, **rule: object) -> Path:
    return write_policy(tmp_path, cosign_policy({"ci": {"publicKeyPem": key.public_pem}},
                                                images=f"{registry_host}/**", **rule))


def _named_statement(digest: str, name: str) -> bytes:
    statement = json.loads(in_toto_statement(digest))
    statement["subject"][0]["name"] = name
    return json.dumps(statement).encode()


def test_rejects_cosign_v3_bundle_when_the_rule_matches_docker_reference_and_the_subject_names_no_repository(
        registry, tmp_path, key):
    # Given an image signed as cosign v3 signs it (the subject has no name)
    image = push_image(registry, unique_repository(), "v1")
    push_bundle_referrer(registry, image, sigstore_bundle(key, in_toto_statement(image.digest)))
    # When a rule asks for the repository / Then the bundle cannot prove it, and the image is rejected
    refused = verify(registry.host, _policy(tmp_path, registry.host, key, matchDockerReference=True), str(image.ref))
    assert refused.code == 1, refused
    assert "in-toto subject names no repository (cosign v3 signs only the digest)" in refused.verdicts[0]["reasons"][0]
    # And without the rule (cosign's own default) the same bundle verifies
    admitted = verify(registry.host, _policy(tmp_path, registry.host, key), str(image.ref))
    assert admitted.code == 0 and admitted.verdicts[0]["signers"][0]["format"] == "cosign-bundle"


@pytest.mark.parametrize("suffix", ["", ":v1"])
def test_admits_bundle_whose_subject_names_the_image_repository_when_the_rule_matches_docker_reference(
        registry, tmp_path, key, suffix):
    # Given a bundle whose subject names the image's own repository (with or without a tag)
    image = push_image(registry, unique_repository(), "v1")
    name = f"{registry.host}/{image.repository}{suffix}"
    push_bundle_referrer(registry, image, sigstore_bundle(key, _named_statement(image.digest, name)))
    # When / Then
    result = verify(registry.host, _policy(tmp_path, registry.host, key, matchDockerReference=True), str(image.ref))
    assert result.code == 0, result


def test_rejects_bundle_whose_subject_names_another_repository_when_the_rule_matches_docker_reference(
        registry, tmp_path, key):
    # Given a valid bundle for this digest that names another repository (copied from a mirror)
    image = push_image(registry, unique_repository(), "v1")
    other = f"{registry.host}/elsewhere/app"
    push_bundle_referrer(registry, image, sigstore_bundle(key, _named_statement(image.digest, other)))
    # When / Then
    result = verify(registry.host, _policy(tmp_path, registry.host, key, matchDockerReference=True), str(image.ref))
    assert result.code == 1
    assert f"the bundle's subject names {other!r}, but the rule requires" in result.verdicts[0]["reasons"][0]
