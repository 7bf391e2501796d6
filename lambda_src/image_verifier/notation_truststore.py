"""Read a Notary Project trust store folder, as notation does, for `policy import-notation`.

Layout (trust-store-trust-policy.md, "Trust Store"): `<DIR>/x509/{ca,signingAuthority,tsa}/<name>/`
holds certificate files (`.pem`, `.crt`, `.cer`; PEM or DER, several certificates per file).
Sub-directories of a named store are ignored (the spec says to warn, and we do); symlinks are
refused, as the spec requires. Every certificate must also be what this project's policy can
hold: a self-signed root with a strong signature hash (notation would also accept a pinned
intermediate; the policy cannot, so that is refused with the file's name).
"""

from __future__ import annotations

import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from .notation.trust import parse_root_certificates

STORE_TYPES = ("ca", "signingAuthority", "tsa")
STORE_NAME = re.compile(r"[a-zA-Z0-9_.-]+")  # notation-go's named-store rule
CERT_SUFFIXES = (".pem", ".crt", ".cer")
MAX_CERT_FILE_BYTES = 256 * 1024  # same bound as a policy's certificate files (policy/files.py)
MAX_CERTS_PER_STORE = 20  # what one policy signer may hold (policy/notation_fields.py MAX_CERTIFICATES)


class TrustStoreError(ValueError):
    """The trust store cannot be read, or holds what the policy cannot express; says which file."""


@dataclass(frozen=True, kw_only=True)
class NamedStore:
    kind: str  # ca | signingAuthority | tsa
    name: str
    pems: tuple[str, ...]  # one PEM certificate each, in file-name order
    notes: tuple[str, ...] = field(default=())


def read_named_store(root: Path, kind: str, name: str) -> NamedStore:
    """The certificates of `<root>/x509/<kind>/<name>/`, each checked; TrustStoreError otherwise."""
    if kind not in STORE_TYPES:
        raise TrustStoreError(f"unknown trust store type {kind!r}; notation has {', '.join(STORE_TYPES)}")
    if not STORE_NAME.fullmatch(name):
        raise TrustStoreError(f"trust store name {name!r} is not valid; notation allows letters, digits, '_', '.' and '-'")
    directory = root / "x509" / kind / name
    for part in (root / "x509", root / "x509" / kind, directory):
        _refuse_symlink(part, "a trust store directory")
    if not directory.is_dir():
        raise TrustStoreError(f"the trust policy names {kind}:{name}, but {directory} is not a directory")
    pems: list[str] = []
    notes: list[str] = []
    for entry in sorted(directory.iterdir()):
        _refuse_symlink(entry, "a trust store entry")
        if entry.is_dir():
            notes.append(f"{entry}: sub-directories of a named store are ignored (by notation too)")
            continue
        if entry.suffix.lower() not in CERT_SUFFIXES:
            notes.append(f"{entry}: ignored (certificate files end in {', '.join(CERT_SUFFIXES)})")
            continue
        pems += _certificates(entry)
    if not pems:
        raise TrustStoreError(f"{directory} holds no certificate; notation would fail every verification against it")
    if len(pems) > MAX_CERTS_PER_STORE:
        raise TrustStoreError(f"{directory} holds {len(pems)} certificates; a policy signer holds at most "
                              f"{MAX_CERTS_PER_STORE}")
    return NamedStore(kind=kind, name=name, pems=tuple(pems), notes=tuple(notes))


def _refuse_symlink(path: Path, what: str) -> None:
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise TrustStoreError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if stat.S_ISLNK(mode):
        raise TrustStoreError(f"{path} is a symbolic link; the Notary Project spec requires {what} not to be one")


def read_bounded(path: Path, max_bytes: int) -> bytes:
    """A small file's bytes; TrustStoreError when it cannot be read or is larger than `max_bytes`."""
    try:
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise TrustStoreError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if len(data) > max_bytes:
        raise TrustStoreError(f"{path} is larger than {max_bytes} bytes")
    return data


def _certificates(path: Path) -> list[str]:
    data = read_bounded(path, MAX_CERT_FILE_BYTES)
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            certs = x509.load_pem_x509_certificates(data)
        else:
            certs = [x509.load_der_x509_certificate(der) for der in _split_der(data)]
    except ValueError as exc:
        raise TrustStoreError(f"{path} is neither PEM nor DER certificates: {exc}") from exc
    pems = [cert.public_bytes(Encoding.PEM).decode("ascii") for cert in certs]
    try:
        parse_root_certificates(pems)
    except ValueError as exc:
        raise TrustStoreError(
            f"{path}: {exc}. notation accepts any CA certificate as a trust anchor, but this policy trusts only "
            "self-signed roots: put the root of that chain in the store instead"
        ) from exc
    return pems


def _split_der(data: bytes) -> list[bytes]:
    """Concatenated DER certificates (notation-go reads them with x509.ParseCertificates)."""
    parts, offset = [], 0
    while offset < len(data):
        if data[offset] != 0x30 or offset + 2 > len(data):
            raise ValueError(f"no DER SEQUENCE at byte {offset}")
        length, header = data[offset + 1], 2
        if length & 0x80:
            count = length & 0x7F
            if count == 0 or count > 4 or offset + 2 + count > len(data):
                raise ValueError(f"bad DER length at byte {offset}")
            length, header = int.from_bytes(data[offset + 2:offset + 2 + count], "big"), 2 + count
        end = offset + header + length
        if end > len(data):
            raise ValueError(f"truncated DER certificate at byte {offset}")
        parts.append(data[offset:end])
        offset = end
    return parts
