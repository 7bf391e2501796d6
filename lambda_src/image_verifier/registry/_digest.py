"""Content digests as the OCI image spec writes them: `<algorithm>:<lower-case hex>`."""

from __future__ import annotations

import hashlib

_HASHES = {"sha256": hashlib.sha256, "sha512": hashlib.sha512}


def compute_digest(data: bytes, algorithm: str = "sha256") -> str:
    """The digest of `data`; `algorithm` is "sha256" (the default everywhere) or "sha512"."""
    return f"{algorithm}:{_HASHES[algorithm](data).hexdigest()}"
