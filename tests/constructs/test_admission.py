"""AdmissionController: the policy it builds, its role, the hook wiring, the checks at synth."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import Aspects, CfnParameter, Environment
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_ecs as ecs
from aws_cdk.assertions import Match, Template
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from constructs_lib import BreakGlassSigningKey, CosignSigningKey, NotationSigningProfile
from constructs_lib.admission import AdmissionController, AdmissionExemption, AdmissionMode, RequireImageAdmission
from image_verifier.policy import Policy
from tests.constructs.checks import as_list, lint_errors, nag_findings, new_app, new_stack, resources, synth_error

ECR = "111111111111.dkr.ecr.us-east-1.amazonaws.com"


def _root_pem() -> str:
    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test Notation Root")])
    now = datetime.now(timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA384()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _service(stack, id: str, cluster, *, strategy=ecs.DeploymentStrategy.BLUE_GREEN) -> ecs.FargateService:
    task = ecs.FargateTaskDefinition(stack, f"{id}Task", runtime_platform=ecs.RuntimePlatform(
        cpu_architecture=ecs.CpuArchitecture.ARM64, operating_system_family=ecs.OperatingSystemFamily.LINUX))
    task.add_container("app", image=ecs.ContainerImage.from_registry(f"{ECR}/team/app:v1"))
    return ecs.FargateService(stack, id, cluster=cluster, task_definition=task, deployment_strategy=strategy)


def _world(**controller_props: Any):
    """A stack with a key, a break-glass key (imported, deploy-time ARN), a profile, a repository and a cluster."""
    app = new_app()
    stack = new_stack(app)
    key = CosignSigningKey(stack, "CosignKey", alias="alias/team/cosign")
    glass_arn = CfnParameter(stack, "BreakGlassKeyArn", type="String")
    glass = BreakGlassSigningKey.from_key_attributes(stack, "BreakGlassKey", key_arn=glass_arn.value_as_string)
    profile = NotationSigningProfile(stack, "Profile", signing_profile_name="team_images")
    repo = ecr.Repository(stack, "Repo", repository_name="team/app")
    vpc = ec2.Vpc(stack, "Vpc", max_azs=2, nat_gateways=0, subnet_configuration=[
        ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC)])
    cluster = ecs.Cluster(stack, "Cluster", vpc=vpc)
    props: dict[str, Any] = dict(
        signing_keys=[key, glass], signing_profiles=[profile], custom_root_certificates=[_root_pem()],
        repositories=[repo], image_patterns=[f"{ECR}/team/**", "public.ecr.aws/aws-observability/*"],
        exemptions=[AdmissionExemption(images=["public.ecr.aws/aws-observability/*"],
                                       reason="ADOT collector sidecar, ticket SEC-7",
                                       expires=datetime(2099, 1, 1, tzinfo=timezone.utc))],
    )
    props.update(controller_props)
    controller = AdmissionController(stack, "Admission", **props)
    return app, stack, controller, cluster


@pytest.fixture(scope="module")
def synthesized():
    app, stack, controller, cluster = _world()
    service = _service(stack, "Service", cluster)
    controller.protect(service)
    post = _service(stack, "Worker", cluster)
    controller.protect(post, stages=[ecs.DeploymentLifecycleStage.PRE_SCALE_UP,
                                     ecs.DeploymentLifecycleStage.POST_SCALE_UP])
    Aspects.of(stack).add(RequireImageAdmission())
    assembly = app.synth()
    artifact = assembly.get_stack_by_name(stack.stack_name)
    return app, controller, artifact.template, Path(assembly.directory)


def _admission_policy(template: dict) -> dict:
    [policy] = [p for k, p in resources(template, "AWS::IAM::Policy").items() if k.startswith("AdmissionRoleDefaultPolicy")]
    return policy["Properties"]["PolicyDocument"]


def _function(template: dict) -> dict:
    [function] = [f for k, f in resources(template, "AWS::Lambda::Function").items() if k.startswith("Admission")]
    return function["Properties"]


# --- the role --------------------------------------------------------------------------------------

def test_role_has_no_wildcard_action_and_wildcard_resources_only_where_aws_offers_nothing_narrower(synthesized):
    # Given the admission role's statements, and the revision access in the services' scope
    _, _, template, _ = synthesized
    statements = _admission_policy(template)["Statement"]
    for policy in resources(template, "AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            # Then no action anywhere is a wildcard
            assert not any("*" in a for a in as_list(statement["Action"])), statement
    # And "*" is the resource of exactly the two actions without resource-level permissions
    star = sorted(a for s in statements if "*" in as_list(s["Resource"]) for a in as_list(s["Action"]))
    assert star == ["ecr:GetAuthorizationToken", "ecs:DescribeTaskDefinition"]
    assert all(as_list(s["Resource"]) == ["*"] for s in statements if "*" in as_list(s["Resource"]))


def test_role_reads_only_the_repositories_keys_and_profiles_of_the_policy(synthesized):
    _, _, template, _ = synthesized
    by_sid = {s.get("Sid"): s for s in _admission_policy(template)["Statement"]}
    reads = by_sid["ReadImagesAndSignatures"]
    assert sorted(as_list(reads["Action"])) == ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
    assert {"Fn::GetAtt": [_logical(template, "AWS::ECR::Repository"), "Arn"]} in reads["Resource"]
    assert "arn:aws:ecr:us-east-1:111111111111:repository/team/*" in reads["Resource"]
    assert len(reads["Resource"]) == 2  # public.ecr.aws needs no IAM
    keys = by_sid["CosignPublicKeys"]
    assert keys["Action"] == "kms:GetPublicKey"
    assert keys["Resource"] == [{"Fn::GetAtt": [_logical(template, "AWS::KMS::Key"), "Arn"]}, {"Ref": "BreakGlassKeyArn"}]
    revocation = by_sid["SignerRevocation"]
    assert revocation["Action"] == "signer:GetRevocationStatus"
    rendered = json.dumps(revocation["Resource"])
    assert "/signing-jobs/*" in rendered and "/*" in rendered and len(revocation["Resource"]) == 3


def test_role_may_describe_only_the_revisions_of_the_protected_clusters(synthesized):
    _, _, template, _ = synthesized
    access = [p for k, p in resources(template, "AWS::IAM::Policy").items() if "RevisionAccess" in k]
    assert len(access) == 2
    for policy in access:
        [statement] = policy["Properties"]["PolicyDocument"]["Statement"]
        assert statement["Action"] == "ecs:DescribeServiceRevisions"
        assert ":service-revision/" in json.dumps(statement["Resource"])
        assert policy["Properties"]["Roles"] == [{"Ref": _logical(template, "AWS::IAM::Role", "AdmissionRole")}]


def test_role_needs_no_revocation_permission_without_signing_profiles():
    app, stack, controller, _ = _world(signing_profiles=(), custom_root_certificates=())
    template = app.synth().get_stack_by_name(stack.stack_name).template
    assert "signer:GetRevocationStatus" not in json.dumps(template)


# --- the function and its policy --------------------------------------------------------------------

def test_function_runs_the_handler_on_a_current_python_on_arm64_with_a_log_group(synthesized):
    _, _, template, _ = synthesized
    function = _function(template)
    assert function["Runtime"] == "python3.14"
    assert function["Architectures"] == ["arm64"]
    assert function["Handler"] == "image_verifier.handler.app.lambda_handler"
    assert function["Timeout"] == 60
    [log_group] = resources(template, "AWS::Logs::LogGroup").values()
    assert log_group["Properties"]["RetentionInDays"] == 365
    assert log_group["DeletionPolicy"] == "Retain"


def test_policy_holds_no_token_and_deploy_time_values_travel_as_environment_variables(synthesized):
    # Given the policy document the controller built and the function's environment
    _, controller, template, _ = synthesized
    document = controller.policy.document
    variables = _function(template)["Environment"]["Variables"]
    text = json.dumps(document)
    # Then no unresolved token is in the document
    assert "${Token[" not in text
    # And each fromEnv reference is a variable whose value CloudFormation fills in
    references = re.findall(r'"fromEnv": "([A-Z0-9_]+)"', text)
    assert sorted(references) == sorted(controller.policy.environment)
    assert variables["ADMISSION_KMS_KEY_0"] == {"Fn::GetAtt": [_logical(template, "AWS::KMS::Key"), "Arn"]}
    assert variables["ADMISSION_KMS_KEY_1"] == {"Ref": "BreakGlassKeyArn"}
    assert variables["ADMISSION_POLICY_FILE"] == "admission_policy.json"
    # And the runtime's own parser accepts it with deploy-time values in place
    policy = Policy.from_json(document, environ=controller.policy.placeholders)
    assert [s.name for s in policy.trusted_signers] == ["CosignKey", "BreakGlassKey", "aws-signer"]
    assert [s.break_glass for s in policy.trusted_signers] == [False, True, False]
    assert policy.exemptions[0].reason.endswith("SEC-7")


def test_policy_file_in_the_asset_is_the_document(synthesized):
    _, controller, template, outdir = synthesized
    asset = outdir / f"asset.{_function(template)['Code']['S3Key'].removesuffix('.zip')}"
    assert json.loads((asset / "admission_policy.json").read_text()) == controller.policy.document


def test_rejects_policy_at_synth_when_an_exemption_has_no_reason():
    with pytest.raises(ValueError, match=r"the admission policy is invalid: exemptions\[0\]\.reason"):
        _world(exemptions=[AdmissionExemption(images=[f"{ECR}/x"], reason="tbd", expires="2099-01-01T00:00:00Z")])


def test_trusts_signing_profiles_with_the_shipped_roots_when_no_root_certificate_is_given():
    # Given / When a profile and no certificate argument
    _, _, controller, _ = _world(custom_root_certificates=())

    # Then the awsSigner signer names no root: the verifier uses the shipped, pinned one
    [aws] = [s for s in controller.policy.document["trustedSigners"] if "awsSigner" in s]
    assert "rootCertificates" not in aws["awsSigner"] and "customRootCertificates" not in aws["awsSigner"]
    assert controller.policy.policy.signer(aws["name"]).trust.signing_profile_arns


def test_rejects_signing_profiles_when_the_profile_is_in_aws_cn_and_no_root_is_given():
    app = new_app()
    stack = new_stack(app, env=Environment(account="111111111111", region="cn-north-1"))
    profile = NotationSigningProfile(stack, "Profile", signing_profile_name="team_images")
    repo = ecr.Repository(stack, "Repo", repository_name="team/app")
    with pytest.raises(ValueError, match="partition aws-cn.*no AWS Signer root certificate is shipped"):
        AdmissionController(stack, "Admission", signing_profiles=[profile], repositories=[repo])


def test_rejects_timeout_when_too_short_to_decide():
    from aws_cdk import Duration

    with pytest.raises(ValueError, match="timeout must be between 15 and 900 seconds, got 5"):
        _world(timeout=Duration.seconds(5))


def test_rejects_ecr_pattern_when_the_account_is_a_wildcard():
    with pytest.raises(ValueError, match="names an ECR registry with a wildcard"):
        _world(image_patterns=["*.dkr.ecr.us-east-1.amazonaws.com/team/**"])


def test_places_the_function_in_a_vpc_with_reserved_concurrency_when_asked():
    app = new_app()
    stack = new_stack(app)
    vpc = ec2.Vpc(stack, "Vpc", max_azs=2, nat_gateways=1)
    AdmissionController(stack, "Admission", signing_keys=[CosignSigningKey(stack, "Key", alias="alias/k")],
                        image_patterns=[f"{ECR}/team/*"], vpc=vpc, reserved_concurrent_executions=5)
    template = Template.from_stack(stack)
    template.has_resource_properties("AWS::Lambda::Function", {
        "ReservedConcurrentExecutions": 5,
        "VpcConfig": {"SubnetIds": Match.any_value(), "SecurityGroupIds": Match.any_value()}})
    assert [f for f in nag_findings(app) if "/Admission" in f] == []


# --- the hook ---------------------------------------------------------------------------------------

def test_protect_attaches_a_pre_scale_up_hook_with_a_role_that_may_invoke_only_this_function(synthesized):
    _, _, template, _ = synthesized
    function_id = _logical(template, "AWS::Lambda::Function", "Admission")
    service_id = _logical(template, "AWS::ECS::Service", "Service")
    service = template["Resources"][service_id]
    [hook] = service["Properties"]["DeploymentConfiguration"]["LifecycleHooks"]
    assert hook["HookTargetArn"] == {"Fn::GetAtt": [function_id, "Arn"]}
    assert hook["LifecycleStages"] == ["PRE_SCALE_UP"]
    role_id = hook["RoleArn"]["Fn::GetAtt"][0]
    role = template["Resources"][role_id]["Properties"]
    [trust] = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "ecs.amazonaws.com"}
    # Only ECS acting for this account may assume it (confused deputy; issue 9)
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": "111111111111"}}
    [policy] = [p for p in resources(template, "AWS::IAM::Policy").values()
                if p["Properties"]["Roles"] == [{"Ref": role_id}]]
    assert policy["Properties"]["PolicyDocument"]["Statement"] == [
        {"Action": "lambda:InvokeFunction", "Effect": "Allow", "Resource": {"Fn::GetAtt": [function_id, "Arn"]}}]
    # The service waits for the function's permission to describe its revisions
    assert any("RevisionAccess" in d for d in as_list(service["DependsOn"]))
    assert service["Properties"]["DeploymentConfiguration"]["Strategy"] == "BLUE_GREEN"


def test_protect_adds_post_scale_up_when_asked(synthesized):
    _, _, template, _ = synthesized
    worker = template["Resources"][_logical(template, "AWS::ECS::Service", "Worker")]
    [hook] = worker["Properties"]["DeploymentConfiguration"]["LifecycleHooks"]
    assert hook["LifecycleStages"] == ["PRE_SCALE_UP", "POST_SCALE_UP"]


@pytest.mark.parametrize(("stages", "message"), [
    ([ecs.DeploymentLifecycleStage.POST_SCALE_UP], "stages must include PRE_SCALE_UP"),
    ([ecs.DeploymentLifecycleStage.PRE_SCALE_UP, ecs.DeploymentLifecycleStage.TEST_TRAFFIC_SHIFT], "is not supported"),
])
def test_rejects_protect_when_stages_are_wrong(stages, message):
    _, stack, controller, cluster = _world()
    with pytest.raises(ValueError, match=message):
        controller.protect(_service(stack, "Service", cluster), stages=stages)


def test_rejects_protect_when_the_service_is_already_protected():
    _, stack, controller, cluster = _world()
    service = _service(stack, "Service", cluster)
    controller.protect(service)
    with pytest.raises(ValueError, match="already protected"):
        controller.protect(service)


def test_rejects_synth_when_a_protected_service_deploys_rolling():
    app, stack, controller, cluster = _world()
    controller.protect(_service(stack, "Service", cluster, strategy=None))
    message = synth_error(app)
    assert "protected by an image admission hook but deploys with ROLLING" in message
    assert "deployment_strategy=ecs.DeploymentStrategy.BLUE_GREEN" in message


# --- the aspect -------------------------------------------------------------------------------------

def test_rejects_synth_listing_every_unprotected_service():
    # Given one protected and two unprotected services under the aspect
    app, stack, controller, cluster = _world()
    controller.protect(_service(stack, "Api", cluster))
    _service(stack, "Batch", cluster)
    _service(stack, "Cron", cluster)
    Aspects.of(stack).add(RequireImageAdmission())
    # When / Then synth fails naming exactly the two offenders
    message = synth_error(app)
    assert "Stack/Batch is not protected" in message and "Stack/Cron is not protected" in message
    assert "Stack/Api is not protected" not in message


def test_aspect_bound_to_one_controller_ignores_another():
    app, stack, controller, cluster = _world()
    other = AdmissionController(stack, "Other", signing_keys=[CosignSigningKey(stack, "K2", alias="alias/k2")],
                                image_patterns=[f"{ECR}/other/*"], failure_mode=AdmissionMode.AUDIT)
    other.protect(_service(stack, "Api", cluster))
    Aspects.of(stack).add(RequireImageAdmission(controller=controller))
    assert "Stack/Api is not protected by Stack/Admission" in synth_error(app)


# --- reviewers' tools --------------------------------------------------------------------------------

def test_controller_and_hooks_are_clean_under_cdk_nag_and_cfn_lint(synthesized):
    app, _, template, _ = synthesized
    ours = [f for f in nag_findings(app) if any(p in f for p in ("/Admission", "HookRole", "RevisionAccess"))]
    assert ours == []
    assert lint_errors(template) == []


def _logical(template: dict, type_: str, prefix: str = "") -> str:
    [logical] = [k for k in resources(template, type_) if k.startswith(prefix)]
    return logical


def test_protects_a_service_in_another_stack_without_a_dependency_cycle():
    # Given the controller in one stack and the service in another (same environment)
    app, stack, controller, _ = _world()
    services = new_stack(app, "Services")
    vpc = ec2.Vpc(services, "Vpc", max_azs=2, nat_gateways=0, subnet_configuration=[
        ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC)])
    service = _service(services, "Api", ecs.Cluster(services, "Cluster", vpc=vpc))
    # When it is protected
    controller.protect(service)
    assembly = app.synth()
    # Then the services stack depends on the controller's stack, never the other way round
    template = assembly.get_stack_by_name("Services").template
    assert "Fn::ImportValue" in json.dumps(template["Resources"][_logical(template, "AWS::ECS::Service")])
    assert [d.id for d in assembly.get_stack_by_name(stack.stack_name).dependencies if d.id != "Stack.assets"] == []
    assert "Stack" in [d.id for d in assembly.get_stack_by_name("Services").dependencies]


def test_trusts_a_supply_chain_profile_key_and_repositories_in_one_prop():
    # Given a chain with managed signing and a cosign key
    from constructs_lib import SignedImageSupplyChain

    app = new_app()
    stack = new_stack(app)
    chain = SignedImageSupplyChain(stack, "Images", repository_names=["team/app", "team/worker"],
                                   cosign_key_alias="alias/team/cosign")
    # When
    controller = AdmissionController(stack, "Admission", supply_chains=[chain], signing_keys=[chain.cosign_key])
    # Then one cosign signer (given twice, counted once), one AWS Signer signer with no certificate, both repositories
    policy = controller.policy.policy
    assert sorted(s.kind.value for s in policy.trusted_signers) == ["awsSigner", "cosignKey"]
    assert len(policy.rules[0].images) == 2
    template = Template.from_stack(stack)
    template.has_resource_properties("AWS::IAM::Policy", {"PolicyDocument": {"Statement": Match.array_with([
        Match.object_like({"Sid": "CosignPublicKeys"}), Match.object_like({"Sid": "SignerRevocation"})])}})


def test_warns_at_synth_when_an_exemption_has_already_expired():
    from aws_cdk.assertions import Annotations

    _, stack, _, _ = _world(exemptions=[AdmissionExemption(images=["public.ecr.aws/aws-observability/*"],
                                                           reason="ADOT collector sidecar, ticket SEC-7",
                                                           expires="2020-01-01T00:00:00Z")])
    Annotations.from_stack(stack).has_warning("/Stack/Admission", Match.string_like_regexp(
        r"the exemption for public.ecr.aws/aws-observability/\* \(ADOT collector sidecar, ticket SEC-7\) expired on "
        r"2020-01-01.*admits nothing"))
