"""The one strict JSON reader for everything a registry serves or a signer signed.

Go's `encoding/json` (containerd, distribution, cosign, notation-go) fills a struct field from a key
that matches its name exactly *or case-insensitively* (Unicode simple folding: `Digest`, `DIGEST`,
`ſize` with a long s, `\u212aey` with a Kelvin sign), and when several keys fold to one field the
last one wins. A reader that looks only at exact keys can therefore see another `manifests`,
`digest` or `platform` than the runtime does. This reader refuses to guess:

- UTF-8 only (no byte-order mark, no UTF-16/32 detection), no lone surrogates (Go would read
  them as U+FFFD), no `NaN`/`Infinity` (Go refuses them);
- no object with two keys that are equal, or equal after case folding (`str.casefold` folds at
  least as much as Go's simple folding, so it over-refuses, which is safe);
- no key that folds to a field name of the documents we read without being spelled exactly so
  (`Manifests`, `OS`, `Digest`), except inside objects that Go decodes as maps (annotations),
  where keys are matched exactly by both readers.

Every failure is a `HostileArtifactError` that names the document and the offending key.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .errors import HostileArtifactError

# Field names of every JSON document whose contents decide what runs or what was signed: OCI
# descriptors, manifests, indexes and platforms; the cosign simple-signing payload; in-toto
# statements; sigstore bundles (protobuf JSON names); Notary JWS envelopes, headers and payloads.
KNOWN_FIELDS = frozenset({
    # OCI image spec: descriptor, manifest, index, platform
    "schemaVersion", "mediaType", "artifactType", "config", "layers", "manifests", "subject",
    "annotations", "digest", "size", "urls", "data", "platform", "os", "architecture", "variant",
    "os.version", "os.features", "features",
    # cosign simple signing
    "critical", "identity", "docker-reference", "image", "docker-manifest-digest", "type", "optional",
    # in-toto statement
    "_type", "predicateType", "predicate", "name",
    # sigstore bundle v0.3 (protobuf JSON)
    "verificationMaterial", "publicKey", "hint", "x509CertificateChain", "certificates", "certificate",
    "rawBytes", "tlogEntries", "timestampVerificationData", "rfc3161Timestamps", "signedTimestamp",
    "dsseEnvelope", "messageSignature", "messageDigest", "algorithm", "signature", "payload",
    "payloadType", "signatures", "sig",  # not DSSE's `keyid`: a tlog entry's `logId.keyId` is legitimately spelled so
    # Notary: JWS envelope and headers, payload
    "protected", "header", "alg", "cty", "crit", "x5c", "targetArtifact",
    "io.cncf.notary.signingScheme", "io.cncf.notary.signingTime", "io.cncf.notary.expiry",
    "io.cncf.notary.authenticSigningTime", "io.cncf.notary.verificationPlugin",
    "io.cncf.notary.verificationPluginMinVersion", "io.cncf.notary.signingAgent",
    "io.cncf.notary.timestampSignature",
})
# Values that Go decodes into maps (annotations, cosign's `optional`, an in-toto predicate), not
# structs: their keys, and every key below them, are matched exactly by Go as well.
MAP_FIELDS = frozenset({"annotations", "optional", "predicate"})
_FOLDED_KNOWN = {name.casefold(): name for name in KNOWN_FIELDS}
_SURROGATE = re.compile("[\ud800-\udfff]")


def fold(key: str) -> str:
    """The name Go's decoder would match `key` against, folded at least as broadly as Go folds."""
    return key.casefold()


def strict_json_loads(raw: bytes | str, *, what: str) -> Any:
    """Parse `raw` as Go would read it, or raise HostileArtifactError where Go could read it otherwise."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        if text.startswith("\ufeff"):
            raise ValueError("a byte-order mark is not allowed")
        value = json.loads(text, object_pairs_hook=_one_reading, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise HostileArtifactError(f"{what} is not valid JSON: {exc}") from exc
    try:
        _check_keys(value, in_map=False)
    except ValueError as exc:
        raise HostileArtifactError(f"{what} {exc}; Go's decoder would read it differently, so it is refused") from exc
    except RecursionError as exc:
        raise HostileArtifactError(f"{what} is nested too deeply") from exc
    return value


def _one_reading(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Refuse exact duplicates and keys that fold together (Go: the last of them wins)."""
    result: dict[str, Any] = {}
    seen: dict[str, str] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        folded = fold(key)
        if folded in seen:
            raise ValueError(f"keys {seen[folded]!r} and {key!r} are one field to Go's case-insensitive decoder")
        seen[folded] = key
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _check_keys(value: Any, *, in_map: bool) -> None:
    """Walk the parsed tree: no lone surrogates anywhere; no misspelled field names outside maps."""
    if isinstance(value, str):
        if _SURROGATE.search(value):
            raise ValueError("has a string with a lone UTF-16 surrogate")
    elif isinstance(value, list):
        for item in value:
            _check_keys(item, in_map=in_map)
    elif isinstance(value, dict):
        for key, item in value.items():
            if _SURROGATE.search(key):
                raise ValueError("has a key with a lone UTF-16 surrogate")
            known = _FOLDED_KNOWN.get(fold(key))
            if not in_map and known is not None and key != known:
                raise ValueError(f"has the key {key!r}, which Go reads as the field {known!r}")
            _check_keys(item, in_map=in_map or key in MAP_FIELDS)
