"""One error tree for the verifier.

`VerificationError` means the evidence is bad or absent (the image is *rejected*);
`UnavailableError` means we could not get the evidence (the image is *unavailable*);
`PolicyError` means the policy document itself is wrong (a usage error, never a verdict).
Third-party exceptions are wrapped where they are caught, so callers only ever see these.
"""

from __future__ import annotations


class ImageVerifierError(Exception):
    """Base class of every error this package raises on purpose."""


class PolicyError(ImageVerifierError):
    """The policy document is invalid. `path` names the bad field, e.g. `rules[0].images[1]`."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)


class InvalidReferenceError(ImageVerifierError):
    """An image reference or image pattern could not be parsed."""


class VerificationError(ImageVerifierError):
    """The signature evidence is invalid or missing: the image must be rejected."""


class NoSignatureError(VerificationError):
    """No signature of the expected kind was found for the digest."""


class SignatureIntegrityError(VerificationError):
    """The signature does not verify, or its envelope/payload is malformed or tampered."""


class SignatureAuthenticityError(VerificationError):
    """The signature verifies but was not made by a trusted key or certificate chain."""


class SignatureIdentityError(VerificationError):
    """The signer is trusted, but not for this identity (subject, profile, annotations)."""


class SignatureExpiredError(VerificationError):
    """The signature, key or certificate is outside its validity period."""


class SignatureRevokedError(VerificationError):
    """The key, certificate, signing profile or signing job is revoked."""


class HostileArtifactError(VerificationError):
    """An artifact broke a structural limit (size, count, media type, digest mismatch)."""


class RegistryRefusedError(VerificationError):
    """The registry answered 401/403: it refuses the verifier's credential. An answer, not an outage, so
    the image is rejected in every mode (`unavailableMode: audit` must not admit what cannot be read)."""


class UnavailableError(ImageVerifierError):
    """The registry or an AWS API could not be reached in time: no verdict can be reached."""


class RegistryUnavailableError(UnavailableError):
    """The registry did not answer, answered 5xx/429, or the deadline passed."""


class AwsUnavailableError(UnavailableError):
    """An AWS API call (KMS, ECR auth, Signer, ECS) failed for a reason other than a denial of trust."""


class DeadlineExceededError(UnavailableError):
    """The decision's deadline passed before the work was done."""


class ImageNotFoundError(VerificationError):
    """The registry says the image (tag or digest) does not exist."""
