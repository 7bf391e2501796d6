"""CDK constructs for a signed-image supply chain on AWS.

Sign on push with AWS Signer (ECR managed signing) and/or cosign KMS keys that only named CI roles
can use, with a break-glass key kept in its own account::

    from constructs_lib import GitHubActionsTrust, SignedImageSupplyChain

    chain = SignedImageSupplyChain(stack, "Images",
        repository_names=["payments/api"],
        cosign_key_alias="alias/payments/cosign",
        github=GitHubActionsTrust(repository="acme/payments", branches=["main"]),
    )
"""

from __future__ import annotations

from .admission import AdmissionController, AdmissionExemption, AdmissionMode, RequireImageAdmission
from .break_glass import BreakGlassSigningKey
from .ci_roles import CiSigningRole, CodeBuildSigningRole, GitHubActionsSigningRole
from .signing_key import CosignSigningKey, ISigningKey, KeyState, SigningKeyBase, SigningKeySpec
from .signing_profile import ISigningProfile, NotationSigningProfile, SigningProfileBase
from .signing_rules import RegistrySigningRules, SigningRule
from .supply_chain import CodeBuildTrust, GitHubActionsTrust, SignedImageSupplyChain

__all__ = [
    "AdmissionController",
    "AdmissionExemption",
    "AdmissionMode",
    "BreakGlassSigningKey",
    "CiSigningRole",
    "CodeBuildSigningRole",
    "CodeBuildTrust",
    "CosignSigningKey",
    "GitHubActionsSigningRole",
    "GitHubActionsTrust",
    "ISigningKey",
    "ISigningProfile",
    "KeyState",
    "NotationSigningProfile",
    "RegistrySigningRules",
    "RequireImageAdmission",
    "SignedImageSupplyChain",
    "SigningKeyBase",
    "SigningKeySpec",
    "SigningProfileBase",
    "SigningRule",
]
