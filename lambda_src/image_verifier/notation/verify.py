"""Verify one Notary signature envelope against one trusted signer, as numbered steps.

1. integrity: parse the envelope (by layer media type), derive the algorithm from the leaf key and
   require the header to agree, verify the signature, check the chain and certificate rules,
   process critical attributes (only AWS Signer's are known, and only for an awsSigner signer),
   then compare the payload with the subject. Always enforced.
2. authenticity: the signing scheme is the signer's, the chain ends in one of its roots, and
   the leaf (x509) or the signing profile version (AWS Signer) is a trusted identity.
3. expiry: `io.cncf.notary.expiry` is in the future.
4. authentic timestamp: signingAuthority - the authentic signing time is inside every
   certificate's validity; notary.x509 - an RFC 3161 timestamp from a policy TSA when the signer
   names TSA roots (and `verifyTimestamp` asks for it), else now must be inside the validity.
5. revocation: AWS Signer `GetRevocationStatus` when enabled; X.509 revocation (OCSP/CRL) is not
   checked, because nothing is fetched from the internet at verification time (the step says
   `notChecked`).

Each step yields failures; `levels.StepLog` decides in one place, under the signer's effective
level (its `verificationLevel` with the spec's per-step `override` applied), whether they raise,
are logged or the step is skipped, and records every step's outcome for the verdict.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Mapping, Protocol, Sequence, runtime_checkable

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ..errors import (
    HostileArtifactError,
    PolicyError,
    SignatureAuthenticityError,
    SignatureExpiredError,
    SignatureIdentityError,
    SignatureIntegrityError,
    SignatureRevokedError,
    AwsUnavailableError,
    VerificationError,
)
from ..oci import Descriptor
from . import awssigner
from .algorithms import algorithm_for_key, verify_signature
from .certificates import check_signing_chain, describe, load_chain, outside_validity, validity_text
from .envelope import SCHEME_SIGNING_AUTHORITY, SCHEME_X509, Envelope, SignedAttributes
from .envelope_cose import COSE_MEDIA_TYPE, parse_cose
from .envelope_jws import JWS_MEDIA_TYPE, parse_jws
from .identity import DistinguishedName, ambiguous_subject, any_matches, parse_trusted_identities, render_name
from .levels import (
    AUTHENTIC_TIMESTAMP,
    AUTHENTICITY,
    EXPIRY,
    INTEGRITY,
    REVOCATION,
    Failure,
    Level,
    StepLog,
    StepOutcome,
    effective_level,
)
from .manifest import MAX_ENVELOPE_BYTES
from .payload import check_payload
from .timestamp import TimestampError, verify_timestamp
from .trust import chain_ends_in, parse_root_certificates


@runtime_checkable
class AwsSignerTrustLike(Protocol):
    """The fields of `policy.AwsSignerTrust` this module reads (structural, to avoid an import cycle)."""

    signing_profile_arns: tuple[str, ...]
    root_certificates: tuple[str, ...]
    custom_root_certificates: tuple[str, ...]
    revocation_check: bool
    override: Mapping[str, str]


class NotationX509TrustLike(Protocol):
    """The fields of `policy.NotationX509Trust` this module reads."""

    root_certificates: tuple[str, ...]
    signing_scheme: str
    trusted_identities: tuple[str, ...]
    tsa_root_certificates: tuple[str, ...]
    verification_level: str
    verify_timestamp: str
    override: Mapping[str, str]


@dataclass(frozen=True, kw_only=True)
class NotationVerification:
    """A signature that passed every enforced step."""

    identity: str  # leaf subject DN (notary x509) or signing profile version ARN (AWS Signer)
    signing_scheme: str
    signing_time: datetime | None  # authentic: signingAuthority time or TSA genTime; None if unproven
    user_annotations: Mapping[str, str] = field(default_factory=dict)  # targetArtifact.annotations
    warnings: tuple[str, ...] = ()  # failures logged (not enforced) under permissive/audit or an override
    steps: tuple[StepOutcome, ...] = ()  # every step's action and outcome, in the spec's order
    # What the signature is, so that callers count one signature (or one signing key) once:
    signature_sha256: str | None = None  # sha256: of the envelope's signature value
    key_fingerprint: str | None = None  # sha256: of the leaf certificate's DER SubjectPublicKeyInfo


def verify_notation(
    *,
    envelope: bytes,
    media_type: str,
    subject: Descriptor,
    trust: AwsSignerTrustLike | NotationX509TrustLike,
    now: datetime,
    revocation: awssigner.RevocationChecker | None = None,
    signer_name: str | None = None,
) -> NotationVerification:
    """Verify one envelope against one trusted signer; raise the first enforced failure."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    is_aws = isinstance(trust, AwsSignerTrustLike)
    signer = f'signer "{signer_name}"' if signer_name else "the signer"
    log = StepLog(_level(trust, is_aws, signer))

    # 1. integrity (enforced at every level)
    try:
        env, chain, aws_attributes, annotations = _integrity(envelope, media_type, subject, is_aws)
    except VerificationError as exc:
        log.judge(Failure(INTEGRITY, exc))
        raise  # unreachable: integrity is always enforced
    log.passed(INTEGRITY)
    attributes = env.attributes

    # 2. authenticity: the signer's scheme and roots, then its trusted identities
    for failure in _authenticity(chain, attributes, trust, is_aws, signer):
        log.judge(failure)
    identity = aws_attributes[0] if aws_attributes else render_name(chain[0].subject)
    for failure in _trusted_identity(chain, aws_attributes, trust, signer, identity):
        log.judge(failure)
    log.passed(AUTHENTICITY)

    # 3. expiry
    if attributes.expiry is not None and now >= attributes.expiry:
        expired = SignatureExpiredError(f"the signature expired at {attributes.expiry.isoformat()}")
        log.judge(Failure(EXPIRY, expired))
    log.passed(EXPIRY)

    # 4. authentic timestamp
    signing_time, failure = _authentic_time(env, chain, trust, is_aws, now, signer)
    if failure is not None:
        log.judge(failure)
    log.passed(AUTHENTIC_TIMESTAMP)

    # 5. revocation (AWS Signer only; X.509 OCSP/CRL is not checked, see the module docstring)
    _revocation(log, aws_attributes, trust, revocation, chain, attributes, signer)

    return NotationVerification(
        identity=identity,
        signing_scheme=attributes.signing_scheme,
        signing_time=signing_time,
        user_annotations=annotations,
        warnings=log.warnings,
        steps=log.outcomes,
        signature_sha256="sha256:" + hashlib.sha256(env.signature).hexdigest(),
        key_fingerprint=_key_fingerprint(chain[0]),
    )


X509_REVOCATION_NOT_CHECKED = ("X.509 revocation (OCSP/CRL) is not checked: nothing is fetched from the internet "
                               "at verification time")


def _revocation(log: StepLog, aws_attributes: tuple[str, str] | None, trust: object,
                revocation: awssigner.RevocationChecker | None, chain: list[x509.Certificate],
                attributes: SignedAttributes, signer: str) -> None:
    if not aws_attributes:
        if log.should_run(REVOCATION, why_skipped="override revocation: skip"):
            log.not_checked(REVOCATION, X509_REVOCATION_NOT_CHECKED)
        return
    why = "override revocation: skip" if trust.revocation_check else "revocationCheck is false"
    if not log.should_run(REVOCATION, why_skipped=why):
        return
    if revocation is None:
        raise ValueError(f"{signer} asks for revocation checks, but no revocation checker was given")
    try:
        revocation.check(profile_version_arn=aws_attributes[0], job_arn=aws_attributes[1], chain=chain,
                         signing_time=attributes.authentic_signing_time)
    except (SignatureRevokedError, AwsUnavailableError) as exc:
        log.judge(Failure(REVOCATION, exc))
    log.passed(REVOCATION)


def _key_fingerprint(leaf: x509.Certificate) -> str:
    spki = leaf.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(spki).hexdigest()


def _authenticity(
    chain: list[x509.Certificate], attributes: SignedAttributes, trust: object, is_aws: bool, signer: str
) -> list[Failure]:
    roots = _aws_roots(trust, signer) if is_aws else _roots(trust.root_certificates, signer, "rootCertificates")
    wanted_scheme = SCHEME_SIGNING_AUTHORITY if is_aws else trust.signing_scheme
    if attributes.signing_scheme != wanted_scheme:
        message = f"signing scheme {attributes.signing_scheme} is not {wanted_scheme}, the scheme of {signer}"
        return [Failure(AUTHENTICITY, SignatureAuthenticityError(message))]
    if not chain_ends_in(chain, roots):
        message = f"certificate chain does not end in a trusted root of {signer} (its root is {describe(chain[-1])})"
        return [Failure(AUTHENTICITY, SignatureAuthenticityError(message))]
    return []


def _trusted_identity(
    chain: list[x509.Certificate], aws_attributes: tuple[str, str] | None, trust: object, signer: str, identity: str
) -> list[Failure]:
    if aws_attributes:
        if any(awssigner.profile_matches(arn, identity) for arn in trust.signing_profile_arns):
            return []
        message = f"signing profile version {identity} is not a trusted signing profile of {signer}"
    else:
        if any_matches(_identities(trust.trusted_identities, signer), chain[0].subject):
            return []
        message = f"signing certificate subject {identity!r} matches no trusted identity of {signer}"
        ambiguous = ambiguous_subject(chain[0].subject)
        if ambiguous:
            message += f" ({ambiguous})"
    return [Failure(AUTHENTICITY, SignatureIdentityError(message))]


def parse_envelope(envelope: bytes, media_type: str) -> Envelope:
    if len(envelope) > MAX_ENVELOPE_BYTES:
        raise HostileArtifactError(f"the envelope is larger than {MAX_ENVELOPE_BYTES} bytes")
    if media_type == JWS_MEDIA_TYPE:
        return parse_jws(envelope)
    if media_type == COSE_MEDIA_TYPE:
        return parse_cose(envelope)
    raise SignatureIntegrityError(f"unsupported envelope media type {media_type!r}")


def _integrity(
    data: bytes, media_type: str, subject: Descriptor, is_aws: bool
) -> tuple[Envelope, list[x509.Certificate], tuple[str, str] | None, Mapping[str, str]]:
    env = parse_envelope(data, media_type)
    chain = load_chain(env.certificates)
    key = chain[0].public_key()
    key_algorithm = algorithm_for_key(key)
    if key_algorithm is not env.algorithm:
        raise SignatureIntegrityError(
            f"the envelope says {env.algorithm.jws_name}, but the signing key requires {key_algorithm.jws_name}"
        )
    verify_signature(env.algorithm, key, env.signature, env.signed_bytes)
    check_signing_chain(chain)
    aws_attributes = _critical_attributes(env.attributes, is_aws)
    return env, chain, aws_attributes, check_payload(env.payload, subject)


def _critical_attributes(attributes: SignedAttributes, is_aws: bool) -> tuple[str, str] | None:
    """Process the critical attributes we know; anything else critical fails (the spec's MUST)."""
    plugin = attributes.verification_plugin
    if plugin is not None and not (is_aws and plugin == awssigner.AWS_SIGNER_PLUGIN):
        scope = "" if plugin == awssigner.AWS_SIGNER_PLUGIN else " (only AWS Signer's plugin is implemented)"
        raise SignatureIntegrityError(f"verification plugin {plugin!r} is not supported for this signer{scope}")
    known = awssigner.AWS_SIGNER_ATTRIBUTES if is_aws else frozenset()
    unknown = sorted(attributes.critical_extended - known)
    if unknown:
        raise SignatureIntegrityError(f"unknown critical attributes {unknown}")
    if not is_aws:
        return None
    values = []
    expected = ((awssigner.SIGNING_PROFILE_VERSION, awssigner.PROFILE_VERSION_ARN_RE),
                (awssigner.SIGNING_JOB, awssigner.JOB_ARN_RE))
    for name, pattern in expected:
        value = attributes.extended.get(name)
        if name not in attributes.critical_extended or not isinstance(value, str) or not pattern.match(value):
            raise SignatureIntegrityError(f"an AWS Signer signature needs a critical {name} ARN, got {value!r}")
        values.append(value)
    return values[0], values[1]


def _authentic_time(
    env: Envelope, chain: list[x509.Certificate], trust: object, is_aws: bool, now: datetime, signer: str
) -> tuple[datetime | None, Failure | None]:
    attributes = env.attributes
    if attributes.signing_scheme == SCHEME_SIGNING_AUTHORITY:
        signed_at = attributes.authentic_signing_time
        assert signed_at is not None  # build_signed_attributes requires it for this scheme
        bad = outside_validity(chain, signed_at)
        if bad is not None:
            message = f"certificate {validity_text(bad)} was not valid at the authentic signing time {signed_at.isoformat()}"
            return None, Failure(AUTHENTIC_TIMESTAMP, SignatureExpiredError(message))
        return signed_at, None
    assert attributes.signing_scheme == SCHEME_X509
    tsa_roots = () if is_aws else _roots(trust.tsa_root_certificates, signer, "tsaRootCertificates")
    expired_now = outside_validity(chain, now)
    if tsa_roots and (trust.verify_timestamp == "always" or expired_now is not None):
        if env.timestamp_token is None:
            missing = TimestampError(f"the signature has no timestamp countersignature, which {signer} requires")
            return None, Failure(AUTHENTIC_TIMESTAMP, missing)
        try:
            stamp = verify_timestamp(env.timestamp_token, signature=env.signature,
                                     hash_algorithm=env.algorithm.hash(), tsa_roots=tsa_roots)
        except VerificationError as exc:
            return None, Failure(AUTHENTIC_TIMESTAMP, exc)
        bad = outside_validity(chain, stamp.earliest, stamp.latest)
        if bad is not None:
            message = f"certificate {validity_text(bad)} was not valid at the timestamp {stamp.gen_time.isoformat()}"
            return None, Failure(AUTHENTIC_TIMESTAMP, SignatureExpiredError(message))
        return stamp.gen_time, None
    if expired_now is not None:
        message = f"certificate {validity_text(expired_now)} is not valid now"
        return None, Failure(AUTHENTIC_TIMESTAMP, SignatureExpiredError(message))
    return None, None


def _level(trust: AwsSignerTrustLike | NotationX509TrustLike, is_aws: bool, signer: str) -> Level:
    """The signer's effective level: its `verificationLevel` (AWS Signer: strict) with `override`
    applied; `revocationCheck: false` on an AWS Signer signer skips revocation."""
    override = dict(getattr(trust, "override", None) or {})
    if is_aws and not trust.revocation_check:
        override.setdefault("revocation", "skip")
    try:
        return effective_level("strict" if is_aws else trust.verification_level, override)
    except ValueError as exc:
        raise PolicyError(signer, str(exc)) from exc


def _roots(pems: Sequence[str], signer: str, field_name: str) -> tuple[x509.Certificate, ...]:
    try:
        return _parsed_roots(tuple(pems))
    except ValueError as exc:
        raise PolicyError(f"{signer}.{field_name}", str(exc)) from exc


def _aws_roots(trust: AwsSignerTrustLike, signer: str) -> tuple[x509.Certificate, ...]:
    pems = trust.root_certificates or awssigner.default_root_pems(  # none given: the shipped, pinned roots
        trust.signing_profile_arns, custom_root_certificates=trust.custom_root_certificates)
    pinned = _roots(pems, signer, "rootCertificates")
    for cert in pinned:
        try:
            awssigner.check_pinned_root(cert)
        except ValueError as exc:
            raise PolicyError(f"{signer}.rootCertificates", str(exc)) from exc
    return pinned + _roots(trust.custom_root_certificates, signer, "customRootCertificates")


def _identities(entries: Sequence[str], signer: str) -> tuple[DistinguishedName, ...] | None:
    try:
        return _parsed_identities(tuple(entries))
    except ValueError as exc:
        raise PolicyError(f"{signer}.trustedIdentities", str(exc)) from exc


@lru_cache(maxsize=64)  # policies are immutable and small; parse each PEM set once per process
def _parsed_roots(pems: tuple[str, ...]) -> tuple[x509.Certificate, ...]:
    return tuple(parse_root_certificates(pems))


@lru_cache(maxsize=64)
def _parsed_identities(entries: tuple[str, ...]) -> tuple[DistinguishedName, ...] | None:
    identities = parse_trusted_identities(entries)
    return None if identities is None else tuple(identities)
