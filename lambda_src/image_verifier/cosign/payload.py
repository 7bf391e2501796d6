"""The "simple signing" payload that legacy cosign signatures sign, and the claim checks on it."""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..errors import SignatureIdentityError, SignatureIntegrityError
from .._json import strict_json_loads
from ..reference import is_digest

COSIGN_SIGNATURE_TYPE = "cosign container image signature"


@dataclass(frozen=True, kw_only=True)
class SimpleSigningPayload:
    docker_reference: str
    manifest_digest: str
    annotations: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, raw: bytes) -> SimpleSigningPayload:
        """Parse a payload whose signature has already been verified (never before)."""
        data = strict_json_loads(raw, what="the simple-signing payload")
        critical = data.get("critical") if isinstance(data, dict) else None
        if not isinstance(critical, dict):
            raise SignatureIntegrityError("the simple-signing payload has no 'critical' object")
        if critical.get("type") != COSIGN_SIGNATURE_TYPE:
            raise SignatureIntegrityError(f"the payload type is {critical.get('type')!r}, not {COSIGN_SIGNATURE_TYPE!r}")
        image, identity = critical.get("image"), critical.get("identity")
        digest = image.get("docker-manifest-digest") if isinstance(image, dict) else None
        if not isinstance(digest, str) or not is_digest(digest):
            raise SignatureIntegrityError("the payload has no valid critical.image.docker-manifest-digest")
        reference = identity.get("docker-reference") if isinstance(identity, dict) else None
        if not isinstance(reference, str):
            raise SignatureIntegrityError("the payload has no critical.identity.docker-reference")
        optional = data.get("optional")
        if optional is not None and not isinstance(optional, dict):
            raise SignatureIntegrityError("the payload's 'optional' is neither null nor an object")
        # cosign's -a claims are strings; other producers (skopeo) add numbers we keep as text.
        annotations = {k: v if isinstance(v, str) else json.dumps(v) for k, v in (optional or {}).items()}
        return cls(docker_reference=reference, manifest_digest=digest, annotations=annotations)

    def to_bytes(self) -> bytes:
        """The payload as cosign writes it (struct order; `optional` null without annotations)."""
        document: dict[str, Any] = {
            "critical": {
                "identity": {"docker-reference": self.docker_reference},
                "image": {"docker-manifest-digest": self.manifest_digest},
                "type": COSIGN_SIGNATURE_TYPE,
            },
            "optional": dict(self.annotations) or None,
        }
        return json.dumps(document, separators=(",", ":")).encode()


def decode_base64(value: object, what: str) -> bytes:
    """Strict standard base64 (cosign and protobuf JSON both write it padded), else an integrity error."""
    if not isinstance(value, str):
        raise SignatureIntegrityError(f"{what} is not a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SignatureIntegrityError(f"{what} is not valid base64") from exc


def check_required_annotations(found: Mapping[str, str], required: Mapping[str, str]) -> None:
    """Every required annotation must be present and fully match its regular expression."""
    for key, pattern in required.items():
        if key not in found:
            raise SignatureIdentityError(f"the signature lacks the required annotation {key!r}")
        if not re.fullmatch(pattern, found[key]):
            raise SignatureIdentityError(
                f"annotation {key}={found[key]!r} does not match the required pattern {pattern!r}"
            )
