"""cosign verification keys: from PEM, or from KMS (`kms:GetPublicKey`, cached), and their states."""

from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import Any, Callable, Protocol

from cryptography.hazmat.primitives.asymmetric import ec

from ..aws_errors import AwsRefusedError, judge_aws_error
from ..errors import AwsUnavailableError, SignatureExpiredError, SignatureRevokedError
from ..policy import CosignKeyTrust, KeyState
from ..policy.keys import key_id, load_cosign_public_key

KMS_KEY_CACHE_SECONDS = 3600.0  # a KMS key's public half never changes; re-read hourly to notice deletion


class KmsClient(Protocol):
    def get_public_key(self, *, KeyId: str) -> dict[str, Any]: ...


KmsClientFactory = Callable[[str], KmsClient]  # region -> client


class CosignKeyResolver:
    """Turns a policy's cosign key into a public key. Thread-safe; one per warm Lambda or CLI run."""

    def __init__(self, kms_client_for_region: KmsClientFactory | None = None, *,
                 cache_seconds: float = KMS_KEY_CACHE_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self._kms_client_for_region = kms_client_for_region
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, ec.EllipticCurvePublicKey]] = {}
        self.kms_calls = 0

    def public_key(self, trust: CosignKeyTrust) -> ec.EllipticCurvePublicKey:
        if trust.public_key_pem is not None:
            return load_cosign_public_key(trust.public_key_pem.encode())
        assert trust.kms_key_arn is not None  # the policy loader guarantees one of the two
        return self._kms_public_key(trust.kms_key_arn)

    def _kms_public_key(self, arn: str) -> ec.EllipticCurvePublicKey:
        with self._lock:
            cached = self._cache.get(arn)
            if cached and self._clock() < cached[0]:
                return cached[1]
        if self._kms_client_for_region is None:
            raise AwsUnavailableError(f"the policy names KMS key {arn}, but no KMS client is configured")
        region = arn.split(":")[3]
        try:
            response = self._kms_client_for_region(region).get_public_key(KeyId=arn)
        except Exception as exc:  # botocore's errors, judged in one place (a PEM-key policy never loads botocore)
            raise judge_aws_error(exc, f"kms:GetPublicKey for {arn}",
                                  denied_hint="the verifier needs kms:GetPublicKey on it") from exc
        finally:
            with self._lock:
                self.kms_calls += 1
        if response.get("KeyUsage") not in (None, "SIGN_VERIFY"):
            raise AwsRefusedError(f"KMS key {arn} is not a SIGN_VERIFY key; fix the policy")
        try:
            key = load_cosign_public_key(response["PublicKey"], der=True)
        except (KeyError, ValueError) as exc:
            raise AwsRefusedError(f"KMS key {arn} did not return a usable ECDSA public key: {exc}") from exc
        with self._lock:
            self._cache[arn] = (self._clock() + self._cache_seconds, key)
        return key


def check_key_usable(signer_name: str, trust: CosignKeyTrust, now: datetime) -> None:
    """Refuse revoked keys and keys outside their validity window.

    The only verified time a bare-key cosign signature offers is the verifier's own clock: the
    payload's timestamps are claims made by the key itself, so a stolen key could forge them.
    A window is therefore judged against `now`, which fails closed once a key's window ends.
    """
    if trust.state is KeyState.REVOKED:
        raise SignatureRevokedError(f"signer {signer_name!r} uses a revoked key; nothing it signed is accepted")
    if trust.valid_from and now < trust.valid_from:
        raise SignatureExpiredError(f"the key of signer {signer_name!r} is not valid before {trust.valid_from.isoformat()}")
    if trust.valid_until and now >= trust.valid_until:
        raise SignatureExpiredError(f"the key of signer {signer_name!r} expired at {trust.valid_until.isoformat()}")


__all__ = ["CosignKeyResolver", "KmsClient", "KmsClientFactory", "check_key_usable", "key_id"]
