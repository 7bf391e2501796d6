"""Notary signature manifests: check a candidate's shape and pick out its envelope layer."""

from __future__ import annotations

from ..errors import HostileArtifactError, SignatureIntegrityError
from ..oci import OCI_EMPTY_CONFIG, OCI_MANIFEST, Descriptor, Manifest

NOTATION_ARTIFACT_TYPE = "application/vnd.cncf.notary.signature"
ENVELOPE_MEDIA_TYPES = ("application/jose+json", "application/cose")
# notation allows 32 MiB for an arbitrary blob; a real envelope is a few KiB (payload, a 2-4
# certificate chain, a timestamp token). 4 MiB leaves room for large annotations and matches the
# manifest bound, while keeping a hostile blob from eating the Lambda's memory.
MAX_ENVELOPE_BYTES = 4 * 1024 * 1024
THUMBPRINT_ANNOTATION = "io.cncf.notary.x509chain.thumbprint#S256"  # unsigned; never trusted


def signature_envelope_descriptor(manifest: Manifest, subject_digest: str) -> Descriptor:
    """Check a candidate signature manifest's shape and return its envelope layer descriptor.

    Accepts the OCI 1.1 form (`artifactType` notary, empty config) and the legacy form (no
    `artifactType`, config media type notary), like notation; exactly one layer with an envelope
    media type; `subject` equal to `subject_digest`.
    """
    where = f"signature manifest {manifest.digest}"
    if manifest.media_type != OCI_MANIFEST:
        raise SignatureIntegrityError(f"{where} is a {manifest.media_type}, not an OCI image manifest")
    config = manifest.config
    config_type = config.media_type if config else None
    artifact_type = manifest.artifact_type
    if manifest.data.get("artifactType") is not None and artifact_type is None:
        raise HostileArtifactError(f"{where} has a non-string artifactType")
    if not (
        (artifact_type == NOTATION_ARTIFACT_TYPE and config_type == OCI_EMPTY_CONFIG)
        or (artifact_type is None and config_type == NOTATION_ARTIFACT_TYPE)
    ):
        raise SignatureIntegrityError(
            f"{where} is not a Notary signature (artifactType {artifact_type!r}, config {config_type!r})"
        )
    subject = manifest.subject
    if subject is None or subject.digest != subject_digest:
        raise SignatureIntegrityError(
            f"{where} refers to {subject.digest if subject else 'no subject'}, not {subject_digest}"
        )
    layers = manifest.layers
    if len(layers) != 1:
        raise SignatureIntegrityError(f"{where} has {len(layers)} layers; a Notary signature has exactly one")
    layer = layers[0]
    if layer.media_type not in ENVELOPE_MEDIA_TYPES:
        raise SignatureIntegrityError(f"{where} has an envelope of unsupported media type {layer.media_type!r}")
    if layer.size > MAX_ENVELOPE_BYTES:
        raise HostileArtifactError(f"{where} has an envelope of {layer.size} bytes (limit {MAX_ENVELOPE_BYTES})")
    return layer
