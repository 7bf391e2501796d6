"""One construct that sets up the whole signing side: repositories, profile, rules, key, CI roles."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from aws_cdk import Token
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_iam as iam
from constructs import Construct

from . import _defaults
from ._validation import require_literal, require_match, require_strings
from .ci_roles import CiSigningRole, CodeBuildSigningRole, GitHubActionsSigningRole, OidcProvider
from .signing_key import CosignSigningKey, ISigningKey, SigningKeySpec
from .signing_profile import ISigningProfile, NotationSigningProfile
from .signing_rules import RegistrySigningRules, SigningRule

REPOSITORY_NAME_PATTERN = re.compile(r"(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*")


@dataclass(frozen=True, kw_only=True)
class GitHubActionsTrust:
    """Which GitHub Actions workflows get a signing role (see :class:`GitHubActionsSigningRole`)."""

    repository: str
    branches: Sequence[str] = field(default=_defaults.GITHUB_DEFAULT_BRANCHES)
    environments: Sequence[str] = field(default=())
    provider: OidcProvider | None = None


@dataclass(frozen=True, kw_only=True)
class CodeBuildTrust:
    """Which CodeBuild projects get a signing role (see :class:`CodeBuildSigningRole`)."""

    project_names: Sequence[str] = field(default=())


class SignedImageSupplyChain(Construct):
    """ECR repositories whose images are signed on push, with the keys and CI roles to do it.

    Creates (each optional part named after its prop):

    - ``repository_names``: ECR repositories with immutable tags (except cosign's ``sha256-*``
      signature tags), scan on push, RETAIN;
    - ``managed_signing``: a :class:`NotationSigningProfile` and a rule for these repositories in
      :class:`RegistrySigningRules` (created here, or added to ``signing_rules``);
    - ``cosign_key_alias``: a :class:`CosignSigningKey`;
    - ``github`` / ``codebuild``: CI signing roles that may push to these repositories and sign
      through the profile and with the key, and nothing more.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        repository_names: Sequence[str] = (),
        repositories: Sequence[ecr.IRepository] = (),
        managed_signing: bool = True,
        signing_profile_name: str | None = None,
        signature_validity_months: int = _defaults.DEFAULT_SIGNATURE_VALIDITY_MONTHS,
        signing_rules: RegistrySigningRules | None = None,
        cosign_key_alias: str | None = None,
        cosign_key_spec: SigningKeySpec = SigningKeySpec.ECC_NIST_P256,
        verifiers: Sequence[iam.IGrantable] = (),
        github: GitHubActionsTrust | None = None,
        codebuild: CodeBuildTrust | None = None,
    ) -> None:
        """
        :param repository_names: repositories to create. :default: - none
        :param repositories: existing repositories to sign too (their names must be literals).
            :default: - none
        :param managed_signing: sign on push with AWS Signer (Notation). :default: True
        :param signing_profile_name: :default: - CloudFormation generates one
        :param signature_validity_months: :default: 135 (the maximum)
        :param signing_rules: the environment's RegistrySigningRules to add this chain's rule to,
            when several chains share a registry. :default: - a RegistrySigningRules is created here
        :param cosign_key_alias: create a cosign KMS key with this alias. :default: - no cosign key
        :param cosign_key_spec: :default: SigningKeySpec.ECC_NIST_P256
        :param verifiers: principals allowed to verify with the cosign key. :default: - none yet
        :param github: create a GitHub Actions signing role. :default: - none
        :param codebuild: create a CodeBuild signing role. :default: - none
        """
        names = require_strings(repository_names, "repository_names")
        for name in names:
            require_literal(name, "a repository name", "pass literal repository names")
            require_match(name, REPOSITORY_NAME_PATTERN, "a repository name", "a lower-case ECR repository name")
        if not names and not repositories:
            raise ValueError("a signed image supply chain needs repository_names or repositories")
        if not managed_signing and cosign_key_alias is None:
            raise ValueError("nothing would sign: keep managed_signing=True or give cosign_key_alias")
        super().__init__(scope, id)
        self.repositories: list[ecr.IRepository] = [self._repository(n) for n in names] + list(repositories)
        self.signing_profile: ISigningProfile | None = None
        self.signing_rules: RegistrySigningRules | None = signing_rules
        if managed_signing:
            self.signing_profile = NotationSigningProfile(
                self,
                "SigningProfile",
                signing_profile_name=signing_profile_name,
                signature_validity_months=signature_validity_months,
            )
            filters = list(names) + _literal_names(repositories)
            rule = SigningRule(profile=self.signing_profile, repository_filters=filters)
            if self.signing_rules is None:
                self.signing_rules = RegistrySigningRules(self, "SigningRules")
            self.signing_rules.add_rule(rule)
        self._cosign_key: ISigningKey | None = None
        if cosign_key_alias is not None:
            self._cosign_key = CosignSigningKey(
                self, "CosignKey", alias=cosign_key_alias, key_spec=cosign_key_spec, verifiers=verifiers
            )
        self.ci_roles: list[CiSigningRole] = []
        self.github_role: GitHubActionsSigningRole | None = None
        self.codebuild_role: CodeBuildSigningRole | None = None
        if github is not None:
            self.github_role = GitHubActionsSigningRole(
                self,
                "GitHubActionsRole",
                repository=github.repository,
                branches=github.branches,
                environments=github.environments,
                provider=github.provider,
            )
            self.add_ci_role(self.github_role)
        if codebuild is not None:
            self.codebuild_role = CodeBuildSigningRole(self, "CodeBuildRole", project_names=codebuild.project_names)
            self.add_ci_role(self.codebuild_role)

    @property
    def cosign_key(self) -> ISigningKey:
        """The chain's cosign KMS key; an error when the chain was made without ``cosign_key_alias``."""
        if self._cosign_key is None:
            raise ValueError(
                f"supply chain {self.node.path} has no cosign key; give SignedImageSupplyChain(..., "
                "cosign_key_alias='alias/<team>/cosign') to create one (or check has_cosign_key first)"
            )
        return self._cosign_key

    @property
    def has_cosign_key(self) -> bool:
        return self._cosign_key is not None

    def add_ci_role(self, role: CiSigningRole) -> None:
        """Let ``role`` push to this chain's repositories and sign through its profile and key."""
        role.allow_push(*self.repositories)
        if self.signing_profile is not None:
            role.allow_managed_signing(self.signing_profile)
        if self._cosign_key is not None:
            role.allow_cosign_signing(self._cosign_key)
        self.ci_roles.append(role)

    def _repository(self, name: str) -> ecr.Repository:
        return ecr.Repository(
            self,
            "Repository-" + name.replace("/", "-"),
            repository_name=name,
            image_scan_on_push=_defaults.REPOSITORY_SCAN_ON_PUSH,
            image_tag_mutability=ecr.TagMutability.IMMUTABLE_WITH_EXCLUSION,
            image_tag_mutability_exclusion_filters=[
                ecr.ImageTagMutabilityExclusionFilter.wildcard(_defaults.SIGNATURE_TAG_EXCLUSION)
            ],
            removal_policy=_defaults.REPOSITORY_REMOVAL_POLICY,
        )


def _literal_names(repositories: Sequence[ecr.IRepository]) -> list[str]:
    """The names of existing repositories, which signing-rule filters must spell out."""
    names = []
    for repo in repositories:
        if Token.is_unresolved(repo.repository_name):
            raise ValueError(
                f"repository {repo.node.path} has a token for a name, so no signing rule can match it; import it "
                "with ecr.Repository.from_repository_name() and a literal name, or use RegistrySigningRules directly"
            )
        names.append(repo.repository_name)
    return names
