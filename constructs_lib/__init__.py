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

import os
from importlib.util import find_spec

if find_spec("aws_cdk") is None or find_spec("constructs") is None:
    raise ImportError("constructs_lib needs aws-cdk-lib and constructs: install the package with its [cdk] extra, "
                      "pip install 'signed-images-cdk[cdk]' (the [cli] extra alone holds only the verifier)")

# Quiet synth: jsii's Node process prints a banner (as Python byte strings) for a deprecated,
# end-of-life or untested Node version at start-up. Set before aws_cdk is first imported here,
# and only where the user has not chosen: export the variables yourself to see the banners (or
# to silence them when aws_cdk is imported before this package). The end-of-life variable lists
# the Node majors it silences.
for _name, _value in (("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1"),
                      ("JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION", "1"),
                      ("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "14,16,18,20,22")):
    os.environ.setdefault(_name, _value)

from .admission import AdmissionController, AdmissionExemption, AdmissionMode, KeylessIdentity, RequireImageAdmission
from .audit import PushAudit, TaskAudit
from .break_glass import BreakGlassSigningKey
from .break_glass_signing import BreakGlassSigning
from .ci_roles import CiSigningRole, CodeBuildSigningRole, GitHubActionsSigningRole
from .operations import AdmissionAlarms, AdmissionDashboard, DecisionOutcome, ImageOutcome
from .signing_key import CosignSigningKey, ISigningKey, KeyState, SigningKeyBase, SigningKeySpec
from .signing_profile import ISigningProfile, NotationSigningProfile, SigningProfileBase
from .signing_rules import RegistrySigningRules, SigningRule
from .supply_chain import CodeBuildTrust, GitHubActionsTrust, SignedImageSupplyChain

__all__ = [
    "AdmissionAlarms",
    "AdmissionController",
    "AdmissionDashboard",
    "AdmissionExemption",
    "AdmissionMode",
    "BreakGlassSigning",
    "BreakGlassSigningKey",
    "CiSigningRole",
    "CodeBuildSigningRole",
    "CodeBuildTrust",
    "CosignSigningKey",
    "DecisionOutcome",
    "GitHubActionsSigningRole",
    "GitHubActionsTrust",
    "ImageOutcome",
    "ISigningKey",
    "ISigningProfile",
    "KeylessIdentity",
    "KeyState",
    "NotationSigningProfile",
    "PushAudit",
    "RegistrySigningRules",
    "RequireImageAdmission",
    "SignedImageSupplyChain",
    "SigningKeyBase",
    "SigningKeySpec",
    "SigningProfileBase",
    "SigningRule",
    "TaskAudit",
]
