"""Trust anchors named in the policy: parse and check them, and match a chain against them.

`parse_root_certificates` is what the policy loader calls; it raises `ValueError` with a message
that can be shown next to the field path. Anchors must be self-signed roots (a single
self-signed code-signing certificate, which the spec allows as a one-certificate chain, is a
root too); a chain is trusted when its last certificate is byte-for-byte one of them.
"""

from __future__ import annotations

from typing import Iterable, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from .certificates import describe, is_self_signed

MAX_ROOT_PEM_BYTES = 64 * 1024  # a PEM certificate is 1-3 KiB; a policy field is not a CA bundle


def parse_root_certificates(pems: Iterable[str]) -> list[x509.Certificate]:
    """Parse PEM root certificates (several per string allowed); ValueError names the bad entry."""
    roots: list[x509.Certificate] = []
    for index, pem in enumerate(pems):
        if not isinstance(pem, str) or "-----BEGIN CERTIFICATE-----" not in pem:
            raise ValueError(f"entry {index} is not a PEM certificate")
        if len(pem) > MAX_ROOT_PEM_BYTES:
            raise ValueError(f"entry {index} is larger than {MAX_ROOT_PEM_BYTES} bytes")
        try:
            certs = x509.load_pem_x509_certificates(pem.encode("ascii"))
        except (ValueError, UnicodeEncodeError) as exc:
            raise ValueError(f"entry {index} is not a valid PEM certificate: {exc}") from exc
        for cert in certs:
            if not is_self_signed(cert):
                raise ValueError(f"entry {index}: {describe(cert)} is not a self-signed root certificate")
            algorithm = cert.signature_hash_algorithm
            if algorithm is None or isinstance(algorithm, (hashes.SHA1, hashes.MD5)):
                raise ValueError(f"entry {index}: {describe(cert)} is signed with a weak or unknown hash")
            roots.append(cert)
    return roots


def chain_ends_in(chain: Sequence[x509.Certificate], roots: Sequence[x509.Certificate]) -> bool:
    """True when the chain's root is byte-identical to one of the anchors (never by name alone)."""
    anchor = chain[-1].public_bytes(serialization.Encoding.DER)
    return any(anchor == root.public_bytes(serialization.Encoding.DER) for root in roots)
