"""What the push and task audits build alike: a function that runs the admission policy.

The function is another entry point of the admission controller's runtime package, bundled the
same way (``RuntimeBundler``, same architecture and Python version, the same policy file), so its
asset is the controller's asset. The policy document and its deploy-time values come from the
controller (``controller.policy.text`` and ``controller.policy.environment``: tokens travel as the
same ``ADMISSION_*`` variables the hook reads). Its role reads what the hook reads, except the
service revisions; key policies already let the controller's account read the public keys.
"""

from __future__ import annotations

from collections.abc import Mapping

import jsii
from aws_cdk import Duration, IStableStringProducer, Lazy, RemovalPolicy
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from constructs import Construct

from .._grants import acknowledge_wildcard_resource
from .._nag import acknowledge_wildcards
from ..admission import _defaults as admission_defaults
from ..admission._permissions import _dedupe as unique  # noqa: F401 - shared with push.py and task.py
from ..admission._permissions import base_statements
from ..admission.controller import AdmissionController

# ecs:DescribeTaskDefinition is the hook's (revisions name a task definition); events carry what the audits need.
_HOOK_ONLY_SIDS = frozenset({"TaskPlatform"})


def audit_function(scope: Construct, *, controller: AdmissionController, handler: str, service_name: str,
                   description: str, environment: Mapping[str, str], memory_size: int, timeout: Duration,
                   log_retention: logs.RetentionDays, log_removal_policy: RemovalPolicy,
                   ) -> tuple[lambda_.Function, iam.Role, logs.LogGroup]:
    """The function (``scope/Resource``), its role (``Role``) and its log group (``Logs``)."""
    if not isinstance(controller, AdmissionController):
        raise TypeError(f"controller must be an AdmissionController (its policy is what the audit runs), got "
                         f"{controller!r}")
    if not 10 <= timeout.to_seconds() <= 900:
        raise ValueError(f"timeout must be between 10 and 900 seconds, got {timeout.to_seconds():g}")
    role = iam.Role(scope, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"), description=description)
    statements = [s for s in base_statements(
        scope, repository_arns=controller.repository_arns, key_arns=[k.key_arn for k in controller.signing_keys],
        profiles=controller.signing_profiles if controller.revocation_check else ()) if s.sid not in _HOOK_ONLY_SIDS]
    for statement in statements:
        role.add_to_principal_policy(statement)
    acknowledge_wildcards(role, [r for s in statements for r in s.resources if r != "*"],
                          "Scoped wildcards only: repositories matched by the admission policy's image patterns, and "
                          "the versions and signing jobs of trusted AWS Signer profiles (GetRevocationStatus names them).")
    acknowledge_wildcard_resource(role, "ecr:GetAuthorizationToken has no resource-level permission (service "
                                        "authorization reference); every other action is scoped.")
    log_group = logs.LogGroup(scope, "Logs", retention=log_retention, removal_policy=log_removal_policy)
    log_group.grant_write(role)
    runtime = controller.function.runtime
    function = lambda_.Function(
        scope, "Resource",
        runtime=runtime,
        architecture=controller.function.architecture,
        handler=handler,
        code=controller.bundler.code(),  # the controller's bundle: same files, same policy, same asset hash
        memory_size=memory_size,
        timeout=timeout,
        role=role,
        log_group=log_group,
        environment={
            "ADMISSION_POLICY_FILE": admission_defaults.POLICY_FILE,
            "ADMISSION_DEADLINE_MARGIN_SECONDS": str(admission_defaults.DEADLINE_MARGIN_SECONDS),
            "POWERTOOLS_SERVICE_NAME": service_name,
            "POWERTOOLS_METRICS_NAMESPACE": admission_defaults.METRICS_NAMESPACE,
            **controller.policy.environment,
            **environment,
        },
        description=description,
    )
    function.node.add_dependency(role.node.find_child("DefaultPolicy"))
    return function, role, log_group


def audit_metric(service_name: str, metric_name: str, **props: object) -> cloudwatch.Metric:
    """An EMF count the audit function writes (namespace of the controller, dimension ``service``)."""
    options: dict[str, object] = {"statistic": "Sum", "period": Duration.minutes(5), **props}
    return cloudwatch.Metric(namespace=admission_defaults.METRICS_NAMESPACE, metric_name=metric_name,
                             dimensions_map={"service": service_name}, **options)


def alarm_on(scope: Construct, id: str, metric: cloudwatch.IMetric, *, description: str,
             topic: sns.ITopic | None) -> cloudwatch.Alarm | None:
    """An alarm at one or more in a period, notifying ``topic``; none without a topic (no hidden topic)."""
    if topic is None:
        return None
    alarm = cloudwatch.Alarm(scope, id, metric=metric, threshold=1, evaluation_periods=1,
                             comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                             treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING, alarm_description=description)
    alarm.add_alarm_action(cw_actions.SnsAction(topic))
    return alarm


@jsii.implements(IStableStringProducer)
class _Producer:
    def __init__(self, produce: object) -> None:
        self._produce = produce

    def produce(self) -> str | None:
        return self._produce()  # type: ignore[operator]


def lazy_string(produce: object) -> str:
    """A string computed at synth (after every ``protect()``), which may itself be a token."""
    return Lazy.string(_Producer(produce))

