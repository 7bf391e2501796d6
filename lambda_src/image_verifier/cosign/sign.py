"""Write cosign-compatible legacy signatures (`sha256-<hex>.sig`), with a KMS key or a local PEM key.

A KMS key signs the payload's digest (`MessageType=DIGEST`), exactly as cosign's awskms signer
does, so `cosign verify --key awskms:///<arn>` accepts what this writes and vice versa.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any, Callable, Mapping, Protocol

from botocore.exceptions import BotoCoreError, ClientError
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ..errors import AwsUnavailableError, ImageVerifierError
from ..oci import OCI_IMAGE_CONFIG, OCI_MANIFEST, Descriptor, Manifest
from ..policy.keys import hash_for, load_cosign_public_key
from ..reference import ImageReference
from .legacy import SIGNATURE_ANNOTATION, SIMPLE_SIGNING_MEDIA_TYPE, signature_tag
from .payload import SimpleSigningPayload

_KMS_ALGORITHMS = {"secp256r1": "ECDSA_SHA_256", "secp384r1": "ECDSA_SHA_384"}


class SigningError(ImageVerifierError):
    """Signing could not be done as asked (bad key, unsupported key type)."""


class Signer(Protocol):
    public_key: ec.EllipticCurvePublicKey

    def sign(self, payload: bytes) -> bytes: ...


class PemSigner:
    """A local ECDSA P-256/P-384 private key (PKCS#8 or SEC1 PEM, optionally encrypted)."""

    def __init__(self, pem: bytes, password: bytes | None = None) -> None:
        try:
            key = serialization.load_pem_private_key(pem, password=password)
        except (ValueError, TypeError) as exc:
            raise SigningError(f"cannot load the private key: {exc}; give an unencrypted PEM or set the password") from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name not in _KMS_ALGORITHMS:
            raise SigningError("the private key must be ECDSA P-256 or P-384")
        self._key = key
        self.public_key = key.public_key()

    def sign(self, payload: bytes) -> bytes:
        return self._key.sign(payload, ec.ECDSA(hash_for(self.public_key)))


class KmsSigner:
    """An asymmetric KMS key (`kms:Sign` with MessageType=DIGEST, as cosign's KMS signer)."""

    def __init__(self, key_arn: str, kms_client_for_region: Callable[[str], Any]) -> None:
        self._arn = key_arn
        self._kms = kms_client_for_region(key_arn.split(":")[3])
        response = self._call("GetPublicKey", KeyId=key_arn)
        self.public_key = load_cosign_public_key(response["PublicKey"], der=True)

    def _call(self, operation: str, **params: Any) -> Mapping[str, Any]:
        method = {"GetPublicKey": self._kms.get_public_key, "Sign": self._kms.sign}[operation]
        try:
            return method(**params)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            raise AwsUnavailableError(f"kms:{operation} failed for {self._arn}: {code}: {exc}") from exc
        except BotoCoreError as exc:
            raise AwsUnavailableError(f"kms:{operation} failed for {self._arn}: {exc}") from exc

    def sign(self, payload: bytes) -> bytes:
        algorithm = hash_for(self.public_key)
        digest = hashlib.new(algorithm.name, payload).digest()
        response = self._call("Sign", KeyId=self._arn, Message=digest, MessageType="DIGEST",
                              SigningAlgorithm=_KMS_ALGORITHMS[self.public_key.curve.name])
        return response["Signature"]


class RegistryWriter(Protocol):
    def get_manifest(self, ref: ImageReference, digest: str) -> Manifest: ...
    def find_tag(self, ref: ImageReference, tag: str) -> Manifest | None: ...
    def put_blob(self, ref: ImageReference, data: bytes) -> Descriptor: ...
    def put_manifest(self, ref: ImageReference, reference: str, raw: bytes, media_type: str) -> str: ...


def sign_image(registry: RegistryWriter, ref: ImageReference, signer: Signer,
               annotations: Mapping[str, str] | None = None) -> str:
    """Sign `ref` (which must carry a digest) and push the signature; return the `.sig` manifest digest."""
    if ref.digest is None:
        raise SigningError(f"{ref} has no digest; sign IMAGE@sha256:<digest> so the signature names what was built")
    registry.get_manifest(ref, ref.digest)  # the image must exist: never sign a digest nobody pushed
    payload = SimpleSigningPayload(docker_reference=ref.name, manifest_digest=ref.digest,
                                   annotations=dict(annotations or {})).to_bytes()
    signature = signer.sign(payload)
    try:  # a key that signs what it cannot verify (wrong key, bad KMS answer) must not publish anything
        signer.public_key.verify(signature, payload, ec.ECDSA(hash_for(signer.public_key)))
    except InvalidSignature as exc:
        raise SigningError("the new signature does not verify with the signing key's public key") from exc
    payload_descriptor = registry.put_blob(ref, payload)
    layer = {
        "mediaType": SIMPLE_SIGNING_MEDIA_TYPE,
        "digest": payload_descriptor.digest,
        "size": payload_descriptor.size,
        "annotations": {SIGNATURE_ANNOTATION: base64.b64encode(signature).decode()},
    }
    tag = signature_tag(ref.digest)
    existing = registry.find_tag(ref, tag)
    layers = [dict(l) for l in existing.data.get("layers", [])] if existing else []
    layers.append(layer)  # cosign appends: every earlier signature stays valid
    config = json.dumps({
        "architecture": "", "os": "", "created": "0001-01-01T00:00:00Z", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [l["digest"] for l in layers]},
    }, separators=(",", ":")).encode()
    config_descriptor = registry.put_blob(ref, config)
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_IMAGE_CONFIG, "digest": config_descriptor.digest, "size": config_descriptor.size},
        "layers": layers,
    }, separators=(",", ":")).encode()
    return registry.put_manifest(ref, tag, manifest, OCI_MANIFEST)


__all__ = ["KmsSigner", "PemSigner", "Signer", "SigningError", "sign_image"]
