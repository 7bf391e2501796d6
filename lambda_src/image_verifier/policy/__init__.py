"""The policy model shared by the constructs (synth time), the Lambda and the CLI."""

from __future__ import annotations

from .model import (
    POLICY_VERSION,
    AwsSignerTrust,
    CosignKeylessTrust,
    CosignKeyTrust,
    Exemption,
    KeyState,
    Mode,
    NotationX509Trust,
    Policy,
    Rule,
    SignerKind,
    TrustedSigner,
)
from .patterns import ImagePattern

__all__ = [
    "POLICY_VERSION",
    "AwsSignerTrust",
    "CosignKeyTrust",
    "CosignKeylessTrust",
    "Exemption",
    "ImagePattern",
    "KeyState",
    "Mode",
    "NotationX509Trust",
    "Policy",
    "Rule",
    "SignerKind",
    "TrustedSigner",
]
