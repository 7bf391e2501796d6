"""A user's own CDK app (not the reference app): the mistakes that used to synthesize and then roll back
every deployment are synth errors or warnings, and the right way synthesizes.

Each check has a good and a bad case: a Docker Hub sidecar, a ``from_asset`` image, a second ECR
repository not in the chain, an image only known at deploy time, an expired exemption.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import CfnParameter, Environment, Stack
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_ecs as ecs
from aws_cdk.assertions import Annotations, Match

from constructs_lib import SignedImageSupplyChain
from constructs_lib.admission import AdmissionController, AdmissionExemption
from tests.constructs.checks import ENV_A, new_app, resources, synth_error

FAR_FUTURE = datetime(2099, 1, 1, tzinfo=UTC)


class UserApp:
    """One account's app as the README builds it: a chain, a controller trusting it, a service."""

    def __init__(self, *, env: Environment = ENV_A, **controller_props: Any) -> None:
        self.app = new_app()
        self.stack = Stack(self.app, "Payments", env=env)
        self.chain = SignedImageSupplyChain(self.stack, "Images", repository_names=["payments/api"],
                                            cosign_key_alias="alias/payments/cosign")
        self.controller = AdmissionController(self.stack, "Admission", supply_chains=[self.chain], **controller_props)
        self.cluster = ecs.Cluster(self.stack, "Cluster")
        self.task = ecs.FargateTaskDefinition(self.stack, "Task")
        self.task.add_container("api", image=ecs.ContainerImage.from_ecr_repository(self.chain.repositories[0], tag="1.0"))

    def protect(self) -> ecs.FargateService:
        service = ecs.FargateService(self.stack, "Service", cluster=self.cluster, task_definition=self.task,
                                     deployment_strategy=ecs.DeploymentStrategy.BLUE_GREEN)
        self.controller.protect(service)
        return service


@pytest.fixture(scope="module")
def asset_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("image")
    (directory / "Dockerfile").write_text("FROM scratch\n")
    return directory


def test_synthesizes_a_service_whose_images_are_all_in_the_chain():
    # Given the main container from the chain's repository and a sidecar with an exemption
    user = UserApp(exemptions=[AdmissionExemption(images=["docker.io/library/nginx"], reason="proxy, ticket OPS-1",
                                                  expires=FAR_FUTURE)])
    user.task.add_container("proxy", image=ecs.ContainerImage.from_registry("nginx:1.25"))
    user.protect()
    # When / Then
    user.app.synth()


def test_rejects_service_at_synth_when_a_docker_hub_sidecar_is_not_covered():
    # Given a sidecar from Docker Hub and no rule or exemption for it
    user = UserApp()
    user.task.add_container("proxy", image=ecs.ContainerImage.from_registry("nginx:1.25"), essential=False)
    user.protect()
    # When
    message = synth_error(user.app)
    # Then the error names the container, the image and the fixes
    assert "container 'proxy' of ECS service Payments/Service runs nginx:1.25" in message
    assert "no rule or exemption matches docker.io/library/nginx" in message
    assert "image_patterns=['docker.io/library/nginx']" in message and "AdmissionExemption(images=" in message


def test_rejects_service_at_synth_when_an_init_container_from_asset_lands_in_the_bootstrap_repository(asset_dir):
    # Given an init container built from a local Dockerfile
    user = UserApp()
    user.task.add_container("migrate", image=ecs.ContainerImage.from_asset(str(asset_dir)), essential=False)
    user.protect()
    # When
    message = synth_error(user.app)
    # Then
    assert "container 'migrate' of ECS service Payments/Service runs 111111111111.dkr.ecr.us-east-1.amazonaws.com/" \
           "cdk-hnb659fds-container-assets-111111111111-us-east-1:" in message
    assert "ContainerImage.from_asset pushes to the CDK bootstrap repository" in message


def test_synthesizes_a_from_asset_image_when_the_bootstrap_repository_is_covered(asset_dir):
    bootstrap = "111111111111.dkr.ecr.us-east-1.amazonaws.com/cdk-hnb659fds-container-assets-111111111111-us-east-1"
    user = UserApp(image_patterns=[bootstrap])
    user.task.add_container("migrate", image=ecs.ContainerImage.from_asset(str(asset_dir)), essential=False)
    user.protect()
    user.app.synth()


def test_rejects_service_at_synth_when_a_second_ecr_repository_is_not_in_the_chain():
    # Given a repository of the same app that the controller does not cover
    user = UserApp()
    other = ecr.Repository(user.stack, "Worker", repository_name="payments/worker")
    user.task.add_container("worker", image=ecs.ContainerImage.from_ecr_repository(other, tag="2.0"))
    user.protect()
    # When
    message = synth_error(user.app)
    # Then
    assert "container 'worker' of ECS service Payments/Service runs an image of repository Payments/Worker" in message
    assert "add that repository to the controller's repositories (or supply_chains)" in message


def test_synthesizes_a_second_repository_when_the_controller_covers_it():
    app = new_app()
    stack = Stack(app, "Payments", env=ENV_A)
    chain = SignedImageSupplyChain(stack, "Images", repository_names=["payments/api"], cosign_key_alias="alias/p/cosign")
    other = ecr.Repository(stack, "Worker", repository_name="payments/worker")
    controller = AdmissionController(stack, "Admission", supply_chains=[chain], repositories=[other])
    task = ecs.FargateTaskDefinition(stack, "Task")
    task.add_container("worker", image=ecs.ContainerImage.from_ecr_repository(other, tag="2.0"))
    service = ecs.FargateService(stack, "Service", cluster=ecs.Cluster(stack, "Cluster"), task_definition=task,
                                 deployment_strategy=ecs.DeploymentStrategy.BLUE_GREEN)
    controller.protect(service)
    app.synth()


def test_warns_about_an_image_only_known_at_deploy_time():
    # Given an image whose name is a parameter
    user = UserApp()
    image = CfnParameter(user.stack, "SidecarImage", type="String")
    user.task.add_container("sidecar", image=ecs.ContainerImage.from_registry(image.value_as_string))
    user.protect()
    # When
    user.app.synth()
    # Then a warning names the container
    Annotations.from_stack(user.stack).has_warning("/Payments/Service", Match.string_like_regexp(
        "cannot check at synth that admission controller Payments/Admission covers the images of containers sidecar"))


def test_rejects_service_at_synth_when_its_only_exemption_has_expired():
    user = UserApp(exemptions=[AdmissionExemption(images=["docker.io/library/nginx"], reason="proxy, ticket OPS-1",
                                                  expires="2020-01-01T00:00:00Z")])
    user.task.add_container("proxy", image=ecs.ContainerImage.from_registry("nginx:1.25"))
    user.protect()
    assert "its exemption expired on 2020-01-01" in synth_error(user.app)


# -- accounts, regions, deployment controllers -----------------------------------------------------
SIGNING_ACCOUNT = Environment(account="222222222222", region="us-east-1")


def _cross_account_app():
    """The signing-account pattern: the chain in account 222222222222, the controller in 111111111111."""
    app = new_app()
    signing = Stack(app, "Signing", env=SIGNING_ACCOUNT)
    chain = SignedImageSupplyChain(signing, "Images", repository_names=["payments/api"],
                                   cosign_key_alias="alias/payments/cosign")
    deploy = Stack(app, "Deploy", env=ENV_A)
    controller = AdmissionController(deploy, "Admission", supply_chains=[chain])
    task = ecs.FargateTaskDefinition(deploy, "Task")
    task.add_container("api", image=ecs.ContainerImage.from_ecr_repository(chain.repositories[0], tag="1.0"))
    service = ecs.FargateService(deploy, "Service", cluster=ecs.Cluster(deploy, "Cluster"), task_definition=task,
                                 deployment_strategy=ecs.DeploymentStrategy.BLUE_GREEN)
    controller.protect(service)
    return app, signing, deploy


def _admission_account_statements(resource_policy: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in resource_policy["Statement"] if "111111111111" in json.dumps(s["Principal"])]


def test_wires_a_cross_account_chain_key_policy_and_repository_policy():
    # Given the chain in the signing account and the controller in the deploy account, in one app
    app, signing, _ = _cross_account_app()
    # When
    template = app.synth().get_stack_by_name(signing.stack_name).template
    # Then the key policy lets the admission account read the public key
    [key] = resources(template, "AWS::KMS::Key").values()
    [verify] = _admission_account_statements(key["Properties"]["KeyPolicy"])
    assert "kms:GetPublicKey" in verify["Action"]
    # and the repository policy lets it read images and signatures
    [repo] = resources(template, "AWS::ECR::Repository").values()
    [read] = [s for s in _admission_account_statements(repo["Properties"]["RepositoryPolicyText"])
              if s.get("Sid") == "ImageAdmissionReadsImages"]  # CDK adds the task execution role's pull beside it
    assert sorted(read["Action"]) == ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]


def test_same_account_key_policy_names_the_admission_account_and_no_repository_policy():
    # Given chain and controller in one account (the key policy does not delegate to IAM)
    user = UserApp()
    user.protect()
    template = user.app.synth().get_stack_by_name("Payments").template
    [key] = resources(template, "AWS::KMS::Key").values()
    assert [s["Sid"] for s in _admission_account_statements(key["Properties"]["KeyPolicy"])
            if "kms:GetPublicKey" in s["Action"]]
    [repo] = resources(template, "AWS::ECR::Repository").values()
    assert "RepositoryPolicyText" not in repo["Properties"]


def test_warns_with_the_statement_to_add_when_an_imported_key_is_in_another_account():
    from constructs_lib import CosignSigningKey

    app = new_app()
    stack = Stack(app, "Deploy", env=ENV_A)
    key = CosignSigningKey.from_key_arn(stack, "Key", "arn:aws:kms:us-east-1:222222222222:key/1234abcd-12ab-34cd-56ef-1234567890ab")
    AdmissionController(stack, "Admission", signing_keys=[key], image_patterns=["222222222222.dkr.ecr.us-east-1.amazonaws.com/x"])
    Annotations.from_stack(stack).has_warning("/Deploy/Admission", Match.string_like_regexp(
        r"signing key arn:aws:kms:us-east-1:222222222222:key/.* is imported from account 222222222222.*Add this "
        r"statement to the key policy: .*kms:GetPublicKey.*arn:aws:iam::111111111111:root"))


def test_rejects_protect_when_the_service_is_in_another_region():
    # Given a controller in us-east-1 and a service in eu-west-1
    user = UserApp()
    other = Stack(user.app, "Europe", env=Environment(account="111111111111", region="eu-west-1"))
    task = ecs.FargateTaskDefinition(other, "Task")
    task.add_container("api", image=ecs.ContainerImage.from_registry("nginx"))
    service = ecs.FargateService(other, "Service", cluster=ecs.Cluster(other, "Cluster"), task_definition=task,
                                 deployment_strategy=ecs.DeploymentStrategy.BLUE_GREEN)
    # When / Then (not CDK's raw CannotUseCrossEnvironment)
    with pytest.raises(ValueError, match="ECS service Europe/Service is in region eu-west-1 but admission controller "
                                         "Payments/Admission is in us-east-1.*create an AdmissionController in eu-west-1"):
        user.controller.protect(service)


def test_rejects_protect_when_the_service_uses_the_code_deploy_controller():
    user = UserApp()
    service = ecs.FargateService(
        user.stack, "Service", cluster=user.cluster, task_definition=user.task,
        deployment_controller=ecs.DeploymentController(type=ecs.DeploymentControllerType.CODE_DEPLOY))
    with pytest.raises(ValueError, match="uses the CODE_DEPLOY deployment controller; ECS runs deployment lifecycle "
                                         "hooks.*only under the ECS deployment controller"):
        user.controller.protect(service)


# -- quiet, reviewable synth ------------------------------------------------------------------------
def _synth_report():
    import importlib.util

    spec = importlib.util.spec_from_file_location("synth_report", Path(__file__).parents[2] / "scripts" / "synth_report.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules["synth_report"] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_synth_report_counts_acknowledgements_made_in_code_when_the_app_writes_none_to_the_template(tmp_path, capsys):
    # Given a user's app with cdk-nag but without write_suppressions_to_cloud_formation
    from aws_cdk import App, Validations
    from cdk_nag import AwsSolutionsChecks

    app = App(outdir=str(tmp_path), analytics_reporting=False)
    stack = Stack(app, "Payments", env=ENV_A)
    chain = SignedImageSupplyChain(stack, "Images", repository_names=["payments/api"], cosign_key_alias="alias/p/cosign")
    AdmissionController(stack, "Admission", supply_chains=[chain])
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    app.synth()
    # When the summary script judges the cloud assembly
    code = _synth_report().main(["synth_report.py", str(tmp_path)])
    # Then the package's own acknowledgements (read from the stack's metadata file) leave no finding
    out = capsys.readouterr().out
    assert "FINDING" not in out, out
    assert code == 0, out
    assert "acknowledged AwsSolutions-IAM5" in out


def test_importing_the_package_first_keeps_jsii_node_banners_out_of_a_users_synth(tmp_path):
    # Given a user's app script that imports this package, then aws_cdk, with no jsii variable set
    import os
    import subprocess

    script = tmp_path / "app.py"
    script.write_text("import constructs_lib\nfrom aws_cdk import App, Stack\nApp(analytics_reporting=False)\nprint('ok')\n")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("JSII_SILENCE_WARNING")}
    # When
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=environ, timeout=300,
                          cwd=Path(__file__).parents[2], stdin=subprocess.DEVNULL)
    # Then nothing but the app's own output
    assert done.returncode == 0, done.stderr
    assert done.stdout == "ok\n" and "!!" not in done.stderr, (done.stdout, done.stderr)
