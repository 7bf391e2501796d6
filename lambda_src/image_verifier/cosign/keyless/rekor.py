"""Rekor transparency-log entries, verified offline: the signed entry timestamp and the inclusion proof.

An entry is what Rekor stored about one signature (`canonicalizedBody`: the signature, the signing
certificate and the hash of what was signed) plus when (`integratedTime`). Two proofs may come with it:

- the signed entry timestamp (SET, "inclusion promise"): the log's signature over the RFC 8785
  JSON `{"body","integratedTime","logID","logIndex"}`. It is the only thing that vouches for the
  integrated time, which is the signing time a Fulcio certificate is judged at, so it is required
  (an RFC 3161 timestamp could stand in for it; those are not verified here, docs/policy.md).
- the inclusion proof: an RFC 6962 Merkle audit path from the entry's leaf hash to a root hash,
  and a checkpoint (a signed note) in which the log signs that root. Verified whenever present.

The log key is the trusted-root tlog whose id (SHA-256 of its DER key) the entry names.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ...errors import HostileArtifactError, SignatureAuthenticityError, SignatureIntegrityError
from ..._json import _one_reading, strict_json_loads
from ..payload import decode_base64
from .trusted_root import TransparencyLog, TrustedRoot

MAX_PROOF_HASHES = 64  # a path in a tree of 2^64 leaves; anything longer is not a proof
MAX_CHECKPOINT_BYTES = 4096  # a checkpoint is a few lines
_SIGNATURE_LINE_PREFIX = "\u2014 "  # "— name base64(keyhint || signature)", the signed-note format


@dataclass(frozen=True, kw_only=True)
class InclusionProof:
    log_index: int  # the index within the tree the proof is for (a shard), not the global one
    tree_size: int
    root_hash: bytes
    hashes: tuple[bytes, ...]
    checkpoint: str | None


@dataclass(frozen=True, kw_only=True)
class TlogEntry:
    log_index: int
    log_id: bytes
    integrated_time: int
    body: bytes  # the canonicalized entry, exactly as Rekor hashed and signed it
    signed_entry_timestamp: bytes | None
    inclusion_proof: InclusionProof | None = None

    @property
    def time(self) -> datetime:
        return datetime.fromtimestamp(self.integrated_time, tz=timezone.utc)


def entry_from_legacy_bundle(raw: str) -> TlogEntry:
    """The `dev.sigstore.cosign/bundle` annotation: `{"SignedEntryTimestamp", "Payload": {...}}`."""
    # cosign's Go struct names these fields `SignedEntryTimestamp` and `Payload` (capitalized), which
    # the shared strict reader would take for misspellings of `payload`; keys that fold together
    # are still refused, and every field below is read by its exact name only.
    try:
        document = json.loads(raw, object_pairs_hook=_one_reading)
    except (ValueError, RecursionError) as exc:
        raise HostileArtifactError(f"the Rekor bundle annotation is not valid JSON: {exc}") from exc
    payload = document.get("Payload") if isinstance(document, dict) else None
    if not isinstance(payload, dict):
        raise SignatureIntegrityError("the Rekor bundle annotation has no Payload object")
    log_id = payload.get("logID")
    try:
        log_id_bytes = bytes.fromhex(log_id) if isinstance(log_id, str) else None
    except ValueError:
        log_id_bytes = None
    if not log_id_bytes:
        raise SignatureIntegrityError("the Rekor bundle's logID is not hex")
    return TlogEntry(log_index=_integer(payload.get("logIndex"), "logIndex"), log_id=log_id_bytes,
                     integrated_time=_integer(payload.get("integratedTime"), "integratedTime"),
                     body=decode_base64(payload.get("body"), "the Rekor entry body"),
                     signed_entry_timestamp=decode_base64(document.get("SignedEntryTimestamp"), "the SignedEntryTimestamp"))


def entry_from_bundle(node: Any) -> TlogEntry:
    """One `verificationMaterial.tlogEntries[]` item of a sigstore bundle (protobuf JSON: int64 as strings)."""
    if not isinstance(node, dict):
        raise SignatureIntegrityError("a bundle tlog entry is not an object")
    log_id = node.get("logId")
    promise = node.get("inclusionPromise")
    proof = node.get("inclusionProof")
    return TlogEntry(
        log_index=_integer(node.get("logIndex"), "logIndex"),
        log_id=decode_base64(log_id.get("keyId") if isinstance(log_id, dict) else None, "the tlog entry's logId.keyId"),
        integrated_time=_integer(node.get("integratedTime"), "integratedTime"),
        body=decode_base64(node.get("canonicalizedBody"), "the tlog entry's canonicalizedBody"),
        signed_entry_timestamp=decode_base64(promise.get("signedEntryTimestamp"), "the signedEntryTimestamp")
        if isinstance(promise, dict) else None,
        inclusion_proof=_proof(proof) if proof is not None else None,
    )


def verify_entry(entry: TlogEntry, root: TrustedRoot) -> TransparencyLog:
    """Check the entry's proofs against the trusted root; return the log that vouches for it."""
    log = root.tlog(entry.log_id)
    if log is None:
        raise SignatureAuthenticityError(f"the transparency-log entry names log {entry.log_id.hex()}, which the trusted "
                                         "root does not list (wrong Rekor instance, or a forged entry)")
    if not log.validity.contains(entry.time):
        raise SignatureAuthenticityError(f"the entry's integrated time {entry.time.isoformat()} is outside the validity "
                                         f"of the log's key ({log.validity})")
    if entry.signed_entry_timestamp is None:
        raise SignatureAuthenticityError("the transparency-log entry has no signed entry timestamp, so its integrated "
                                         "time (the signing time) is not vouched for; RFC 3161 timestamps are not "
                                         "supported here")
    promise = json.dumps({"body": base64.b64encode(entry.body).decode(), "integratedTime": entry.integrated_time,
                          "logID": entry.log_id.hex(), "logIndex": entry.log_index},
                         sort_keys=True, separators=(",", ":")).encode()  # RFC 8785 for these ASCII keys and integers
    try:
        log.key.verify(entry.signed_entry_timestamp, promise, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as exc:
        raise SignatureAuthenticityError(f"the signed entry timestamp of log entry {entry.log_index} does not verify "
                                         "with the log's key") from exc
    if entry.inclusion_proof is not None:
        verify_inclusion(entry, entry.inclusion_proof, log)
    return log


def verify_inclusion(entry: TlogEntry, proof: InclusionProof, log: TransparencyLog) -> None:
    leaf = hashlib.sha256(b"\x00" + entry.body).digest()
    if not merkle_root_matches(proof.log_index, proof.tree_size, leaf, proof.hashes, proof.root_hash):
        raise SignatureAuthenticityError(f"the inclusion proof of log entry {entry.log_index} does not lead to the "
                                         f"root hash {proof.root_hash.hex()}")
    if proof.checkpoint is None:
        raise SignatureAuthenticityError("the inclusion proof has no checkpoint, so nothing signs its root hash")
    verify_checkpoint(proof.checkpoint, log, tree_size=proof.tree_size, root_hash=proof.root_hash)


def merkle_root_matches(index: int, size: int, leaf: bytes, path: tuple[bytes, ...], root: bytes) -> bool:
    """RFC 9162 §2.1.3.2: recompute the root from a leaf and its audit path."""
    if index < 0 or index >= size or len(path) > MAX_PROOF_HASHES:
        return False
    fn, sn, node = index, size - 1, leaf
    for sibling in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            node = hashlib.sha256(b"\x01" + sibling + node).digest()
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            node = hashlib.sha256(b"\x01" + node + sibling).digest()
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and node == root


def verify_checkpoint(envelope: str, log: TransparencyLog, *, tree_size: int, root_hash: bytes) -> None:
    """A signed note `origin\\nsize\\nbase64(root)\\n[...]\\n\\n— name base64(keyhint||sig)\\n` by the log's key."""
    if len(envelope) > MAX_CHECKPOINT_BYTES or "\n\n" not in envelope:
        raise SignatureAuthenticityError("the checkpoint is not a signed note")
    text, _, signatures = envelope.partition("\n\n")
    text += "\n"
    lines = text.split("\n")
    if len(lines) < 4 or lines[1] != str(tree_size) or lines[2] != base64.b64encode(root_hash).decode():
        raise SignatureAuthenticityError(f"the checkpoint does not commit to the proof's tree (size {tree_size}, "
                                         f"root {root_hash.hex()})")
    for line in signatures.split("\n"):
        if not line.startswith(_SIGNATURE_LINE_PREFIX):
            continue
        _, _, encoded = line[len(_SIGNATURE_LINE_PREFIX):].rpartition(" ")
        try:
            blob = base64.b64decode(encoded, validate=True)
        except ValueError:
            continue
        if blob[:4] != log.log_id[:4]:  # the key hint: the first 4 bytes of the key's SHA-256
            continue
        try:
            log.key.verify(blob[4:], text.encode(), ec.ECDSA(hashes.SHA256()))
            return
        except InvalidSignature:
            continue
    raise SignatureAuthenticityError("no signature on the checkpoint verifies with the log's key")


def _proof(node: Any) -> InclusionProof:
    if not isinstance(node, dict):
        raise SignatureIntegrityError("the tlog entry's inclusionProof is not an object")
    hashes_node = node.get("hashes", [])
    if not isinstance(hashes_node, list) or len(hashes_node) > MAX_PROOF_HASHES:
        raise SignatureIntegrityError(f"the inclusion proof's hashes are not a list of at most {MAX_PROOF_HASHES}")
    checkpoint = node.get("checkpoint")
    envelope = checkpoint.get("envelope") if isinstance(checkpoint, dict) else None
    return InclusionProof(log_index=_integer(node.get("logIndex"), "inclusionProof.logIndex"),
                          tree_size=_integer(node.get("treeSize"), "inclusionProof.treeSize"),
                          root_hash=decode_base64(node.get("rootHash"), "the inclusion proof's rootHash"),
                          hashes=tuple(decode_base64(h, "an inclusion proof hash") for h in hashes_node),
                          checkpoint=envelope if isinstance(envelope, str) else None)


def _integer(value: Any, what: str) -> int:
    """protobuf JSON writes int64 as a decimal string; cosign's legacy bundle as a number."""
    if isinstance(value, bool):
        value = None
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        value = int(value)
    if not isinstance(value, int) or value < 0:
        raise SignatureIntegrityError(f"the transparency-log entry's {what} is not a non-negative integer")
    return value


# -- what the entry says was logged ------------------------------------------------------------------

def check_hashedrekord(entry: TlogEntry, *, signature: bytes, certificate_der: bytes, payload: bytes) -> None:
    """A `hashedrekord` 0.0.1 entry must record this signature, this certificate and sha256(payload)."""
    spec = _spec(entry, "hashedrekord")
    data = spec.get("data") if isinstance(spec.get("data"), dict) else {}
    digest = data.get("hash") if isinstance(data.get("hash"), dict) else {}
    if digest.get("algorithm") != "sha256" or digest.get("value") != hashlib.sha256(payload).hexdigest():
        raise SignatureIntegrityError("the transparency-log entry records another payload hash than the signed payload's")
    recorded = spec.get("signature") if isinstance(spec.get("signature"), dict) else {}
    if decode_base64(recorded.get("content"), "the entry's signature") != signature:
        raise SignatureIntegrityError("the transparency-log entry records another signature (an entry of another "
                                      "signing?)")
    key = recorded.get("publicKey") if isinstance(recorded.get("publicKey"), dict) else {}
    _same_certificate(decode_base64(key.get("content"), "the entry's certificate"), certificate_der)


def check_dsse(entry: TlogEntry, *, signature: bytes, certificate_der: bytes, payload: bytes) -> None:
    """A `dsse` 0.0.1 entry must record sha256(payload) and this signature by this certificate.

    The entry's envelopeHash is over Rekor's own serialization of the envelope, which a bundle
    does not carry byte for byte; the payload hash and the signature pin the same content.
    """
    spec = _spec(entry, "dsse")
    digest = spec.get("payloadHash") if isinstance(spec.get("payloadHash"), dict) else {}
    if digest.get("algorithm") != "sha256" or digest.get("value") != hashlib.sha256(payload).hexdigest():
        raise SignatureIntegrityError("the transparency-log entry records another payload hash than the DSSE payload's")
    recorded = spec.get("signatures")
    for item in recorded if isinstance(recorded, list) else []:
        if isinstance(item, dict) and decode_base64(item.get("signature"), "the entry's signature") == signature:
            _same_certificate(decode_base64(item.get("verifier"), "the entry's verifier"), certificate_der)
            return
    raise SignatureIntegrityError("the transparency-log entry does not record this DSSE signature")


def _spec(entry: TlogEntry, kind: str) -> dict[str, Any]:
    body = strict_json_loads(entry.body, what="the transparency-log entry body")
    if not isinstance(body, dict) or body.get("kind") != kind or body.get("apiVersion") != "0.0.1":
        found = (body.get("kind"), body.get("apiVersion")) if isinstance(body, dict) else None
        raise SignatureIntegrityError(f"the transparency-log entry is {found}, expected a {kind} 0.0.1 entry")
    spec = body.get("spec")
    if not isinstance(spec, dict):
        raise SignatureIntegrityError("the transparency-log entry has no spec")
    return spec


def _same_certificate(recorded_pem: bytes, certificate_der: bytes) -> None:
    try:
        recorded = x509.load_pem_x509_certificate(recorded_pem).public_bytes(serialization.Encoding.DER)
    except ValueError as exc:
        raise SignatureIntegrityError("the transparency-log entry's certificate cannot be parsed") from exc
    if recorded != certificate_der:
        raise SignatureIntegrityError("the transparency-log entry records another signing certificate")
