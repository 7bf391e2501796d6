"""The key policy of a signing key, built from who may administer, sign and verify.

What restricts ``kms:Sign`` (KMS takes no encryption context for Sign, so context conditions
cannot): the key policy names each signer by ARN and pins ``kms:SigningAlgorithm`` and
``kms:MessageType`` to what cosign sends; the account root is *not* granted ``kms:Sign``, so no IAM
policy in the account can add a signer; and an explicit deny refuses ``kms:Sign`` to every
principal whose ``aws:PrincipalArn`` is not a named signer, which also voids any KMS grant.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import aws_iam as iam

from . import _actions, _defaults

SID_ADMIN = "AllowKeyAdministrationWithoutUse"
SID_SIGN = "AllowNamedSignersToSign"
SID_SIGNER_METADATA = "AllowNamedSignersToReadPublicKey"
SID_VERIFY = "AllowNamedVerifiers"
SID_DENY = "DenySignToEveryoneElse"


def build_key_policy(
    *,
    admins: Sequence[iam.IPrincipal],
    signer_arns: Sequence[str],
    verifiers: Sequence[iam.IPrincipal],
    signing_algorithm: str,
    allow_deletion: bool,
) -> iam.PolicyDocument:
    """The whole key policy; an empty ``signer_arns`` denies ``kms:Sign`` to everyone."""
    admin_actions = _actions.KMS_ADMIN_ACTIONS + (_actions.KMS_DELETE_ACTIONS if allow_deletion else ())
    statements = [
        iam.PolicyStatement(
            sid=SID_ADMIN,
            principals=list(admins),
            actions=list(admin_actions),
            resources=["*"],  # in a key policy "*" means this key
        )
    ]
    signers = [iam.ArnPrincipal(arn) for arn in signer_arns]
    if signers:
        statements.append(
            iam.PolicyStatement(
                sid=SID_SIGN,
                principals=signers,
                actions=list(_actions.KMS_SIGN_ACTIONS),
                resources=["*"],
                conditions={
                    "StringEquals": {
                        "kms:SigningAlgorithm": signing_algorithm,
                        "kms:MessageType": _defaults.COSIGN_MESSAGE_TYPE,
                    }
                },
            )
        )
        # Kept apart from the Sign statement: the MessageType/SigningAlgorithm conditions would
        # otherwise implicitly deny GetPublicKey, which carries neither key.
        statements.append(
            iam.PolicyStatement(
                sid=SID_SIGNER_METADATA,
                principals=[iam.ArnPrincipal(arn) for arn in signer_arns],
                actions=list(_actions.KMS_SIGNER_METADATA_ACTIONS),
                resources=["*"],
            )
        )
    if verifiers:
        statements.append(
            iam.PolicyStatement(
                sid=SID_VERIFY,
                principals=list(verifiers),
                actions=list(_actions.KMS_VERIFY_ACTIONS),
                resources=["*"],
            )
        )
    deny = iam.PolicyStatement(
        sid=SID_DENY,
        effect=iam.Effect.DENY,
        principals=[iam.AnyPrincipal()],
        actions=list(_actions.KMS_SIGN_ACTIONS),
        resources=["*"],
    )
    if signer_arns:
        deny.add_condition("ArnNotEquals", {"aws:PrincipalArn": list(signer_arns)})
    statements.append(deny)
    return iam.PolicyDocument(statements=statements)
