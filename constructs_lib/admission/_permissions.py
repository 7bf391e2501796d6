"""The admission function's IAM statements, derived from the policy: nothing it does not call.

| Action                                  | Resource                                        | Why                                      |
|-----------------------------------------|-------------------------------------------------|------------------------------------------|
| ecs:DescribeServiceRevisions            | service-revision/<cluster>/* of each protected service's cluster | the images of the revision |
| ecs:DescribeTaskDefinition              | *  (the action has no resource type)            | the task's runtime platform              |
| ecr:GetAuthorizationToken               | *  (the action has no resource type)            | registry login                           |
| ecr:BatchGetImage, GetDownloadUrlForLayer | the repositories the policy covers            | manifests, signatures, blobs             |
| kms:GetPublicKey                        | the policy's KMS keys                           | cosign public keys                       |
| signer:GetRevocationStatus              | the policy's profiles, their versions, signing jobs | Notation revocation                  |
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_iam as iam
from constructs import IConstruct

from .._actions import ECR_AUTH_ACTIONS, ECR_READ_ACTIONS, SIGNER_REVOCATION_ACTIONS
from ..signing_profile import ISigningProfile, revocation_check_resources
from ._policy import ECR_HOST

ECS_DESCRIBE_REVISIONS_ACTIONS = ("ecs:DescribeServiceRevisions",)
ECS_DESCRIBE_TASK_DEFINITION_ACTIONS = ("ecs:DescribeTaskDefinition",)
KMS_PUBLIC_KEY_ACTIONS = ("kms:GetPublicKey",)
LAMBDA_INVOKE_ACTIONS = ("lambda:InvokeFunction",)
WILDCARD_ACTIONS = ECR_AUTH_ACTIONS + ECS_DESCRIBE_TASK_DEFINITION_ACTIONS  # no resource-level permission exists


def ecr_repository_arn(pattern: str) -> str | None:
    """The IAM resource of an ECR image pattern, or None for a registry that is not ECR."""
    host, _, path = pattern.partition("/")
    if ".dkr.ecr" not in host:
        return None
    match = ECR_HOST.fullmatch(host)
    if match is None:
        raise ValueError(
            f"image pattern {pattern!r} names an ECR registry with a wildcard; name the account and region "
            "(e.g. 111111111111.dkr.ecr.us-east-1.amazonaws.com/team/**) so that read access can be scoped"
        )
    partition = "aws-cn" if host.endswith(".cn") else "aws"
    resource = re.sub(r"\*+", "*", path)  # IAM's * matches across '/', like the pattern's **
    return f"arn:{partition}:ecr:{match['region']}:{match['account']}:repository/{resource}"


def base_statements(scope: IConstruct, *, repository_arns: Sequence[str], key_arns: Sequence[str],
                    profiles: Sequence[ISigningProfile]) -> list[iam.PolicyStatement]:
    statements = [
        iam.PolicyStatement(sid="RegistryLogin", actions=list(ECR_AUTH_ACTIONS), resources=["*"]),
        iam.PolicyStatement(sid="TaskPlatform", actions=list(ECS_DESCRIBE_TASK_DEFINITION_ACTIONS), resources=["*"]),
    ]
    if repository_arns:
        statements.append(iam.PolicyStatement(sid="ReadImagesAndSignatures", actions=list(ECR_READ_ACTIONS),
                                              resources=sorted(set(repository_arns), key=str)))
    if key_arns:
        statements.append(iam.PolicyStatement(sid="CosignPublicKeys", actions=list(KMS_PUBLIC_KEY_ACTIONS),
                                              resources=list(key_arns)))
    if profiles:
        resources: list[str] = []
        for profile in profiles:
            resources += revocation_check_resources(profile)
        statements.append(iam.PolicyStatement(sid="SignerRevocation", actions=list(SIGNER_REVOCATION_ACTIONS),
                                              resources=_dedupe(resources)))
    return statements


def revision_arn(scope: IConstruct, *, cluster_name: str) -> str:
    """The revisions of the services in one cluster."""
    return Stack.of(scope).format_arn(service="ecs", resource="service-revision", resource_name=f"{cluster_name}/*",
                                      arn_format=ArnFormat.SLASH_RESOURCE_NAME)


def revision_statement(scope: IConstruct, *, cluster_name: str) -> iam.PolicyStatement:
    return iam.PolicyStatement(actions=list(ECS_DESCRIBE_REVISIONS_ACTIONS),
                               resources=[revision_arn(scope, cluster_name=cluster_name)])


def _dedupe(values: Sequence[str]) -> list[str]:
    seen: list[str] = []
    for value in values:
        if value not in seen:
            seen.append(value)
    return seen
