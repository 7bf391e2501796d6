"""The reference app's stacks: every construct of constructs_lib in use, with offline environments.

``build_app()`` in app.py assembles them. A later stack (an ECS service behind an admission
controller) takes the ``SigningStack``'s ``chain`` and the ``BreakGlassStack``'s key reference.
"""

from __future__ import annotations

from .stacks import (
    BREAK_GLASS_ENV,
    SIGNING_ENV,
    BreakGlassStack,
    SigningStack,
)

__all__ = ["BREAK_GLASS_ENV", "SIGNING_ENV", "BreakGlassStack", "SigningStack"]
