"""AWS Signer signing profiles for Notation (the profile that ECR managed signing signs with)."""

from __future__ import annotations

import re
from typing import Protocol, runtime_checkable

from aws_cdk import ArnFormat, Resource, Stack, Token
from aws_cdk.interfaces import ResourceEnvironment
from aws_cdk import aws_iam as iam
from aws_cdk import aws_signer as signer
from constructs import Construct

from . import _actions, _defaults
from ._grants import construct_of
from ._nag import acknowledge_wildcards
from ._validation import require_literal, require_match

PROFILE_NAME_PATTERN = re.compile(r"[a-zA-Z0-9_]{2,64}")
PROFILE_ARN_PATTERN = re.compile(
    r"arn:aws(-[a-z]+)*:signer:[a-z0-9-]+:[0-9]{12}:/signing-profiles/(?P<name>[a-zA-Z0-9_]{2,64})"
)
_PROFILE_NAME_RULE = "2 to 64 letters, digits or underscores ([a-zA-Z0-9_]{2,64})"


@runtime_checkable
class ISigningProfile(Protocol):
    """An AWS Signer signing profile, owned by this app or imported."""

    @property
    def signing_profile_arn(self) -> str:
        """The profile ARN (``arn:aws:signer:<region>:<account>:/signing-profiles/<name>``), not a version ARN."""
        ...

    @property
    def signing_profile_name(self) -> str:
        """The profile name."""
        ...

    @property
    def env(self) -> ResourceEnvironment:
        """The account and region the profile lives in."""
        ...

    def grant_sign(self, grantee: iam.IGrantable) -> iam.Grant:
        """Let ``grantee`` sign through this profile (what an ECR managed-signing pusher needs)."""
        ...

    def grant_revocation_check(self, grantee: iam.IGrantable) -> iam.Grant:
        """Let ``grantee`` ask AWS Signer whether a signature made through this profile is revoked."""
        ...


class SigningProfileBase(Resource):
    """Attributes and grants shared by owned and imported signing profiles.

    Subclasses set ``_arn`` and ``_name`` in their constructor.
    """

    _arn: str
    _name: str

    @property
    def signing_profile_arn(self) -> str:
        return self._arn

    @property
    def signing_profile_name(self) -> str:
        return self._name

    def grant_sign(self, grantee: iam.IGrantable) -> iam.Grant:
        """Grant ``signer:SignPayload`` on this profile.

        ECR managed signing signs "using the identity of the entity pushing the image", so every
        principal that pushes to a repository matched by a signing rule needs this grant.
        """
        return iam.Grant.add_to_principal(
            grantee=grantee,
            actions=list(_actions.SIGNER_SIGN_ACTIONS),
            resource_arns=[self.signing_profile_arn],
        )

    def grant_revocation_check(self, grantee: iam.IGrantable) -> iam.Grant:
        """Grant ``signer:GetRevocationStatus`` for signatures made through this profile.

        The service authorization reference lists the signing profile and signing job resource
        types for this action, so the grant names them: the profile, its versions (a signature
        names its profile version) and the signing jobs of the profile's account and region.
        """
        resources = revocation_check_resources(self)
        grant = iam.Grant.add_to_principal(
            grantee=grantee, actions=list(_actions.SIGNER_REVOCATION_ACTIONS), resource_arns=resources,
        )
        target = construct_of(grantee)
        if target is not None:
            acknowledge_wildcards(target, resources, "Scoped wildcards only: every version of this signing profile "
                                  "and the signing jobs of its account and region, which GetRevocationStatus names.")
        return grant


def revocation_check_resources(profile: ISigningProfile) -> list[str]:
    """What ``signer:GetRevocationStatus`` needs for this profile's signatures."""
    jobs = Stack.of(profile).format_arn(
        service="signer", region=profile.env.region, account=profile.env.account,
        resource="/signing-jobs", resource_name="*", arn_format=ArnFormat.SLASH_RESOURCE_NAME,
    )
    arn = profile.signing_profile_arn
    return [arn, f"{arn}/*", jobs]


class NotationSigningProfile(SigningProfileBase):
    """An AWS Signer signing profile on the ``Notation-OCI-SHA384-ECDSA`` platform.

    Use it with :class:`RegistrySigningRules` so that ECR signs images as they are pushed, and
    give pushers :meth:`grant_sign`.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        signing_profile_name: str | None = None,
        signature_validity_months: int = _defaults.DEFAULT_SIGNATURE_VALIDITY_MONTHS,
    ) -> None:
        """
        :param signing_profile_name: the profile name, 2 to 64 of ``[a-zA-Z0-9_]``.
            :default: - CloudFormation generates a name
        :param signature_validity_months: how long signatures stay valid, 1 to 135 months. Changing
            it replaces the profile (a new ARN: update trust policies that name the old one).
            :default: 135 (AWS Signer's default, and its maximum)
        """
        if signing_profile_name is not None:
            require_literal(
                signing_profile_name,
                "signing_profile_name",
                "pass a literal name so that it can be checked at synth, or omit it to let CloudFormation choose one",
            )
            require_match(signing_profile_name, PROFILE_NAME_PATTERN, "signing_profile_name", _PROFILE_NAME_RULE)
        require_literal(signature_validity_months, "signature_validity_months", "pass a literal number of months")
        if isinstance(signature_validity_months, bool) or not isinstance(signature_validity_months, int):
            raise ValueError(f"signature_validity_months must be a whole number of months, got {signature_validity_months!r}")
        if not 1 <= signature_validity_months <= _defaults.MAX_SIGNATURE_VALIDITY_MONTHS:
            raise ValueError(
                f"signature_validity_months must be between 1 and {_defaults.MAX_SIGNATURE_VALIDITY_MONTHS} "
                f"(AWS Signer's maximum), got {signature_validity_months}"
            )
        super().__init__(scope, id, physical_name=signing_profile_name)
        self._resource = signer.CfnSigningProfile(
            self,
            "Resource",
            platform_id=_defaults.NOTATION_PLATFORM_ID,
            profile_name=signing_profile_name,
            signature_validity_period=signer.CfnSigningProfile.SignatureValidityPeriodProperty(
                type="MONTHS", value=signature_validity_months
            ),
        )
        self._arn = self._resource.attr_arn
        self._name = signing_profile_name or self._resource.attr_profile_name
        self.signature_validity_months = signature_validity_months

    @property
    def signing_profile_version(self) -> str:
        """The profile version (10 characters), known at deploy time."""
        return self._resource.attr_profile_version

    @property
    def signing_profile_version_arn(self) -> str:
        """The profile-version ARN; a Notation trusted identity may pin it instead of the profile ARN."""
        return self._resource.attr_profile_version_arn

    @staticmethod
    def from_signing_profile_arn(scope: Construct, id: str, signing_profile_arn: str) -> ISigningProfile:
        """Import a profile by its profile ARN (not a profile-version ARN)."""
        if Token.is_unresolved(signing_profile_arn):
            raise ValueError(
                f"signing_profile_arn is a token ({signing_profile_arn!r}); use "
                "NotationSigningProfile.from_signing_profile_attributes() with the profile name, account and region"
            )
        match = PROFILE_ARN_PATTERN.fullmatch(signing_profile_arn)
        if match is None:
            raise ValueError(
                "signing_profile_arn must be a profile ARN like "
                f"arn:aws:signer:us-east-1:111111111111:/signing-profiles/my_profile, got {signing_profile_arn!r}"
                " (a profile-version ARN has one more /segment: drop it)"
            )
        return _ImportedSigningProfile(scope, id, arn=signing_profile_arn, name=match["name"])

    @staticmethod
    def from_signing_profile_attributes(
        scope: Construct,
        id: str,
        *,
        signing_profile_name: str,
        account: str | None = None,
        region: str | None = None,
    ) -> ISigningProfile:
        """Import a profile by name.

        :param signing_profile_name: the profile name (a token is allowed here).
        :param account: the profile's account. :default: - the account of the stack that holds ``scope``
        :param region: the profile's region. :default: - the region of the stack that holds ``scope``
        """
        if not Token.is_unresolved(signing_profile_name):
            require_match(signing_profile_name, PROFILE_NAME_PATTERN, "signing_profile_name", _PROFILE_NAME_RULE)
        arn = Stack.of(scope).format_arn(
            service="signer",
            resource="/signing-profiles",
            resource_name=signing_profile_name,
            arn_format=ArnFormat.SLASH_RESOURCE_NAME,
            account=account,
            region=region,
        )
        return _ImportedSigningProfile(scope, id, arn=arn, name=signing_profile_name)


class _ImportedSigningProfile(SigningProfileBase):
    """A signing profile defined outside this app."""

    def __init__(self, scope: Construct, id: str, *, arn: str, name: str) -> None:
        super().__init__(scope, id, environment_from_arn=arn)
        self._arn = arn
        self._name = name
