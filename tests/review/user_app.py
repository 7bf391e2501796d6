"""A small user-style app for the report tests: its own named CI role, one protected and one unprotected service.

It is built the way a platform team would write it (plain aws-cdk-lib next to the constructs, no
SignedImageSupplyChain), so the report is shown to work beyond the reference app.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, App, Environment, Stack, Validations
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam

from constructs_lib import AdmissionExemption, CosignSigningKey
from constructs_lib.admission import AdmissionController

ENV = Environment(account="333333333333", region="eu-west-1")
GITHUB = "token.actions.githubusercontent.com"
ROLE_NAME = "payments-ci-signer"
SUB_PATTERN = "repo:acme/payments:ref:refs/tags/v*"
KEY_ALIAS = "alias/payments/cosign"
REPOSITORY = "payments/api"
EXEMPT_IMAGE = "public.ecr.aws/aws-observability/aws-otel-collector"
EXEMPTION_REASON = "OTEL sidecar until the vendor signs it, TICKET-42 (owner: platform team)"
EXEMPTION_EXPIRES = "2031-06-30T00:00:00Z"
ROLE_ACK_REASON = "ecr:GetAuthorizationToken has no resource-level permission (payments review 2026-11)"


def build_user_app(outdir: str) -> App:
    # The CDK CLI turns on asset metadata (aws:asset:path on the function); the reference app's
    # tests synthesize without it, so the two apps cover both ways of finding the policy's asset.
    app = App(outdir=outdir, analytics_reporting=False, context={"aws:cdk:enable-asset-metadata": True})
    stack = Stack(app, "PaymentsStack", env=ENV)
    provider = iam.OidcProviderNative(stack, "GitHubOidc", url=f"https://{GITHUB}", client_ids=["sts.amazonaws.com"])
    role = iam.Role(stack, "CiRole", role_name=ROLE_NAME, assumed_by=iam.WebIdentityPrincipal(
        provider.oidc_provider_arn,
        conditions={"StringEquals": {f"{GITHUB}:aud": "sts.amazonaws.com"},
                    "StringLike": {f"{GITHUB}:sub": SUB_PATTERN}}))
    repository = ecr.Repository(stack, "Api", repository_name=REPOSITORY)
    repository.grant_push(role)
    Validations.of(role).acknowledge(Acknowledgment(id="AwsSolutions-IAM5[Resource::*]", reason=ROLE_ACK_REASON))
    key = CosignSigningKey(stack, "PaymentsKey", alias=KEY_ALIAS, signers=[role])
    gate = AdmissionController(stack, "Gate", signing_keys=[key], repositories=[repository], exemptions=[
        AdmissionExemption(images=[EXEMPT_IMAGE], reason=EXEMPTION_REASON, expires=EXEMPTION_EXPIRES)])
    vpc = ec2.Vpc(stack, "Vpc", availability_zones=["eu-west-1a", "eu-west-1b"], nat_gateways=0, subnet_configuration=[
        ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24)])
    cluster = ecs.Cluster(stack, "Cluster", vpc=vpc)
    checkout = _service(stack, cluster, "Checkout", repository, ecs.DeploymentStrategy.BLUE_GREEN)
    gate.protect(checkout)
    _service(stack, cluster, "Reports", repository, None)  # deliberately left without the hook
    return app


def _service(stack: Stack, cluster: ecs.Cluster, id: str, repository: ecr.IRepository,
             strategy: ecs.DeploymentStrategy | None) -> ecs.FargateService:
    task = ecs.FargateTaskDefinition(stack, f"{id}Task", cpu=256, memory_limit_mib=512)
    task.add_container("app", image=ecs.ContainerImage.from_ecr_repository(repository, tag="2.0.0"))
    return ecs.FargateService(stack, id, cluster=cluster, task_definition=task, desired_count=1,
                              assign_public_ip=True, deployment_strategy=strategy)
