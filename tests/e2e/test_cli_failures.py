"""The CLI fails closed and never with a traceback: bad policies, dead registries, hostile artifacts, KMS keys."""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import sys

import boto3
import pytest
from botocore.stub import Stubber
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from moto import mock_aws

from image_verifier.composition import AwsClients
from image_verifier.cosign.keys import CosignKeyResolver
from image_verifier.cosign.payload import SimpleSigningPayload
from image_verifier.aws_errors import AwsRefusedError
from image_verifier.policy import CosignKeyTrust

from image_verifier.cosign.legacy import SIGNATURE_ANNOTATION, SIMPLE_SIGNING_MEDIA_TYPE, signature_tag
from image_verifier.oci import OCI_MANIFEST
from tests.support.cosign_material import KeyPair, cosign_policy
from tests.support.images import Blob, canonical_json, empty_config, push_blob, push_image, push_manifest, unique_repository
from tests.support.local_registry import free_port

from .cli_helpers import run_cli, sign, verify, write_policy

pytestmark = pytest.mark.registry


def test_rejects_policy_with_exit_2_and_field_path_when_policy_is_invalid(tmp_path):
    document = cosign_policy({"ci": {"publicKeyPem": "not a key"}}, images="reg.example.com/**")
    result = run_cli("verify", "--policy", str(write_policy(tmp_path, document)), "reg.example.com/app:1")
    assert result.code == 2
    assert "trustedSigners[0].cosignKey.publicKeyPem" in result.err
    assert "Traceback" not in result.err


def test_rejects_usage_with_exit_2_when_arguments_are_missing(tmp_path):
    result = run_cli("verify", "reg.example.com/app:1")
    assert result.code == 2
    assert "--policy" in result.err


def test_reports_unavailable_with_exit_3_when_registry_is_down(tmp_path):
    # Given a port nobody listens on
    host = f"127.0.0.1:{free_port()}"
    key = KeyPair.generate()
    policy = write_policy(tmp_path, cosign_policy({"ci": {"publicKeyPem": key.public_pem}}, images=f"{host}/**"))
    # When / Then
    result = verify(host, policy, f"{host}/app:v1")
    assert result.code == 3
    assert result.verdicts[0]["outcome"] == "unavailable"


def test_reports_unavailable_within_deadline_when_registry_never_answers(tmp_path):
    # Given a socket that accepts connections but never answers
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        host = f"127.0.0.1:{silent.getsockname()[1]}"
        key = KeyPair.generate()
        policy = write_policy(tmp_path, cosign_policy({"ci": {"publicKeyPem": key.public_pem}}, images=f"{host}/**"))
        # When the decision has two seconds (pytest-timeout bounds the test if the deadline were ignored)
        result = verify(host, policy, f"{host}/app:v1", extra=("--timeout", "2"))
    # Then the image is unavailable, not admitted
    assert result.code == 3
    assert result.verdicts[0]["outcome"] == "unavailable"


def test_unavailable_images_are_admitted_only_when_unavailable_mode_is_audit(tmp_path):
    host = f"127.0.0.1:{free_port()}"
    document = cosign_policy({"ci": {"publicKeyPem": KeyPair.generate().public_pem}}, images=f"{host}/**")
    document["unavailableMode"] = "audit"
    result = verify(host, write_policy(tmp_path, document), f"{host}/app:v1")
    assert result.code == 0
    assert result.verdicts[0]["outcome"] == "unavailable"


@pytest.mark.parametrize(
    ("layer_annotations", "payload", "expected"),
    [
        ({SIGNATURE_ANNOTATION: "%%%not-base64%%%"}, b"{}", "not valid base64"),
        ({}, b"{}", "no dev.cosignproject.cosign/signature annotation"),
        ({SIGNATURE_ANNOTATION: "A" * 5000}, b"{}", "implausibly long"),
    ],
)
def test_rejects_hostile_signature_layers_with_a_reason(registry, tmp_path, layer_annotations, payload, expected):
    image = push_image(registry, unique_repository(), "v1")
    _push_sig(registry, image, Blob(data=payload, media_type=SIMPLE_SIGNING_MEDIA_TYPE, annotations=layer_annotations))
    key = KeyPair.generate()
    result = verify(registry.host, write_policy(tmp_path, cosign_policy({"ci": {"publicKeyPem": key.public_pem}},
                                                                      images=f"{registry.host}/**")), str(image.ref))
    assert result.code == 1
    assert expected in result.verdicts[0]["reasons"][0]


def test_rejects_signature_layer_when_it_declares_an_oversized_payload(registry, tmp_path):
    image = push_image(registry, unique_repository(), "v1")
    config = empty_config()
    push_blob(registry, image.repository, config.data)
    # a real blob, but a descriptor that claims a gigabyte: the client must not try to read it
    layer = {"mediaType": SIMPLE_SIGNING_MEDIA_TYPE, "digest": push_blob(registry, image.repository, b"{}"),
             "size": 10**9,
             "annotations": {SIGNATURE_ANNOTATION: "MEUCIQ=="}}
    push_manifest(registry, image.repository, signature_tag(image.digest),
                  canonical_json({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config.descriptor(),
                                  "layers": [layer]}), OCI_MANIFEST)
    key = KeyPair.generate()
    result = verify(registry.host, write_policy(tmp_path, cosign_policy({"ci": {"publicKeyPem": key.public_pem}},
                                                                      images=f"{registry.host}/**")), str(image.ref))
    assert result.code == 1
    assert "more than" in result.verdicts[0]["reasons"][0]


@pytest.fixture
def aws_env(monkeypatch):
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def test_signs_with_kms_digest_and_verifies_with_kms_key_arn(registry, tmp_path, aws_env, monkeypatch):
    # Given a P-256 KMS key. moto hashes the message even for MessageType=DIGEST, so Sign and
    # GetPublicKey go through botocore's Stubber with the documented shapes; the signature is real.
    key = KeyPair.generate()
    arn = "arn:aws:kms:us-east-1:111111111111:key/0a1b2c3d-1111-2222-3333-444455556666"
    image = push_image(registry, unique_repository(), "v1")
    payload = SimpleSigningPayload(docker_reference=image.ref.name, manifest_digest=image.digest,
                                   annotations={"run": "42"}).to_bytes()
    digest = hashlib.sha256(payload).digest()
    kms = boto3.client("kms", region_name="us-east-1")
    stubber = Stubber(kms)
    public = {"KeyId": arn, "PublicKey": key.public_der, "KeySpec": "ECC_NIST_P256", "KeyUsage": "SIGN_VERIFY",
              "SigningAlgorithms": ["ECDSA_SHA_256"]}
    stubber.add_response("get_public_key", public, {"KeyId": arn})
    stubber.add_response(
        "sign",
        {"KeyId": arn, "Signature": key.private.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256()))),
         "SigningAlgorithm": "ECDSA_SHA_256"},
        {"KeyId": arn, "Message": digest, "MessageType": "DIGEST", "SigningAlgorithm": "ECDSA_SHA_256"},
    )
    stubber.add_response("get_public_key", public, {"KeyId": arn})  # the verifier's one call
    monkeypatch.setattr(AwsClients, "client", lambda self, service, region: kms)
    with stubber:
        # When the image is signed through kms:Sign and verified with the key's ARN
        signed = run_cli("sign", "--kms-key", arn, "--insecure-registry", registry.host, "-a", "run=42", str(image.ref))
        policy = write_policy(tmp_path, cosign_policy({"ci": {"kmsKeyArn": arn}}, images=f"{registry.host}/**",
                                                      requiredAnnotations={"run": "[0-9]+"}))
        result = verify(registry.host, policy, str(image.ref))
        stubber.assert_no_pending_responses()
    # Then the verdict names the KMS key
    assert signed.code == 0, signed.err
    assert result.code == 0, result
    assert result.verdicts[0]["signers"][0]["identity"] == arn


def test_kms_public_key_is_fetched_once_and_cached(aws_env):
    with mock_aws():
        kms = boto3.client("kms", region_name="us-east-1")
        arn = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]
        resolver = CosignKeyResolver(lambda region: boto3.client("kms", region_name=region))
        trust = CosignKeyTrust(kms_key_arn=arn)
        first, second = resolver.public_key(trust), resolver.public_key(trust)
        expected = kms.get_public_key(KeyId=arn)["PublicKey"]
    assert first is second
    assert resolver.kms_calls == 1
    assert first.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) == expected


def test_rejects_as_refused_when_kms_denies_get_public_key(aws_env):
    # KMS answered "denied": retrying will not change it, so it is a rejection in every mode, not `unavailable`
    kms = boto3.client("kms", region_name="us-east-1")
    stubber = Stubber(kms)
    arn = "arn:aws:kms:us-east-1:111111111111:key/0a1b2c3d-1111-2222-3333-444455556666"
    stubber.add_client_error("get_public_key", "AccessDeniedException", "not allowed", 400, {"KeyId": arn})
    with stubber, pytest.raises(AwsRefusedError, match="needs kms:GetPublicKey"):
        CosignKeyResolver(lambda region: kms).public_key(CosignKeyTrust(kms_key_arn=arn))


def test_refuses_to_sign_when_image_has_no_digest(registry, tmp_path):
    key_file = tmp_path / "k.pem"
    key_file.write_bytes(KeyPair.generate().private_pem)
    result = sign(registry.host, key_file, f"{registry.host}/app:v1")
    assert result.code == 2
    assert "has no digest" in result.err


def test_module_entry_point_prints_no_traceback_when_policy_file_is_missing(tmp_path):
    completed = subprocess.run(
        [sys.executable, "-m", "image_verifier", "verify", "--policy", str(tmp_path / "missing.json"), "x.io/a:1"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )
    assert completed.returncode == 2
    assert "cannot read the policy" in completed.stderr
    assert "Traceback" not in completed.stderr


def _push_sig(registry, image, layer: Blob) -> None:
    config = empty_config()
    for blob in (config, layer):
        push_blob(registry, image.repository, blob.data)
    push_manifest(registry, image.repository, signature_tag(image.digest),
                  canonical_json({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config.descriptor(),
                                  "layers": [layer.descriptor()]}), OCI_MANIFEST)


def test_exits_3_not_1_when_only_an_audited_rejection_stands_beside_an_unavailable_image(registry, tmp_path):
    # Given failureMode audit (a rejection does not block) and unavailableMode block
    dead = f"127.0.0.1:{free_port()}"
    image = push_image(registry, unique_repository(), "v1")
    document = cosign_policy({"ci": {"publicKeyPem": KeyPair.generate().public_pem}}, images="127.0.0.1:*/**")
    document["failureMode"] = "audit"
    # When one image is unsigned (rejected) and the other's registry is down (unavailable)
    result = run_cli("verify", "--policy", str(write_policy(tmp_path, document)), "--json",
                     "--insecure-registry", registry.host, "--insecure-registry", dead,
                     str(image.ref), f"{dead}/app:v1")
    # Then what blocks is the unavailable image: exit 3
    assert [v["outcome"] for v in result.verdicts] == ["rejected", "unavailable"]
    assert result.code == 3


# -- issue 8: errors that explain themselves -----------------------------------------------------
def test_suggests_insecure_registry_when_a_plain_http_registry_fails_the_tls_handshake(registry, tmp_path):
    # Given the real plain-http registry, named without --insecure-registry
    image = push_image(registry, unique_repository(), "v1")
    policy = write_policy(tmp_path, cosign_policy({"ci": {"publicKeyPem": KeyPair.generate().public_pem}},
                                                  images=f"{registry.host}/**"))
    # When it is verified (https by default)
    result = run_cli("verify", "--policy", str(policy), "--json", str(image.ref))
    # Then the image is unavailable and the hint names the flag and the host
    assert result.code == 3
    assert result.verdicts[0]["outcome"] == "unavailable"
    assert f"pass --insecure-registry {registry.host}" in result.err


def test_suggests_insecure_registry_when_signing_to_a_plain_http_registry(registry, tmp_path):
    image = push_image(registry, unique_repository(), "v1")
    key_file = tmp_path / "k.pem"
    key_file.write_bytes(KeyPair.generate().private_pem)
    result = run_cli("sign", "--key", str(key_file), f"{image.ref.name}@{image.digest}")
    assert result.code == 3
    assert f"hint: {registry.host} did not answer TLS" in result.err
    assert f"pass --insecure-registry {registry.host}" in result.err


def test_gives_no_tls_hint_when_the_registry_is_simply_down(tmp_path):
    host = f"127.0.0.1:{free_port()}"
    policy = write_policy(tmp_path, cosign_policy({"ci": {"publicKeyPem": KeyPair.generate().public_pem}},
                                                  images=f"{host}/**"))
    result = run_cli("verify", "--policy", str(policy), f"{host}/app:v1")
    assert result.code == 3
    assert "insecure-registry" not in result.err


@pytest.mark.parametrize(("image", "expected"), [
    ("reg.example.com/Team/app:1", "invalid repository component 'Team'"),
    ("reg.example.com/app@sha256:ABC", "invalid digest"),
    ("reg.example.com/app:bad tag", "invalid tag"),
    (" reg.example.com/app:1", "remove the surrounding white space"),
])
def test_rejects_image_reference_with_exit_2_not_a_rejection_when_it_is_invalid(tmp_path, image, expected):
    # Regression (issue 8): an upper-case reference was verified and came back REJECTED (exit 1)
    policy = write_policy(tmp_path, cosign_policy({"ci": {"publicKeyPem": KeyPair.generate().public_pem}},
                                                  images="reg.example.com/**"))
    result = run_cli("verify", "--policy", str(policy), image)
    assert result.code == 2
    assert expected in result.err
    assert result.out == ""


@pytest.mark.parametrize(("argv", "code", "expected"), [
    (("verify", "--json", "--policy", "{policy}", "reg.example.com/App:1"), 2, "invalid repository component 'App'"),
    (("verify", "--json", "--policy", "{missing}", "reg.example.com/app:1"), 2, "cannot read the policy"),
    (("verify", "--json", "--policy", "{bad}", "reg.example.com/app:1"), 2, "trustedSigners[0].cosignKey.publicKeyPem"),
    (("verify", "--json", "--timeout", "0", "--policy", "{policy}", "reg.example.com/app:1"), 2, "positive number"),
    (("verify", "--json", "reg.example.com/app:1"), 2, "the following arguments are required: --policy"),
    (("sign", "--json", "--key", "k.pem", "reg.example.com/app:1"), 2, "unrecognized arguments: --json"),
])
def test_rejects_with_one_json_error_object_on_stdout_when_json_is_asked(tmp_path, argv, code, expected):
    # Given a valid, a broken and a missing policy
    key = KeyPair.generate()
    files = {"policy": write_policy(tmp_path, cosign_policy({"ci": {"publicKeyPem": key.public_pem}},
                                                            images="reg.example.com/**")),
             "missing": tmp_path / "missing.json", "bad": tmp_path / "bad.json"}
    files["bad"].write_text(json.dumps(cosign_policy({"ci": {"publicKeyPem": "x"}}, images="reg.example.com/**")))
    # When the command fails under --json
    result = run_cli(*(a.format(**files) for a in argv))
    # Then stdout is exactly one JSON object with the error and the exit code, and stderr is empty
    assert result.code == code
    (line,) = result.out.splitlines()
    error = json.loads(line)
    assert set(error) == {"error", "exitCode"} and error["exitCode"] == code
    assert expected in error["error"]
    assert result.err == ""


def test_prints_no_traceback_for_bad_input_through_the_module_entry_point(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_bytes(b"\xff\xfe{not json")
    for argv in (["verify", "--policy", str(broken), "x.io/a:1"], ["policy", "validate", str(broken), str(tmp_path)],
                 ["policy", "init", "--registry", "x.io", "--public-key", str(broken)], ["verify", "--platform", "?"],
                 ["sign", "--key", str(tmp_path / "none.pem"), "x.io/a@sha256:" + "0" * 64]):
        completed = subprocess.run([sys.executable, "-m", "image_verifier", *argv], check=False, capture_output=True,
                                   text=True, timeout=60, stdin=subprocess.DEVNULL)
        assert completed.returncode == 2, (argv, completed.stderr)
        assert "Traceback" not in completed.stderr
