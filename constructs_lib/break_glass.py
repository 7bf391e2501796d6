"""A break-glass signing key: a separate key, in a separate account, that no CI role can use."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import RemovalPolicy, Stack, Token
from aws_cdk import aws_iam as iam
from constructs import Construct

from . import _defaults
from ._tree import add_validation, find_in_app, same_value
from .signing_key import KeyState, OwnedSigningKeyBase, SigningKeySpec


class BreakGlassSigningKey(OwnedSigningKeyBase):
    """A signing key for emergencies, meant to live in its own stack in its own account.

    It has the same key policy shape as :class:`CosignSigningKey` (named signers only, explicit
    deny for everyone else) and reports ``break_glass = True`` so that verifiers can treat its
    signatures differently (alert on every use). Enforced at synth:

    - ``grant_sign`` (and ``signers=``) refuse any CI principal: a CI signing role of this package,
      or a role of this app that GitHub/GitLab OIDC, CodeBuild or CodePipeline can assume;
    - its stack must have an explicit account, hold no CI signing role, and that account must hold
      no CI signing role of this app (a CI role in an environment-agnostic stack counts as being there).

    Nobody can sign with it until a :class:`BreakGlassSigning` workflow names its signing function.
    """

    _BREAK_GLASS = True

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        alias: str,
        signers: Sequence[iam.IGrantable] = (),
        verifiers: Sequence[iam.IGrantable] = (),
        key_spec: SigningKeySpec = SigningKeySpec.ECC_NIST_P256,
        admins: Sequence[iam.IGrantable] = (),
        removal_policy: RemovalPolicy = _defaults.KEY_REMOVAL_POLICY,
        description: str | None = None,
    ) -> None:
        """
        :param alias: the key's alias, e.g. ``alias/break-glass/cosign``.
        :param signers: break-glass signer roles (never CI roles). :default: - nobody can sign
        :param verifiers: principals allowed GetPublicKey, Verify, DescribeKey, typically the
            workload accounts (``iam.AccountPrincipal``). :default: - only principals granted later
        :param key_spec: :default: SigningKeySpec.ECC_NIST_P256
        :param admins: the roles or users that may manage (not use) the key, in place of the account
            root; include ``cloudformation_execution_role(stack)`` (KMS's lockout check).
            :default: - the break-glass account's root (IAM policies there decide who)
        :param removal_policy: :default: RemovalPolicy.RETAIN
        :param description: :default: - "break-glass image signing key (<alias>, active)"
        """
        super().__init__(
            scope,
            id,
            alias=alias,
            signers=signers,
            verifiers=verifiers,
            key_spec=key_spec,
            state=KeyState.ACTIVE,
            admins=admins,
            removal_policy=removal_policy,
            description=description,
        )
        add_validation(self, self._check_placement)

    def _check_placement(self) -> list[str]:
        # Imported here: ci_roles imports the key modules for its type hints.
        from .ci_roles import CiSigningRole

        stack = Stack.of(self)
        if Token.is_unresolved(stack.account):
            return [
                f"break-glass key {self.node.path} is in an environment-agnostic stack; give stack "
                f"{stack.stack_name} an explicit env=Environment(account=..., region=...) in the break-glass account"
            ]
        errors = []
        for role in find_in_app(self, CiSigningRole):
            if Stack.of(role) is stack:
                errors.append(
                    f"break-glass key {self.node.path} shares stack {stack.stack_name} with CI signing role "
                    f"{role.node.path}; move the break-glass key to its own stack in its own account"
                )
                continue
            same_account = same_value(Stack.of(role).account, stack.account)
            if same_account:
                errors.append(
                    f"break-glass key {self.node.path} is in account {stack.account}, which also holds CI signing "
                    f"role {role.node.path}; deploy the break-glass key to a separate account"
                )
            elif same_account is None:
                # An environment-agnostic stack can be deployed to the break-glass account: assume it is.
                errors.append(
                    f"break-glass key {self.node.path}: cannot tell whether CI signing role {role.node.path} is outside "
                    f"account {stack.account}; give stack {Stack.of(role).stack_name} an explicit account"
                )
        return errors
