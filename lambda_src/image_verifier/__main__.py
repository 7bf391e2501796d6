"""`python -m image_verifier ...`: see cli.py."""

from __future__ import annotations

import sys

from .cli import main
from .cli_hints import MODULE_PROGRAM

sys.exit(main(prog=MODULE_PROGRAM))
