"""Helpers shared by grants: principal ARNs and cdk-nag acknowledgements on grantees."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from aws_cdk import Stack, Token
from aws_cdk import aws_iam as iam
from constructs import IConstruct

from . import _defaults
from ._nag import acknowledge_wildcards

# One role or user, optionally under a path; no wildcard (IAM names: letters, digits, +=,.@_-).
IDENTITY_ARN_PATTERN = re.compile(r"arn:aws(-[a-z]+)*:iam::[0-9]{12}:(role|user)/([\w+=,.@-]+/)*[\w+=,.@-]{1,64}")


def identity_arn(grantee: iam.IGrantable, what: str) -> str:
    """The ARN of a role or user that a key policy can name as a signer.

    Account and service principals are refused: naming an account would let every identity in it
    that IAM allows sign, which is exactly what a signing key policy must not do. A literal ARN must
    name one role or user: the key policy's deny compares it with ``aws:PrincipalArn`` under
    ``ArnNotEquals``, where ``*`` and ``?`` are wildcards (``"*"`` would exempt everyone from the
    deny), and ``aws:PrincipalArn`` of an assumed-role session is its role's ARN (a session ARN
    would never match, so that signer would always be denied).
    """
    principal = grantee.grant_principal
    arn = next((a for a in (getattr(principal, n, None) for n in ("role_arn", "user_arn")) if a is not None), None)
    if arn is None and isinstance(principal, iam.ArnPrincipal) and not isinstance(principal, iam.AccountPrincipal):
        arn = principal.arn
    if arn is None:
        raise ValueError(
            f"{what} must be an IAM role or user, got {principal}; an account or service principal would let "
            "anyone that principal delegates to sign: pass the role itself (for example iam.Role.from_role_arn())"
        )
    literal_mismatch = not Token.is_unresolved(arn) and not IDENTITY_ARN_PATTERN.fullmatch(arn)
    if literal_mismatch or "*" in arn or "?" in arn:
        raise ValueError(
            f"{what} must be one IAM role or user ARN like arn:aws:iam::111111111111:role/ci-signer (no wildcard, "
            f"no session, group or account ARN), got {arn!r}; for an assumed-role session name its role"
        )
    return arn


def construct_of(grantee: iam.IGrantable) -> IConstruct | None:
    """The construct behind a grantee's principal, when there is one in this app."""
    principal = grantee.grant_principal
    return principal if hasattr(principal, "node") else None


def acknowledge_wildcard_resource(grantee: iam.IGrantable, reason: str, *, actions: Sequence[str] | None = None) -> None:
    """Acknowledge cdk-nag's IAM5 ``Resource::*`` on the grantee, for actions with no narrower resource.

    Only for ``actions`` (default: the actions the grantee's statements grant on ``*`` now): a
    statement that grants anything else on ``*`` later is reported by cdk-nag (see ``_nag``).
    """
    target = construct_of(grantee)
    if target is not None:
        acknowledge_wildcards(target, ["*"], reason, actions=actions)


def ci_principal_reason(grantee: iam.IGrantable) -> str | None:
    """Why ``grantee`` is a CI principal, or None.

    A principal is a CI principal when it is (or belongs to) a CI signing role of this package, or
    when it is a role of this app whose trust policy lets a CI system assume it (GitHub or GitLab
    OIDC, CodeBuild, CodePipeline). Roles imported by ARN cannot be inspected; keep those out of
    break-glass keys by placing the key in its own account.
    """
    target = construct_of(grantee)
    node = target
    while node is not None:
        if getattr(node, "_is_ci_signing_role", False):
            return f"{node.node.path} is a CI signing role"
        node = node.node.scope
    trust = getattr(target, "assume_role_policy", None) if target is not None else None
    if trust is not None:
        text = json.dumps(Stack.of(target).resolve(trust.to_json()))
        for marker in _defaults.CI_TRUST_MARKERS:
            if marker in text:
                return f"{target.node.path} can be assumed by {marker}"
    return None
