"""Stacks of the reference app. Dummy account ids keep synth offline (no lookups, no credentials)."""

from __future__ import annotations

from aws_cdk import CfnOutput, Environment, Stack
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sns as sns
from constructs import Construct

from constructs_lib import (
    BreakGlassSigning,
    BreakGlassSigningKey,
    CodeBuildTrust,
    CosignSigningKey,
    GitHubActionsTrust,
    KeyState,
    SignedImageSupplyChain,
)

# Where images are built, signed, stored and (later) deployed.
SIGNING_ENV = Environment(account="111111111111", region="us-east-1")
# A separate account that holds only the break-glass key.
BREAK_GLASS_ENV = Environment(account="222222222222", region="us-east-1")


class SigningStack(Stack):
    """Repositories signed on push (AWS Signer) and by cosign (KMS), with GitHub and CodeBuild roles."""

    def __init__(self, scope: Construct, id: str, *, env: Environment = SIGNING_ENV) -> None:
        super().__init__(scope, id, env=env, description="Signed-image supply chain: repositories, signers, CI roles")
        self.chain = SignedImageSupplyChain(
            self,
            "Images",
            repository_names=["reference/app", "reference/worker"],
            signing_profile_name="reference_images",
            cosign_key_alias="alias/reference/cosign",
            github=GitHubActionsTrust(
                repository="example-org/signed-images-reference",
                branches=["main"],
                environments=["production"],
            ),
            codebuild=CodeBuildTrust(project_names=["reference-image-build"]),
        )
        # Rotation: the previous cosign key stays, retired, so that old signatures still verify.
        self.retired_key = CosignSigningKey(
            self,
            "RetiredCosignKey",
            alias="alias/reference/cosign-2024",
            state=KeyState.RETIRED,
        )
        for export_id, value in {
            "SigningProfileArn": self.chain.signing_profile.signing_profile_arn,
            "CosignKeyArn": self.chain.cosign_key.key_arn,
            "GitHubActionsRoleArn": self.chain.github_role.role_arn,
            "CodeBuildRoleArn": self.chain.codebuild_role.role_arn,
        }.items():
            CfnOutput(self, export_id, value=value)


class BreakGlassStack(Stack):
    """The break-glass key, alone in its own account; the signing account may only verify with it."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        env: Environment = BREAK_GLASS_ENV,
        verifier_accounts: tuple[str, ...] = (SIGNING_ENV.account,),
    ) -> None:
        super().__init__(scope, id, env=env, description="Break-glass image signing key (no CI role can sign)")
        self.key = BreakGlassSigningKey(
            self,
            "BreakGlassKey",
            alias="alias/break-glass/cosign",
            verifiers=[iam.AccountPrincipal(account) for account in verifier_accounts],
        )
        CfnOutput(self, "BreakGlassKeyArn", value=self.key.key_arn)
        # The only way to sign with the key: two approvers, neither the requester (docs/constructs/break-glass-signing.md).
        account = iam.AccountPrincipal(self.account)
        approvers_topic = sns.Topic(self, "BreakGlassApprovers", enforce_ssl=True)
        self.signing = BreakGlassSigning(
            self,
            "BreakGlassSigning",
            key=self.key,
            requesters=[iam.Role(self, "BreakGlassRequester", role_name="BreakGlassRequester", assumed_by=account)],
            approvers=[iam.Role(self, "BreakGlassApprover", role_name="BreakGlassApprover", assumed_by=account)],
            topic=approvers_topic,
            repositories=[
                ecr.Repository.from_repository_arn(self, f"Repository{i}", f"arn:aws:ecr:{SIGNING_ENV.region}:"
                                                   f"{SIGNING_ENV.account}:repository/{name}")
                for i, name in enumerate(("reference/app", "reference/worker"))
            ],
            alarm_topic=approvers_topic,
        )
        CfnOutput(self, "BreakGlassUrl", value=self.signing.url)
        CfnOutput(self, "BreakGlassStateMachineArn", value=self.signing.state_machine_arn)
