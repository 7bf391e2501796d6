"""Keys, policies and cosign v3 bundles for tests, made with `cryptography` at test time."""

from __future__ import annotations

import base64
import http.client
import json
from dataclasses import dataclass
from typing import Any, Mapping

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from image_verifier.cosign.bundle import BUNDLE_MEDIA_TYPE, COSIGN_SIGN_PREDICATE, IN_TOTO_PAYLOAD_TYPE, pae
from image_verifier.cosign.sign import PemSigner, sign_image
from image_verifier.deadline import Deadline
from image_verifier.oci import OCI_EMPTY_CONFIG, OCI_INDEX, OCI_MANIFEST
from image_verifier.registry import RegistryClient

from .images import Blob, HasHost, PushedImage, canonical_json, empty_config, push_blob, push_image, push_manifest, sha256_digest


@dataclass(frozen=True)
class KeyPair:
    private: ec.EllipticCurvePrivateKey

    @classmethod
    def generate(cls, curve: ec.EllipticCurve | None = None) -> KeyPair:
        return cls(ec.generate_private_key(curve or ec.SECP256R1()))

    @property
    def public_pem(self) -> str:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()

    @property
    def public_der(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

    @property
    def private_pem(self) -> bytes:
        return self.private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption())

    def sign(self, data: bytes) -> bytes:
        algorithm = hashes.SHA384() if self.private.curve.name == "secp384r1" else hashes.SHA256()
        return self.private.sign(data, ec.ECDSA(algorithm))


def cosign_policy(signers: Mapping[str, Mapping[str, Any]], *, images: str = "**", any_of: list[str] | None = None,
                  all_of: list[str] | None = None, **rule_extra: Any) -> dict[str, Any]:
    """A policy with one rule over `images` (relative to nothing: pass a full pattern) and cosign signers."""
    rule: dict[str, Any] = {"name": "signed", "images": [images]}
    if all_of:
        rule["allOf"] = all_of
    else:
        rule["anyOf"] = any_of or list(signers)
    rule.update(rule_extra)
    return {
        "version": "1",
        "trustedSigners": [{"name": name, "cosignKey": dict(body)} for name, body in signers.items()],
        "rules": [rule],
    }


def push_cosign_signed(registry: HasHost, key: KeyPair, repo: str, count: int) -> list[PushedImage]:
    """`count` distinct images (tags v0, v1, ...) in `repo`, each signed once with `key` (the `.sig` tag)."""
    writer = RegistryClient(insecure_registries={registry.host}).bound(Deadline.after(120))
    images = [push_image(registry, repo, f"v{i}", layer_bytes=f"{repo}-{i}".encode()) for i in range(count)]
    for image in images:
        sign_image(writer, image.ref, PemSigner(key.private_pem))
    return images


def in_toto_statement(digest: str, annotations: Mapping[str, str] | None = None,
                      predicate_type: str = COSIGN_SIGN_PREDICATE) -> bytes:
    algorithm, _, hex_digest = digest.partition(":")
    subject: dict[str, Any] = {"digest": {algorithm: hex_digest}}
    if annotations:
        subject["annotations"] = dict(annotations)
    return json.dumps({"_type": "https://in-toto.io/Statement/v1", "subject": [subject],
                       "predicateType": predicate_type, "predicate": {}}).encode()


def sigstore_bundle(key: KeyPair, statement: bytes) -> bytes:
    """A v0.3 bundle with a DSSE envelope, shaped as cosign v3 writes it (no tlog entries)."""
    digest = hashes.Hash(hashes.SHA256())
    digest.update(key.private.public_key().public_bytes(serialization.Encoding.DER,
                                                        serialization.PublicFormat.SubjectPublicKeyInfo))
    signature = key.sign(pae(IN_TOTO_PAYLOAD_TYPE, statement))
    return json.dumps({
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {"publicKey": {"hint": base64.b64encode(digest.finalize()).decode()}},
        "dsseEnvelope": {"payload": base64.b64encode(statement).decode(), "payloadType": IN_TOTO_PAYLOAD_TYPE,
                         "signatures": [{"sig": base64.b64encode(signature).decode(), "keyid": ""}]},
    }).encode()


def push_bundle_referrer(registry: HasHost, image: PushedImage, bundle: bytes) -> PushedImage:
    """Push a bundle as an OCI 1.1 referrer of `image`, the way cosign v3 stores it.

    distribution 2.8 has no referrers API, so the referrer is also listed in the `sha256-<hex>`
    tag-schema index, as go-containerregistry's fallback does (with the config type as artifactType).
    """
    config = empty_config()
    layer = Blob(data=bundle, media_type=BUNDLE_MEDIA_TYPE)
    for blob in (config, layer):
        push_blob(registry, image.repository, blob.data)
    manifest = canonical_json({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": BUNDLE_MEDIA_TYPE,
        "config": config.descriptor(), "layers": [layer.descriptor()],
        "subject": {"mediaType": image.media_type, "digest": image.digest, "size": image.size},
        "annotations": {"dev.sigstore.bundle.content": "dsse-envelope",
                        "dev.sigstore.bundle.predicateType": COSIGN_SIGN_PREDICATE},
    })
    referrer = push_manifest(registry, image.repository, sha256_digest(manifest), manifest, OCI_MANIFEST)
    add_to_referrers_tag(registry, image, referrer, artifact_type=OCI_EMPTY_CONFIG)
    return referrer


def add_to_referrers_tag(registry: HasHost, image: PushedImage, referrer: PushedImage, *, artifact_type: str) -> None:
    """Append `referrer` to the image's referrers tag-schema index (`sha256-<hex>`)."""
    tag = image.digest.replace(":", "-", 1)
    existing = _fetch_index(registry, image.repository, tag)
    entries = list(existing["manifests"]) if existing else []
    entries.append({"mediaType": OCI_MANIFEST, "digest": referrer.digest, "size": referrer.size,
                    "artifactType": artifact_type})
    index = canonical_json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries})
    push_manifest(registry, image.repository, tag, index, OCI_INDEX)


def _fetch_index(registry: HasHost, repo: str, tag: str) -> dict[str, Any] | None:
    try:
        return json.loads(fetch_raw(registry, repo, f"manifests/{tag}", OCI_INDEX))
    except LookupError:
        return None


def fetch_raw(registry: HasHost, repo: str, path: str, accept: str) -> bytes:
    """GET `/v2/<repo>/<path>` straight from the registry (not through the client under test)."""
    connection = http.client.HTTPConnection(registry.host, timeout=10)
    try:
        connection.request("GET", f"/v2/{repo}/{path}", headers={"Accept": accept})
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    if response.status != 200:
        raise LookupError(f"GET {path} answered {response.status}")
    return body
