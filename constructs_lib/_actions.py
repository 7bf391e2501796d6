"""IAM action names used by the constructs' grants and key policies.

Every grant and key-policy statement in this package takes its actions from here, so a reviewer
can read in one page which API calls each party may make. No entry is a wildcard.
"""

from __future__ import annotations

# --- KMS: asymmetric signing keys (cosign) -----------------------------------------------------
KMS_SIGN_ACTIONS = ("kms:Sign",)
# cosign's KMS signer reads the key's metadata and public key before it signs (cached 300 s).
KMS_SIGNER_METADATA_ACTIONS = ("kms:GetPublicKey", "kms:DescribeKey")
KMS_VERIFY_ACTIONS = ("kms:GetPublicKey", "kms:Verify", "kms:DescribeKey")
# What an account administrator may do with a signing key: manage it, never use it.
# Deliberately absent: kms:Sign, kms:Verify, kms:CreateGrant (a grant could hand out kms:Sign),
# kms:ScheduleKeyDeletion (added only when the key's removal policy is DESTROY, see
# KMS_DELETE_ACTIONS).
KMS_ADMIN_ACTIONS = (
    "kms:CancelKeyDeletion",
    "kms:CreateAlias",
    "kms:DeleteAlias",
    "kms:DescribeKey",
    "kms:DisableKey",
    "kms:EnableKey",
    "kms:GetKeyPolicy",
    "kms:GetPublicKey",
    "kms:ListGrants",
    "kms:ListKeyPolicies",
    "kms:ListResourceTags",
    "kms:PutKeyPolicy",
    "kms:RetireGrant",
    "kms:RevokeGrant",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:UpdateAlias",
    "kms:UpdateKeyDescription",
)
KMS_DELETE_ACTIONS = ("kms:ScheduleKeyDeletion",)

# --- AWS Signer ---------------------------------------------------------------------------------
# ECR managed signing signs "using the identity of the entity pushing the image": the pusher needs
# signer:SignPayload on the profile (ECR managed-signing guide).
SIGNER_SIGN_ACTIONS = ("signer:SignPayload",)
SIGNER_REVOCATION_ACTIONS = ("signer:GetRevocationStatus",)

# --- ECR ----------------------------------------------------------------------------------------
# GetAuthorizationToken has no resource-level permission: it is the one "*" resource here.
ECR_AUTH_ACTIONS = ("ecr:GetAuthorizationToken",)
ECR_PUSH_ACTIONS = (
    "ecr:BatchCheckLayerAvailability",
    "ecr:InitiateLayerUpload",
    "ecr:UploadLayerPart",
    "ecr:CompleteLayerUpload",
    "ecr:PutImage",
)
# A signer reads the manifest it signs (cosign resolves the digest, notation fetches the subject).
ECR_READ_ACTIONS = ("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer")

# --- STS ----------------------------------------------------------------------------------------
STS_WEB_IDENTITY_ACTION = "sts:AssumeRoleWithWebIdentity"

# Everything a CI signing role may hold; CiSigningRole refuses any other action at synth.
CI_ROLE_ALLOWED_ACTIONS = frozenset(
    ECR_AUTH_ACTIONS
    + ECR_PUSH_ACTIONS
    + ECR_READ_ACTIONS
    + SIGNER_SIGN_ACTIONS
    + KMS_SIGN_ACTIONS
    + KMS_SIGNER_METADATA_ACTIONS
)
