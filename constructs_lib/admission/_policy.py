"""The admission policy document, built from construct references and validated at synth.

Values known only at deploy time (a key ARN, a profile ARN, a repository URI in an
environment-agnostic stack) are written as ``{"fromEnv": "NAME"}`` and set as the function's
environment variable NAME; the document itself never holds an unresolved token. At synth the
document is parsed by the runtime's own ``Policy.from_json`` with a placeholder for each such
value, so a policy that the Lambda would refuse fails ``cdk synth`` instead.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from aws_cdk import Token
from aws_cdk import aws_ecr as ecr
from constructs import IConstruct

from image_verifier.policy import Policy

from ..signing_key import ISigningKey, KeyState
from ..signing_profile import ISigningProfile
from .keyless import KeylessIdentity

_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
_PLACEHOLDERS = {
    # one stand-in per variable: the policy refuses two signers with one key
    "KMS_KEY": "arn:aws:kms:us-east-1:111111111111:key/00000000-0000-4000-8000-{n:012d}",
    "SIGNING_PROFILE": "arn:aws:signer:us-east-1:111111111111:/signing-profiles/placeholder_profile_{n}",
    "IMAGES": "111111111111.dkr.ecr.us-east-1.amazonaws.com/placeholder-{n}",
}
ECR_HOST = re.compile(r"(?P<account>[0-9]{12})\.dkr\.ecr(?:-fips)?\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?")


@dataclass(frozen=True, kw_only=True)
class AdmissionExemption:
    """Images that are admitted without a signature until ``expires``, for a recorded reason.

    :param images: image patterns, e.g. ``public.ecr.aws/aws-observability/**``.
    :param reason: why (a ticket, an owner); at least 10 characters.
    :param expires: when the exemption ends (timezone-aware, or an RFC 3339 string).
    :param digests: pin the exemption to these digests. :default: - any digest
    """

    images: Sequence[str]
    reason: str
    expires: datetime | str
    digests: Sequence[str] = field(default=())

    def to_json(self) -> dict[str, Any]:
        expires = self.expires
        if isinstance(expires, datetime):
            if expires.tzinfo is None:
                raise ValueError(f"exemption expiry {expires.isoformat()} has no time zone; use e.g. tzinfo=timezone.utc")
            expires = expires.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
        doc: dict[str, Any] = {"images": list(self.images), "reason": self.reason, "expires": expires}
        if self.digests:
            doc["digests"] = list(self.digests)
        return doc


@dataclass
class BuiltPolicy:
    document: dict[str, Any]
    environment: dict[str, str]  # variable -> deploy-time value (token or literal)
    placeholders: dict[str, str]  # variable -> synth-time stand-in used for validation
    policy: Policy  # the validated model (with placeholders)

    @property
    def text(self) -> str:
        return json.dumps(self.document, indent=2, sort_keys=True) + "\n"


class PolicyBuilder:
    """Collects signers, image patterns and exemptions into one policy document."""

    def __init__(self, scope: IConstruct, *, env_prefix: str = "ADMISSION_") -> None:
        self._scope = scope
        self._prefix = env_prefix
        self._signers: list[dict[str, Any]] = []
        self._names: set[str] = set()
        self._images: list[Any] = []
        self._env: dict[str, str] = {}
        self._placeholders: dict[str, str] = {}

    # -- signers --------------------------------------------------------------------------------
    def add_key(self, key: ISigningKey) -> str:
        name = self._name(key)
        body: dict[str, Any] = {
            "kmsKeyArn": self._value(key.key_arn, "KMS_KEY"),
            "state": "retired" if key.state is KeyState.RETIRED else "active",
            "breakGlass": bool(key.break_glass),
        }
        self._signers.append({"name": name, "cosignKey": body})
        return name

    def add_profiles(self, profiles: Sequence[ISigningProfile], *, root_certificates: Sequence[str],
                     custom_root_certificates: Sequence[str], revocation_check: bool) -> str:
        name = self._unique("aws-signer")
        body: dict[str, Any] = {
            "signingProfileArns": [self._value(p.signing_profile_arn, "SIGNING_PROFILE") for p in profiles],
            "revocationCheck": revocation_check,
        }
        if root_certificates:
            body["rootCertificates"] = list(root_certificates)
        if custom_root_certificates:
            body["customRootCertificates"] = list(custom_root_certificates)
        self._signers.append({"name": name, "awsSigner": body})
        return name

    def add_keyless(self, identity: KeylessIdentity) -> str:
        """A cosign keyless identity, under the name its user gave (added after keys and profiles, whose
        names come from construct ids: a clash is refused rather than renaming what the trust lock records)."""
        if not isinstance(identity, KeylessIdentity):
            raise ValueError(f"keyless_signers takes KeylessIdentity values, got {identity!r}")
        if identity.name in self._names:
            raise ValueError(f"keyless identity name {identity.name!r} is already the name of another trusted signer of "
                             f"{self._scope.node.path}; give the identity another name")
        self._names.add(identity.name)
        self._signers.append({"name": identity.name, "cosignKeyless": identity.to_json()})
        return identity.name

    # -- images ---------------------------------------------------------------------------------
    def add_repository(self, repository: ecr.IRepository) -> None:
        """Images of this repository (its exact name: ``<account>.dkr.ecr.<region>.amazonaws.com/<name>``)."""
        self._images.append(self._value(repository_pattern(repository), "IMAGES"))

    def add_pattern(self, pattern: str) -> None:
        if Token.is_unresolved(pattern):
            raise ValueError(f"image pattern {pattern!r} is a token; pass a literal pattern or the ecr.IRepository")
        self._images.append(pattern)

    # -- the document ---------------------------------------------------------------------------
    def build(self, *, failure_mode: str, unavailable_mode: str, exemptions: Sequence[AdmissionExemption],
              rule_name: str = "signed-images") -> BuiltPolicy:
        if not self._signers:
            raise ValueError("the admission policy trusts no signer; give signing_keys, signing_profiles and/or "
                             "keyless_signers")
        if not self._images:
            raise ValueError("the admission policy covers no image; give repositories and/or image_patterns")
        document: dict[str, Any] = {
            "version": "1",
            "failureMode": failure_mode,
            "unavailableMode": unavailable_mode,
            "trustedSigners": self._signers,
            "rules": [{"name": rule_name, "images": self._images, "anyOf": [s["name"] for s in self._signers]}],
        }
        if exemptions:
            document["exemptions"] = [e.to_json() for e in exemptions]
        try:
            policy = Policy.from_json(document, environ=self._placeholders)
        except Exception as exc:  # PolicyError, with the path of the bad field
            raise ValueError(f"the admission policy is invalid: {exc}") from exc
        return BuiltPolicy(document=document, environment=dict(self._env), placeholders=dict(self._placeholders),
                           policy=policy)

    # -- helpers --------------------------------------------------------------------------------
    def _value(self, value: str, kind: str) -> Any:
        """The literal, or a ``fromEnv`` reference to a new environment variable holding the token."""
        if not Token.is_unresolved(value):
            return value
        index = sum(1 for name in self._env if name.startswith(f"{self._prefix}{kind}_"))
        variable = f"{self._prefix}{kind}_{index}"
        self._env[variable] = value
        self._placeholders[variable] = _PLACEHOLDERS[kind].format(n=index)
        return {"fromEnv": variable}

    def _name(self, construct: Any) -> str:
        node_id = getattr(getattr(construct, "node", None), "id", None) or "signer"
        return self._unique(_NAME_CHARS.sub("-", node_id).strip("-")[:56] or "signer")

    def _unique(self, base: str) -> str:
        name, n = base, 2
        while name in self._names:
            name, n = f"{base}-{n}", n + 1
        self._names.add(name)
        return name


def repository_pattern(repository: ecr.IRepository) -> str:
    """The image pattern of an ECR repository: a literal when account, region and name are known."""
    account, region, name = repository.env.account, repository.env.region, repository.repository_name
    if any(Token.is_unresolved(v) for v in (account, region, name)):
        return repository.repository_uri  # a token: travels as an environment variable
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"{account}.dkr.ecr.{region}.{suffix}/{name}"
