"""Verify container image signatures (cosign and Notation) against one policy document.

Use it as a library::

    from image_verifier import Policy, ImageRequest, Deadline, build_verifier

    policy = Policy.from_json(open("policy.json").read())
    verifier = build_verifier(policy)
    decision = verifier.decide([ImageRequest(image="123456789012.dkr.ecr.us-east-1.amazonaws.com/app:1.2")],
                               deadline=Deadline.after(30))
    print(decision.admitted, [v.to_json() for v in decision.verdicts])

or as a command line tool: ``python -m image_verifier verify --policy policy.json IMAGE...``.

The names below are imported on first use (PEP 562): ``import image_verifier.policy`` (what the CDK
constructs do at synth) needs only the policy model, and a cosign-only CLI run never loads the
Notation stack, asn1crypto or botocore.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_exports

# public name -> the module that defines it
_EXPORTS = {
    "build_verifier": ".composition",
    "Deadline": ".deadline",
    "PolicyError": ".errors",
    "UnavailableError": ".errors",
    "VerificationError": ".errors",
    "Platform": ".platform",
    "Policy": ".policy",
    "Decision": ".verdict",
    "Outcome": ".verdict",
    "SignerMatch": ".verdict",
    "Verdict": ".verdict",
    "ImageRequest": ".verifier",
    "ImageVerifier": ".verifier",
}
__all__ = [
    "Deadline", "Decision", "ImageRequest", "ImageVerifier", "Outcome", "Platform", "Policy", "PolicyError",
    "SignerMatch", "UnavailableError", "Verdict", "VerificationError", "build_verifier",
]

if TYPE_CHECKING:
    from .composition import build_verifier
    from .deadline import Deadline
    from .errors import PolicyError, UnavailableError, VerificationError
    from .platform import Platform
    from .policy import Policy
    from .verdict import Decision, Outcome, SignerMatch, Verdict
    from .verifier import ImageRequest, ImageVerifier


__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
