"""Public keys that cosign signers may use: ECDSA P-256 and P-384, as PEM or DER SubjectPublicKeyInfo."""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

# cosign's KMS signer picks the hash from the key: P-256 → SHA-256, P-384 → SHA-384.
COSIGN_CURVES: dict[str, hashes.HashAlgorithm] = {"secp256r1": hashes.SHA256(), "secp384r1": hashes.SHA384()}


def load_cosign_public_key(data: bytes, *, der: bool = False) -> ec.EllipticCurvePublicKey:
    """Load a cosign verification key, refusing every key type but ECDSA P-256/P-384 (ValueError)."""
    try:
        key = serialization.load_der_public_key(data) if der else serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise ValueError(
            "not a PEM public key; export one with 'cosign public-key --key awskms:///<key-arn>' "
            "or 'openssl ec -pubout'"
        ) from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name not in COSIGN_CURVES:
        raise ValueError("only ECDSA P-256 and P-384 public keys are supported for cosign signatures")
    return key


def validate_cosign_public_key(pem: str) -> None:
    load_cosign_public_key(pem.encode())


def hash_for(key: ec.EllipticCurvePublicKey) -> hashes.HashAlgorithm:
    return COSIGN_CURVES[key.curve.name]


def key_id(key: ec.EllipticCurvePublicKey) -> str:
    """A stable id for logs: `sha256:` of the DER SubjectPublicKeyInfo (what cosign's bundle hint encodes)."""
    digest = hashes.Hash(hashes.SHA256())
    digest.update(key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))
    return "sha256:" + digest.finalize().hex()
