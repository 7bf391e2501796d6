"""cosign signatures end to end: real images in a real registry, signed by our own `sign`, verified by `verify`."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from image_verifier.cosign.legacy import SIGNATURE_ANNOTATION, SIMPLE_SIGNING_MEDIA_TYPE, signature_tag
from image_verifier.deadline import Deadline
from image_verifier.oci import OCI_MANIFEST
from image_verifier.policy import Policy
from image_verifier.verifier import ImageRequest
from image_verifier.composition import build_verifier
from tests.support.cosign_material import KeyPair, fetch_raw, cosign_policy, in_toto_statement, push_bundle_referrer, sigstore_bundle
from tests.support.images import canonical_json, push_blob, push_image, push_index, push_manifest, sha256_digest, unique_repository

from .cli_helpers import run_cli, sign, verify, write_policy

pytestmark = pytest.mark.registry


def _policy(tmp_path: Path, registry_host: str, key: KeyPair, **extra) -> Path:
    return write_policy(tmp_path, cosign_policy({"ci": {"publicKeyPem": key.public_pem}},
                                                images=f"{registry_host}/**", **extra))


def test_admits_image_when_signed_by_trusted_key(registry, tmp_path, key, key_file):
    # Given an image signed with our own `sign`
    image = push_image(registry, unique_repository(), "v1")
    assert sign(registry.host, key_file, str(image.ref)).code == 0
    # When it is verified by tag
    result = verify(registry.host, _policy(tmp_path, registry.host, key), str(image.tag_ref))
    # Then it is admitted, and the verdict names the digest and the signer
    assert result.code == 0, result
    [verdict] = result.verdicts
    assert verdict["outcome"] == "verified"
    assert verdict["digest"] == image.digest
    assert verdict["signer"] == "ci"
    assert verdict["signers"][0]["format"] == "cosign-legacy"


def test_rejects_image_when_unsigned(registry, tmp_path, key):
    image = push_image(registry, unique_repository(), "v1")
    result = verify(registry.host, _policy(tmp_path, registry.host, key), str(image.ref))
    assert result.code == 1
    [verdict] = result.verdicts
    assert verdict["outcome"] == "rejected"
    assert "no cosign signature" in verdict["reasons"][0]


def test_rejects_image_when_signed_by_another_key(registry, tmp_path, key, key_file):
    image = push_image(registry, unique_repository(), "v1")
    sign(registry.host, key_file, str(image.ref))
    result = verify(registry.host, _policy(tmp_path, registry.host, KeyPair.generate()), str(image.ref))
    assert result.code == 1
    assert "does not verify with this key" in result.verdicts[0]["reasons"][0]


def test_rejects_image_when_signature_is_copied_from_another_image(registry, tmp_path, key, key_file):
    # Given image A signed, and A's signature manifest copied to B's signature tag
    repo = unique_repository()
    signed = push_image(registry, repo, "a", layer_bytes=b"a")
    other = push_image(registry, repo, "b", layer_bytes=b"b")
    sign(registry.host, key_file, str(signed.ref))
    sig_manifest = _get_sig_manifest(registry, signed)
    push_manifest(registry, repo, signature_tag(other.digest), sig_manifest, OCI_MANIFEST)
    # When B is verified
    result = verify(registry.host, _policy(tmp_path, registry.host, key), str(other.ref))
    # Then the replay is refused: the payload names A's digest
    assert result.code == 1
    assert "copied from another image" in result.verdicts[0]["reasons"][0]


def test_rejects_image_when_payload_is_tampered(registry, tmp_path, key, key_file):
    # Given a signature whose payload blob was replaced (annotation added) under the same signature
    image = push_image(registry, unique_repository(), "v1")
    sign(registry.host, key_file, str(image.ref))
    manifest = json.loads(_get_sig_manifest(registry, image))
    payload = _get_blob(registry, image, manifest["layers"][0]["digest"])
    tampered = payload.replace(b'"optional":null', b'"optional":{"approved":"yes"}')
    assert tampered != payload
    digest = push_blob(registry, image.repository, tampered)
    manifest["layers"][0].update(digest=digest, size=len(tampered))
    push_manifest(registry, image.repository, signature_tag(image.digest), canonical_json(manifest), OCI_MANIFEST)
    # When / Then
    result = verify(registry.host, _policy(tmp_path, registry.host, key), str(image.ref))
    assert result.code == 1
    assert "does not verify" in result.verdicts[0]["reasons"][0]


def test_rejects_image_when_one_signature_bit_is_flipped(registry, tmp_path, key, key_file):
    image = push_image(registry, unique_repository(), "v1")
    sign(registry.host, key_file, str(image.ref))
    manifest = json.loads(_get_sig_manifest(registry, image))
    signature = bytearray(base64.b64decode(manifest["layers"][0]["annotations"][SIGNATURE_ANNOTATION]))
    signature[-1] ^= 0x01
    manifest["layers"][0]["annotations"][SIGNATURE_ANNOTATION] = base64.b64encode(bytes(signature)).decode()
    push_manifest(registry, image.repository, signature_tag(image.digest), canonical_json(manifest), OCI_MANIFEST)
    result = verify(registry.host, _policy(tmp_path, registry.host, key), str(image.ref))
    assert result.code == 1
    assert "does not verify" in result.verdicts[0]["reasons"][0]


def test_rejects_image_when_required_annotation_is_missing(registry, tmp_path, key, key_file):
    image = push_image(registry, unique_repository(), "v1")
    sign(registry.host, key_file, str(image.ref))
    policy = _policy(tmp_path, registry.host, key, requiredAnnotations={"git-sha": "[0-9a-f]{40}"})
    result = verify(registry.host, policy, str(image.ref))
    assert result.code == 1
    assert "lacks the required annotation 'git-sha'" in result.verdicts[0]["reasons"][0]


def test_admits_image_when_required_annotation_matches(registry, tmp_path, key, key_file):
    image = push_image(registry, unique_repository(), "v1")
    sign(registry.host, key_file, str(image.ref), "git-sha=" + "a" * 40)
    policy = _policy(tmp_path, registry.host, key, requiredAnnotations={"git-sha": "[0-9a-f]{40}"})
    assert verify(registry.host, policy, str(image.ref)).code == 0


def test_admits_image_when_one_of_two_signatures_is_good(registry, tmp_path, key, key_file):
    # Given a signature by an untrusted key first, then one by the trusted key (cosign appends layers)
    image = push_image(registry, unique_repository(), "v1")
    stranger = tmp_path / "stranger.key"
    stranger.write_bytes(KeyPair.generate().private_pem)
    sign(registry.host, stranger, str(image.ref))
    sign(registry.host, key_file, str(image.ref))
    assert len(json.loads(_get_sig_manifest(registry, image))["layers"]) == 2
    # When / Then
    assert verify(registry.host, _policy(tmp_path, registry.host, key), str(image.ref)).code == 0


def test_verifies_index_and_records_platform_manifest_when_platform_is_given(registry, tmp_path, key, key_file):
    # Given a multi-arch index signed at the index (what `cosign sign <tag>` does)
    repo = unique_repository()
    amd = push_image(registry, repo, None, layer_bytes=b"amd", platform="linux/amd64")
    arm = push_image(registry, repo, None, layer_bytes=b"arm", platform="linux/arm64")
    index = push_index(registry, repo, "multi", [amd, arm])
    sign(registry.host, key_file, str(index.ref))
    # When it is verified for linux/arm64
    result = verify(registry.host, _policy(tmp_path, registry.host, key), str(index.tag_ref),
                    extra=("--platform", "linux/arm64"))
    # Then the index signature covers the arm64 manifest it lists
    assert result.code == 0, result
    [verdict] = result.verdicts
    assert verdict["digest"] == index.digest
    assert verdict["platformDigest"] == arm.digest
    assert verdict["signers"][0]["verifiedDigest"] == index.digest


def test_verifies_platform_manifest_when_only_it_is_signed(registry, tmp_path, key, key_file):
    repo = unique_repository()
    amd = push_image(registry, repo, None, layer_bytes=b"amd2", platform="linux/amd64")
    arm = push_image(registry, repo, None, layer_bytes=b"arm2", platform="linux/arm64")
    index = push_index(registry, repo, "multi", [amd, arm])
    sign(registry.host, key_file, str(arm.ref))
    policy = _policy(tmp_path, registry.host, key)
    # With the platform the signed platform manifest satisfies the rule ...
    on_arm = verify(registry.host, policy, str(index.tag_ref), extra=("--platform", "linux/arm64"))
    assert on_arm.code == 0 and on_arm.verdicts[0]["signers"][0]["verifiedDigest"] == arm.digest
    # ... without it, or for another platform, nothing signed covers what would run
    assert verify(registry.host, policy, str(index.tag_ref)).code == 1
    assert verify(registry.host, policy, str(index.tag_ref), extra=("--platform", "linux/amd64")).code == 1


@pytest.mark.parametrize(("state", "code"), [("retired", 0), ("revoked", 1)])
def test_key_state_decides_when_key_is_retired_or_revoked(registry, tmp_path, key, key_file, state, code):
    image = push_image(registry, unique_repository(), "v1")
    sign(registry.host, key_file, str(image.ref))
    policy = write_policy(tmp_path, cosign_policy({"ci": {"publicKeyPem": key.public_pem, "state": state}},
                                                  images=f"{registry.host}/**"))
    result = verify(registry.host, policy, str(image.ref))
    assert result.code == code
    if state == "revoked":
        assert "revoked key" in result.verdicts[0]["reasons"][0]


def test_rejects_image_when_key_validity_window_has_ended(registry, tmp_path, key, key_file):
    image = push_image(registry, unique_repository(), "v1")
    sign(registry.host, key_file, str(image.ref))
    policy = write_policy(tmp_path, cosign_policy({"ci": {"publicKeyPem": key.public_pem,
                                                          "validUntil": "2020-01-01T00:00:00Z"}},
                                                  images=f"{registry.host}/**"))
    result = verify(registry.host, policy, str(image.ref))
    assert result.code == 1
    assert "expired" in result.verdicts[0]["reasons"][0]


def test_exemption_applies_only_until_it_expires(registry, tmp_path, key):
    # Given an unsigned image and two exemptions for it: one expired, one current
    image = push_image(registry, unique_repository(), "v1")
    document = cosign_policy({"ci": {"publicKeyPem": key.public_pem}}, images=f"{registry.host}/**")
    past = (datetime.now(timezone.utc) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    future = (datetime.now(timezone.utc) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    exemption = {"images": [image.ref.name], "reason": "TICKET-42: vendor image, owner platform team"}
    # When only the expired one exists, Then the image is rejected
    document["exemptions"] = [{**exemption, "expires": past}]
    assert verify(registry.host, write_policy(tmp_path, document), str(image.ref)).code == 1
    # When the current one exists, Then it is exempt, with the reason in the verdict
    document["exemptions"] = [{**exemption, "expires": future}]
    result = verify(registry.host, write_policy(tmp_path, document), str(image.ref))
    assert result.code == 0
    assert result.verdicts[0]["outcome"] == "exempt"
    assert "TICKET-42" in result.verdicts[0]["exemption"]


def test_admits_image_when_signed_with_cosign_v3_bundle_referrer(registry, tmp_path, key):
    image = push_image(registry, unique_repository(), "v1")
    push_bundle_referrer(registry, image, sigstore_bundle(key, in_toto_statement(image.digest, {"git-sha": "b" * 40})))
    policy = _policy(tmp_path, registry.host, key, requiredAnnotations={"git-sha": "[0-9a-f]{40}"})
    result = verify(registry.host, policy, str(image.ref))
    assert result.code == 0, result
    assert result.verdicts[0]["signers"][0]["format"] == "cosign-bundle"


def test_rejects_image_when_bundle_names_another_digest(registry, tmp_path, key):
    repo = unique_repository()
    image = push_image(registry, repo, "v1", layer_bytes=b"one")
    other = push_image(registry, repo, "v2", layer_bytes=b"two")
    push_bundle_referrer(registry, image, sigstore_bundle(key, in_toto_statement(other.digest)))
    result = verify(registry.host, _policy(tmp_path, registry.host, key), str(image.ref))
    assert result.code == 1
    assert "does not name" in result.verdicts[0]["reasons"][0]


def test_rejects_image_when_no_rule_matches(registry, tmp_path, key):
    image = push_image(registry, unique_repository(), "v1")
    policy = write_policy(tmp_path, cosign_policy({"ci": {"publicKeyPem": key.public_pem}},
                                                  images="elsewhere.example.com/**"))
    result = verify(registry.host, policy, str(image.ref))
    assert result.code == 1
    assert "no rule matches" in result.verdicts[0]["reasons"][0]


def test_legacy_verification_makes_two_registry_requests_once_digest_is_known(registry, registry_client, key, key_file):
    # Given a signed image, referenced by digest
    image = push_image(registry, unique_repository(), "v1")
    sign(registry.host, key_file, str(image.ref))
    policy = Policy.from_json(cosign_policy({"ci": {"publicKeyPem": key.public_pem}}, images=f"{registry.host}/**"))
    verifier = build_verifier(policy, registry=registry_client)
    session = registry_client.bound(Deadline.after(30))
    subject = session.resolve(image.ref)
    before = session.request_count
    # When the signature is verified
    from image_verifier.evidence import Evidence
    from image_verifier.signer_checks import check_cosign

    match = check_cosign(policy.signer("ci"), policy.rules[0], Evidence(session, image.ref, subject),
                         verifier._cosign_keys, datetime.now(timezone.utc))
    # Then exactly two requests were made: the signature manifest and the payload blob
    assert match.signer == "ci"
    assert session.request_count - before == 2, session.request_log


def test_verifies_images_in_parallel_with_one_verdict_each(registry, registry_client, key, key_file):
    repo = unique_repository()
    images = [push_image(registry, repo, f"v{i}", layer_bytes=f"img{i}".encode()) for i in range(4)]
    for image in images[:3]:
        sign(registry.host, key_file, str(image.ref))
    policy = Policy.from_json(cosign_policy({"ci": {"publicKeyPem": key.public_pem}}, images=f"{registry.host}/**"))
    decision = build_verifier(policy, registry=registry_client).decide(
        [ImageRequest(image=str(i.tag_ref)) for i in images], deadline=Deadline.after(30))
    assert [v.outcome.value for v in decision.verdicts] == ["verified"] * 3 + ["rejected"]
    assert not decision.admitted


def _get_sig_manifest(registry, image) -> bytes:
    return fetch_raw(registry, image.repository, f"manifests/{signature_tag(image.digest)}", OCI_MANIFEST)


def _get_blob(registry, image, digest: str) -> bytes:
    return fetch_raw(registry, image.repository, f"blobs/{digest}", "*/*")


def test_marks_verdict_as_break_glass_when_break_glass_key_satisfies_rule(registry, tmp_path, key):
    # Given an image signed only with the break-glass key, which the rule accepts as an alternative
    image = push_image(registry, unique_repository(), "v1")
    glass = KeyPair.generate()
    glass_file = tmp_path / "glass.key"
    glass_file.write_bytes(glass.private_pem)
    sign(registry.host, glass_file, str(image.ref))
    policy = write_policy(tmp_path, cosign_policy(
        {"ci": {"publicKeyPem": key.public_pem}, "break-glass": {"publicKeyPem": glass.public_pem, "breakGlass": True}},
        images=f"{registry.host}/**"))
    # When it is verified, as JSON and for a person
    as_json = verify(registry.host, policy, str(image.ref))
    for_people = run_cli("verify", "--policy", str(policy), "--insecure-registry", registry.host, str(image.ref))
    # Then it is admitted, and flagged in both
    assert as_json.code == 0
    assert as_json.verdicts[0]["breakGlass"] is True
    assert as_json.verdicts[0]["signer"] == "break-glass"
    assert "BREAK-GLASS" in for_people.out


def _index_over(registry, repo: str, entries: list[dict]):
    """Push an index with exactly these entries under the tag `multi`."""
    from image_verifier.oci import OCI_INDEX
    from tests.support.images import index_json

    raw = index_json(entries)
    return push_manifest(registry, repo, "multi", raw, OCI_INDEX)


@pytest.mark.parametrize(("listed", "requested"), [
    # the runtime may pick either entry: containerd treats arm64 and arm64/v8 as the same platform
    ([{"os": "linux", "architecture": "arm64"}, {"os": "linux", "architecture": "arm64", "variant": "v8"}],
     "linux/arm64/v8"),
    ([{"os": "linux", "architecture": "arm64", "variant": "v8"}, {"os": "linux", "architecture": "arm64"}],
     "linux/arm64"),
])
def test_rejects_index_when_another_manifest_is_listed_for_the_platform_beside_a_signed_one(
        registry, tmp_path, key, key_file, listed, requested):
    # Given an unsigned index that lists an unsigned manifest first and a copied, signed manifest second,
    # both for the platform the task runs on
    repo = unique_repository()
    unsigned = push_image(registry, repo, None, layer_bytes=b"evil", platform="linux/arm64")
    signed = push_image(registry, repo, None, layer_bytes=b"good", platform="linux/arm64")
    sign(registry.host, key_file, str(signed.ref))
    index = _index_over(registry, repo, [unsigned.descriptor(platform=listed[0]), signed.descriptor(platform=listed[1])])
    # When it is verified for that platform
    result = verify(registry.host, _policy(tmp_path, registry.host, key), str(index.tag_ref), extra=("--platform", requested))
    # Then it is rejected: which manifest runs is not decided by the signature
    assert result.code == 1, result
    assert "several different manifests for platform" in result.verdicts[0]["reasons"][0]


def test_rejects_index_when_a_nested_index_is_listed_for_the_platform(registry, tmp_path, key, key_file):
    # Given an index whose first linux/amd64 entry is itself an index (over an unsigned manifest),
    # and whose second linux/amd64 entry is a signed manifest
    from image_verifier.oci import OCI_INDEX

    repo = unique_repository()
    unsigned = push_image(registry, repo, None, layer_bytes=b"evil2", platform="linux/amd64")
    signed = push_image(registry, repo, None, layer_bytes=b"good2", platform="linux/amd64")
    sign(registry.host, key_file, str(signed.ref))
    nested = push_index(registry, repo, None, [unsigned])
    platform = {"os": "linux", "architecture": "amd64"}
    index = _index_over(registry, repo, [nested.descriptor(platform=platform), signed.descriptor()])
    # When it is verified for linux/amd64
    result = verify(registry.host, _policy(tmp_path, registry.host, key), str(index.tag_ref),
                    extra=("--platform", "linux/amd64"))
    # Then it is rejected, naming the entry that is not an image manifest
    assert result.code == 1, result
    assert "not an image manifest" in result.verdicts[0]["reasons"][0]
    assert OCI_INDEX in result.verdicts[0]["reasons"][0]


def test_rejects_index_when_its_platform_entry_names_an_image_manifest_but_is_an_index(registry, tmp_path, key, key_file):
    # Given an index entry that claims to be an image manifest, but whose content is an index
    # (no mediaType in the body; the registry serves it as an index), and that content is signed
    from image_verifier.oci import OCI_INDEX

    repo = unique_repository()
    inner = push_image(registry, repo, None, layer_bytes=b"inner", platform="linux/amd64")
    raw = canonical_json({"schemaVersion": 2, "manifests": [inner.descriptor()]})
    disguised = push_manifest(registry, repo, sha256_digest(raw), raw, OCI_INDEX)
    sign(registry.host, key_file, str(disguised.ref))
    entry = {"mediaType": OCI_MANIFEST, "digest": disguised.digest, "size": disguised.size,
             "platform": {"os": "linux", "architecture": "amd64"}}
    index = _index_over(registry, repo, [entry])
    # When it is verified for linux/amd64
    result = verify(registry.host, _policy(tmp_path, registry.host, key), str(index.tag_ref),
                    extra=("--platform", "linux/amd64"))
    # Then it is rejected: what the task runs must be an image manifest
    assert result.code == 1, result
    assert "is not an image manifest" in result.verdicts[0]["reasons"][0]


def test_matches_docker_reference_after_normalizing_it_when_the_rule_asks_for_it(registry, tmp_path, key, key_file):
    # Given a rule that requires the payload to name the image's own repository
    image = push_image(registry, unique_repository(), "v1")
    policy = _policy(tmp_path, registry.host, key, matchDockerReference=True)
    # When the signature names it (as cosign does: registry/repository, no tag), Then it is admitted
    sign(registry.host, key_file, str(image.ref))
    assert verify(registry.host, policy, str(image.ref)).code == 0


def test_rejects_signature_naming_another_repository_when_the_rule_matches_docker_reference(
        registry, tmp_path, key):
    # Given a valid signature for this digest whose payload names another repository (a mirror)
    from image_verifier.cosign.payload import SimpleSigningPayload

    image = push_image(registry, unique_repository(), "v1")
    payload = SimpleSigningPayload(docker_reference=f"{registry.host}/elsewhere/app",
                                   manifest_digest=image.digest).to_bytes()
    _push_sig_layer(registry, image, payload, key.sign(payload))
    policy = _policy(tmp_path, registry.host, key, matchDockerReference=True)
    # When / Then: refused with the rule, admitted without it (cosign's default ignores the reference)
    refused = verify(registry.host, policy, str(image.ref))
    assert refused.code == 1
    assert "but the rule requires" in refused.verdicts[0]["reasons"][0]
    assert verify(registry.host, _policy(tmp_path, registry.host, key), str(image.ref)).code == 0


def _push_sig_layer(registry, image, payload: bytes, signature: bytes) -> None:
    from tests.support.images import Blob, empty_config

    config = empty_config()
    layer = Blob(data=payload, media_type=SIMPLE_SIGNING_MEDIA_TYPE,
                 annotations={SIGNATURE_ANNOTATION: base64.b64encode(signature).decode()})
    for blob in (config, layer):
        push_blob(registry, image.repository, blob.data)
    manifest = canonical_json({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config.descriptor(),
                               "layers": [layer.descriptor()]})
    push_manifest(registry, image.repository, signature_tag(image.digest), manifest, OCI_MANIFEST)


def test_docker_hub_references_compare_by_repository_name():
    from image_verifier.cosign.legacy import _repository_name

    assert _repository_name("index.docker.io/library/nginx") == "docker.io/library/nginx"
    assert _repository_name("docker.io/library/nginx:1.27") == "docker.io/library/nginx"
    assert _repository_name("not a reference") is None


def test_verdict_says_until_when_it_holds_when_the_key_window_or_exemption_ends(registry, registry_client, key,
                                                                                 key_file):
    # Given a key valid until a fixed time, and an exemption that expires earlier for another image
    image = push_image(registry, unique_repository(), "v1")
    vendor = push_image(registry, unique_repository(), "v1", layer_bytes=b"vendor")
    sign(registry.host, key_file, str(image.ref))
    document = cosign_policy({"ci": {"publicKeyPem": key.public_pem, "validUntil": "2099-01-01T00:00:00Z"}},
                             images=f"{registry.host}/**")
    document["exemptions"] = [{"images": [vendor.ref.name], "reason": "TICKET-7: vendor image, owner ops",
                               "expires": "2098-01-01T00:00:00Z"}]
    verifier = build_verifier(Policy.from_json(document), registry=registry_client)
    # When both are verified
    signed, exempt = verifier.decide([ImageRequest(image=str(image.ref)), ImageRequest(image=str(vendor.ref))],
                                     deadline=Deadline.after(30)).verdicts
    # Then each verdict carries the end of what made it true
    assert signed.valid_until == datetime(2099, 1, 1, tzinfo=timezone.utc)
    assert exempt.valid_until == datetime(2098, 1, 1, tzinfo=timezone.utc)
