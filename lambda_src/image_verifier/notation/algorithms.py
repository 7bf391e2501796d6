"""The six Notary signature algorithms, derived from the signing key (never from the envelope alone).

The envelope names an algorithm (`alg`); the verifier derives the algorithm from the leaf
certificate's key and requires both to agree, so nobody can make us verify an ES256 header with a
P-384 key or an HMAC/`none` "signature" (algorithm substitution).
"""

from __future__ import annotations

from enum import Enum

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from ..errors import SignatureIntegrityError


class Algorithm(Enum):
    """(JWS name, COSE id, hash, key kind, RSA modulus bits or EC curve name)."""

    PS256 = ("PS256", -37, "sha256", "rsa", 2048)
    PS384 = ("PS384", -38, "sha384", "rsa", 3072)
    PS512 = ("PS512", -39, "sha512", "rsa", 4096)
    ES256 = ("ES256", -7, "sha256", "ec", "secp256r1")
    ES384 = ("ES384", -35, "sha384", "ec", "secp384r1")
    ES512 = ("ES512", -36, "sha512", "ec", "secp521r1")

    @property
    def jws_name(self) -> str:
        return self.value[0]

    @property
    def cose_id(self) -> int:
        return self.value[1]

    def hash(self) -> hashes.HashAlgorithm:
        return _HASHES[self.value[2]]()

    @classmethod
    def from_jws(cls, name: object) -> Algorithm:
        for alg in cls:
            if alg.jws_name == name:
                return alg
        raise SignatureIntegrityError(f"unsupported signature algorithm {name!r} (expected one of PS256/384/512, ES256/384/512)")

    @classmethod
    def from_cose(cls, ident: object) -> Algorithm:
        for alg in cls:
            if type(ident) is int and alg.cose_id == ident:
                return alg
        raise SignatureIntegrityError(f"unsupported COSE signature algorithm {ident!r}")


_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


def algorithm_for_key(public_key: object) -> Algorithm:
    """The only algorithm the spec allows for this key; any other key type or size is refused."""
    if isinstance(public_key, rsa.RSAPublicKey):
        for alg in (Algorithm.PS256, Algorithm.PS384, Algorithm.PS512):
            if alg.value[4] == public_key.key_size:
                return alg
        raise SignatureIntegrityError(f"unsupported RSA key size {public_key.key_size} (expected 2048, 3072 or 4096)")
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        for alg in (Algorithm.ES256, Algorithm.ES384, Algorithm.ES512):
            if alg.value[4] == public_key.curve.name:
                return alg
        raise SignatureIntegrityError(f"unsupported elliptic curve {public_key.curve.name}")
    raise SignatureIntegrityError(f"unsupported signing key type {type(public_key).__name__}")


def verify_signature(alg: Algorithm, public_key: object, signature: bytes, data: bytes) -> None:
    """Verify a raw Notary signature (RSASSA-PSS, or ECDSA as fixed-width r||s) over `data`."""
    if algorithm_for_key(public_key) is not alg:
        raise SignatureIntegrityError(f"signature algorithm {alg.jws_name} does not match the signing key")
    try:
        if isinstance(public_key, rsa.RSAPublicKey):
            pss = padding.PSS(mgf=padding.MGF1(alg.hash()), salt_length=alg.hash().digest_size)
            public_key.verify(signature, data, pss, alg.hash())
        else:
            assert isinstance(public_key, ec.EllipticCurvePublicKey)
            public_key.verify(_raw_to_der(signature, public_key.curve.key_size), data, ec.ECDSA(alg.hash()))
    except InvalidSignature as exc:
        raise SignatureIntegrityError(f"the {alg.jws_name} signature does not verify") from exc


def _raw_to_der(signature: bytes, curve_bits: int) -> bytes:
    width = (curve_bits + 7) // 8
    if len(signature) != 2 * width:
        raise SignatureIntegrityError(f"ECDSA signature is {len(signature)} bytes, expected {2 * width} (raw r||s)")
    r, s = int.from_bytes(signature[:width], "big"), int.from_bytes(signature[width:], "big")
    return encode_dss_signature(r, s)
