"""Policies on disk: keys and certificates kept in files beside the policy instead of pasted PEM.

A policy file may say `"publicKeyPemFile": "keys/ci.pub"` (cosign keys) or
`"rootCertificateFiles": ["roots/acme.pem"]` (notationX509 and awsSigner) where the inline form is
`publicKeyPem` / `rootCertificates`, and a keyless signer may say `"trustedRootFile":
"sigstore/trusted_root.json"` where the inline form is `trustedRoot` (a JSON file, read as strictly
as the policy). Paths are relative to the policy file. `load_policy_file`
reads the files, replaces each file field with its inline form and then parses the document with
`Policy.from_json`, so the model, its hash and the Lambda only ever see inline PEM (the constructs
inline keys themselves and never write file fields).

Every problem (a missing, unreadable, oversized or non-PEM file) is a `PolicyError` whose path
names the file field, e.g. `trustedSigners[2].notationX509.rootCertificateFiles[0]`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import PolicyError
from .codec import MAX_POLICY_BYTES, _load  # the one strict reader: size limit, duplicate keys
from .model import Policy

MAX_PEM_FILE_BYTES = 256 * 1024  # a bundle of a few dozen certificates; a PEM key is under 1 KiB

_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----", re.DOTALL)


@dataclass(frozen=True, kw_only=True)
class FileField:
    """`file_key` in a signer body names file(s) whose PEM blocks of `label` become `inline_key`."""

    file_key: str
    inline_key: str
    label: str  # the PEM block type the file must hold, e.g. "CERTIFICATE"
    many: bool  # a list of files (each may hold several blocks) vs one file with one block


_CERTIFICATE_LISTS = {
    "rootCertificateFiles": "rootCertificates",
    "customRootCertificateFiles": "customRootCertificates",
    "tsaRootCertificateFiles": "tsaRootCertificates",
}
FILE_FIELDS: dict[str, tuple[FileField, ...]] = {
    "cosignKey": (FileField(file_key="publicKeyPemFile", inline_key="publicKeyPem", label="PUBLIC KEY", many=False),),
    "awsSigner": tuple(FileField(file_key=f, inline_key=i, label="CERTIFICATE", many=True)
                       for f, i in _CERTIFICATE_LISTS.items() if f != "tsaRootCertificateFiles"),
    "notationX509": tuple(FileField(file_key=f, inline_key=i, label="CERTIFICATE", many=True)
                          for f, i in _CERTIFICATE_LISTS.items() if f != "customRootCertificateFiles"),
}


def load_policy_file(path: Path, *, environ: Mapping[str, str] | None = None) -> Policy:
    """Read a policy file, inline the key and certificate files it names, and parse it."""
    return Policy.from_json(inline_policy_files(read_policy_document(path), base_dir=path.parent), environ=environ)


def read_policy_document(path: Path) -> Any:
    """The policy file's JSON, read as strictly as `Policy.from_json` reads text (OSError if unreadable)."""
    with path.open("rb") as handle:
        raw = handle.read(MAX_POLICY_BYTES + 1)  # the loader refuses anything longer; never read a huge file
    return _load(raw)


def inline_policy_files(document: Any, *, base_dir: Path) -> Any:
    """`document` with every file field replaced by its inline form; the first problem is raised."""
    inlined, errors = collect_inlined_files(document, base_dir=base_dir)
    if errors:
        raise errors[0]
    return inlined


def collect_inlined_files(document: Any, *, base_dir: Path) -> tuple[Any, list[PolicyError]]:
    """Like `inline_policy_files`, but returns every problem; a field that failed is left out."""
    errors: list[PolicyError] = []
    if not isinstance(document, dict) or not isinstance(document.get("trustedSigners"), list):
        return document, errors  # the loader reports the shape; nothing here to inline
    signers = []
    for index, signer in enumerate(document["trustedSigners"]):
        signers.append(_inline_signer(signer, f"trustedSigners[{index}]", base_dir, errors))
    return {**document, "trustedSigners": signers}, errors


def _inline_signer(signer: Any, path: str, base_dir: Path, errors: list[PolicyError]) -> Any:
    if not isinstance(signer, dict):
        return signer
    result = dict(signer)
    keyless = signer.get("cosignKeyless")
    if isinstance(keyless, dict) and "trustedRootFile" in keyless:
        result["cosignKeyless"] = _inline_json(keyless, f"{path}.cosignKeyless", "trustedRootFile", "trustedRoot",
                                               base_dir, errors)
    for kind, fields in FILE_FIELDS.items():
        body = signer.get(kind)
        if isinstance(body, dict) and any(f.file_key in body for f in fields):
            result[kind] = _inline_body(body, f"{path}.{kind}", fields, base_dir, errors)
    return result


def _inline_body(body: dict[str, Any], path: str, fields: tuple[FileField, ...], base_dir: Path,
                 errors: list[PolicyError]) -> dict[str, Any]:
    result = dict(body)
    for field in fields:
        if field.file_key not in body:
            continue
        value = result.pop(field.file_key)
        field_path = f"{path}.{field.file_key}"
        try:
            if field.many:
                result[field.inline_key] = _existing_list(body, field, path) + _read_many(value, field, field_path, base_dir)
            else:
                if field.inline_key in body:
                    raise PolicyError(field_path, f"give one of {field.inline_key!r} or {field.file_key!r}, not both")
                result[field.inline_key] = _read_one(value, field, field_path, base_dir)
        except PolicyError as exc:
            errors.append(exc)
    return result


def _inline_json(body: dict[str, Any], path: str, file_key: str, inline_key: str, base_dir: Path,
                 errors: list[PolicyError]) -> dict[str, Any]:
    """`body` with the JSON file that `file_key` names read into `inline_key` (a trusted_root.json)."""
    result = dict(body)
    value = result.pop(file_key)
    field_path = f"{path}.{file_key}"
    try:
        if inline_key in body:
            raise PolicyError(field_path, f"give one of {inline_key!r} or {file_key!r}, not both")
        if not isinstance(value, str) or not value:
            raise PolicyError(field_path, "expected a file path (a non-empty string), relative to the policy file")
        try:
            result[inline_key] = read_policy_document(base_dir / value)
        except OSError as exc:
            raise PolicyError(field_path, f"cannot read {value!r} ({base_dir / value}): "
                                          f"{exc.strerror or type(exc).__name__}") from exc
        except PolicyError as exc:  # the strict reader's complaint is about this file, not the policy
            raise PolicyError(field_path, f"{value!r}: {exc.message}") from exc
    except PolicyError as exc:
        errors.append(exc)
    return result


def _existing_list(body: dict[str, Any], field: FileField, path: str) -> list[Any]:
    """Inline certificates given beside the files are kept: the files' certificates are added to them."""
    existing = body.get(field.inline_key, [])
    if not isinstance(existing, list):
        raise PolicyError(f"{path}.{field.inline_key}", "expected a list of PEM certificates")
    return list(existing)


def _read_many(value: Any, field: FileField, path: str, base_dir: Path) -> list[str]:
    if not isinstance(value, list) or not value:
        raise PolicyError(path, "expected a non-empty list of file paths, relative to the policy file")
    blocks: list[str] = []
    for index, item in enumerate(value):
        blocks += _pem_blocks(item, field, f"{path}[{index}]", base_dir)
    return blocks


def _read_one(value: Any, field: FileField, path: str, base_dir: Path) -> str:
    blocks = _pem_blocks(value, field, path, base_dir)
    if len(blocks) != 1:
        raise PolicyError(path, f"{value!r} holds {len(blocks)} {field.label} blocks; give a file with exactly one")
    return blocks[0]


def _pem_blocks(value: Any, field: FileField, path: str, base_dir: Path) -> list[str]:
    """The PEM blocks of type `field.label` in one file; anything else in the file is an error."""
    if not isinstance(value, str) or not value:
        raise PolicyError(path, "expected a file path (a non-empty string), relative to the policy file")
    file = base_dir / value
    try:
        with file.open("rb") as handle:
            data = handle.read(MAX_PEM_FILE_BYTES + 1)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        where = f" ({file})" if str(file) != value else ""  # where a relative path led
        raise PolicyError(path, f"cannot read {value!r}{where}: {reason}") from exc
    if len(data) > MAX_PEM_FILE_BYTES:
        raise PolicyError(path, f"{value!r} is larger than {MAX_PEM_FILE_BYTES} bytes; it should hold PEM text only")
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as exc:
        raise PolicyError(path, f"{value!r} is not PEM text ({_der_hint(field)})") from exc
    blocks = list(_PEM_BLOCK.finditer(text))
    if not blocks:
        raise PolicyError(path, f"{value!r} holds no '-----BEGIN {field.label}-----' block ({_der_hint(field)})")
    wrong = sorted({m.group(1) for m in blocks if m.group(1) != field.label})
    if wrong:
        raise PolicyError(path, f"{value!r} holds {', '.join(wrong)} where a {field.label} was expected")
    return [m.group(0).replace("\r\n", "\n") + "\n" for m in blocks]


def _der_hint(field: FileField) -> str:
    if field.label == "CERTIFICATE":
        return "convert a DER certificate with 'openssl x509 -inform der -in CERT -out CERT.pem'"
    return "export the public key with 'cosign public-key --key awskms:///<key-arn>' or 'openssl ec -pubout'"
