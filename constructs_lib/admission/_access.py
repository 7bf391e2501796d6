"""Resource-side access for the admission function: key policies and repository policies.

The function's own IAM policy names the keys and repositories it reads, but a KMS key policy
that does not delegate to IAM (ours do not: see ``_key_policy``) and a repository in another
account must also let it in. Where the key or repository is a construct of this app, the grant
is added here; where it is imported, it cannot be, so synth warns with the statement to add.

Principals are the admission function's *account*, not its role: the key policy and repository
policy live in another stack (often another account), and naming the role would make that stack
depend on the controller's stack, which already depends on it (a cycle). The role's own policy
still limits what the function may do; a public key and signed images are not secrets.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from aws_cdk import Annotations, Stack, Token
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_iam as iam
from constructs import IConstruct

from .._actions import ECR_READ_ACTIONS
from ..signing_key import ISigningKey, OwnedSigningKeyBase
from ._permissions import KMS_PUBLIC_KEY_ACTIONS

WARNING_ID = "signed-images:AdmissionResourcePolicy"


def grant_resource_access(controller: IConstruct, *, keys: Sequence[ISigningKey],
                          repositories: Sequence[ecr.IRepository]) -> None:
    """Let the controller's account read each key's public key and each other account's repository."""
    stack = Stack.of(controller)
    account = stack.account
    for key in keys:
        same_stack = Stack.of(key) is stack
        if Token.is_unresolved(account) and not same_stack:
            continue  # an environment-agnostic controller: its account is unknown to the key's stack
        if isinstance(key, OwnedSigningKeyBase):
            if not _already_verifier(key, account):
                key.grant_verify(iam.AccountPrincipal(account))
        elif _other_account(key.env.account, account):
            _warn(controller, f"signing key {key.key_arn} is imported from account {key.env.account}", "key policy", {
                "Sid": "ImageAdmissionReadsPublicKey", "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
                "Action": list(KMS_PUBLIC_KEY_ACTIONS), "Resource": "*"})
    for repository in repositories:
        if not _other_account(repository.env.account, account):
            continue  # same account: the function's IAM policy is enough
        statement = iam.PolicyStatement(sid="ImageAdmissionReadsImages", principals=[iam.AccountPrincipal(account)],
                                        actions=list(ECR_READ_ACTIONS))
        if not repository.add_to_resource_policy(statement).statement_added:
            _warn(controller, f"repository {repository.repository_name} is imported from account "
                  f"{repository.env.account}", "repository policy", {
                      "Sid": "ImageAdmissionReadsImages", "Effect": "Allow",
                      "Principal": {"AWS": f"arn:aws:iam::{account}:root"}, "Action": list(ECR_READ_ACTIONS)})


def _other_account(resource_account: str, account: str) -> bool:
    """True only when both accounts are known and differ."""
    return not Token.is_unresolved(resource_account) and not Token.is_unresolved(account) and resource_account != account


def _already_verifier(key: OwnedSigningKeyBase, account: str) -> bool:
    verifiers = getattr(key, "_verifiers", [])
    return any(isinstance(p, iam.AccountPrincipal) and p.account_id == account for p in verifiers)


def _warn(controller: IConstruct, what: str, where: str, statement: dict[str, object]) -> None:
    Annotations.of(controller).add_warning_v2(
        WARNING_ID,
        f"{what}, so the admission function's access cannot be granted here: unless its {where} already lets "
        f"the admission account in, every image it covers is rejected. Add this statement to the {where}: "
        f"{json.dumps(statement, sort_keys=True)}",
    )
