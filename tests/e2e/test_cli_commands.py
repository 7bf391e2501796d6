"""The CLI explains itself: help and version, `policy validate`, `policy init`, and key files beside a policy."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from image_verifier.cli import _parser
from image_verifier.cli_hints import program_name
from image_verifier.errors import PolicyError
from image_verifier.policy import Policy
from image_verifier.policy.files import load_policy_file
from tests.support import pki
from tests.support.cosign_material import KeyPair, cosign_policy
from tests.support.images import push_image, unique_repository

from .cli_helpers import run_cli, sign, verify, write_policy

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"


def _all_parsers(parser: argparse.ArgumentParser):
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                yield from _all_parsers(child)


# -- help, version, program name -----------------------------------------------------------------
def test_every_option_of_every_command_has_help_and_every_help_lists_the_exit_codes():
    for parser in _all_parsers(_parser("image-verifier")):
        undocumented = [a.dest for a in parser._actions if not a.help and not isinstance(a, argparse._SubParsersAction)]
        assert undocumented == [], f"{parser.prog}: options without help: {undocumented}"
        assert all(f"  {code}  " in parser.format_help() for code in "0123"), parser.prog


def test_sign_help_documents_insecure_registry_and_timeout():
    # Regression: issue 8 found `sign --insecure-registry` and `--timeout` without help
    result = run_cli("sign", "--help")
    assert result.code == 0
    assert "plain http" in result.out
    assert "seconds for reading the image" in result.out


def test_program_name_is_image_verifier_only_when_run_as_the_console_script():
    assert program_name("/usr/local/bin/image-verifier") == "image-verifier"
    assert program_name("/work/lambda_src/image_verifier/__main__.py") == "python -m image_verifier"
    assert run_cli("--help").out.startswith("usage: ")


def test_module_entry_point_names_itself_python_m_image_verifier_and_prints_its_version():
    completed = subprocess.run([sys.executable, "-m", "image_verifier", "--version"], check=False,
                               capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert completed.returncode == 0
    assert completed.stdout.startswith("python -m image_verifier 0.")


# -- policy validate -----------------------------------------------------------------------------
def test_validate_accepts_the_docs_example_policy_with_its_key_and_certificate_files():
    result = run_cli("policy", "validate", str(EXAMPLES / "policy.json"))
    assert result.code == 0, result.err
    assert "valid (3 signer(s), 2 rule(s), 1 exemption(s)); policy hash sha256:" in result.out


def test_rejects_policy_listing_every_error_with_its_path_when_several_parts_are_invalid(tmp_path):
    # Given a policy with a problem in the top level, two signers, two rules and an exemption
    document = cosign_policy({"ci": {"publicKeyPem": "not a key"}, "ok": {"kmsKeyArn": "alias/ci"}},
                             images="reg.example.com/**")
    document.update(failureMode="warn", colour="red")
    document["rules"] += [{"name": "b", "images": ["Reg.example.com/x"], "anyOf": ["ok"]},
                          {"name": "c", "images": ["reg.example.com/c/*"], "anyOf": ["nobody"]}]
    document["exemptions"] = [{"images": ["reg.example.com/z"], "reason": "short", "expires": "2030-01-01T00:00:00Z"}]
    # When it is validated
    result = run_cli("policy", "validate", str(write_policy(tmp_path, document)))
    # Then every problem is reported, each at its field
    assert result.code == 2
    paths = [line.split(": ")[0].strip() for line in result.err.splitlines()[1:]]
    assert paths == ["failureMode", "colour", "trustedSigners[0].cosignKey.publicKeyPem",
                     "trustedSigners[1].cosignKey.kmsKeyArn", "rules[1].images[0]", "rules[2].anyOf[0]",
                     "exemptions[0].reason"]
    assert result.err.splitlines()[0].endswith("invalid, 7 errors")


@pytest.mark.parametrize("mutate", [
    lambda d: d["rules"][0].update(anyOf=["ci", "ci"]),
    lambda d: d["trustedSigners"].append({"name": "ci", "cosignKey": {"kmsKeyArn": "arn:aws:kms:us-east-1:111111111111:key/a"}}),
    lambda d: d["rules"].append({"name": "twin", "images": ["reg.example.com/**"], "anyOf": ["ci"]}),
    lambda d: d.pop("rules"),
    lambda d: d.update(version="2"),
    lambda d: d["trustedSigners"][0].update(cosignKey={"kmsKeyArn": "arn:aws:kms:us-east-1:111111111111:key/a"},
                                            awsSigner={}),
])
def test_validate_always_reports_the_loaders_own_error(tmp_path, mutate):
    # Given a document the loader refuses (checks within a part and across parts)
    document = cosign_policy({"ci": {"publicKeyPem": KeyPair.generate().public_pem}}, images="reg.example.com/**")
    mutate(document)
    with pytest.raises(PolicyError) as loader:
        Policy.from_json(document)
    # When validate reports the file, then the loader's error is among its errors, path and message
    result = run_cli("policy", "validate", "--json", str(write_policy(tmp_path, document)))
    assert result.code == 2
    assert {"path": loader.value.path, "message": loader.value.message} in json.loads(result.out)["files"][0]["errors"]


def test_validate_reports_no_error_for_a_policy_the_loader_accepts(tmp_path):
    # Given an audit-level Notation signer, which the loader allows only under failureMode audit
    chain = pki.code_signing_chain()
    document = {"version": "1", "failureMode": "audit",
                "trustedSigners": [{"name": "acme", "notationX509": {
                    "rootCertificates": [chain.root.pem], "trustedIdentities": ["x509.subject: C=US, ST=WA, O=Acme"],
                    "verificationLevel": "audit"}}],
                "rules": [{"name": "all", "images": ["reg.example.com/**"], "anyOf": ["acme"]}]}
    Policy.from_json(document)
    # When / Then validate agrees with the loader (no error invented by judging parts alone)
    result = run_cli("policy", "validate", str(write_policy(tmp_path, document)))
    assert result.code == 0, result.err
    # and shows the policy's load-time warnings
    assert "warning: trustedSigners[0].notationX509.verificationLevel" in result.err


def test_validate_json_prints_one_object_with_error_and_exit_code(tmp_path):
    good = EXAMPLES / "policy.json"
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    result = run_cli("policy", "validate", "--json", str(good), str(bad))
    report = json.loads(result.out)
    assert result.code == report["exitCode"] == 2
    assert report["error"] == "1 of 2 policy file(s) invalid"
    assert [f["valid"] for f in report["files"]] == [True, False]
    assert "not valid JSON" in report["files"][1]["errors"][0]["message"]


# -- key and certificate files -------------------------------------------------------------------
def test_loads_keys_and_certificates_from_files_relative_to_the_policy(tmp_path):
    # Given a cosign key file and a bundle file with two roots, in a folder beside the policy
    key, chain, other = KeyPair.generate(), pki.code_signing_chain(), pki.code_signing_chain(role_prefix="other ")
    (tmp_path / "trust").mkdir()
    (tmp_path / "trust" / "ci.pub").write_text(key.public_pem)
    (tmp_path / "trust" / "roots.pem").write_text(chain.root.pem + other.root.pem)
    document = cosign_policy({"ci": {"publicKeyPemFile": "trust/ci.pub"}}, images="reg.example.com/**")
    document["trustedSigners"].append({"name": "acme", "notationX509": {
        "rootCertificateFiles": ["trust/roots.pem"], "trustedIdentities": ["x509.subject: C=US, ST=WA, O=Acme"]}})
    # When the policy is loaded from its file
    policy = load_policy_file(write_policy(tmp_path, document))
    # Then the model holds the inline PEM, exactly as if it had been pasted
    assert policy.signer("ci").trust.public_key_pem.strip() == key.public_pem.strip()
    assert len(policy.signer("acme").trust.root_certificates) == 2


@pytest.mark.parametrize(("body", "files", "expected"), [
    ({"publicKeyPemFile": "missing.pub"}, {}, "cannot read 'missing.pub'"),
    ({"publicKeyPemFile": "ci.key"}, {"ci.key": KeyPair.generate().private_pem.decode()},
     "holds PRIVATE KEY where a PUBLIC KEY was expected"),
    ({"publicKeyPemFile": "ci.der"}, {"ci.der": KeyPair.generate().public_der}, "is not PEM text"),
    ({"publicKeyPemFile": "empty.pub"}, {"empty.pub": ""}, "holds no '-----BEGIN PUBLIC KEY-----' block"),
    ({"publicKeyPemFile": "two.pub"}, {"two.pub": KeyPair.generate().public_pem + KeyPair.generate().public_pem},
     "holds 2 PUBLIC KEY blocks"),
    ({"publicKeyPemFile": "ci.pub", "publicKeyPem": "x"}, {"ci.pub": KeyPair.generate().public_pem},
     "give one of 'publicKeyPem' or 'publicKeyPemFile'"),
    ({"publicKeyPemFile": 7}, {}, "expected a file path"),
])
def test_rejects_key_file_naming_the_field_when_the_file_is_missing_or_not_a_pem_public_key(tmp_path, body, files, expected):
    for name, content in files.items():
        (tmp_path / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    policy = write_policy(tmp_path, cosign_policy({"ci": body}, images="reg.example.com/**"))
    with pytest.raises(PolicyError, match=expected) as caught:
        load_policy_file(policy)
    assert caught.value.path == "trustedSigners[0].cosignKey.publicKeyPemFile"


def test_rejects_certificate_file_naming_the_list_item_when_it_holds_a_key(tmp_path):
    (tmp_path / "root.pem").write_text(KeyPair.generate().public_pem)
    document = cosign_policy({"ci": {"kmsKeyArn": "arn:aws:kms:us-east-1:111111111111:key/a"}}, images="reg.example.com/**")
    document["trustedSigners"].append({"name": "ecr", "awsSigner": {
        "signingProfileArns": ["arn:aws:signer:us-east-1:111111111111:/signing-profiles/release"],
        "customRootCertificateFiles": [str(EXAMPLES / "certs" / "aws-signer-notation-root.pem"), "root.pem"]}})
    result = run_cli("policy", "validate", str(write_policy(tmp_path, document)))
    assert result.code == 2
    assert "trustedSigners[1].awsSigner.customRootCertificateFiles[1]: 'root.pem' holds PUBLIC KEY" in result.err


def test_verify_reads_the_public_key_file_of_the_policy(registry, tmp_path, key, key_file):
    # Given an image signed through the real registry, and a policy in another folder naming the key file
    image = push_image(registry, unique_repository(), "v1")
    assert sign(registry.host, key_file, f"{image.ref.name}@{image.digest}").code == 0
    (tmp_path / "policies").mkdir()
    (tmp_path / "ci.pub").write_text(key.public_pem)
    policy = write_policy(tmp_path / "policies", cosign_policy({"ci": {"publicKeyPemFile": "../ci.pub"}},
                                                                images=f"{registry.host}/**"))
    # When / Then it verifies
    result = verify(registry.host, policy, str(image.ref))
    assert result.code == 0, result
    assert result.verdicts[0]["outcome"] == "verified"


# -- policy init ---------------------------------------------------------------------------------
def test_init_with_a_public_key_writes_a_file_reference_that_validates(tmp_path):
    shutil.copy(EXAMPLES / "keys" / "break-glass.pub", tmp_path / "ci.pub")
    (tmp_path / "policies").mkdir()
    output = tmp_path / "policies" / "policy.json"
    result = run_cli("policy", "init", "--registry", "Registry.Example.com:5000", "--repository", "team/*",
                     "--public-key", str(tmp_path / "ci.pub"), "--output", str(output))
    assert result.code == 0, result.err
    document = json.loads(output.read_text())
    assert document["trustedSigners"][0]["cosignKey"] == {"publicKeyPemFile": "../ci.pub"}
    assert document["rules"][0]["images"] == ["registry.example.com:5000/team/*"]
    assert "every other image is rejected" in result.err
    assert run_cli("policy", "validate", str(output)).code == 0


def test_init_with_a_kms_key_prints_the_policy_to_stdout():
    arn = "arn:aws:kms:us-east-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    result = run_cli("policy", "init", "--registry", "111111111111.dkr.ecr.us-east-1.amazonaws.com", "--kms-key", arn)
    assert result.code == 0, result.err
    Policy.from_json(result.out)
    assert json.loads(result.out)["trustedSigners"][0]["cosignKey"] == {"kmsKeyArn": arn}


@pytest.mark.parametrize(("argv", "expected"), [
    (["--registry", "https://reg.example.com", "--kms-key", "arn:aws:kms:us-east-1:111111111111:key/a"],
     "must be a host[:port] only"),
    (["--registry", "reg.example.com", "--kms-key", "alias/ci"], "kmsKeyArn: 'alias/ci' is not valid"),
    (["--registry", "reg.example.com", "--public-key", "/nonexistent/ci.pub"], "cannot read a PEM public key"),
    (["--registry", "reg.example.com", "--repository", "team:latest", "--kms-key",
      "arn:aws:kms:us-east-1:111111111111:key/a"], "must not contain a tag or digest"),
])
def test_rejects_init_with_exit_2_when_an_argument_is_invalid(argv, expected):
    result = run_cli("policy", "init", *argv)
    assert result.code == 2
    assert expected in result.err
    assert result.out == ""


def test_rejects_init_when_the_output_exists_unless_forced(tmp_path):
    output = tmp_path / "policy.json"
    output.write_text("keep me")
    argv = ["policy", "init", "--registry", "reg.example.com", "--kms-key",
            "arn:aws:kms:us-east-1:111111111111:key/a", "--output", str(output)]
    refused = run_cli(*argv)
    assert refused.code == 2 and "pass --force" in refused.err
    assert output.read_text() == "keep me"
    assert run_cli(*argv, "--force").code == 0
    assert run_cli("policy", "validate", str(output)).code == 0
