"""Issue 14 item 2: `policy import-notation` converts a notation trust policy and trust store, or refuses.

The trust policies below are the Notary Project documentation's examples (trust-store-trust-policy.md:
the single global statement, the four-statement ACME Rockets / Wabbit Networks policy; the blob
policy of the blob-signing spec; the AWS Signer user guide's policy), written here as test data.
Their trust stores are real certificates made by the tests. "Round trip": the converted policy
loads, writes back to itself through `to_json`, carries each statement's meaning (scopes, level,
override, stores, identities), and a real signature through the real registry is judged as
notation would judge it.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.x509.oid import NameOID

from image_verifier.cli import main
from image_verifier.cosign.keys import CosignKeyResolver
from image_verifier.deadline import Deadline
from image_verifier.notation.awssigner import default_root_pems
from image_verifier.notation_import import NotationImportError, import_notation
from image_verifier.oci import Descriptor
from image_verifier.policy import AwsSignerTrust, NotationX509Trust, Policy
from image_verifier.verdict import Outcome
from image_verifier.verifier import ImageRequest, ImageVerifier
from tests.support import pki
from tests.support.images import push_image
from tests.support.notation_vectors import PROFILE_ARN
from tests.support.notation_vectors import sign as notation_sign
from tests.runtime.test_all_of_distinct import push_notation_signature

ACME_ID = "x509.subject: C=US, ST=WA, L=Seattle, O=acme-rockets.io, OU=Finance, CN=SecureBuilder"
WABBIT_ID = "x509.subject: C=US, ST=WA, L=Seattle, O=wabbit-networks.io, OU=Security Tools"
WABBIT = pki.code_signing_chain("p256", role_prefix="wabbit-", leaf_subject=pki.name(
    "Wabbit Release", organization="wabbit-networks.io",
    extra=[(NameOID.LOCALITY_NAME, "Seattle"), (NameOID.ORGANIZATIONAL_UNIT_NAME, "Security Tools")]))
ACME = pki.code_signing_chain("p256", role_prefix="acme-")
ACME_CA2 = pki.code_signing_chain("p256", role_prefix="acme-ca2-")

SINGLE_GLOBAL = {"version": "1.0", "trustPolicies": [{
    "name": "wabbit-networks-images", "registryScopes": ["*"], "signatureVerification": {"level": "audit"},
    "trustStores": ["ca:acme-rockets"], "trustedIdentities": [ACME_ID]}]}

FOUR_STATEMENTS = {"version": "1.0", "trustPolicies": [
    {"name": "wabbit-networks-images",
     "registryScopes": ["registry.acme-rockets.io/software/net-monitor", "registry.acme-rockets.io/software/net-logger"],
     "signatureVerification": {"level": "strict"}, "trustStores": ["ca:wabbit-networks"],
     "trustedIdentities": [WABBIT_ID]},
    {"name": "unsigned-image", "registryScopes": ["registry.wabbit-networks.io/software/unsigned/net-utils"],
     "signatureVerification": {"level": "skip"}},
    {"name": "use-expired-image", "registryScopes": ["registry.acme-rockets.io/software/legacy/metrics"],
     "signatureVerification": {"level": "strict", "override": {"expiry": "log", "revocation": "skip"}},
     "trustStores": ["ca:acme-rockets"], "trustedIdentities": ["*"]},
    {"name": "global-policy-for-all-other-images", "registryScopes": ["*"], "signatureVerification": {"level": "audit"},
     "trustStores": ["ca:acme-rockets", "ca:acme-rockets-ca2"], "trustedIdentities": [ACME_ID]},
]}

BLOB = {"version": "1.0", "trustPolicies": [
    {"name": "wabbit-networks-policy", "signatureVerification": {"level": "strict"},
     "trustStores": ["ca:wabbit-networks"], "trustedIdentities": [WABBIT_ID]},
    {"name": "skip-verification-policy", "signatureVerification": {"level": "skip"}},
    {"name": "global-verification-policy", "globalPolicy": True, "signatureVerification": {"level": "audit"},
     "trustStores": ["ca:acme-rockets"], "trustedIdentities": ["*"]},
]}

AWS_SIGNER = {"version": "1.0", "trustPolicies": [{
    "name": "aws-signer-tp", "registryScopes": ["*"], "signatureVerification": {"level": "strict"},
    "trustStores": ["signingAuthority:aws-signer-ts"], "trustedIdentities": [PROFILE_ARN]}]}


@pytest.fixture
def truststore(tmp_path: Path) -> Path:
    """The documentation's trust store: ca/acme-rockets (PEM), ca/acme-rockets-ca2 (DER .crt),
    ca/wabbit-networks (.cer with two PEM roots), signingAuthority/aws-signer-ts (the real AWS root)."""
    root = tmp_path / "truststore"
    _store(root, "ca", "acme-rockets", {"cert1.pem": ACME.root.pem.encode()})
    _store(root, "ca", "acme-rockets-ca2", {"cert4.crt": ACME_CA2.root.der})
    _store(root, "ca", "wabbit-networks", {"cert5.cer": (WABBIT.root.pem + pki.tsa_chain().root.pem).encode()})
    aws_root = default_root_pems((PROFILE_ARN,), custom_root_certificates=())[0]
    _store(root, "signingAuthority", "aws-signer-ts", {"aws-signer-notation-root.crt": aws_root.encode()})
    return root


def _store(root: Path, kind: str, name: str, files: dict[str, bytes]) -> Path:
    directory = root / "x509" / kind / name
    directory.mkdir(parents=True)
    for file_name, data in files.items():
        (directory / file_name).write_bytes(data)
    return directory


def _round_trip(trust_policy: dict[str, Any], truststore: Path, **options: Any) -> tuple[Policy, tuple[str, ...]]:
    result = import_notation(trust_policy, truststore, **options)
    policy = Policy.from_json(result.document)
    assert Policy.from_json(policy.to_json()) == policy
    return policy, result.notes


# --- the documentation's examples ---------------------------------------------------------------

def test_imports_the_single_global_audit_statement_when_failure_mode_is_audit(truststore: Path) -> None:
    # Given the spec's first example / When
    policy, _ = _round_trip(SINGLE_GLOBAL, truststore, failure_mode="audit")
    # Then one rule over every image, one signer at level audit on the acme root and identity
    [rule], [signer] = policy.rules, policy.trusted_signers
    assert [p.text for p in rule.images] == ["*/**"] and rule.any_of == ("wabbit-networks-images",)
    assert policy.rule_for("anything.example/team/app") is rule
    assert isinstance(signer.trust, NotationX509Trust)
    assert signer.trust.verification_level == "audit" and signer.trust.trusted_identities == (ACME_ID,)
    assert signer.trust.root_certificates == (ACME.root.pem,) and signer.trust.signing_scheme == "notary.x509"


def test_rejects_the_single_global_audit_statement_when_failure_mode_blocks(truststore: Path) -> None:
    with pytest.raises(NotationImportError, match="authenticity is only logged here .* Pass --failure-mode audit"
                       ) as caught:
        import_notation(SINGLE_GLOBAL, truststore)
    assert caught.value.path == "trustPolicies[0].signatureVerification"


def test_imports_the_four_statement_example_with_skip_as_an_expiring_exemption(truststore: Path) -> None:
    # Given the spec's second example
    until = "2027-01-31T00:00:00+00:00"
    # When
    policy, notes = _round_trip(FOUR_STATEMENTS, truststore, failure_mode="audit",
                                skip_until=datetime.fromisoformat(until))
    # Then exact scopes beat the global one, as notation's exact match beats '*'
    assert policy.rule_for("registry.acme-rockets.io/software/net-monitor").name == "wabbit-networks-images"
    assert policy.rule_for("registry.acme-rockets.io/software/legacy/metrics").name == "use-expired-image"
    assert policy.rule_for("registry.acme-rockets.io/software/other").name == "global-policy-for-all-other-images"
    # And the override is carried as it was written
    expired = policy.signer("use-expired-image").trust
    assert expired.override == {"expiry": "log", "revocation": "skip"} and expired.trusted_identities == ("*",)
    # And two ca stores become one signer's roots; the .cer's two roots (one DER file, one PEM bundle) are read
    assert set(policy.signer("global-policy-for-all-other-images").trust.root_certificates) == {
        ACME.root.pem, ACME_CA2.root.pem}
    assert len(policy.signer("wabbit-networks-images").trust.root_certificates) == 2
    # And skip is an exemption that ends
    [exemption] = policy.exemptions
    assert [p.text for p in exemption.images] == ["registry.wabbit-networks.io/software/unsigned/net-utils"]
    assert exemption.expires.isoformat() == until and "unsigned-image" in exemption.reason
    assert any("OCSP/CRL" in note for note in notes)


def test_rejects_skip_when_no_exemption_expiry_is_given(truststore: Path) -> None:
    with pytest.raises(NotationImportError, match="level 'skip' has no equivalent.*--skip-as-exemption-until") as caught:
        import_notation(FOUR_STATEMENTS, truststore, failure_mode="audit")
    assert caught.value.path == "trustPolicies[1].signatureVerification.level"


def test_imports_the_blob_policy_global_statement_as_the_rule_for_every_image(truststore: Path) -> None:
    policy, notes = _round_trip(BLOB, truststore, failure_mode="audit")
    assert [r.name for r in policy.rules] == ["global-verification-policy"]
    assert {s.name for s in policy.trusted_signers} == {"wabbit-networks-policy", "global-verification-policy"}
    assert any("chosen by name" in n and "wabbit-networks-policy" in n for n in notes)
    assert any("skip-verification-policy" in n and "nothing to import" in n for n in notes)


def test_imports_the_aws_signer_policy_as_an_aws_signer_with_the_pinned_root(truststore: Path) -> None:
    policy, _ = _round_trip(AWS_SIGNER, truststore)
    [signer] = policy.trusted_signers
    assert isinstance(signer.trust, AwsSignerTrust)
    assert signer.trust.signing_profile_arns == (PROFILE_ARN,) and len(signer.trust.root_certificates) == 1
    assert signer.trust.override == {} and signer.trust.revocation_check


def test_folds_a_permissive_aws_signer_level_into_override(truststore: Path) -> None:
    document = json.loads(json.dumps(AWS_SIGNER))
    document["trustPolicies"][0]["signatureVerification"] = {"level": "permissive", "override": {"revocation": "skip"}}
    policy, _ = _round_trip(document, truststore)
    assert policy.trusted_signers[0].trust.override == {
        "authenticTimestamp": "log", "expiry": "log", "revocation": "skip"}


def test_splits_a_statement_with_ca_and_signing_authority_stores_into_two_signers(truststore: Path) -> None:
    _store(truststore, "signingAuthority", "acme-sa", {"sa.pem": ACME_CA2.root.pem.encode()})
    document = {"version": "1.0", "trustPolicies": [{
        "name": "both", "registryScopes": ["registry.example/app"], "signatureVerification": {"level": "strict"},
        "trustStores": ["ca:acme-rockets", "signingAuthority:acme-sa"], "trustedIdentities": [ACME_ID]}]}
    policy, _ = _round_trip(document, truststore)
    assert policy.rules[0].any_of == ("both.ca", "both.signingAuthority")
    assert policy.signer("both.signingAuthority").trust.signing_scheme == "notary.x509.signingAuthority"


# --- refusals -----------------------------------------------------------------------------------

def _one(**statement: Any) -> dict[str, Any]:
    base = {"name": "s", "registryScopes": ["registry.example/app"], "signatureVerification": {"level": "strict"},
            "trustStores": ["ca:acme-rockets"], "trustedIdentities": [ACME_ID]}
    base.update(statement)
    return {"version": "1.0", "trustPolicies": [{k: v for k, v in base.items() if v is not None}]}


@pytest.mark.parametrize(("document", "path", "message"), [
    ({"version": "2.0", "trustPolicies": []}, "version", "unsupported trust policy version '2.0'"),
    (_one(signatureVerification={"level": "strict", "override": {"integrity": "log"}}),
     "trustPolicies[0].signatureVerification.override.integrity", "integrity can never be overridden"),
    (_one(signatureVerification={"level": "strict", "override": {"expiry": "skip"}}),
     "trustPolicies[0].signatureVerification.override.expiry", "expiry may be overridden to enforce or log"),
    (_one(signatureVerification={"level": "lenient"}), "trustPolicies[0].signatureVerification.level",
     "verification level must be one of strict, permissive, audit"),
    (_one(registryScopes=["registry.example/app:v1"]), "trustPolicies[0].registryScopes[0]", "names a tag"),
    (_one(registryScopes=["registry.example/team/*"]), "trustPolicies[0].registryScopes[0]", "no wildcard"),
    (_one(registryScopes=["*", "registry.example/app"]), "trustPolicies[0].registryScopes", "must be the only scope"),
    (_one(trustStores=["acme-rockets"]), "trustPolicies[0].trustStores[0]", "is not 'type:name'"),
    (_one(trustStores=["ca:missing"]), "trustPolicies[0].trustStores[0]", "is not a directory"),
    (_one(trustStores=["tsa:missing"]), "trustPolicies[0].trustStores[0]", "is not a directory"),
    (_one(trustedIdentities=["x509.subject: O=acme"]), "trustPolicies[0].trustedIdentities", "must contain C, ST and O"),
    (_one(trustedIdentities=["*", ACME_ID]), "trustPolicies[0].trustedIdentities", "'\\*' cannot be combined"),
    (_one(trustedIdentities=["custom.plugin:team-a"]), "trustPolicies[0].trustedIdentities",
     "verification plugin, which this verifier does not run"),
    (_one(trustedIdentities=[PROFILE_ARN, ACME_ID]), "trustPolicies[0].trustedIdentities", "mixed with other identities"),
    (_one(trustedIdentities=[PROFILE_ARN]), "trustPolicies[0].trustStores", "list exactly 'signingAuthority:' stores"),
    (_one(TrustStores=["ca:acme-rockets"]), "trustPolicies[0].TrustStores", "notation reads this key as 'trustStores'"),
    (_one(plugin="x"), "trustPolicies[0].plugin", "unknown field"),
    (_one(signatureVerification={"level": "skip"}, registryScopes=["*"], trustStores=None, trustedIdentities=None),
     "trustPolicies[0].signatureVerification.level", "skip' cannot apply to every artifact"),
])
def test_rejects_trust_policy_naming_the_field_when_it_cannot_be_expressed(truststore: Path, document: dict[str, Any],
                                                                          path: str, message: str) -> None:
    with pytest.raises(NotationImportError, match=message) as caught:
        import_notation(document, truststore)
    assert caught.value.path == path


def test_rejects_two_global_statements_and_a_scope_in_two_statements(truststore: Path) -> None:
    twice = _one()
    twice["trustPolicies"].append(dict(twice["trustPolicies"][0], name="t"))
    with pytest.raises(NotationImportError, match="also a scope of statement 's'"):
        import_notation(twice, truststore)
    for statement in twice["trustPolicies"]:
        statement["registryScopes"] = ["*"]
    with pytest.raises(NotationImportError, match="only one statement may have the global scope"):
        import_notation(twice, truststore)


def test_rejects_trust_store_when_a_certificate_file_is_a_symlink(truststore: Path) -> None:
    linked = truststore / "x509" / "ca" / "linked"
    linked.mkdir()
    (linked / "root.pem").symlink_to(truststore / "x509" / "ca" / "acme-rockets" / "cert1.pem")
    with pytest.raises(NotationImportError, match="is a symbolic link; the Notary Project spec requires"):
        import_notation(_one(trustStores=["ca:linked"]), truststore)


def test_rejects_trust_store_when_it_pins_an_intermediate_certificate(truststore: Path) -> None:
    _store(truststore, "ca", "pinned", {"int.pem": ACME.intermediates[0].pem.encode()})
    with pytest.raises(NotationImportError, match="is not a self-signed root.*this policy trusts only self-signed roots"):
        import_notation(_one(trustStores=["ca:pinned"]), truststore)


def test_rejects_trust_store_when_a_named_store_is_empty(truststore: Path) -> None:
    _store(truststore, "ca", "empty", {"README.txt": b"no certificates here"})
    with pytest.raises(NotationImportError, match="holds no certificate"):
        import_notation(_one(trustStores=["ca:empty"]), truststore)


# --- the command, and a real signature through the real registry --------------------------------

def test_cli_imports_the_four_statement_example_and_the_policy_admits_what_notation_admits(
        registry, registry_client, truststore: Path, tmp_path: Path) -> None:
    # Given the four-statement example, its scopes mapped to the test registry
    source = tmp_path / "trustpolicy.json"
    source.write_text(json.dumps(FOUR_STATEMENTS))
    output = tmp_path / "policy.json"
    out, err = _Capture(), _Capture()
    code = main(["policy", "import-notation", str(source), "--truststore", str(truststore), "--failure-mode", "audit",
                 "--registry-map", f"registry.acme-rockets.io={registry.host}",
                 "--skip-as-exemption-until", "2099-01-01T00:00:00Z", "-o", str(output)], stdout=out, stderr=err)
    assert code == 0, err.text
    assert "# trustPolicies[0] ('wabbit-networks-images'): notation checks OCSP/CRL" in err.text
    policy = Policy.from_json(output.read_text())

    # When net-monitor is signed by Wabbit Networks (strict: root and identity enforced), and again by ACME
    signed = push_image(registry, "software/net-monitor", "v1")
    push_notation_signature(registry, signed, WABBIT)
    stranger = push_image(registry, "software/net-logger", "v1")
    subject = Descriptor(media_type=stranger.media_type, digest=stranger.digest, size=stranger.size)
    push_notation_signature(registry, stranger, ACME, vector=notation_sign(subject, ACME))
    verifier = ImageVerifier(policy, registry=registry_client, cosign_keys=CosignKeyResolver())
    ok, bad = verifier.decide([ImageRequest(image=str(signed.ref)), ImageRequest(image=str(stranger.ref))],
                              deadline=Deadline.after(30)).verdicts

    # Then as notation would: the Wabbit signature verifies, ACME's does not satisfy the Wabbit statement
    assert ok.outcome is Outcome.VERIFIED and ok.rule == "wabbit-networks-images"
    assert bad.outcome is Outcome.REJECTED and "does not end in a trusted root" in " ".join(bad.reasons)


def test_cli_rejects_import_with_exit_2_naming_the_field(truststore: Path, tmp_path: Path) -> None:
    source = tmp_path / "trustpolicy.json"
    source.write_text(json.dumps(SINGLE_GLOBAL))
    out, err = _Capture(), _Capture()
    code = main(["policy", "import-notation", str(source), "--truststore", str(truststore)], stdout=out, stderr=err)
    assert code == 2
    assert f"cannot import {source}: trustPolicies[0].signatureVerification: authenticity is only logged" in err.text


class _Capture:
    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> int:
        self.text += text
        return len(text)

    def flush(self) -> None:
        pass
