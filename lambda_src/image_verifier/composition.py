"""The composition root: the one place that builds boto3 clients and the registry client.

Nothing here runs at import time; the Lambda handler and the CLI each call `build_verifier` once
and keep the result (clients reuse connections and caches across decisions).
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Iterable

from .cosign.keys import CosignKeyResolver
from .policy import Policy, SignerKind
from .verifier import ImageVerifier

AWS_CONNECT_TIMEOUT = 3.0  # seconds; an AWS endpoint that does not accept a connection by then is down
AWS_READ_TIMEOUT = 5.0  # seconds; every call we make is a small, fast read
AWS_MAX_ATTEMPTS = 2  # one retry; the decision's deadline bounds the rest


class AwsClients:
    """boto3 clients per (service, region), created on first use and shared by threads."""

    def __init__(self, session_factory: Callable[[], Any] | None = None) -> None:
        self._session_factory = session_factory
        self._session: Any = None
        self._clients: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def client(self, service: str, region: str) -> Any:
        with self._lock:
            if (service, region) not in self._clients:
                if self._session is None:
                    import boto3

                    self._session = self._session_factory() if self._session_factory else boto3.session.Session()
                from botocore.config import Config

                config = Config(connect_timeout=AWS_CONNECT_TIMEOUT, read_timeout=AWS_READ_TIMEOUT,
                                retries={"max_attempts": AWS_MAX_ATTEMPTS, "mode": "standard"})
                self._clients[(service, region)] = self._session.client(service, region_name=region, config=config)
            return self._clients[(service, region)]

    def for_service(self, service: str) -> Callable[[str], Any]:
        return lambda region: self.client(service, region)


def build_verifier(policy: Policy, *, insecure_registries: Iterable[str] = (), aws: AwsClients | None = None,
                   registry: Any = None) -> ImageVerifier:
    """An `ImageVerifier` with every client it needs; `registry` may be passed in to share one."""
    from .registry import EcrCredentials, RegistryClient

    aws = aws or AwsClients()
    if registry is None:
        registry = RegistryClient(insecure_registries=frozenset(insecure_registries),
                                  ecr_auth=EcrCredentials(aws.for_service("ecr")))
    if any(s.kind in (SignerKind.AWS_SIGNER, SignerKind.NOTATION_X509) for s in policy.trusted_signers):
        # Load the Notation verifier now, not after the first registry round trip: what only this
        # policy needs is imported while the process starts (the Lambda's init), never mid-decision.
        from .notation import verify as _notation_verify  # noqa: F401

    revocation = None
    if any(s.kind is SignerKind.AWS_SIGNER for s in policy.trusted_signers):
        from .notation.awssigner import SignerRevocationChecker

        revocation = SignerRevocationChecker(aws.for_service("signer"))
    return ImageVerifier(policy, registry=registry, cosign_keys=CosignKeyResolver(aws.for_service("kms")),
                         revocation=revocation)
