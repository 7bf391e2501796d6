"""A local Sigstore for tests: a CA standing in for Fulcio, a CT log, and a Rekor log, all made here.

`LocalSigstore` issues Fulcio-shaped leaf certificates (code signing, a URI/email SAN, the OIDC
issuer extensions 1.3.6.1.4.1.57264.1.1 and .1.8, an embedded SCT signed by a local CT log key),
logs entries in a real RFC 6962 Merkle tree (signed entry timestamps, inclusion proofs and signed
checkpoints from a local Rekor key) and writes the matching `trusted_root.json`. Every signature,
certificate and proof is computed at test time; tests spoil one part at a time to see it refused.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from image_verifier.cosign.bundle import BUNDLE_MEDIA_TYPE, IN_TOTO_PAYLOAD_TYPE, pae
from image_verifier.cosign.keyless.fulcio import OIDC_ISSUER_V1, OIDC_ISSUER_V2
from image_verifier.cosign.keyless.verify import CERTIFICATE_ANNOTATION, CHAIN_ANNOTATION, REKOR_BUNDLE_ANNOTATION
from image_verifier.cosign.legacy import SIGNATURE_ANNOTATION, SIMPLE_SIGNING_MEDIA_TYPE, signature_tag
from image_verifier.oci import OCI_MANIFEST

from .images import Blob, HasHost, PushedImage, canonical_json, empty_config, push_blob, push_manifest

GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
WORKFLOW = "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main"
SCT_EXTENSION = x509.ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")
_DER = serialization.Encoding.DER
_SPKI = serialization.PublicFormat.SubjectPublicKeyInfo


def _spki(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(_DER, _SPKI)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _time(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def merkle_root(leaves: list[bytes]) -> bytes:
    """RFC 6962 §2.1 MTH over leaf hashes."""
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return hashlib.sha256(b"\x01" + merkle_root(leaves[:k]) + merkle_root(leaves[k:])).digest()


def audit_path(index: int, leaves: list[bytes]) -> list[bytes]:
    """RFC 6962 §2.1.1 PATH(m, D[n])."""
    if len(leaves) == 1:
        return []
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    if index < k:
        return audit_path(index, leaves[:k]) + [merkle_root(leaves[k:])]
    return audit_path(index - k, leaves[k:]) + [merkle_root(leaves[:k])]


@dataclass
class Log:
    """A key-holding log: Rekor (entries, SETs, checkpoints) or CT (SCTs)."""

    key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    origin: str = "rekor.local - 1"
    leaves: list[bytes] = field(default_factory=list)

    @property
    def log_id(self) -> bytes:
        return hashlib.sha256(_spki(self.key)).digest()

    def sign(self, data: bytes) -> bytes:
        return self.key.sign(data, ec.ECDSA(hashes.SHA256()))

    def trusted_root_entry(self, *, start: datetime, url: str) -> dict[str, Any]:
        return {"baseUrl": url, "hashAlgorithm": "SHA2_256",
                "publicKey": {"rawBytes": _b64(_spki(self.key)), "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                              "validFor": {"start": _time(start)}},
                "logId": {"keyId": _b64(self.log_id)}}


@dataclass(frozen=True)
class Entry:
    """One logged entry, in both shapes cosign stores it."""

    body: bytes
    log_index: int
    integrated_time: int
    log_id: bytes
    set: bytes
    proof: dict[str, Any]

    def legacy_bundle(self) -> str:
        return json.dumps({"SignedEntryTimestamp": _b64(self.set), "Payload": {
            "body": _b64(self.body), "integratedTime": self.integrated_time, "logIndex": self.log_index,
            "logID": self.log_id.hex()}})

    def bundle_entry(self, kind: str, *, with_set: bool = True, with_proof: bool = True) -> dict[str, Any]:
        entry: dict[str, Any] = {"logIndex": str(self.log_index), "logId": {"keyId": _b64(self.log_id)},
                                 "kindVersion": {"kind": kind, "version": "0.0.1"},
                                 "integratedTime": str(self.integrated_time), "canonicalizedBody": _b64(self.body)}
        if with_set:
            entry["inclusionPromise"] = {"signedEntryTimestamp": _b64(self.set)}
        if with_proof:
            entry["inclusionProof"] = self.proof
        return entry


@dataclass
class LocalSigstore:
    """Fulcio (root → intermediate), a CT log and a Rekor log, and their trusted_root.json."""

    now: datetime = field(default_factory=lambda: datetime.now(timezone.utc).replace(microsecond=0))
    rekor: Log = field(default_factory=Log)
    ctlog: Log = field(default_factory=lambda: Log(origin="ct.local"))

    def __post_init__(self) -> None:
        self.root_key = ec.generate_private_key(ec.SECP384R1())
        self.intermediate_key = ec.generate_private_key(ec.SECP384R1())
        self.root = self._ca("Local Fulcio Root", self.root_key, None)
        self.intermediate = self._ca("Local Fulcio Intermediate", self.intermediate_key, (self.root, self.root_key))
        # Earlier entries make the tree non-trivial: proofs have several levels.
        for filler in range(5):
            self.rekor.leaves.append(hashlib.sha256(b"\x00" + b"other entry %d" % filler).digest())

    def _ca(self, common_name: str, key: ec.EllipticCurvePrivateKey,
            parent: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None) -> x509.Certificate:
        subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "local.test"),
                             x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        builder = (x509.CertificateBuilder().subject_name(subject)
                   .issuer_name(parent[0].subject if parent else subject).public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(self.now - timedelta(days=365)).not_valid_after(self.now + timedelta(days=365))
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None if parent is None else 0), critical=True)
                   .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                                  critical=True))
        return builder.sign(parent[1] if parent else key, hashes.SHA384())

    # -- trusted root -------------------------------------------------------------------------------

    def trusted_root(self, *, ctlogs: bool = True, ca_chain: list[x509.Certificate] | None = None,
                     ca_valid_for: tuple[datetime, datetime | None] | None = None) -> dict[str, Any]:
        start, end = ca_valid_for or (self.now - timedelta(days=30), None)
        valid_for = {"start": _time(start)} | ({"end": _time(end)} if end else {})
        chain = ca_chain or [self.intermediate, self.root]
        return {
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [self.rekor.trusted_root_entry(start=self.now - timedelta(days=30), url="https://rekor.local")],
            "certificateAuthorities": [{
                "subject": {"organization": "local.test", "commonName": "Local Fulcio"}, "uri": "https://fulcio.local",
                "certChain": {"certificates": [{"rawBytes": _b64(c.public_bytes(_DER))} for c in chain]},
                "validFor": valid_for}],
            "ctlogs": [self.ctlog.trusted_root_entry(start=self.now - timedelta(days=30), url="https://ctfe.local")]
            if ctlogs else [],
            "timestampAuthorities": [],
        }

    # -- Fulcio -------------------------------------------------------------------------------------

    def issue(self, key: ec.EllipticCurvePrivateKey, *, subject: str = WORKFLOW, issuer: str = GITHUB_ISSUER,
              not_before: datetime | None = None, lifetime: timedelta = timedelta(minutes=10),
              sct: bool = True, sct_log: Log | None = None, issuer_extensions: tuple[str, ...] = ("v1", "v2"),
              ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None,
              tamper_sct: bool = False) -> x509.Certificate:
        """A Fulcio-shaped leaf for `key`: SAN `subject` (URI, or email when it has an @ and no scheme)."""
        ca_cert, ca_key = ca or (self.intermediate, self.intermediate_key)
        start = not_before or self.now - timedelta(minutes=1)
        san: x509.GeneralName = (x509.RFC822Name(subject) if "@" in subject and "://" not in subject
                                 else x509.UniformResourceIdentifier(subject))
        builder = (x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(ca_cert.subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(start).not_valid_after(start + lifetime)
                   .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False),
                                  critical=True)
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
                   .add_extension(x509.SubjectAlternativeName([san]), critical=True))
        if "v1" in issuer_extensions:
            builder = builder.add_extension(x509.UnrecognizedExtension(OIDC_ISSUER_V1, issuer.encode()), critical=False)
        if "v2" in issuer_extensions:
            raw = issuer.encode()
            builder = builder.add_extension(
                x509.UnrecognizedExtension(OIDC_ISSUER_V2, b"\x0c" + _der_length(len(raw)) + raw), critical=False)
        if sct:
            precert = builder.sign(ca_key, hashes.SHA384())
            timestamp = int((start + timedelta(seconds=1)).timestamp() * 1000)
            builder = builder.add_extension(x509.UnrecognizedExtension(SCT_EXTENSION, _sct_list(
                sct_log or self.ctlog, precert.tbs_certificate_bytes, ca_cert, timestamp, tamper_sct)), critical=False)
        return builder.sign(ca_key, hashes.SHA384())

    # -- Rekor --------------------------------------------------------------------------------------

    def log(self, body: Mapping[str, Any], *, integrated_time: datetime | None = None) -> Entry:
        raw = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        log = self.rekor
        index = len(log.leaves)
        log.leaves.append(hashlib.sha256(b"\x00" + raw).digest())
        moment = int((integrated_time or self.now).timestamp())
        promise = json.dumps({"body": _b64(raw), "integratedTime": moment, "logID": log.log_id.hex(),
                              "logIndex": index}, sort_keys=True, separators=(",", ":")).encode()
        root = merkle_root(log.leaves)
        note = f"{log.origin}\n{len(log.leaves)}\n{_b64(root)}\n"
        checkpoint = note + f"\n\u2014 {log.origin.split(' ')[0]} {_b64(log.log_id[:4] + log.sign(note.encode()))}\n"
        proof = {"logIndex": str(index), "rootHash": _b64(root), "treeSize": str(len(log.leaves)),
                 "hashes": [_b64(h) for h in audit_path(index, log.leaves)], "checkpoint": {"envelope": checkpoint}}
        return Entry(body=raw, log_index=index, integrated_time=moment, log_id=log.log_id, set=log.sign(promise),
                     proof=proof)


def hashedrekord_body(*, payload: bytes, signature: bytes, certificate: x509.Certificate) -> dict[str, Any]:
    return {"apiVersion": "0.0.1", "kind": "hashedrekord", "spec": {
        "data": {"hash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()}},
        "signature": {"content": _b64(signature),
                      "publicKey": {"content": _b64(certificate.public_bytes(serialization.Encoding.PEM))}}}}


def dsse_body(*, payload: bytes, signature: bytes, certificate: x509.Certificate) -> dict[str, Any]:
    return {"apiVersion": "0.0.1", "kind": "dsse", "spec": {
        "envelopeHash": {"algorithm": "sha256", "value": hashlib.sha256(b"envelope").hexdigest()},
        "payloadHash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()},
        "signatures": [{"signature": _b64(signature),
                        "verifier": _b64(certificate.public_bytes(serialization.Encoding.PEM))}]}}


@dataclass(frozen=True)
class KeylessSignature:
    """What `cosign sign` (keyless) produces for one payload, before it is stored anywhere."""

    payload: bytes
    signature: bytes
    certificate: x509.Certificate
    entry: Entry

    def legacy_annotations(self, sigstore: LocalSigstore) -> dict[str, str]:
        chain = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (sigstore.intermediate, sigstore.root))
        return {SIGNATURE_ANNOTATION: _b64(self.signature),
                CERTIFICATE_ANNOTATION: self.certificate.public_bytes(serialization.Encoding.PEM).decode(),
                CHAIN_ANNOTATION: chain.decode(), REKOR_BUNDLE_ANNOTATION: self.entry.legacy_bundle()}

    def bundle(self, **entry_options: Any) -> bytes:
        """A v0.3 bundle: the leaf, one tlog entry (SET + inclusion proof), the DSSE envelope."""
        return json.dumps({
            "mediaType": BUNDLE_MEDIA_TYPE,
            "verificationMaterial": {"certificate": {"rawBytes": _b64(self.certificate.public_bytes(_DER))},
                                     "tlogEntries": [self.entry.bundle_entry("dsse", **entry_options)]},
            "dsseEnvelope": {"payload": _b64(self.payload), "payloadType": IN_TOTO_PAYLOAD_TYPE,
                             "signatures": [{"sig": _b64(self.signature), "keyid": ""}]},
        }).encode()


def sign_legacy(sigstore: LocalSigstore, payload: bytes, **issue_options: Any) -> KeylessSignature:
    """A keyless simple-signing signature: ephemeral key, Fulcio leaf, hashedrekord entry."""
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = sigstore.issue(key, **issue_options)
    signature = key.sign(payload, ec.ECDSA(hashes.SHA256()))
    entry = sigstore.log(hashedrekord_body(payload=payload, signature=signature, certificate=certificate))
    return KeylessSignature(payload=payload, signature=signature, certificate=certificate, entry=entry)


def sign_bundle(sigstore: LocalSigstore, statement: bytes, **issue_options: Any) -> KeylessSignature:
    """A keyless DSSE signature over an in-toto statement, logged as a dsse entry."""
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = sigstore.issue(key, **issue_options)
    signature = key.sign(pae(IN_TOTO_PAYLOAD_TYPE, statement), ec.ECDSA(hashes.SHA256()))
    entry = sigstore.log(dsse_body(payload=statement, signature=signature, certificate=certificate))
    return KeylessSignature(payload=statement, signature=signature, certificate=certificate, entry=entry)


def keyless_signer(trusted_root: Mapping[str, Any], **identity: Any) -> dict[str, Any]:
    """A `cosignKeyless` policy body: the GitHub workflow identity unless told otherwise."""
    body: dict[str, Any] = {"issuer": GITHUB_ISSUER, "subject": WORKFLOW}
    for exact in ("issuer", "subject"):
        if f"{exact}RegExp" in identity:
            body.pop(exact)
    body.update(identity)
    body["trustedRoot"] = dict(trusted_root)
    return body


def with_entry(signature: KeylessSignature, **changes: Any) -> KeylessSignature:
    return replace(signature, entry=replace(signature.entry, **changes))


def _der_length(length: int) -> bytes:
    return bytes([length]) if length < 0x80 else bytes([0x81, length]) if length < 0x100 else b"\x82" + struct.pack(
        ">H", length)


def _sct_list(log: Log, tbs: bytes, issuer: x509.Certificate, timestamp: int, tamper: bool) -> bytes:
    """The DER extension value: OCTET STRING over the TLS-encoded SignedCertificateTimestampList."""
    issuer_key_hash = hashlib.sha256(issuer.public_key().public_bytes(_DER, _SPKI)).digest()
    signed = (struct.pack(">BBQH", 0, 0, timestamp, 1) + issuer_key_hash + len(tbs).to_bytes(3, "big") + tbs
              + struct.pack(">H", 0))
    signature = log.sign(signed + (b"x" if tamper else b""))
    sct = (b"\x00" + log.log_id + struct.pack(">Q", timestamp) + struct.pack(">H", 0)
           + bytes([4, 3]) + struct.pack(">H", len(signature)) + signature)
    listed = struct.pack(">H", len(sct)) + sct
    tls = struct.pack(">H", len(listed)) + listed
    return b"\x04" + _der_length(len(tls)) + tls


def push_keyless_sig(registry: HasHost, image: PushedImage, signatures: list[tuple[KeylessSignature, LocalSigstore]]) -> None:
    """Store keyless signatures at the image's `sha256-<hex>.sig` tag, one layer each, as cosign v2 does."""
    config = empty_config()
    layers = [Blob(data=s.payload, media_type=SIMPLE_SIGNING_MEDIA_TYPE, annotations=s.legacy_annotations(sigstore))
              for s, sigstore in signatures]
    for blob in (config, *layers):
        push_blob(registry, image.repository, blob.data)
    manifest = canonical_json({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config.descriptor(),
                               "layers": [layer.descriptor() for layer in layers]})
    push_manifest(registry, image.repository, signature_tag(image.digest), manifest, OCI_MANIFEST)
