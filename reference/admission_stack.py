"""The reference app's deploy side: a Fargate service that only runs signed images.

The product's main path: the signing stack's repositories are signed on push by ECR managed
signing (its signing rules name an AWS Signer profile) and by cosign in CI (the GitHub Actions and
CodeBuild roles push, and so sign). The admission controller trusts that supply chain in one
prop, ``supply_chains=[chain]``: its AWS Signer profile (the AWS Signer root ships with the
package, pinned by fingerprint, so nothing is downloaded), its cosign key, and its repositories.
It also trusts the retired cosign key (old signatures still verify) and the break-glass key,
whose ARN is a deploy-time parameter: it lives in another account, and CloudFormation cannot
reference across accounts.
"""

from __future__ import annotations

from aws_cdk import (
    Acknowledgment,
    App,
    Aspects,
    CfnParameter,
    CrossStackReferences,
    Environment,
    Fn,
    ReferenceStrength,
    Stack,
    Validations,
)
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from constructs import Construct

from constructs_lib import AdmissionAlarms, AdmissionDashboard, BreakGlassSigningKey, PushAudit, TaskAudit
from constructs_lib.admission import AdmissionController, RequireImageAdmission

from .stacks import SIGNING_ENV, SigningStack

KMS_KEY_ARN_PATTERN = r"arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[a-zA-Z0-9-]+"


class AdmissionStack(Stack):
    """A BLUE_GREEN Fargate service protected by the image admission hook."""

    def __init__(self, scope: Construct, id: str, *, signing: SigningStack, env: Environment = SIGNING_ENV) -> None:
        super().__init__(scope, id, env=env,
                         description="Deploy side: a Fargate service behind the image admission lifecycle hook")
        # Strong (exports): the signing stack must not remove a key or repository this policy still trusts.
        CrossStackReferences.of(self).consume(ReferenceStrength.STRONG)
        chain = signing.chain
        break_glass_arn = CfnParameter(
            self, "BreakGlassKeyArn", type="String", allowed_pattern=KMS_KEY_ARN_PATTERN,
            description="ARN of the break-glass key (output BreakGlassKeyArn of the break-glass account's stack)")
        break_glass = BreakGlassSigningKey.from_key_attributes(self, "BreakGlassKey",
                                                               key_arn=break_glass_arn.value_as_string)
        # The gate's alarms and the audits' alarms go to the operators' topic (docs/operations.md).
        operators = sns.Topic(self, "GateAlarms", enforce_ssl=True)
        # The three statements that protect a service (the README shows them):
        self.admission = AdmissionController(
            self, "Admission",
            supply_chains=[chain],  # its AWS Signer profile (ECR managed signing), cosign key and repositories
            signing_keys=[signing.retired_key, break_glass],
            alarms=AdmissionAlarms(topic=operators),
        )
        self.service = self._sample_service(chain.repositories[0])
        self.admission.protect(self.service)
        AdmissionDashboard(self, "GateDashboard", controller=self.admission)
        # What the hook cannot see: pushes that stay unsigned, and tasks started outside a protected
        # deployment (RunTask, schedules), stopped when their images fail the policy.
        PushAudit(self, "PushAudit", controller=self.admission, alarm_topic=operators)
        TaskAudit(self, "TaskAudit", controller=self.admission, alarm_topic=operators, stop_unverified_tasks=True)
        Aspects.of(self).add(RequireImageAdmission())

    @property
    def availability_zones(self) -> list[str]:
        # The region's first two zones, chosen at deploy time: a stack with an account would otherwise
        # look them up at synth, and synth must stay offline.
        return [Fn.select(0, Fn.get_azs()), Fn.select(1, Fn.get_azs())]

    def _sample_service(self, repository) -> ecs.FargateService:
        vpc = ec2.Vpc(self, "Vpc", max_azs=2, nat_gateways=0, subnet_configuration=[
            ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24)])
        vpc.add_flow_log("FlowLog")
        cluster = ecs.Cluster(self, "Cluster", vpc=vpc, container_insights_v2=ecs.ContainerInsights.ENABLED)
        task = ecs.FargateTaskDefinition(self, "Task", cpu=256, memory_limit_mib=512, runtime_platform=ecs.RuntimePlatform(
            cpu_architecture=ecs.CpuArchitecture.ARM64, operating_system_family=ecs.OperatingSystemFamily.LINUX))
        task.add_container("app", image=ecs.ContainerImage.from_ecr_repository(repository, tag="1.0.0"),
                           logging=ecs.LogDrivers.aws_logs(stream_prefix="app", log_group=logs.LogGroup(
                               self, "AppLogs", retention=logs.RetentionDays.ONE_MONTH)))
        Validations.of(task.execution_role).acknowledge(Acknowledgment(
            id="AwsSolutions-IAM5[Resource::*]",
            reason="The execution role's ecr:GetAuthorizationToken has no resource-level permission; "
                   "image pulls are scoped to the repository by CDK.",
        ))
        return ecs.FargateService(
            self, "Service", cluster=cluster, task_definition=task, desired_count=1,
            assign_public_ip=True,  # public subnets without NAT: the task pulls from ECR over the internet
            min_healthy_percent=100,
            deployment_strategy=ecs.DeploymentStrategy.BLUE_GREEN,  # Lambda hooks are documented for blue/green
            circuit_breaker=ecs.DeploymentCircuitBreaker(rollback=True),
        )


def add_admission_stack(app: App, id: str = "SignedImagesAdmission") -> AdmissionStack:
    """Add the admission stack next to the app's SigningStack (app.py calls this)."""
    [signing] = [c for c in app.node.children if isinstance(c, SigningStack)]
    return AdmissionStack(app, id, signing=signing)
