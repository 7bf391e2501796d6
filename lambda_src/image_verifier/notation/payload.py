"""The Notary payload: `{"targetArtifact": <descriptor>}`, compared with the manifest being verified.

Parsed only after the signature verified (the bytes are then the signer's). The descriptor's
digest, size and media type must equal the subject's: that is what stops a valid signature from
being replayed onto another image. `targetArtifact.annotations` are returned to the caller, which
checks a rule's `requiredAnnotations` (shared with cosign, so it lives with the policy rules).
"""

from __future__ import annotations

from typing import Mapping

from ..errors import HostileArtifactError, SignatureIntegrityError
from .._json import strict_json_loads
from ..oci import Descriptor


def check_payload(payload: bytes, subject: Descriptor) -> Mapping[str, str]:
    """Return the signed user annotations; raise SignatureIntegrityError if the target is not `subject`."""
    try:
        data = strict_json_loads(payload, what="the signature payload")
        if not isinstance(data, dict) or set(data) != {"targetArtifact"}:
            raise SignatureIntegrityError("the signature payload must be an object with only targetArtifact")
        target = Descriptor.from_json(data["targetArtifact"], where="targetArtifact")
    except HostileArtifactError as exc:
        raise SignatureIntegrityError(str(exc)) from exc
    for field, signed, actual in (
        ("digest", target.digest, subject.digest),
        ("size", target.size, subject.size),
        ("mediaType", target.media_type, subject.media_type),
    ):
        if signed != actual:
            raise SignatureIntegrityError(f"the signature is for {field} {signed!r}, but the image has {actual!r}")
    return dict(target.annotations)
