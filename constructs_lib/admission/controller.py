"""`AdmissionController`: the verifier as an ECS deployment lifecycle hook.

    controller = AdmissionController(stack, "Admission", supply_chains=[chain])  # its profile, key, repositories
    controller.protect(service)                          # PRE_SCALE_UP hook on a BLUE_GREEN service
    Aspects.of(stack).add(RequireImageAdmission())       # synth fails for any service left unprotected
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from collections.abc import Sequence

from aws_cdk import Annotations, Duration, RemovalPolicy, Stack, Token
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from image_verifier.policy import Policy

from .._bundling import RuntimeBundler
from .._grants import acknowledge_wildcard_resource
from ..operations.alarms import AdmissionAlarms, GateAlarms
from ..operations.metrics import AdmissionMetrics
from ..operations.tracing import acknowledge_tracing, tracing_environment, tracing_mode
from ..signing_key import ISigningKey
from ..signing_profile import ISigningProfile
from ..supply_chain import SignedImageSupplyChain
from . import _defaults
from .._nag import acknowledge_wildcards
from ._permissions import LAMBDA_INVOKE_ACTIONS, base_statements, ecr_repository_arn, revision_arn, revision_statement
from .._tree import add_validation, same_value
from ._access import grant_resource_access
from ._coverage import Coverage, check_service
from ._policy import AdmissionExemption, PolicyBuilder
from .keyless import KeylessIdentity
from ._strategy_check import METADATA_KEY
from ._strategy_check import register as register_strategy_check
from .trust_lock import register_trust_lock

ALLOWED_STAGES = (ecs.DeploymentLifecycleStage.PRE_SCALE_UP, ecs.DeploymentLifecycleStage.POST_SCALE_UP)
_ARCHITECTURE_NAMES = {"arm64": "arm64", "x86_64": "x86_64"}


class AdmissionMode(enum.Enum):
    """What a rejected (failure_mode) or unavailable (unavailable_mode) verdict does."""

    BLOCK = "block"
    """The deployment is rolled back."""
    AUDIT = "audit"
    """The deployment goes ahead; the verdict is logged and counted."""


class AdmissionController(AdmissionMetrics, Construct):
    """A Lambda that admits an ECS service revision only when every image is signed by a trusted signer.

    The policy is built here from construct references and validated at synth by the runtime's
    own parser. The function's role can read only what the policy names (see ``_permissions``).
    Attach it to services with :meth:`protect`; add :class:`RequireImageAdmission` to make
    forgetting that a synth error.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        supply_chains: Sequence[SignedImageSupplyChain] = (),
        signing_keys: Sequence[ISigningKey] = (),
        signing_profiles: Sequence[ISigningProfile] = (),
        aws_signer_root_certificates: Sequence[str] = (),
        custom_root_certificates: Sequence[str] = (),
        revocation_check: bool = True,
        keyless_signers: Sequence[KeylessIdentity] = (),
        repositories: Sequence[ecr.IRepository] = (),
        image_patterns: Sequence[str] = (),
        exemptions: Sequence[AdmissionExemption] = (),
        failure_mode: AdmissionMode = AdmissionMode.BLOCK,
        unavailable_mode: AdmissionMode = AdmissionMode.BLOCK,
        runtime: lambda_.Runtime | None = None,
        architecture: lambda_.Architecture | None = None,
        memory_size: int = _defaults.MEMORY_MB,
        timeout: Duration | None = None,
        reserved_concurrent_executions: int | None = None,
        vpc: ec2.IVpc | None = None,
        vpc_subnets: ec2.SubnetSelection | None = None,
        security_groups: Sequence[ec2.ISecurityGroup] = (),
        log_retention: logs.RetentionDays = _defaults.LOG_RETENTION,
        log_removal_policy: RemovalPolicy = _defaults.LOG_REMOVAL_POLICY,
        max_attempts: int = _defaults.MAX_ATTEMPTS,
        callback_delay: Duration | None = None,
        alarms: AdmissionAlarms | None = None,
        tracing: bool = False,
    ) -> None:
        """
        :param supply_chains: trust each chain's signing profile and cosign key, and cover its
            repositories (the one-line form of the three props below). :default: - none
        :param signing_keys: cosign KMS keys whose signatures admit an image (break-glass keys are
            flagged in the audit record; retired keys still verify). :default: - none
        :param signing_profiles: AWS Signer profiles (ECR managed signing). The AWS Signer roots of
            the ``aws`` and ``aws-us-gov`` partitions ship with the package, pinned by fingerprint, so
            nothing needs downloading. :default: - none
        :param aws_signer_root_certificates: override the shipped AWS Signer roots (each must be one
            of the pinned roots). :default: - the shipped root of each profile's partition
        :param custom_root_certificates: further roots for the profiles' signatures (tests, aws-cn).
            :default: - none
        :param revocation_check: call ``signer:GetRevocationStatus`` for Notation signatures. :default: True
        :param keyless_signers: CI identities whose cosign keyless signatures admit an image, each verified
            offline against its own Sigstore trusted root (inlined into the policy at synth; no permission
            and no network beyond the registry). :default: - none
        :param repositories: ECR repositories whose images the policy covers. :default: - none
        :param image_patterns: further image patterns (``registry/repository`` globs). :default: - none
        :param exemptions: images admitted unsigned until a date, with a reason. :default: - none
        :param failure_mode: :default: AdmissionMode.BLOCK
        :param unavailable_mode: :default: AdmissionMode.BLOCK
        :param runtime: a Python runtime. :default: Runtime.PYTHON_3_14
        :param architecture: :default: Architecture.ARM_64
        :param memory_size: :default: 512
        :param timeout: :default: 60 seconds; decisions end 5 seconds before it
        :param reserved_concurrent_executions: :default: - unreserved
        :param vpc: place the function in this VPC (it must reach ECR, KMS, ECS and Signer). :default: - no VPC
        :param vpc_subnets: :default: - private subnets with egress
        :param security_groups: :default: - one created by Lambda
        :param log_retention: :default: RetentionDays.ONE_YEAR
        :param log_removal_policy: :default: RemovalPolicy.RETAIN (the audit trail)
        :param max_attempts: invocations per hook before an unavailable verdict is final. :default: 3
        :param callback_delay: seconds ECS waits before calling again after IN_PROGRESS. :default: 30 seconds
        :param alarms: alarms on the gate, to the caller's SNS topic (constructs_lib.operations). :default: - none
        :param tracing: X-Ray tracing (Tracing.ACTIVE, POWERTOOLS_TRACE_DISABLED=false). :default: False
        """
        super().__init__(scope, id)
        if not isinstance(failure_mode, AdmissionMode) or not isinstance(unavailable_mode, AdmissionMode):
            raise ValueError(f"failure_mode and unavailable_mode must be AdmissionMode values, got "
                             f"{failure_mode!r} and {unavailable_mode!r}")
        signing_keys, signing_profiles, repositories = _with_chains(supply_chains, signing_keys, signing_profiles,
                                                                   repositories)
        if not (aws_signer_root_certificates or custom_root_certificates):
            _require_shipped_root(signing_profiles)
        if not 1 <= max_attempts <= 20:
            raise ValueError(f"max_attempts must be between 1 and 20, got {max_attempts}")
        runtime = runtime or _defaults.RUNTIME
        architecture = architecture or _defaults.ARCHITECTURE
        if runtime.family != lambda_.RuntimeFamily.PYTHON or not runtime.name.startswith("python3."):
            raise ValueError(f"runtime must be a Python 3 runtime, got {runtime.name}")
        timeout = timeout or _defaults.TIMEOUT
        if not _defaults.MIN_TIMEOUT_SECONDS <= timeout.to_seconds() <= 900:
            raise ValueError(f"timeout must be between {_defaults.MIN_TIMEOUT_SECONDS} and 900 seconds, got "
                             f"{timeout.to_seconds():g}; a decision ends {_defaults.DEADLINE_MARGIN_SECONDS} s before it")
        callback_delay = callback_delay or _defaults.CALLBACK_DELAY

        builder = PolicyBuilder(self)
        for key in signing_keys:
            builder.add_key(key)
        if signing_profiles:
            builder.add_profiles(signing_profiles, root_certificates=aws_signer_root_certificates,
                                 custom_root_certificates=custom_root_certificates, revocation_check=revocation_check)
        for repository in repositories:
            builder.add_repository(repository)
        for pattern in image_patterns:
            builder.add_pattern(pattern)
        for identity in keyless_signers:
            builder.add_keyless(identity)
        self.policy = builder.build(failure_mode=failure_mode.value, unavailable_mode=unavailable_mode.value,
                                    exemptions=exemptions)
        _warn_expired_exemptions(self, self.policy.policy)
        repository_arns = [r.repository_arn for r in repositories]
        repository_arns += [arn for arn in (ecr_repository_arn(p) for p in image_patterns) if arn]
        # The policy's trust as constructs, for what reuses the policy (constructs_lib.audit, the trust lock).
        self.signing_keys, self.signing_profiles = tuple(signing_keys), tuple(signing_profiles)
        self.repository_arns, self.revocation_check = tuple(repository_arns), revocation_check
        self.repositories = tuple(repositories)
        self.keyless_signers = tuple(keyless_signers)

        self.role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                             description="Image admission hook: reads service revisions, images and signing keys")
        statements = base_statements(self, repository_arns=repository_arns, key_arns=[k.key_arn for k in signing_keys],
                                     profiles=signing_profiles if revocation_check else ())
        for statement in statements:
            self.role.add_to_principal_policy(statement)
        # Key policies (ours name no IAM delegation) and other accounts' repository policies must let it in too.
        grant_resource_access(self, keys=signing_keys, repositories=repositories)
        acknowledge_wildcards(self.role, [r for s in statements for r in s.resources if r != "*"],
                              "Scoped wildcards only: repositories matched by the policy's image patterns, and the "
                              "versions and signing jobs of trusted AWS Signer profiles (GetRevocationStatus names them).")
        acknowledge_wildcard_resource(
            self.role,
            "ecr:GetAuthorizationToken and ecs:DescribeTaskDefinition have no resource-level permissions "
            "(service authorization reference); every other action is scoped to the policy's resources.",
        )
        self.log_group = logs.LogGroup(self, "Logs", retention=log_retention, removal_policy=log_removal_policy)
        self.log_group.grant_write(self.role)

        self.bundler = RuntimeBundler(architecture=_ARCHITECTURE_NAMES[architecture.name],
                                      python_version=runtime.name.removeprefix("python"),
                                      extra_files={_defaults.POLICY_FILE: self.policy.text})
        environment = {
            "ADMISSION_POLICY_FILE": _defaults.POLICY_FILE,
            "ADMISSION_DEADLINE_MARGIN_SECONDS": str(_defaults.DEADLINE_MARGIN_SECONDS),
            "ADMISSION_MAX_ATTEMPTS": str(max_attempts),
            "ADMISSION_CALLBACK_DELAY_SECONDS": str(int(callback_delay.to_seconds())),
            "POWERTOOLS_SERVICE_NAME": _defaults.SERVICE_NAME,
            "POWERTOOLS_METRICS_NAMESPACE": _defaults.METRICS_NAMESPACE,
            **tracing_environment(tracing),
            **self.policy.environment,
        }
        self.function = lambda_.Function(
            self,
            "Resource",
            runtime=runtime,
            architecture=architecture,
            handler=_defaults.HANDLER,
            code=self.bundler.code(),
            memory_size=memory_size,
            timeout=timeout,
            role=self.role,
            log_group=self.log_group,
            environment=environment,
            reserved_concurrent_executions=reserved_concurrent_executions,
            vpc=vpc,
            vpc_subnets=vpc_subnets,
            security_groups=list(security_groups) or None,
            description="Admits an ECS service revision only when its container images are signed (lifecycle hook)",
            tracing=tracing_mode(tracing),
        )
        # The function's first invocation must find its permissions in place.
        self.function.node.add_dependency(self.role.node.find_child("DefaultPolicy"))
        acknowledge_tracing(self.role, tracing)
        self.alarms = GateAlarms(self, "Alarms", controller=self, props=alarms) if alarms is not None else None
        if vpc is not None:
            from aws_cdk import Acknowledgment, Validations

            Validations.of(self.role).acknowledge(Acknowledgment(
                id="AwsSolutions-IAM4",
                reason="AWSLambdaVPCAccessExecutionRole is what Lambda needs to place the function's network "
                       "interfaces in the VPC; CDK adds it when a function is given a VPC.",
            ))
        self._protected: dict[str, tuple[ecs.BaseService, tuple[str, ...]]] = {}
        self._coverage = Coverage(policy=self.policy.policy, repositories=tuple(repositories),
                                  controller_path=self.node.path)
        register_strategy_check(self)
        register_trust_lock(self)  # signing-trust.lock.json: keys are retired, never removed

    # -- protecting services --------------------------------------------------------------------
    @property
    def function_arn(self) -> str:
        return self.function.function_arn

    def protect(self, service: ecs.BaseService, *,
                stages: Sequence[ecs.DeploymentLifecycleStage] = (ecs.DeploymentLifecycleStage.PRE_SCALE_UP,)) -> None:
        """Run the admission check as a lifecycle hook of ``service``.

        :param stages: PRE_SCALE_UP (before any green task starts) and optionally POST_SCALE_UP
            (checks the digests ECS resolved from the started tasks). :default: [PRE_SCALE_UP]
        """
        stages = tuple(stages)
        if ecs.DeploymentLifecycleStage.PRE_SCALE_UP not in stages:
            raise ValueError(
                f"stages must include PRE_SCALE_UP, got {[s.value for s in stages]}; at POST_SCALE_UP the green tasks "
                "already run the images, so the check could only roll them back afterwards"
            )
        for stage in stages:
            if stage not in ALLOWED_STAGES:
                raise ValueError(f"stage {stage.value} is not supported; use PRE_SCALE_UP and optionally POST_SCALE_UP")
        if len(set(stages)) != len(stages):
            raise ValueError(f"stages has duplicates: {[s.value for s in stages]}")
        path = service.node.path
        self._check_same_region(service)
        _check_deployment_controller(service)
        if path in self._protected:
            raise ValueError(f"service {path} is already protected by {self.node.path}")
        # aws:SourceAccount: only ECS acting for this account's services may assume the role (confused
        # deputy). No aws:SourceArn: which ARN ECS would send for a hook is not documented (docs/admission.md).
        hook_principal = iam.ServicePrincipal(
            "ecs.amazonaws.com", conditions={"StringEquals": {"aws:SourceAccount": Stack.of(service).account}})
        hook_role = iam.Role(service, f"{self.node.id}HookRole", assumed_by=hook_principal,
                             description=f"ECS invokes the image admission hook {self.node.path}, and nothing else")
        # The hook target is the unqualified function ARN: no versions or aliases (grant_invoke adds ARN:*).
        iam.Grant.add_to_principal(grantee=hook_role, actions=list(LAMBDA_INVOKE_ACTIONS),
                                   resource_arns=[self.function.function_arn])
        service.add_lifecycle_hook(ecs.DeploymentLifecycleLambdaTarget(
            self.function, f"{self.node.id}Hook", lifecycle_stages=list(stages), role=hook_role))
        # The function may describe the revisions of services in this cluster. The statement lives in
        # the service's stack (the service already depends on the function; the other way round would
        # be a cycle), and the service waits for it: the first deployment's hook must not be denied.
        # It names the cluster, not the service: naming the service would make the policy depend on
        # the service that depends on it.
        access = iam.Policy(service, f"{self.node.id}RevisionAccess", roles=[self.role], statements=[
            revision_statement(service, cluster_name=service.cluster.cluster_name),
        ])
        statement_arn = revision_arn(service, cluster_name=service.cluster.cluster_name)
        service.node.add_dependency(access)
        acknowledge_wildcards(access, [statement_arn], "ECS service revisions have generated ids; the statement is "
                              "limited to the revisions of services in the protected service's cluster.")
        cfn = service.node.default_child
        cfn.add_metadata(METADATA_KEY, {"controller": self.node.path, "stages": [s.value for s in stages]})
        self._protected[path] = (service, tuple(s.value for s in stages))
        if self.alarms is not None:  # alarm when ECS deploys the service and the gate is not called
            self.alarms.watch(service)
        # At synth, when every container has been added: each image must be covered by the policy.
        add_validation(service, lambda: check_service(service, self._coverage))

    def _check_same_region(self, service: ecs.BaseService) -> None:
        """An ECS hook invokes a function of the service's own region; say so before CDK's CannotUseCrossEnvironment."""
        ours, theirs = Stack.of(self), Stack.of(service)
        if same_value(ours.region, theirs.region) is False:
            raise ValueError(
                f"ECS service {service.node.path} is in region {theirs.region} but admission controller "
                f"{self.node.path} is in {ours.region}; a lifecycle hook invokes a Lambda function of the service's "
                f"region: create an AdmissionController in {theirs.region} (e.g. in the service's stack) and protect "
                "the service with it"
            )

    def is_protecting(self, service: ecs.BaseService) -> bool:
        return service.node.path in self._protected

    @property
    def protected_services(self) -> tuple[ecs.BaseService, ...]:
        """The services protected so far (TaskAudit reads them at synth, after every protect())."""
        return tuple(service for service, _ in self._protected.values())


def _with_chains(chains: Sequence[SignedImageSupplyChain], keys: Sequence[ISigningKey],
                 profiles: Sequence[ISigningProfile], repositories: Sequence[ecr.IRepository],
                 ) -> tuple[list[ISigningKey], list[ISigningProfile], list[ecr.IRepository]]:
    """The props plus what each supply chain brings; a construct given twice counts once."""
    keys, profiles, repositories = list(keys), list(profiles), list(repositories)
    for chain in chains:
        if not isinstance(chain, SignedImageSupplyChain):
            raise ValueError(f"supply_chains takes SignedImageSupplyChain constructs, got {chain!r}")
        key = chain.cosign_key if chain.has_cosign_key else None
        for item, bucket in ((key, keys), (chain.signing_profile, profiles)):
            if item is not None and all(item is not other for other in bucket):
                bucket.append(item)
        repositories += [r for r in chain.repositories if all(r is not other for other in repositories)]
    return keys, profiles, repositories


def _require_shipped_root(profiles: Sequence[ISigningProfile]) -> None:
    """aws-cn has no shipped AWS Signer root: say so at synth rather than at the first deployment."""
    for profile in profiles:
        region = profile.env.region
        if not Token.is_unresolved(region) and region.startswith("cn-"):
            raise ValueError(
                f"signing profile {profile.node.path} is in {region} (partition aws-cn), for which no AWS Signer "
                "root certificate is shipped; pass that partition's root in custom_root_certificates"
            )


def _check_deployment_controller(service: ecs.BaseService) -> None:
    """Lifecycle hooks run only under the ECS deployment controller (see docs/admission.md, strategy table)."""
    controller = Stack.of(service).resolve(service.node.default_child.deployment_controller)
    kind = (controller or {}).get("type", "ECS") if isinstance(controller, dict) else "ECS"
    if kind != "ECS":
        raise ValueError(
            f"ECS service {service.node.path} uses the {kind} deployment controller; ECS runs deployment lifecycle "
            "hooks, and so the image admission check, only under the ECS deployment controller (CodeDeploy blue/green "
            "has its own hooks, which this controller does not wire): use deployment_controller=ECS (the default) "
            "with deployment_strategy=ecs.DeploymentStrategy.BLUE_GREEN"
        )


def _warn_expired_exemptions(controller: Construct, policy: Policy) -> None:
    """An exemption already past its expiry admits nothing: likely a forgotten renewal, so say so at synth."""
    now = datetime.now(UTC)
    for exemption in policy.exemptions:
        if exemption.expires <= now:
            Annotations.of(controller).add_warning_v2(
                "signed-images:AdmissionExemptionExpired",
                f"the exemption for {', '.join(str(p) for p in exemption.images)} ({exemption.reason}) expired on "
                f"{exemption.expires.isoformat()} and admits nothing: sign those images, or give it a new expiry",
            )
