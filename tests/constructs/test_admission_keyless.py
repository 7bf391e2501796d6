"""AdmissionController(keyless_signers=[KeylessIdentity(...)]): cosign keyless identities in the policy.

A user-style app (a team that signs in GitHub Actions with cosign keyless) trusts its release
workflow against a trusted_root.json made by a local Sigstore (tests/support/sigstore_material.py).
The synthesized policy holds the `cosignKeyless` signer with the root inline; bad identities fail
where they are written; the app is clean under cdk-nag and cfn-lint; the reviewer's report names the
identity; and the policy in the synthesized asset admits an image signed keyless with that
material, pushed to the real test registry.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Stack, Token
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_ecs as ecs

from constructs_lib import CosignSigningKey, KeylessIdentity
from constructs_lib.admission import AdmissionController
from image_verifier.cosign.payload import SimpleSigningPayload
from image_verifier.policy import CosignKeylessTrust
from image_verifier.review import build_report
from tests.constructs.checks import ENV_A, as_list, lint_errors, nag_findings, new_app, new_stack, resources
from tests.e2e.cli_helpers import verify
from tests.review.report_helpers import NOW, row_with, sections
from tests.support.cosign_material import in_toto_statement, push_bundle_referrer
from tests.support.images import push_image, unique_repository
from tests.support.sigstore_material import (
    GITHUB_ISSUER,
    WORKFLOW,
    LocalSigstore,
    push_keyless_sig,
    sign_bundle,
    sign_legacy,
)

RELEASE_REF = r"https://github\.com/acme/app/\.github/workflows/release\.yml@refs/heads/main"


@pytest.fixture(scope="module")
def sigstore() -> LocalSigstore:
    return LocalSigstore()


@pytest.fixture(scope="module")
def root_file(tmp_path_factory: pytest.TempPathFactory, sigstore: LocalSigstore) -> Path:
    """Sigstore's trusted_root.json as a user keeps it beside the app."""
    path = tmp_path_factory.mktemp("sigstore") / "trusted_root.json"
    path.write_text(json.dumps(sigstore.trusted_root(), indent=2))
    return path


def release_identity(root: str | Path, **changes: Any) -> KeylessIdentity:
    props: dict[str, Any] = {"name": "release", "issuer": GITHUB_ISSUER, "subject_regexp": RELEASE_REF,
                             "trusted_root": root}
    props.update(changes)
    return KeylessIdentity(**props)


class KeylessApp:
    """One account's app: an ECR repository, the release workflow's keyless identity, a protected service.

    The test registry's images are covered too, so that the policy this app synthesizes can be run
    against real signatures (an ECR pattern cannot be served here).
    """

    def __init__(self, *, outdir: str, root: Path, registry_host: str) -> None:
        self.app = App(outdir=outdir, analytics_reporting=False)
        self.stack = Stack(self.app, "Payments", env=ENV_A)
        self.repository = ecr.Repository(self.stack, "Api", repository_name="payments/api")
        self.controller = AdmissionController(
            self.stack, "Admission", keyless_signers=[release_identity(root)], repositories=[self.repository],
            image_patterns=[f"{registry_host}/**"])
        cluster = ecs.Cluster(self.stack, "Cluster")
        task = ecs.FargateTaskDefinition(self.stack, "Task")
        task.add_container("api", image=ecs.ContainerImage.from_ecr_repository(self.repository, tag="1.0"))
        self.service = ecs.FargateService(self.stack, "Service", cluster=cluster, task_definition=task,
                                          deployment_strategy=ecs.DeploymentStrategy.BLUE_GREEN)
        self.controller.protect(self.service)


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory: pytest.TempPathFactory, root_file: Path, registry):
    outdir = tmp_path_factory.mktemp("cdk.out")
    user = KeylessApp(outdir=str(outdir), root=root_file, registry_host=registry.host)
    assembly = user.app.synth()
    template = assembly.get_stack_by_name(user.stack.stack_name).template
    [function] = [f for k, f in resources(template, "AWS::Lambda::Function").items() if k.startswith("Admission")]
    asset = outdir / f"asset.{function['Properties']['Code']['S3Key'].removesuffix('.zip')}"
    return user, assembly, template, outdir, asset / "admission_policy.json"


@pytest.fixture
def deployed_environment(synthesized, monkeypatch: pytest.MonkeyPatch) -> None:
    """The function's deploy-time variables (the repository's URI is a token at synth), as stand-ins."""
    user = synthesized[0]
    for name, value in user.controller.policy.placeholders.items():
        monkeypatch.setenv(name, value)


# --- the policy ----------------------------------------------------------------------------------------

def test_policy_holds_the_keyless_signer_with_the_trusted_root_inline(synthesized, sigstore):
    # Given the policy file in the synthesized Lambda asset
    user, _, _, _, policy_file = synthesized
    document = json.loads(policy_file.read_text())
    # Then it is the controller's document, and the signer is the identity with its root inline
    assert document == user.controller.policy.document
    [signer] = document["trustedSigners"]
    assert signer == {"name": "release", "cosignKeyless": {
        "issuer": GITHUB_ISSUER, "subjectRegExp": RELEASE_REF, "ignoreSct": False,
        "trustedRoot": sigstore.trusted_root()}}
    # And no file is referenced: the asset is all the Lambda reads
    assert "trustedRootFile" not in policy_file.read_text()
    # And the runtime's loader read it as a keyless trust
    trust = user.controller.policy.policy.signer("release").trust
    assert isinstance(trust, CosignKeylessTrust) and trust.subject_regexp == RELEASE_REF


def test_rule_accepts_keyless_identities_beside_cosign_keys_any_of(root_file):
    # Given a controller trusting a cosign key and two identities, one given as JSON text
    stack = new_stack(new_app())
    key = CosignSigningKey(stack, "CiKey", alias="alias/payments/cosign")
    nightly = release_identity(root_file.read_text(), name="nightly", subject_regexp=None,
                               subject="https://github.com/acme/app/.github/workflows/nightly.yml@refs/heads/main")
    controller = AdmissionController(stack, "Admission", signing_keys=[key], image_patterns=["registry.local/app"],
                                     keyless_signers=[release_identity(root_file), nightly])
    # Then the one rule takes any of the three, and both identities carry the same inlined root
    [rule] = controller.policy.document["rules"]
    assert rule["anyOf"] == ["CiKey", "release", "nightly"]
    signers = {s["name"]: s for s in controller.policy.document["trustedSigners"]}
    assert signers["release"]["cosignKeyless"]["trustedRoot"] == signers["nightly"]["cosignKeyless"]["trustedRoot"]
    assert controller.keyless_signers == (release_identity(root_file), nightly)


def test_role_gets_no_permission_for_keyless_identities(synthesized):
    # Given the admission role of a controller that trusts only a keyless identity
    _, _, template, _, _ = synthesized
    [policy] = [p for k, p in resources(template, "AWS::IAM::Policy").items() if k.startswith("AdmissionRoleDefault")]
    actions = {a for s in policy["Properties"]["PolicyDocument"]["Statement"] for a in as_list(s["Action"])}
    # Then it reads the registry, ECS and writes logs, and calls nothing else: nothing is fetched from Sigstore
    assert not {a for a in actions if not a.startswith(("ecr:", "ecs:", "logs:"))}, actions


def test_controller_with_keyless_identities_is_clean_under_cdk_nag_and_cfn_lint(synthesized):
    # Given the synthesized app (its own cluster and task are the user's business, not the controller's)
    user, _, template, _, _ = synthesized
    ours = [f for f in nag_findings(user.app) if any(p in f for p in ("/Admission", "HookRole", "RevisionAccess"))]
    # Then
    assert ours == []
    assert lint_errors(template) == []


def test_review_report_names_the_keyless_identity_and_its_issuer(synthesized):
    # Given the reviewer's report on the synthesized app
    _, _, _, outdir, _ = synthesized
    report = sections(build_report(outdir, now=NOW))
    # Then the policy's signer row names the identity (a pattern, marked ~) and the issuer
    row = row_with(report["Admission policies"], "| release |")
    assert "cosignKeyless" in row and f"`~ {RELEASE_REF}` from `{GITHUB_ISSUER}`" in row


# --- bad props -------------------------------------------------------------------------------------------

def test_rejects_identity_when_both_subject_and_subject_regexp_are_given(root_file):
    with pytest.raises(ValueError, match=r"keyless identity 'release': give exactly one of subject or subject_regexp, "
                                         r"got both \(subject='https://github.com/acme/app"):
        release_identity(root_file, subject=WORKFLOW)


def test_rejects_identity_when_neither_subject_nor_subject_regexp_is_given(root_file):
    with pytest.raises(ValueError, match=r"give exactly one of subject or subject_regexp, got neither .*e\.g\. "
                                         r"subject='https://github\.com/ORG/REPO/"):
        release_identity(root_file, subject_regexp=None)


def test_rejects_identity_when_neither_issuer_nor_issuer_regexp_is_given(root_file):
    with pytest.raises(ValueError, match=r"give exactly one of issuer or issuer_regexp, got neither"):
        release_identity(root_file, issuer=None)


def test_rejects_identity_when_the_subject_regexp_is_invalid(root_file):
    with pytest.raises(ValueError, match=r"keyless identity 'release': subject_regexp 'https://github\.com/\(acme' is "
                                         r"not a valid regular expression \(missing \), unterminated subpattern"):
        release_identity(root_file, subject_regexp="https://github.com/(acme")


def test_rejects_identity_when_the_trusted_root_is_not_json(tmp_path):
    # Given a file that is not JSON (a PEM certificate saved under the wrong name)
    path = tmp_path / "trusted_root.json"
    path.write_text("-----BEGIN CERTIFICATE-----\n")
    with pytest.raises(ValueError, match=rf"keyless identity 'release': trusted_root '{path}' is not valid JSON: "
                                         r".*pass the path of Sigstore's trusted_root\.json"):
        release_identity(path)


def test_rejects_identity_when_the_trusted_root_text_is_not_json():
    with pytest.raises(ValueError, match=r"trusted_root \(JSON text\) is not valid JSON"):
        release_identity('{"mediaType": ')


def test_rejects_identity_when_the_trusted_root_file_does_not_exist(tmp_path):
    with pytest.raises(ValueError, match=r"cannot read trusted_root '.*missing\.json' \(No such file or directory"):
        release_identity(tmp_path / "missing.json")


def test_rejects_identity_when_the_trusted_root_lacks_certificate_authorities(sigstore):
    # Given a root without any Fulcio CA
    root = {**sigstore.trusted_root(), "certificateAuthorities": []}
    with pytest.raises(ValueError, match=r"trusted_root \(JSON text\) is not a usable Sigstore trusted root "
                                         r"\(certificateAuthorities: the trusted root must list at least one entry"):
        release_identity(json.dumps(root))


def test_rejects_identity_when_the_trusted_root_has_no_ct_logs_unless_sct_is_ignored(sigstore):
    # Given a private Fulcio's root without CT logs
    root = json.dumps(sigstore.trusted_root(ctlogs=False))
    with pytest.raises(ValueError, match=r"lists no ctlogs, .* or set ignore_sct=True for a private Fulcio without CT"):
        release_identity(root)
    # When the user says so, it is accepted and the policy says it too
    assert release_identity(root, ignore_sct=True).to_json()["ignoreSct"] is True


def test_rejects_identity_when_the_subject_is_a_token(root_file):
    # Given a subject only known at deploy time
    subject = Token.as_string({"Ref": "ReleaseWorkflow"})
    with pytest.raises(ValueError, match=r"keyless identity 'release': subject is a token .*give the identity as "
                                         r"literal text, so that it is in the synthesized policy for review"):
        release_identity(root_file, subject_regexp=None, subject=subject)


def test_rejects_controller_when_a_keyless_signer_is_not_a_keyless_identity(root_file):
    stack = new_stack(new_app())
    with pytest.raises(ValueError, match=r"keyless_signers takes KeylessIdentity values, got \{'name': 'release'"):
        AdmissionController(stack, "Admission", keyless_signers=[{"name": "release", "subject": WORKFLOW}],
                            image_patterns=["registry.local/app"])


def test_rejects_controller_when_a_keyless_identity_takes_a_cosign_keys_name(root_file):
    stack = new_stack(new_app())
    key = CosignSigningKey(stack, "release", alias="alias/payments/cosign")
    with pytest.raises(ValueError, match=r"keyless identity name 'release' is already the name of another trusted "
                                         r"signer of Stack/Admission; give the identity another name"):
        AdmissionController(stack, "Admission", signing_keys=[key], keyless_signers=[release_identity(root_file)],
                            image_patterns=["registry.local/app"])


# --- the synthesized policy against real signatures --------------------------------------------------------

def _simple_signing(image) -> bytes:
    return SimpleSigningPayload(docker_reference=image.ref.name, manifest_digest=image.digest).to_bytes()


def test_synthesized_policy_admits_an_image_signed_keyless_by_the_release_workflow(synthesized, sigstore, registry,
                                                                                   deployed_environment):
    # Given an image in the real registry signed keyless (cosign v2 .sig layer) by the release workflow
    _, _, _, _, policy_file = synthesized
    image = push_image(registry, unique_repository(), "v1")
    push_keyless_sig(registry, image, [(sign_legacy(sigstore, _simple_signing(image)), sigstore)])
    # When the policy from the synthesized asset verifies it
    result = verify(registry.host, policy_file, str(image.tag_ref))
    # Then it is admitted by the keyless signer, with the workflow identity in the verdict
    assert result.code == 0, result
    [verdict] = result.verdicts
    assert verdict["outcome"] == "verified" and verdict["digest"] == image.digest
    [match] = verdict["signers"]
    assert match["kind"] == "cosignKeyless" and match["identity"] == f"{WORKFLOW} (issuer {GITHUB_ISSUER})"


def test_synthesized_policy_admits_a_v3_bundle_and_rejects_another_workflows_signature(synthesized, sigstore,
                                                                                        registry, deployed_environment):
    # Given one image with a cosign v3 bundle by the release workflow and one signed by a pull-request workflow
    _, _, _, _, policy_file = synthesized
    bundled = push_image(registry, unique_repository(), "v1", layer_bytes=b"bundled")
    push_bundle_referrer(registry, bundled, sign_bundle(sigstore, in_toto_statement(bundled.digest)).bundle())
    other = push_image(registry, unique_repository(), "v1", layer_bytes=b"pull request")
    pull_request = "https://github.com/acme/app/.github/workflows/pr.yml@refs/pull/9/merge"
    push_keyless_sig(registry, other, [(sign_legacy(sigstore, _simple_signing(other), subject=pull_request), sigstore)])
    # When the synthesized policy verifies both
    result = verify(registry.host, policy_file, str(bundled.ref), str(other.ref))
    # Then the bundle is admitted and the other workflow's signature is not
    outcomes = {v["digest"]: v for v in result.verdicts}
    assert outcomes[bundled.digest]["outcome"] == "verified", result
    assert outcomes[bundled.digest]["signers"][0]["format"] == "cosign-bundle"
    assert outcomes[other.digest]["outcome"] == "rejected" and result.code == 1
    assert "pr.yml@refs/pull/9/merge" in outcomes[other.digest]["reasons"][0]
