"""The OCI distribution client the verifiers and the CLI use.

    from image_verifier.deadline import Deadline
    from image_verifier.reference import ImageReference
    from image_verifier.registry import RegistryClient

    client = RegistryClient()                       # once per process; thread-safe
    registry = client.bound(Deadline.after(20.0))   # once per decision
    manifest = registry.resolve(ImageReference.parse("123456789012.dkr.ecr.eu-west-1.amazonaws.com/app:v1"))
    signatures = registry.referrers(ImageReference.parse(...), manifest.digest)

`bound()` returns a `RegistrySession`, which implements `image_verifier.oci.Registry` and
`RegistryWriter`, and counts its requests (`request_count`, `token_request_count`).
"""

from __future__ import annotations

from ._digest import compute_digest
from ._retry import MAX_THROTTLE_ATTEMPTS, RegistryThrottledError
from ._transport import CONNECT_TIMEOUT_CAP, MAX_REDIRECTS, READ_TIMEOUT_CAP
from .auth import BasicCredentials, CredentialProvider, EcrCredentials, StaticCredentials, parse_ecr_host
from .client import RegistryClient
from .referrers import MAX_REFERRER_PAGES, MAX_REFERRERS, referrers_tag
from .session import MANIFEST_ACCEPT, RegistrySession, RegistryWriter
from .urls import RegistryUrl, UnsafeUrlError, parse_registry_url

__all__ = [
    "BasicCredentials",
    "CONNECT_TIMEOUT_CAP",
    "CredentialProvider",
    "EcrCredentials",
    "MANIFEST_ACCEPT",
    "MAX_REDIRECTS",
    "MAX_REFERRERS",
    "MAX_REFERRER_PAGES",
    "MAX_THROTTLE_ATTEMPTS",
    "READ_TIMEOUT_CAP",
    "RegistryClient",
    "RegistrySession",
    "RegistryThrottledError",
    "RegistryUrl",
    "RegistryWriter",
    "StaticCredentials",
    "UnsafeUrlError",
    "compute_digest",
    "parse_ecr_host",
    "parse_registry_url",
    "referrers_tag",
]
