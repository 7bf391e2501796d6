"""Notation signatures in a registry: a signed vector pushed the way notation pushes it."""

from __future__ import annotations

from image_verifier.oci import OCI_MANIFEST

from .cosign_material import add_to_referrers_tag
from .images import HasHost, PushedImage, empty_config, push_blob, push_manifest, sha256_digest
from .notation_vectors import NOTARY, SignedVector, signature_manifest


def push_notation_vector(registry: HasHost, image: PushedImage, vector: SignedVector, *,
                         legacy: bool = False) -> PushedImage:
    """Push the envelope, the empty config and the signature manifest of `vector` into `image`'s
    repository, and list the manifest in the image's referrers tag (docker-registry 2.8 has no
    referrers API). Returns the signature manifest."""
    manifest = signature_manifest(vector.envelope, vector.media_type, vector.subject, vector.chain, legacy=legacy)
    push_blob(registry, image.repository, vector.envelope)
    push_blob(registry, image.repository, empty_config().data)
    pushed = push_manifest(registry, image.repository, sha256_digest(manifest), manifest, OCI_MANIFEST)
    add_to_referrers_tag(registry, image, pushed, artifact_type=NOTARY)
    return pushed
