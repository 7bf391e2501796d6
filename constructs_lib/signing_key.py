"""Asymmetric KMS keys that sign container images in cosign format.

``ISigningKey`` is what other constructs accept (the CI roles, and later the admission
controller, which builds its trusted signers from ``key_arn``, ``break_glass`` and ``state``).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from typing import ClassVar, Protocol, runtime_checkable

from aws_cdk import Arn, ArnFormat, Fn, RemovalPolicy, Resource, Stack, Token
from aws_cdk.interfaces import ResourceEnvironment
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from . import _actions, _defaults
from ._grants import ci_principal_reason, identity_arn
from ._key_policy import admin_arn, build_key_policy, warn_unless_deploy_role_is_admin
from ._tree import lazy
from ._validation import require_literal, require_match

KEY_ARN_PATTERN = re.compile(r"arn:aws(-[a-z]+)*:kms:[a-z0-9-]+:[0-9]{12}:key/(?P<key_id>[a-zA-Z0-9-]+)")
ALIAS_PATTERN = re.compile(r"alias/(?!aws/)[a-zA-Z0-9:/_-]{1,250}")


class KeyState(enum.Enum):
    """Lifecycle of a signing key. Rotation is a new key and alias; the old key is never deleted."""

    ACTIVE = "active"
    """Named signers may sign; verifiers may verify."""
    RETIRED = "retired"
    """Nobody may sign (the key policy denies ``kms:Sign`` to everyone); verification still works."""


class SigningKeySpec(enum.Enum):
    """Key specs that cosign's KMS signer supports, with the one algorithm each key policy allows."""

    ECC_NIST_P256 = "ECC_NIST_P256"
    ECC_NIST_P384 = "ECC_NIST_P384"

    @property
    def signing_algorithm(self) -> str:
        """The ``kms:SigningAlgorithm`` cosign uses with this spec (the key's first algorithm)."""
        return {"ECC_NIST_P256": "ECDSA_SHA_256", "ECC_NIST_P384": "ECDSA_SHA_384"}[self.value]


@runtime_checkable
class ISigningKey(Protocol):
    """A KMS signing key, owned by this app or imported. Keep these attributes stable."""

    @property
    def key_arn(self) -> str: ...

    @property
    def key_id(self) -> str: ...

    @property
    def break_glass(self) -> bool:
        """True for a break-glass key: no CI role may sign with it, and every use should alert."""
        ...

    @property
    def state(self) -> KeyState: ...

    @property
    def key_spec(self) -> SigningKeySpec: ...

    @property
    def env(self) -> ResourceEnvironment: ...

    def grant_sign(self, grantee: iam.IGrantable) -> iam.Grant: ...

    def grant_verify(self, grantee: iam.IGrantable) -> iam.Grant: ...


class SigningKeyBase(Resource):
    """Attributes and the identity side of grants, shared by owned and imported keys.

    Subclasses set ``_key_arn``, ``_key_id``, ``_state`` and ``_key_spec`` in their constructor.
    """

    _BREAK_GLASS: ClassVar[bool] = False
    _key_arn: str
    _key_id: str
    _state: KeyState
    _key_spec: SigningKeySpec
    _break_glass: bool

    @property
    def key_arn(self) -> str:
        return self._key_arn

    @property
    def key_id(self) -> str:
        return self._key_id

    @property
    def break_glass(self) -> bool:
        return self._break_glass

    @property
    def state(self) -> KeyState:
        return self._state

    @property
    def key_spec(self) -> SigningKeySpec:
        return self._key_spec

    @property
    def signing_algorithm(self) -> str:
        return self._key_spec.signing_algorithm

    def grant_sign(self, grantee: iam.IGrantable) -> iam.Grant:
        """Let ``grantee`` sign with this key the way cosign does (plus GetPublicKey, DescribeKey)."""
        self._check_signer(grantee)
        sign = iam.Grant.add_to_principal(
            grantee=grantee,
            actions=list(_actions.KMS_SIGN_ACTIONS),
            resource_arns=[self.key_arn],
            conditions={
                "StringEquals": {
                    "kms:SigningAlgorithm": self.signing_algorithm,
                    "kms:MessageType": _defaults.COSIGN_MESSAGE_TYPE,
                }
            },
        )
        metadata = iam.Grant.add_to_principal(
            grantee=grantee, actions=list(_actions.KMS_SIGNER_METADATA_ACTIONS), resource_arns=[self.key_arn]
        )
        return sign.combine(metadata)

    def grant_verify(self, grantee: iam.IGrantable) -> iam.Grant:
        """Let ``grantee`` read the public key and verify (GetPublicKey, Verify, DescribeKey)."""
        return iam.Grant.add_to_principal(
            grantee=grantee, actions=list(_actions.KMS_VERIFY_ACTIONS), resource_arns=[self.key_arn]
        )

    def _check_signer(self, grantee: iam.IGrantable) -> None:
        if self._state is KeyState.RETIRED:
            raise ValueError(
                f"signing key {self.node.path} is retired and takes no signers; grant signing on its successor "
                "(a new key with a new alias) instead"
            )
        if self._break_glass:
            reason = ci_principal_reason(grantee)
            if reason is not None:
                raise ValueError(
                    f"break-glass key {self.node.path} refuses {reason}: no CI role may sign with a break-glass key; "
                    "sign with a CosignSigningKey in CI and keep the break-glass key for the approval workflow"
                )

    @classmethod
    def from_key_arn(cls, scope: Construct, id: str, key_arn: str) -> ISigningKey:
        """Import an active key by its key ARN (not an alias ARN), with the P-256 key spec."""
        if Token.is_unresolved(key_arn):
            raise ValueError(f"key_arn is a token ({key_arn!r}); use {cls.__name__}.from_key_attributes()")
        if not KEY_ARN_PATTERN.fullmatch(key_arn):
            raise ValueError(
                f"key_arn must be a key ARN like arn:aws:kms:us-east-1:111111111111:key/<key id>, got {key_arn!r}"
            )
        return cls.from_key_attributes(scope, id, key_arn=key_arn)

    @classmethod
    def from_key_attributes(
        cls,
        scope: Construct,
        id: str,
        *,
        key_arn: str,
        key_spec: SigningKeySpec = SigningKeySpec.ECC_NIST_P256,
        state: KeyState = KeyState.ACTIVE,
        break_glass: bool | None = None,
    ) -> ISigningKey:
        """Import a key whose ARN may be a token.

        :param key_spec: the key's spec, which fixes the signing algorithm. :default: ECC_NIST_P256
        :param state: the key's state. :default: KeyState.ACTIVE
        :param break_glass: whether it is a break-glass key. :default: - True when called on BreakGlassSigningKey
        """
        return _ImportedSigningKey(
            scope,
            id,
            key_arn=key_arn,
            key_spec=key_spec,
            state=state,
            break_glass=cls._BREAK_GLASS if break_glass is None else break_glass,
        )


class _ImportedSigningKey(SigningKeyBase):
    """A key defined outside this app: grants change only the grantee's IAM policy."""

    def __init__(
        self, scope: Construct, id: str, *, key_arn: str, key_spec: SigningKeySpec, state: KeyState, break_glass: bool
    ) -> None:
        super().__init__(scope, id, environment_from_arn=key_arn)
        self._key_arn = key_arn
        self._key_id = Arn.split(key_arn, ArnFormat.SLASH_RESOURCE_NAME).resource_name or key_arn
        self._key_spec = key_spec
        self._state = state
        self._break_glass = break_glass


class OwnedSigningKeyBase(SigningKeyBase):
    """A signing key created by this app: its key policy is rendered at synth from the grants."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        alias: str,
        signers: Sequence[iam.IGrantable],
        verifiers: Sequence[iam.IGrantable],
        key_spec: SigningKeySpec,
        state: KeyState,
        admins: Sequence[iam.IGrantable],
        removal_policy: RemovalPolicy,
        description: str | None,
    ) -> None:
        require_literal(alias, "alias", "pass a literal alias like 'alias/payments/cosign'")
        require_match(alias, ALIAS_PATTERN, "alias", "'alias/' followed by letters, digits, ':/_-' (not alias/aws/)")
        if not isinstance(key_spec, SigningKeySpec):
            raise ValueError(f"key_spec must be a SigningKeySpec (ECC_NIST_P256 or ECC_NIST_P384), got {key_spec!r}")
        admin_arns = tuple(admin_arn(admin) for admin in admins)
        if state is KeyState.RETIRED and signers:
            raise ValueError(
                f"a retired key takes no signers, got {len(signers)}; remove signers= or set state=KeyState.ACTIVE"
            )
        super().__init__(scope, id)
        self._key_spec = key_spec
        self._state = state
        self._break_glass = self._BREAK_GLASS
        self._signer_arns: list[str] = []
        self._verifiers: list[iam.IPrincipal] = []
        self._admin_arns = admin_arns
        # Named admins replace the account root: no IAM policy in the account can then let anyone
        # else rewrite the key policy (see docs/constructs/cosign-signing-key.md, "Who can rewrite").
        self._admins: list[iam.IPrincipal] = [iam.ArnPrincipal(a) for a in admin_arns] or [iam.AccountRootPrincipal()]
        if admin_arns:
            warn_unless_deploy_role_is_admin(self, admin_arns)
        kind = "break-glass" if self._BREAK_GLASS else "cosign"
        self._resource = kms.CfnKey(
            self,
            "Resource",
            key_spec=key_spec.value,
            key_usage="SIGN_VERIFY",
            enabled=True,
            pending_window_in_days=_defaults.KEY_PENDING_WINDOW_DAYS,
            description=description or f"{kind} image signing key ({alias}, {state.value})",
            key_policy=lazy(self._render_policy),
        )
        self._resource.apply_removal_policy(removal_policy)
        self._allow_deletion = removal_policy == RemovalPolicy.DESTROY
        self.alias_name = alias
        kms.CfnAlias(self, "Alias", alias_name=alias, target_key_id=self._resource.ref)
        self._key_arn = self._resource.attr_arn
        self._key_id = self._resource.ref
        for signer in signers:
            self.grant_sign(signer)
        for verifier in verifiers:
            self.grant_verify(verifier)

    @property
    def admin_arns(self) -> tuple[str, ...]:
        """The roles and users named as key administrators; empty when the account root administers."""
        return self._admin_arns

    @staticmethod
    def cloudformation_execution_role(scope: Construct, id: str = "CloudFormationExecutionRole") -> iam.IRole:
        """The role CloudFormation deploys ``scope``'s stack with (CDK bootstrap's ``cfn-exec`` role).

        Name it among ``admins``: KMS refuses to create or update a key whose policy would not let
        the caller (CloudFormation, acting as this role) call ``kms:PutKeyPolicy`` again (the key
        policy lockout safety check). Needs the ``DefaultStackSynthesizer``.
        """
        stack = Stack.of(scope)
        arn = getattr(stack.synthesizer, "cloud_formation_execution_role_arn", None)
        if not arn:
            raise ValueError(
                f"stack {stack.stack_name} uses {type(stack.synthesizer).__name__}, which names no CloudFormation "
                "execution role; pass the role your deployments run as to admins= yourself"
            )
        # The synthesizer writes ${AWS::Partition} (and, for environment-agnostic stacks, the account
        # and region) as placeholders for the CLI; Fn::Sub fills them in the template.
        return iam.Role.from_role_arn(scope, id, Fn.sub(arn), mutable=False)

    @property
    def signer_arns(self) -> tuple[str, ...]:
        """The ARNs of the principals the key policy lets sign (empty when retired)."""
        return tuple(self._signer_arns)

    def grant_sign(self, grantee: iam.IGrantable) -> iam.Grant:
        """Name ``grantee`` as a signer in the key policy and grant it on its own IAM policy.

        ``grantee`` must be a role or user; the key policy denies ``kms:Sign`` to every other
        principal. Refused when the key is retired.
        """
        self._check_signer(grantee)
        arn = identity_arn(grantee, "a signer")
        if arn not in self._signer_arns:
            self._signer_arns.append(arn)
        return super().grant_sign(grantee)

    def grant_verify(self, grantee: iam.IGrantable) -> iam.Grant:
        """Name ``grantee`` as a verifier in the key policy (an account principal is allowed here)."""
        self._verifiers.append(grantee.grant_principal)
        return super().grant_verify(grantee)

    def _render_policy(self) -> iam.PolicyDocument:
        return build_key_policy(
            admins=self._admins,
            signer_arns=self._signer_arns,
            verifiers=self._verifiers,
            signing_algorithm=self.signing_algorithm,
            allow_deletion=self._allow_deletion,
        )


class CosignSigningKey(OwnedSigningKeyBase):
    """An asymmetric KMS key that signs container images in cosign format.

    The key policy lets only the named signers call ``kms:Sign`` (with cosign's algorithm and
    ``MessageType: DIGEST``), denies ``kms:Sign`` to everyone else, lets named verifiers read the
    public key and verify, and lets administrators manage the key without using it.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        alias: str,
        signers: Sequence[iam.IGrantable] = (),
        verifiers: Sequence[iam.IGrantable] = (),
        key_spec: SigningKeySpec = SigningKeySpec.ECC_NIST_P256,
        state: KeyState = KeyState.ACTIVE,
        admins: Sequence[iam.IGrantable] = (),
        removal_policy: RemovalPolicy = _defaults.KEY_REMOVAL_POLICY,
        description: str | None = None,
    ) -> None:
        """
        :param alias: the key's alias, e.g. ``alias/payments/cosign`` (cosign: ``awskms:///alias/payments/cosign``).
        :param signers: roles or users allowed to sign. :default: - nobody can sign until granted
        :param verifiers: principals (same or other accounts) allowed GetPublicKey, Verify, DescribeKey.
            :default: - only principals granted later
        :param key_spec: :default: SigningKeySpec.ECC_NIST_P256
        :param state: ``RETIRED`` removes every signer and keeps verification. :default: KeyState.ACTIVE
        :param admins: the roles or users that may manage (not use) the key, in place of the account
            root; include ``cloudformation_execution_role(stack)`` (KMS's lockout check).
            :default: - the account root (IAM policies in the account decide who)
        :param removal_policy: :default: RemovalPolicy.RETAIN (old signatures must stay verifiable)
        :param description: :default: - "cosign image signing key (<alias>, <state>)"
        """
        super().__init__(
            scope,
            id,
            alias=alias,
            signers=signers,
            verifiers=verifiers,
            key_spec=key_spec,
            state=state,
            admins=admins,
            removal_policy=removal_policy,
            description=description,
        )
