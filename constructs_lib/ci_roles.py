"""IAM roles that CI systems assume to push and sign images, and nothing more."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Union

import jsii
from aws_cdk import Stack
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_iam as iam
from constructs import Construct

from . import _actions, _defaults
from ._grants import acknowledge_wildcard_resource
from ._tree import add_validation, describe_environment, find_in_app, same_environment
from ._validation import require_literal, require_match, require_strings

if TYPE_CHECKING:
    from .signing_key import ISigningKey
    from .signing_profile import ISigningProfile

OidcProvider = Union[iam.IOidcProvider, iam.IOpenIdConnectProvider]

GITHUB_REPOSITORY_PATTERN = re.compile(r"[A-Za-z0-9-]{1,39}/[A-Za-z0-9._-]{1,100}")
GIT_REF_NAME_PATTERN = re.compile(r"[A-Za-z0-9._/-]{1,255}")
CODEBUILD_PROJECT_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{1,254}")
# A job_workflow_ref: owner/repo/.github/workflows/<file>.yml@<branch, tag or commit>, no wildcard.
GITHUB_WORKFLOW_REF_PATTERN = re.compile(
    r"[A-Za-z0-9-]{1,39}/[A-Za-z0-9._-]{1,100}/\.github/workflows/[A-Za-z0-9._-]+\.ya?ml"
    r"@(refs/(heads|tags)/[A-Za-z0-9._/-]{1,255}|[0-9a-f]{40})"
)
# GitHub's default OIDC subject template; "ref" and "job_workflow_ref" may follow in a custom one.
GITHUB_DEFAULT_SUBJECT_KEYS = ("repo", "context")
GITHUB_OPTIONAL_SUBJECT_KEYS = ("ref", "job_workflow_ref")
# IAM's default limit for a role trust policy is 2048 characters (4096 after a quota increase);
# the rest of the policy takes about 350.
MAX_SUBJECT_CHARACTERS = 1600


@jsii.implements(iam.IGrantable)
class CiSigningRole(Construct):
    """Base of the CI signing roles: an IAM role (child ``Resource``) limited to push and sign.

    At synth the role is checked to hold only the actions of ``allow_push``,
    ``allow_managed_signing`` and ``allow_cosign_signing``, and no managed or inline policy (policies of
    the role's stack attached to it are read; other stacks' and resource policies are not).
    """

    _is_ci_signing_role = True  # read by break-glass keys to refuse this role as a signer

    def __init__(
        self, scope: Construct, id: str, *, trust: Callable[[Construct], iam.IPrincipal], description: str
    ) -> None:
        """:param trust: builds the principal that may assume the role; called with this construct as scope."""
        super().__init__(scope, id)
        self.role = iam.Role(
            self,
            "Resource",
            assumed_by=trust(self),
            description=description,
            max_session_duration=_defaults.CI_ROLE_MAX_SESSION,
        )
        self._auth_granted = False
        add_validation(self, self._check_least_privilege)

    @property
    def grant_principal(self) -> iam.IPrincipal:
        return self.role

    @property
    def role_arn(self) -> str:
        return self.role.role_arn

    @property
    def role_name(self) -> str:
        return self.role.role_name

    def allow_push(self, *repositories: ecr.IRepository) -> iam.Grant:
        """Push (and read back) images in ``repositories``, plus ``ecr:GetAuthorizationToken``."""
        if not repositories:
            raise ValueError("allow_push needs at least one repository")
        if not self._auth_granted:
            iam.Grant.add_to_principal(grantee=self, actions=list(_actions.ECR_AUTH_ACTIONS), resource_arns=["*"])
            acknowledge_wildcard_resource(
                self,
                "ecr:GetAuthorizationToken supports no resource-level permission; every other action "
                "of this role names its repository, signing profile or key.",
                actions=_actions.ECR_AUTH_ACTIONS,
            )
            self._auth_granted = True
        return iam.Grant.add_to_principal(
            grantee=self,
            actions=list(_actions.ECR_PUSH_ACTIONS + _actions.ECR_READ_ACTIONS),
            resource_arns=[repo.repository_arn for repo in repositories],
        )

    def allow_managed_signing(self, profile: ISigningProfile) -> iam.Grant:
        """Sign through ``profile`` when pushing (ECR managed signing signs as the pusher)."""
        return profile.grant_sign(self)

    def allow_cosign_signing(self, key: ISigningKey) -> iam.Grant:
        """Sign with ``key`` the way cosign does; refused for a break-glass key."""
        if key.break_glass:
            raise ValueError(
                f"CI signing role {self.node.path} cannot sign with break-glass key {key.node.path}; "
                "use a CosignSigningKey for CI"
            )
        return key.grant_sign(self)

    def _check_least_privilege(self) -> list[str]:
        stack = Stack.of(self)
        errors = []
        cfn_role: iam.CfnRole = self.role.node.default_child
        if stack.resolve(cfn_role.managed_policy_arns) or stack.resolve(cfn_role.policies):
            errors.append(
                f"CI signing role {self.node.path} has a managed or inline policy; grant only through "
                "allow_push(), allow_managed_signing() and allow_cosign_signing()"
            )
        # The role's DefaultPolicy and any iam.Policy / iam.ManagedPolicy of its stack attached to it.
        role_ref = stack.resolve(cfn_role.ref)
        for policy in find_in_app(self, (iam.CfnPolicy, iam.CfnManagedPolicy)):
            if Stack.of(policy) is not stack or role_ref not in (stack.resolve(policy.roles) or []):
                continue
            for statement in stack.resolve(policy.policy_document).get("Statement", []):
                actions = statement.get("Action", [])
                for action in [actions] if isinstance(actions, str) else actions:
                    if action not in _actions.CI_ROLE_ALLOWED_ACTIONS:
                        errors.append(
                            f"CI signing role {self.node.path} holds {action!r}, which is not a push or sign action; "
                            "give that permission to another role"
                        )
        return errors


class GitHubActionsSigningRole(CiSigningRole):
    """A role that GitHub Actions workflows of one repository assume through OIDC.

    Trust: ``sts:AssumeRoleWithWebIdentity`` from the GitHub OIDC provider, with ``StringEquals``
    on ``aud`` (``sts.amazonaws.com``) and on ``sub`` (exact subjects, never ``StringLike``). With
    GitHub's default subject template (``repo``, ``context``) ``sub`` is one of
    ``repo:<owner>/<repo>:ref:refs/heads/<branch>`` or ``repo:<owner>/<repo>:environment:<name>``:
    a job that declares an ``environment:`` gets the environment form, whatever branch it runs on.
    To bind environments to branches in the trust itself, customize the repository's subject
    template on GitHub (``include_claim_keys``) and pass the same keys here
    (``subject_claim_keys=("repo", "context", "ref")``, ``environment_branches=[...]``); add
    ``"job_workflow_ref"`` and ``workflows=[...]`` to require a reusable workflow. IAM cannot
    read GitHub's other claims (``job_workflow_ref`` itself included) outside ``sub``.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        repository: str,
        branches: Sequence[str] = _defaults.GITHUB_DEFAULT_BRANCHES,
        environments: Sequence[str] = (),
        provider: OidcProvider | None = None,
        subject_claim_keys: Sequence[str] = GITHUB_DEFAULT_SUBJECT_KEYS,
        environment_branches: Sequence[str] = (),
        workflows: Sequence[str] = (),
    ) -> None:
        """
        :param repository: ``owner/repo``.
        :param branches: branches whose workflows may assume the role from jobs without an
            environment (exact names, no wildcard). :default: ("main",)
        :param environments: GitHub deployment environments whose jobs may assume the role. :default: - none
        :param provider: the account's GitHub OIDC provider (see ``import_github_oidc_provider``).
            :default: - a provider is created here; an account holds only one, so create it once
        :param subject_claim_keys: the repository's OIDC subject template as set on GitHub
            (``PUT /repos/{owner}/{repo}/actions/oidc/customization/sub``): ``repo``, ``context``,
            then optionally ``ref`` and/or ``job_workflow_ref``. :default: ("repo", "context"), GitHub's default
        :param environment_branches: with ``ref`` in the template, the branches whose runs may
            use ``environments``. :default: - none (required when ``ref`` is in the template and environments are given)
        :param workflows: with ``job_workflow_ref`` in the template, the reusable workflows a job must
            run, as ``owner/repo/.github/workflows/file.yml@refs/heads/main`` (or ``@refs/tags/...``,
            ``@<commit sha>``). :default: - none (required when ``job_workflow_ref`` is in the template)
        """
        require_literal(repository, "repository", "pass the literal 'owner/repo'")
        require_match(repository, GITHUB_REPOSITORY_PATTERN, "repository", "'owner/repo'")
        branches = require_strings(branches, "branches")
        environments = require_strings(environments, "environments")
        environment_branches = require_strings(environment_branches, "environment_branches")
        for name in branches + environments + environment_branches:
            require_literal(name, "a branch or environment", "pass literal names")
            require_match(name, GIT_REF_NAME_PATTERN, "a branch or environment name", "an exact name without '*'")
        if not branches and not environments:
            raise ValueError(f"repository {repository} needs at least one branch or environment that may sign")
        subjects = github_subjects(
            repository=repository,
            branches=branches,
            environments=environments,
            keys=require_strings(subject_claim_keys, "subject_claim_keys"),
            environment_branches=environment_branches,
            workflows=require_strings(workflows, "workflows"),
        )
        self.subject_claim_keys = tuple(subject_claim_keys)
        self.repository = repository
        self.subjects = tuple(subjects)
        self.created_provider = provider is None
        self.provider: OidcProvider

        def trust(owner: Construct) -> iam.IPrincipal:
            self.provider = provider or GitHubActionsSigningRole.github_oidc_provider(owner, "OidcProvider")
            return iam.FederatedPrincipal(
                _provider_arn(self.provider),
                conditions={
                    "StringEquals": {
                        f"{_defaults.GITHUB_OIDC_ISSUER}:aud": _defaults.GITHUB_OIDC_AUDIENCE,
                        f"{_defaults.GITHUB_OIDC_ISSUER}:sub": subjects,
                    }
                },
                assume_role_action=_actions.STS_WEB_IDENTITY_ACTION,
            )

        super().__init__(
            scope,
            id,
            trust=trust,
            # A description holds at most 1000 characters; the subjects are in the trust policy.
            description=f"GitHub Actions in {repository} ({len(subjects)} OIDC subjects): push and sign images",
        )
        if self.created_provider:
            add_validation(self, self._check_single_provider)

    @staticmethod
    def github_oidc_provider(scope: Construct, id: str) -> iam.IOidcProvider:
        """Create the account's GitHub Actions OIDC provider (once per account; share it via ``provider=``)."""
        return iam.OidcProviderNative(
            scope,
            id,
            url=f"https://{_defaults.GITHUB_OIDC_ISSUER}",
            client_ids=[_defaults.GITHUB_OIDC_AUDIENCE],
        )

    @staticmethod
    def import_github_oidc_provider(scope: Construct, id: str, *, account: str | None = None) -> iam.IOidcProvider:
        """Import the GitHub OIDC provider that already exists in ``account``.

        :param account: :default: - the account of the stack that holds ``scope``
        """
        arn = Stack.of(scope).format_arn(
            service="iam",
            region="",
            account=account,
            resource="oidc-provider",
            resource_name=_defaults.GITHUB_OIDC_ISSUER,
        )
        return iam.OidcProviderNative.from_oidc_provider_arn(scope, id, arn)

    def _check_single_provider(self) -> list[str]:
        for other in find_in_app(self, GitHubActionsSigningRole):
            if other is self:
                return []
            if other.created_provider and same_environment(other, self) is not False:
                return [
                    f"{self.node.path} creates a GitHub OIDC provider, but {other.node.path} already creates one in "
                    f"{describe_environment(self)}; IAM allows one provider per URL and account: pass "
                    f"provider={other.node.path.split('/')[-1]}.provider (or import_github_oidc_provider()) instead"
                ]
        return []


class CodeBuildSigningRole(CiSigningRole):
    """A role that CodeBuild projects of this account assume to push and sign images.

    Trust: ``codebuild.amazonaws.com`` with ``aws:SourceAccount`` equal to this account and, when
    ``project_names`` is given, ``aws:SourceArn`` equal to those projects (confused-deputy guard).
    CodeBuild adds its own log permissions when a project is given this role; this construct adds
    none.
    """

    def __init__(self, scope: Construct, id: str, *, project_names: Sequence[str] = ()) -> None:
        """
        :param project_names: CodeBuild projects that may assume the role. :default: - any project in this account
        """
        project_names = require_strings(project_names, "project_names")
        for name in project_names:
            require_literal(name, "project_names", "pass literal project names")
            require_match(name, CODEBUILD_PROJECT_PATTERN, "a CodeBuild project name", "2 to 255 of [A-Za-z0-9_-]")
        stack = Stack.of(scope)
        conditions: dict[str, dict[str, object]] = {"StringEquals": {"aws:SourceAccount": stack.account}}
        if project_names:
            conditions["ArnEquals"] = {
                "aws:SourceArn": [
                    stack.format_arn(service="codebuild", resource="project", resource_name=n) for n in project_names
                ]
            }
        super().__init__(
            scope,
            id,
            trust=lambda _owner: iam.ServicePrincipal(_defaults.CODEBUILD_SERVICE_PRINCIPAL, conditions=conditions),
            description="CodeBuild: push and sign images",
        )
        self.project_names = project_names


def _provider_arn(provider: OidcProvider) -> str:
    arn = getattr(provider, "oidc_provider_arn", None) or getattr(provider, "open_id_connect_provider_arn", None)
    if arn is None:
        raise ValueError(f"provider must be an IAM OIDC provider, got {provider!r}")
    return arn



def github_subjects(
    *,
    repository: str,
    branches: Sequence[str],
    environments: Sequence[str],
    keys: Sequence[str],
    environment_branches: Sequence[str],
    workflows: Sequence[str],
) -> list[str]:
    """Every ``sub`` GitHub issues for the allowed jobs under the subject template ``keys``.

    GitHub renders a customized subject as the template's claims in order, each ``key:value``,
    where ``repo`` is ``repo:<owner>/<repo>`` and ``context`` is the default subject's tail
    (``ref:refs/heads/<branch>``, ``environment:<name>``, ``pull_request``); GitHub's example:
    ``repo:octo-org/octo-repo:environment:prod:job_workflow_ref:octo-org/octo-automation/.github/workflows/oidc.yml@refs/heads/main``.
    """
    keys = tuple(keys)
    optional = keys[len(GITHUB_DEFAULT_SUBJECT_KEYS):]
    if (
        keys[: len(GITHUB_DEFAULT_SUBJECT_KEYS)] != GITHUB_DEFAULT_SUBJECT_KEYS
        or any(k not in GITHUB_OPTIONAL_SUBJECT_KEYS for k in optional)
        or len(set(optional)) != len(optional)
    ):
        raise ValueError(
            f"subject_claim_keys must be 'repo', 'context', then optionally 'ref' and/or 'job_workflow_ref', got "
            f"{list(keys)}; without 'repo' a token from another repository can carry the same subject, and without "
            "'context' the branches and environments would not be checked"
        )
    if "ref" in keys and environments and not environment_branches:
        raise ValueError(
            f"environments {list(environments)} need environment_branches when 'ref' is in subject_claim_keys: "
            "name the branches whose runs may use them (for example ['main'])"
        )
    if environment_branches and ("ref" not in keys or not environments):
        raise ValueError(
            "environment_branches needs 'ref' in subject_claim_keys and at least one environment: with GitHub's "
            "default subject an environment job's sub names no branch (restrict the environment's deployment "
            "branches on GitHub, or add 'ref' to the repository's subject template and here)"
        )
    if ("job_workflow_ref" in keys) != bool(workflows):
        raise ValueError(
            "workflows and 'job_workflow_ref' in subject_claim_keys go together: name the reusable workflows "
            f"(owner/repo/.github/workflows/file.yml@refs/heads/main) that jobs must run, got workflows={list(workflows)} "
            f"and subject_claim_keys={list(keys)}"
        )
    for workflow in workflows:
        require_literal(workflow, "workflows", "pass literal workflow refs")
        require_match(workflow, GITHUB_WORKFLOW_REF_PATTERN, "a workflow",
                      "'owner/repo/.github/workflows/<file>.yml@refs/heads/<branch>' (or @refs/tags/<tag>, @<commit sha>)")
    # Each allowed job: its context and the ref its run carries.
    jobs = [(f"ref:refs/heads/{b}", f"refs/heads/{b}") for b in branches]
    jobs += [(f"environment:{e}", f"refs/heads/{b}") for e in environments for b in environment_branches or [""]]
    subjects: list[str] = []
    for context, ref in jobs:
        for workflow in workflows or [""]:
            values = {"repo": repository, "context": context, "ref": ref, "job_workflow_ref": workflow}
            subject = ":".join(values[k] if k == "context" else f"{k}:{values[k]}" for k in keys)
            if subject not in subjects:
                subjects.append(subject)
    size = len(json.dumps(subjects))
    if size > MAX_SUBJECT_CHARACTERS:
        raise ValueError(
            f"{len(subjects)} OIDC subjects take {size} characters of the trust policy, more than "
            f"{MAX_SUBJECT_CHARACTERS} (IAM allows 2048 for the whole policy by default); use fewer branches, "
            "environments or workflows, or one role per workflow"
        )
    return subjects
