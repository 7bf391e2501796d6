"""AWS Signer signatures: what the `com.amazonaws.signer.notation.plugin` verification plugin does,
done here so no plugin binary is needed.

- Trusted identity: the signed `com.amazonaws.signer.signingProfileVersion` attribute must match a
  policy ARN: a signing-profile ARN matches any of its versions (the version ARN minus its last
  path segment), a profile-version ARN matches itself; both case-insensitively, as the plugin does.
- Revocation: `signer:GetRevocationStatus` with the profile version, the job, the signing time
  and one hash per certificate (hex SHA-384 of its TBS bytes, then its issuer's; the root is its
  own issuer), leaf to root. Any revoked entity rejects; an API failure is "unavailable".
- Roots: the two public AWS Signer Notation roots (commercial and GovCloud) ship in
  `aws_signer_roots/`, pinned by DER SHA-256 below (a file whose fingerprint differs is refused).
  When the policy gives no `rootCertificates`, the roots of the profile ARNs' partitions are used
  (`aws` and `aws-us-gov`; no root is shipped for `aws-cn`, which must name its own). Roots given
  in `rootCertificates` must be one of the pinned ones; test/private roots go in `customRootCertificates`.
"""

from __future__ import annotations

import hashlib
import re
import time
from datetime import datetime
from functools import lru_cache
from importlib import resources
from typing import Any, Callable, Mapping, Protocol, Sequence

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ..aws_errors import AwsRefusedError, judge_aws_error
from ..errors import SignatureRevokedError
from .certificates import describe
from .trust import parse_root_certificates

AWS_SIGNER_PLUGIN = "com.amazonaws.signer.notation.plugin"
SIGNING_PROFILE_VERSION = "com.amazonaws.signer.signingProfileVersion"
SIGNING_JOB = "com.amazonaws.signer.signingJob"
AWS_SIGNER_ATTRIBUTES = frozenset({SIGNING_PROFILE_VERSION, SIGNING_JOB})
PLATFORM_ID = "Notation-OCI-SHA384-ECDSA"
REVOCATION_CACHE_SECONDS = 300.0  # how stale a "not revoked" answer may get in a warm Lambda
# DER SHA-256 of "CN=AWS Signer Code Signing Root CA G1,OU=Cryptography,O=AWS,ST=WA,C=US" (expires 2122),
# published at https://d2hvyiie56hcat.cloudfront.net/aws-signer-notation-root.cert
AWS_SIGNER_ROOT_SHA256 = "90a87d0543c3f094dbff9589b6649affe2f3d6e0f308799be2258461c686473f"
# DER SHA-256 of "CN=AWS Signer Code Signing GovCloud (US) Root CA G1,OU=Cryptography,O=AWS,ST=WA,C=US"
# (expires 2124), shipped in AWS's aws-signer-notation-cli installers as aws-us-gov-signer-notation-root.crt
AWS_SIGNER_GOVCLOUD_ROOT_SHA256 = "673653ab76f41a10546cdeb4107ecd6df2c15c2c9a0d32ed97d271b4436fc3e8"
ROOTS_DIRECTORY = "aws_signer_roots"
# partition -> (file in ROOTS_DIRECTORY, pinned fingerprint). Signatures are partition-isolated, so a
# profile's partition picks its root; aws-cn has none shipped (AWS publishes none we could pin).
SHIPPED_ROOTS: Mapping[str, tuple[str, str]] = {
    "aws": ("aws-signer-notation-root.crt", AWS_SIGNER_ROOT_SHA256),
    "aws-us-gov": ("aws-us-gov-signer-notation-root.crt", AWS_SIGNER_GOVCLOUD_ROOT_SHA256),
}
PINNED_ROOT_SHA256 = frozenset(fingerprint for _, fingerprint in SHIPPED_ROOTS.values())

_ARN_PREFIX = r"^arn:aws(?:-[a-z]+)*:signer:[a-z0-9-]+:[0-9]{12}:/"
PROFILE_ARN_RE = re.compile(_ARN_PREFIX + r"signing-profiles/[A-Za-z0-9_]{2,64}\Z")
PROFILE_VERSION_ARN_RE = re.compile(_ARN_PREFIX + r"signing-profiles/[A-Za-z0-9_]{2,64}/[A-Za-z0-9]{1,64}\Z")
JOB_ARN_RE = re.compile(_ARN_PREFIX + r"signing-jobs/[A-Za-z0-9-]{1,128}\Z")


def check_pinned_root(cert: x509.Certificate | str) -> None:
    """ValueError unless `cert` (a certificate, or one PEM certificate) is an AWS Signer root, by DER SHA-256."""
    if isinstance(cert, str):
        certs = parse_root_certificates([cert])
        if len(certs) != 1:
            raise ValueError(f"expected one PEM certificate, found {len(certs)}")
        cert = certs[0]
    fingerprint = hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()
    if fingerprint not in PINNED_ROOT_SHA256:
        raise ValueError(
            f"{describe(cert)} (SHA-256 {fingerprint}) is not the AWS Signer root certificate "
            f"(SHA-256 {AWS_SIGNER_ROOT_SHA256}) nor its GovCloud root (SHA-256 {AWS_SIGNER_GOVCLOUD_ROOT_SHA256}); "
            "put other roots in customRootCertificates"
        )


def arn_partition(arn: str) -> str:
    """The partition of an ARN (`aws`, `aws-us-gov`, `aws-cn`, ...)."""
    return arn.split(":", 2)[1]


@lru_cache(maxsize=4)  # two files, read once per process
def shipped_root_pem(partition: str) -> str:
    """The shipped AWS Signer root of `partition` (PEM), after checking its pinned fingerprint.

    ValueError for a partition without a shipped root, or a file whose fingerprint is not the pinned one
    (a tampered or replaced file must not become a trust anchor).
    """
    if partition not in SHIPPED_ROOTS:
        raise ValueError(
            f"no AWS Signer root certificate is shipped for partition {partition!r} (only for "
            f"{', '.join(sorted(SHIPPED_ROOTS))}); give that partition's root in customRootCertificates "
            "(constructs: aws_signer_root_certificates / custom_root_certificates)"
        )
    filename, pinned = SHIPPED_ROOTS[partition]
    pem = resources.files(__package__).joinpath(ROOTS_DIRECTORY, filename).read_text(encoding="ascii")
    certs = parse_root_certificates([pem])
    fingerprints = [hashlib.sha256(c.public_bytes(Encoding.DER)).hexdigest() for c in certs]
    if fingerprints != [pinned]:
        raise ValueError(
            f"the shipped AWS Signer root {ROOTS_DIRECTORY}/{filename} has SHA-256 {', '.join(fingerprints)}, "
            f"not the pinned {pinned}; reinstall the package"
        )
    return pem


def default_root_pems(profile_arns: Sequence[str], *, custom_root_certificates: Sequence[str] = ()) -> tuple[str, ...]:
    """The shipped roots for the partitions of `profile_arns` (used when a policy gives no rootCertificates).

    A partition without a shipped root (aws-cn) is an error unless the signer has custom roots,
    which then are its only anchors.
    """
    pems: list[str] = []
    for partition in sorted({arn_partition(arn) for arn in profile_arns}):
        if partition not in SHIPPED_ROOTS and custom_root_certificates:
            continue
        pems.append(shipped_root_pem(partition))
    return tuple(pems)


def parse_signing_profile_arn(arn: str) -> str:
    """ValueError unless `arn` is a signing-profile ARN or a signing-profile-version ARN."""
    if not isinstance(arn, str) or not (PROFILE_ARN_RE.match(arn) or PROFILE_VERSION_ARN_RE.match(arn)):
        raise ValueError(
            f"{arn!r} is not a signing profile ARN (arn:aws:signer:<region>:<account>:/signing-profiles/<name>"
            f"[/<version>])"
        )
    return arn


def profile_matches(trusted: str, profile_version_arn: str) -> bool:
    """Profile ARN: any version of it; profile-version ARN: exactly that version (case-insensitive)."""
    trusted_lower, signed_lower = trusted.lower(), profile_version_arn.lower()
    if PROFILE_VERSION_ARN_RE.match(trusted):
        return trusted_lower == signed_lower
    return signed_lower.rsplit("/", 1)[0] == trusted_lower


def certificate_hashes(chain: Sequence[x509.Certificate]) -> list[str]:
    """Leaf → root: hex(SHA-384(TBS)) of each certificate followed by that of its issuer."""
    tbs = [hashlib.sha384(cert.tbs_certificate_bytes).hexdigest() for cert in chain]
    return [own + parent for own, parent in zip(tbs, [*tbs[1:], tbs[-1]], strict=True)]


class SignerClient(Protocol):
    """The part of a boto3 `signer` client the revocation check uses."""

    def get_revocation_status(self, **kwargs: Any) -> Mapping[str, Any]: ...


class RevocationChecker(Protocol):
    """What `verify_notation` needs for AWS Signer revocation; `SignerRevocationChecker` is the real one."""

    def check(self, *, profile_version_arn: str, job_arn: str, chain: Sequence[x509.Certificate],
              signing_time: datetime) -> None: ...


class SignerRevocationChecker:
    """Asks AWS Signer whether a signature's profile version, job or certificates are revoked.

    `clients` is a boto3 `signer` client, or a function from region to one: the call goes to the
    region of the signing profile (AWS Signer signatures are regional and partition-isolated).
    Answers of "not revoked" are remembered for `cache_seconds`, because the same signature is often
    verified for several containers of one deployment; the bound keeps a warm Lambda from missing a
    revocation for longer than that.
    """

    def __init__(self, clients: SignerClient | Callable[[str], SignerClient], *,
                 cache_seconds: float = REVOCATION_CACHE_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self._clients = clients
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._not_revoked: dict[tuple[Any, ...], float] = {}

    def _client(self, profile_version_arn: str) -> SignerClient:
        if hasattr(self._clients, "get_revocation_status"):
            return self._clients  # type: ignore[return-value]
        return self._clients(profile_version_arn.split(":")[3])  # type: ignore[operator]

    def check(self, *, profile_version_arn: str, job_arn: str, chain: Sequence[x509.Certificate], signing_time: datetime) -> None:
        """Return quietly when nothing is revoked; raise SignatureRevokedError, AwsRefusedError or AwsUnavailableError."""
        hashes = certificate_hashes(chain)
        key = (profile_version_arn, job_arn, signing_time, tuple(hashes))
        if self._not_revoked.get(key, float("-inf")) > self._clock():
            return
        try:
            response = self._client(profile_version_arn).get_revocation_status(
                signatureTimestamp=signing_time,
                platformId=PLATFORM_ID,
                profileVersionArn=profile_version_arn,
                jobArn=job_arn,
                certificateHashes=hashes,
            )
        except Exception as exc:  # botocore's errors, judged in one place (policies without AWS Signer never load botocore)
            raise judge_aws_error(exc, "signer:GetRevocationStatus",
                                  denied_hint="grant the verifier's role signer:GetRevocationStatus") from exc
        revoked = response.get("revokedEntities") or []
        if not isinstance(revoked, list) or not all(isinstance(entity, str) for entity in revoked):
            raise AwsRefusedError("signer:GetRevocationStatus returned an unexpected response")
        if revoked:
            raise SignatureRevokedError(
                "; ".join(_describe_revoked(entity, profile_version_arn, job_arn, chain, hashes) for entity in revoked)
            )
        self._not_revoked[key] = self._clock() + self._cache_seconds


def _describe_revoked(
    entity: str, profile_version_arn: str, job_arn: str, chain: Sequence[x509.Certificate], hashes: list[str]
) -> str:
    if entity.lower() == profile_version_arn.lower():
        return f"signing profile version {profile_version_arn} is revoked"
    if entity.lower() == job_arn.lower():
        return f"signing job {job_arn} is revoked"
    for cert, value in zip(chain, hashes, strict=True):
        if entity.lower() == value:
            return f"certificate {describe(cert)} is revoked"
    return f"AWS Signer reports {entity} as revoked"
