"""Secure defaults for every construct in this package, in one place.

Override order everywhere: these defaults, then the caller's props, then what a construct itself
must enforce (for example the explicit deny on ``kms:Sign``, which no prop can remove).
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy

# --- AWS Signer ---------------------------------------------------------------------------------
NOTATION_PLATFORM_ID = "Notation-OCI-SHA384-ECDSA"
# 135 months is both AWS Signer's default and its maximum signature validity.
DEFAULT_SIGNATURE_VALIDITY_MONTHS = 135
MAX_SIGNATURE_VALIDITY_MONTHS = 135

# --- ECR managed signing ------------------------------------------------------------------------
MAX_SIGNING_RULES = 10  # ECR API model (the CFN page says 50; the API is what PutSigningConfiguration enforces)
MAX_FILTERS_PER_RULE = 100
REPOSITORY_FILTER_TYPE = "WILDCARD_MATCH"

# --- ECR repositories created by SignedImageSupplyChain ----------------------------------------
REPOSITORY_SCAN_ON_PUSH = True
REPOSITORY_REMOVAL_POLICY = RemovalPolicy.RETAIN
# Release tags are immutable; cosign's signature tags (sha256-<hex>.sig) and the OCI referrers tag
# fallback (sha256-<hex>) must stay writable, or a second signature on one digest fails.
SIGNATURE_TAG_EXCLUSION = "sha256-*"

# --- KMS signing keys ---------------------------------------------------------------------------
KEY_REMOVAL_POLICY = RemovalPolicy.RETAIN
KEY_PENDING_WINDOW_DAYS = 30
# cosign's KMS signer always sends MessageType DIGEST for Sign.
COSIGN_MESSAGE_TYPE = "DIGEST"

# --- CI roles -----------------------------------------------------------------------------------
GITHUB_OIDC_ISSUER = "token.actions.githubusercontent.com"
GITHUB_OIDC_AUDIENCE = "sts.amazonaws.com"
GITHUB_DEFAULT_BRANCHES = ("main",)
CI_ROLE_MAX_SESSION = Duration.hours(1)
CODEBUILD_SERVICE_PRINCIPAL = "codebuild.amazonaws.com"
# Trust-policy markers of a role that a CI system can assume; a break-glass key refuses such roles.
CI_TRUST_MARKERS = (
    GITHUB_OIDC_ISSUER,
    "gitlab.com",
    CODEBUILD_SERVICE_PRINCIPAL,
    "codepipeline.amazonaws.com",
)
