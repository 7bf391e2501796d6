"""Verify container image signatures (cosign and Notation) against one policy document.

Use it as a library::

    from image_verifier import Policy, ImageRequest, Deadline, build_verifier

    policy = Policy.from_json(open("policy.json").read())
    verifier = build_verifier(policy)
    decision = verifier.decide([ImageRequest(image="123456789012.dkr.ecr.us-east-1.amazonaws.com/app:1.2")],
                               deadline=Deadline.after(30))
    print(decision.admitted, [v.to_json() for v in decision.verdicts])

or as a command line tool: ``python -m image_verifier verify --policy policy.json IMAGE...``.
"""

from __future__ import annotations

from .composition import build_verifier
from .deadline import Deadline
from .errors import PolicyError, UnavailableError, VerificationError
from .platform import Platform
from .policy import Policy
from .verdict import Decision, Outcome, SignerMatch, Verdict
from .verifier import ImageRequest, ImageVerifier

__all__ = [
    "Deadline",
    "Decision",
    "ImageRequest",
    "ImageVerifier",
    "Outcome",
    "Platform",
    "Policy",
    "PolicyError",
    "SignerMatch",
    "UnavailableError",
    "Verdict",
    "VerificationError",
    "build_verifier",
]
