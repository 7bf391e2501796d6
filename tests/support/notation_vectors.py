"""Notary Project signature vectors built at test time: JWS and COSE envelopes, AWS-Signer-shaped
signing-authority envelopes, RFC 3161 timestamp tokens, and the signature manifests that carry them.

`sign(...)` returns a `SignedVector` with the envelope bytes, its media type and a signature
manifest (subject + thumbprint annotation) ready to push to a registry. Every header can be
overridden, so negative tests change one thing and keep the rest valid. COSE envelopes are
encoded with `cbor2`, independently of the verifier's own CBOR code.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable, Mapping

import cbor2
from asn1crypto import cms, tsp
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from image_verifier.oci import OCI_EMPTY_CONFIG, OCI_MANIFEST, Descriptor
from tests.support.pki import NOW, Chain, aws_signer_chain, hash_for

JWS = "application/jose+json"
COSE = "application/cose"
NOTARY = "application/vnd.cncf.notary.signature"
PAYLOAD_CTY = "application/vnd.cncf.notary.payload.v1+json"
EMPTY_CONFIG_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
JWS_ALG = {"rsa2048": "PS256", "rsa3072": "PS384", "rsa4096": "PS512", "p256": "ES256", "p384": "ES384", "p521": "ES512"}
COSE_ALG = {"PS256": -37, "PS384": -38, "PS512": -39, "ES256": -7, "ES384": -35, "ES512": -36}
AWS_PLUGIN = "com.amazonaws.signer.notation.plugin"
PROFILE_ARN = "arn:aws:signer:us-east-1:123456789012:/signing-profiles/ProdImages"
PROFILE_VERSION_ARN = PROFILE_ARN + "/a1b2C3d4E5"
JOB_ARN = "arn:aws:signer:us-east-1:123456789012:/signing-jobs/0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"


@dataclass(frozen=True)
class SignedVector:
    envelope: bytes
    media_type: str
    manifest: bytes  # the signature manifest, subject + thumbprint annotation
    subject: Descriptor
    chain: Chain
    signature: bytes  # the raw signature inside the envelope


def image_subject(seed: str = "image") -> tuple[bytes, Descriptor]:
    """A small OCI image manifest to sign, and its descriptor."""
    config = json.dumps({"seed": seed}).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": "sha256:" + hashlib.sha256(config).hexdigest(), "size": len(config)},
        "layers": [],
    }).encode()
    return manifest, Descriptor(media_type=OCI_MANIFEST, digest="sha256:" + hashlib.sha256(manifest).hexdigest(),
                                size=len(manifest))


def payload_for(subject: Descriptor, annotations: Mapping[str, str] | None = None, **overrides: Any) -> bytes:
    target: dict[str, Any] = {"mediaType": subject.media_type, "digest": subject.digest, "size": subject.size}
    if annotations:
        target["annotations"] = dict(annotations)
    target.update(overrides)
    return json.dumps({"targetArtifact": target}).encode()


def raw_sign(private_key: Any, data: bytes, hash_algorithm: hashes.HashAlgorithm) -> bytes:
    """RSASSA-PSS (salt = hash length) or ECDSA as fixed-width r||s, as Notary envelopes carry them."""
    if isinstance(private_key, rsa.RSAPrivateKey):
        pss = padding.PSS(mgf=padding.MGF1(hash_algorithm), salt_length=hash_algorithm.digest_size)
        return private_key.sign(data, pss, hash_algorithm)
    r, s = decode_dss_signature(private_key.sign(data, ec.ECDSA(hash_algorithm)))
    width = (private_key.curve.key_size + 7) // 8
    return r.to_bytes(width, "big") + s.to_bytes(width, "big")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def rfc3339(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def notary_attributes(
    *, scheme: str = "notary.x509", signing_time: datetime = NOW - timedelta(hours=1),
    expiry: datetime | None = None, extra: Mapping[str, Any] | None = None, extra_critical: tuple[str, ...] = (),
) -> tuple[dict[str, Any], list[str]]:
    """Signed Notary attributes (times as datetimes) and the `crit` list for them."""
    time_name = "io.cncf.notary.signingTime" if scheme == "notary.x509" else "io.cncf.notary.authenticSigningTime"
    attributes: dict[str, Any] = {"io.cncf.notary.signingScheme": scheme, time_name: signing_time}
    crit = ["io.cncf.notary.signingScheme"]
    if time_name.endswith("authenticSigningTime"):
        crit.append(time_name)
    if expiry is not None:
        attributes["io.cncf.notary.expiry"] = expiry
        crit.append("io.cncf.notary.expiry")
    attributes.update(extra or {})
    crit.extend(extra_critical)
    return attributes, crit


def jws_envelope(*, chain: Chain, payload: bytes, attributes: dict[str, Any], crit: list[str],
                 alg: str | None = None, protected_overrides: Mapping[str, Any] | None = None,
                 header_extra: Mapping[str, Any] | None = None, raw_protected: bytes | None = None,
                 timestamp: Callable[[bytes], bytes] | None = None, signing_key: Any = None) -> tuple[bytes, bytes]:
    """(envelope bytes, raw signature). `timestamp` maps the signature to an RFC 3161 token."""
    protected = {"alg": alg or JWS_ALG[chain.key_kind], "cty": PAYLOAD_CTY, "crit": crit,
                 **{k: rfc3339(v) if isinstance(v, datetime) else v for k, v in attributes.items()}}
    protected.update(protected_overrides or {})
    protected_b64 = b64url(raw_protected if raw_protected is not None else json.dumps(protected).encode())
    payload_b64 = b64url(payload)
    signature = raw_sign(signing_key or chain.leaf.key, f"{protected_b64}.{payload_b64}".encode(), hash_for(chain.key_kind))
    header: dict[str, Any] = {"x5c": [base64.b64encode(der).decode() for der in chain.ders],
                              "io.cncf.notary.signingAgent": "notation-vectors/1.0"}
    if timestamp is not None:
        header["io.cncf.notary.timestampSignature"] = base64.b64encode(timestamp(signature)).decode()
    header.update(header_extra or {})
    envelope = {"payload": payload_b64, "protected": protected_b64, "header": header, "signature": b64url(signature)}
    return json.dumps(envelope).encode(), signature


def cose_envelope(*, chain: Chain, payload: bytes, attributes: dict[str, Any], crit: list[Any],
                  alg: str | None = None, protected_overrides: Mapping[Any, Any] | None = None,
                  raw_protected: bytes | None = None, tag: int = 18,
                  timestamp: Callable[[bytes], bytes] | None = None, signing_key: Any = None) -> tuple[bytes, bytes]:
    protected: dict[Any, Any] = {1: COSE_ALG[alg or JWS_ALG[chain.key_kind]], 2: crit, 3: PAYLOAD_CTY}
    for name, value in attributes.items():
        protected[name] = cbor2.CBORTag(1, int(value.timestamp())) if isinstance(value, datetime) else value
    protected.update(protected_overrides or {})
    protected_bytes = raw_protected if raw_protected is not None else cbor2.dumps(protected)
    to_be_signed = cbor2.dumps(["Signature1", protected_bytes, b"", payload])
    signature = raw_sign(signing_key or chain.leaf.key, to_be_signed, hash_for(chain.key_kind))
    unprotected: dict[Any, Any] = {33: chain.ders, "io.cncf.notary.signingAgent": "notation-vectors/1.0"}
    if timestamp is not None:
        unprotected["io.cncf.notary.timestampSignature"] = timestamp(signature)
    return cbor2.dumps(cbor2.CBORTag(tag, [protected_bytes, unprotected, payload, signature])), signature


def signature_manifest(envelope: bytes, media_type: str, subject: Descriptor, chain: Chain, *, legacy: bool = False) -> bytes:
    """The OCI manifest that stores a Notary signature (artifactType form, or the legacy config form)."""
    thumbprints = [hashlib.sha256(der).hexdigest() for der in chain.ders]
    manifest: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_MANIFEST}
    if legacy:
        manifest["config"] = {"mediaType": NOTARY, "digest": EMPTY_CONFIG_DIGEST, "size": 2}
    else:
        manifest["artifactType"] = NOTARY
        manifest["config"] = {"mediaType": OCI_EMPTY_CONFIG, "digest": EMPTY_CONFIG_DIGEST, "size": 2}
    manifest["layers"] = [{"mediaType": media_type, "digest": "sha256:" + hashlib.sha256(envelope).hexdigest(),
                           "size": len(envelope)}]
    manifest["subject"] = {"mediaType": subject.media_type, "digest": subject.digest, "size": subject.size}
    manifest["annotations"] = {"io.cncf.notary.x509chain.thumbprint#S256": json.dumps(thumbprints),
                               "org.opencontainers.image.created": rfc3339(NOW)}
    return json.dumps(manifest).encode()


def sign(subject: Descriptor, chain: Chain, *, media_type: str = JWS, scheme: str = "notary.x509",
         signing_time: datetime = NOW - timedelta(hours=1), expiry: datetime | None = None,
         annotations: Mapping[str, str] | None = None, payload: bytes | None = None,
         extra: Mapping[str, Any] | None = None, extra_critical: tuple[str, ...] = (), **envelope_options: Any) -> SignedVector:
    """A complete signature of `subject` by `chain`'s leaf; keyword options reach the envelope builder."""
    attributes, crit = notary_attributes(scheme=scheme, signing_time=signing_time, expiry=expiry,
                                         extra=extra, extra_critical=extra_critical)
    body = payload if payload is not None else payload_for(subject, annotations)
    build = jws_envelope if media_type == JWS else cose_envelope
    envelope, signature = build(chain=chain, payload=body, attributes=attributes, crit=crit, **envelope_options)
    return SignedVector(envelope=envelope, media_type=media_type, subject=subject, chain=chain, signature=signature,
                        manifest=signature_manifest(envelope, media_type, subject, chain))


def aws_signer_attributes(*, profile_version_arn: str = PROFILE_VERSION_ARN, job_arn: str = JOB_ARN,
                          plugin: str = AWS_PLUGIN) -> tuple[dict[str, Any], tuple[str, ...]]:
    extra = {"io.cncf.notary.verificationPlugin": plugin,
             "com.amazonaws.signer.signingProfileVersion": profile_version_arn,
             "com.amazonaws.signer.signingJob": job_arn}
    return extra, tuple(extra)


def aws_signer_signature(subject: Descriptor, *, chain: Chain | None = None,
                         signing_time: datetime = NOW - timedelta(days=1),
                         expiry: datetime | None = NOW + timedelta(days=3650),
                         profile_version_arn: str = PROFILE_VERSION_ARN, job_arn: str = JOB_ARN,
                         **options: Any) -> SignedVector:
    """An ES384 JWS with scheme notary.x509.signingAuthority, shaped like an AWS Signer signature."""
    chain = chain or aws_signer_chain(signing_time=signing_time)
    extra, critical = aws_signer_attributes(profile_version_arn=profile_version_arn, job_arn=job_arn)
    extra.update(options.pop("extra", {}))
    critical += options.pop("extra_critical", ())
    return sign(subject, chain, scheme="notary.x509.signingAuthority", signing_time=signing_time, expiry=expiry,
                extra=extra, extra_critical=critical, **options)


def timestamp_token(signature: bytes, *, tsa: Chain, gen_time: datetime, hash_name: str = "sha384",
                    accuracy_seconds: int | None = 1, policy: str = "1.3.6.1.4.1.4146.2.3",
                    imprint: bytes | None = None, signing_certificate_v2: bool = True,
                    include_root: bool = False, extra_certificates: tuple[bytes, ...] = ()) -> bytes:
    """An RFC 3161 TimeStampToken over `signature` (messageImprint = hash of the raw signature bytes)."""
    digest = imprint if imprint is not None else hashlib.new(hash_name, signature).digest()
    fields: dict[str, Any] = {
        "version": "v1", "policy": policy, "serial_number": 4242, "gen_time": gen_time,
        "message_imprint": {"hash_algorithm": {"algorithm": hash_name}, "hashed_message": digest},
    }
    if accuracy_seconds is not None:
        fields["accuracy"] = {"seconds": accuracy_seconds}
    tst_der = tsp.TSTInfo(fields).dump()
    tsa_cert = asn1_x509.Certificate.load(tsa.leaf.der)
    attributes = [
        {"type": "content_type", "values": ["tst_info"]},
        {"type": "message_digest", "values": [hashlib.sha256(tst_der).digest()]},
    ]
    if signing_certificate_v2:
        attributes.append({"type": "signing_certificate_v2", "values": [
            {"certs": [{"hash_algorithm": {"algorithm": "sha256"}, "cert_hash": hashlib.sha256(tsa.leaf.der).digest()}]}
        ]})
    signed_attrs = cms.CMSAttributes(attributes)
    tsa_key = tsa.leaf.key
    if isinstance(tsa_key, rsa.RSAPrivateKey):
        cms_signature, algorithm = tsa_key.sign(signed_attrs.dump(), padding.PKCS1v15(), hashes.SHA256()), "sha256_rsa"
    else:
        cms_signature, algorithm = tsa_key.sign(signed_attrs.dump(), ec.ECDSA(hashes.SHA256())), "sha256_ecdsa"
    signer_info = cms.SignerInfo({
        "version": "v1",
        "sid": cms.SignerIdentifier({"issuer_and_serial_number": {
            "issuer": tsa_cert.issuer, "serial_number": tsa_cert.serial_number}}),
        "digest_algorithm": {"algorithm": "sha256"},
        "signed_attrs": signed_attrs,
        "signature_algorithm": {"algorithm": algorithm},
        "signature": cms_signature,
    })
    certificates = [tsa_cert] + ([asn1_x509.Certificate.load(tsa.root.der)] if include_root else [])
    certificates += [asn1_x509.Certificate.load(der) for der in extra_certificates]
    signed_data = cms.SignedData({
        "version": "v3",
        "digest_algorithms": [{"algorithm": "sha256"}],
        "encap_content_info": {"content_type": "tst_info", "content": cms.ParsableOctetString(tst_der)},
        "certificates": certificates,
        "signer_infos": [signer_info],
    })
    return cms.ContentInfo({"content_type": "signed_data", "content": signed_data}).dump()


def pem_of(der: bytes) -> str:
    from cryptography import x509

    return x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM).decode()


def x509_trust(chain: Chain, *, identities: tuple[str, ...] = ("x509.subject: C=US, ST=WA, O=Acme",), **fields: Any):
    """A `NotationX509Trust` whose root is `chain`'s root."""
    from image_verifier.policy import NotationX509Trust

    return NotationX509Trust(root_certificates=(chain.root.pem,), trusted_identities=identities, **fields)


def aws_trust(chain: Chain, *, profiles: tuple[str, ...] = (PROFILE_ARN,), revocation_check: bool = False, **fields: Any):
    """An `AwsSignerTrust` with `chain`'s root given as a custom (unpinned) root, as tests must."""
    from image_verifier.policy import AwsSignerTrust

    return AwsSignerTrust(signing_profile_arns=profiles, custom_root_certificates=(chain.root.pem,),
                          revocation_check=revocation_check, **fields)
