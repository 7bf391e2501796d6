"""Start-up: a cosign-only `verify` imports only what a cosign policy needs (issue 13).

A fresh `python` process runs the real command against a real cosign-signed image in the real
registry, through a tiny wrapper that writes the names in `sys.modules` to a file when the process
exits. No Notation module, no asn1crypto and no botocore may be among them (a PEM-key cosign
policy needs no AWS SDK; KMS keys import it when they are resolved).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from image_verifier.cosign.sign import PemSigner, sign_image
from image_verifier.deadline import Deadline
from image_verifier.registry import RegistryClient
from image_verifier.oci import OCI_MANIFEST, Descriptor
from tests.support.cosign_material import KeyPair, add_to_referrers_tag, cosign_policy
from tests.support.images import empty_config, push_blob, push_image, push_manifest, sha256_digest, unique_repository
from tests.support.notation_vectors import NOTARY, sign, signature_manifest
from tests.support.pki import code_signing_chain

FORBIDDEN = ("image_verifier.notation", "asn1crypto", "botocore", "boto3")
SUBPROCESS_SECONDS = 60  # a fresh interpreter on a busy 2-core box; the command itself takes well under one

_WRAPPER = """\
import atexit, json, runpy, sys
out = sys.argv.pop(1)
atexit.register(lambda: open(out, "w").write(json.dumps(sorted(sys.modules))))
sys.argv[0] = "image_verifier"
runpy.run_module("image_verifier", run_name="__main__", alter_sys=True)
"""


def _run_and_list_modules(tmp_path: Path, *argv: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    wrapper, listing = tmp_path / "list_modules.py", tmp_path / "modules.json"
    wrapper.write_text(_WRAPPER)
    env = {**os.environ, "AWS_EC2_METADATA_DISABLED": "true"}
    done = subprocess.run([sys.executable, str(wrapper), str(listing), *argv], capture_output=True, text=True,
                          timeout=SUBPROCESS_SECONDS, env=env, cwd=tmp_path)
    return done, json.loads(listing.read_text())


def test_cosign_only_verify_never_imports_notation_asn1crypto_or_botocore(registry, tmp_path):
    # Given a cosign-signed image and a policy that trusts its PEM public key
    key = KeyPair.generate()
    image = push_image(registry, unique_repository("imports"), "v1")
    sign_image(RegistryClient(insecure_registries={registry.host}).bound(Deadline.after(30)), image.ref,
               PemSigner(key.private_pem))
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps(cosign_policy({"ci": {"publicKeyPem": key.public_pem}}, images=f"{registry.host}/**")))
    # When a fresh process verifies it
    done, modules = _run_and_list_modules(tmp_path, "verify", "--policy", str(policy), "--insecure-registry",
                                          registry.host, "--json", str(image.ref))
    # Then it is admitted, and none of the forbidden modules was ever imported
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert json.loads(done.stdout)["outcome"] == "verified"
    assert [m for m in modules if m.startswith(FORBIDDEN)] == []
    assert "image_verifier.verifier" in modules  # the listing is of the run that verified


def test_notation_verify_does_import_the_notation_stack(registry, tmp_path):
    # Given a Notation-signed image (a control: the wrapper sees modules imported lazily, late in the run)
    repo = unique_repository("imports")
    image = push_image(registry, repo, "v1")
    chain = code_signing_chain("p256")
    vector = sign(Descriptor(media_type=image.media_type, digest=image.digest, size=image.size), chain)
    push_blob(registry, repo, vector.envelope)
    push_blob(registry, repo, empty_config().data)
    manifest = signature_manifest(vector.envelope, vector.media_type, vector.subject, vector.chain)
    add_to_referrers_tag(registry, image, push_manifest(registry, repo, sha256_digest(manifest), manifest, OCI_MANIFEST),
                         artifact_type=NOTARY)
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"version": "1", "trustedSigners": [{"name": "corp", "notationX509": {
        "rootCertificates": [chain.root.pem], "trustedIdentities": ["x509.subject: C=US, ST=WA, O=Acme"]}}],
        "rules": [{"name": "signed", "images": [f"{registry.host}/**"], "anyOf": ["corp"]}]}))
    # When a fresh process verifies it
    done, modules = _run_and_list_modules(tmp_path, "verify", "--policy", str(policy), "--insecure-registry",
                                          registry.host, "--json", str(image.ref))
    # Then it is admitted, and the Notation verifier was imported to do it
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert "image_verifier.notation.verify" in modules
