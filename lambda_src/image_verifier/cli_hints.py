"""What the command line says about itself: its name, its version, and hints for common mistakes."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from pathlib import Path

from .errors import InvalidReferenceError
from .reference import ImageReference

DISTRIBUTION = "signed-images-cdk"
CONSOLE_SCRIPT = "image-verifier"
MODULE_PROGRAM = "python -m image_verifier"

# What OpenSSL says when the other end answers a TLS ClientHello in plain http (urllib3 keeps the
# ssl module's text in the error; the registry client carries it into the verdict's reason).
_PLAIN_HTTP_TLS_ERROR = re.compile(
    r"WRONG_VERSION_NUMBER|RECORD_LAYER_FAILURE|PACKET_LENGTH_TOO_LONG|HTTP_REQUEST|wrong version number"
    r"|record layer failure|packet length too long",
)


def program_name(argv0: str | None = None) -> str:
    """`image-verifier` when run through the console script, else how `__main__` is run."""
    name = Path(argv0 if argv0 is not None else (sys.argv[0] if sys.argv else "")).name
    return CONSOLE_SCRIPT if name in (CONSOLE_SCRIPT, f"{CONSOLE_SCRIPT}.exe") else MODULE_PROGRAM


def program_version() -> str:
    from importlib import metadata  # here: importing it (and reading the metadata) costs every start tens of ms

    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        # The Lambda asset (and a bare source checkout) holds the package without its dist-info.
        return "unknown (not installed as a distribution, e.g. the Lambda asset)"


def plain_http_hint(error_text: str, image: str, insecure_registries: Iterable[str]) -> str | None:
    """A suggestion when a TLS handshake failed because the registry speaks plain http, else None."""
    if not _PLAIN_HTTP_TLS_ERROR.search(error_text):
        return None
    try:
        host = ImageReference.parse(image).registry
    except InvalidReferenceError:
        return None
    if host in {h.lower() for h in insecure_registries}:
        return None
    return (f"{host} did not answer TLS; if it is a plain-http registry (a local or test registry), "
            f"pass --insecure-registry {host}")
