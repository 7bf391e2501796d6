"""cosign keyless: Fulcio certificates and Rekor entries, verified offline against a user's trusted root.

Not imported by `image_verifier.cosign` itself: the verifier imports `matches` only when a policy has
a `cosignKeyless` signer, so key-only runs never load it. See verify.py for the steps.
"""

from __future__ import annotations
