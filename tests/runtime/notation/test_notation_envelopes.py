"""Hostile and malformed envelopes: every one is an integrity failure (enforced even at audit)."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import cbor2
import pytest

from image_verifier.errors import HostileArtifactError, SignatureIntegrityError
from image_verifier.notation import MAX_ENVELOPE_BYTES, verify_notation
from image_verifier.notation import cbor
from tests.support import notation_vectors as nv
from tests.support import pki

_, SUBJECT = nv.image_subject("envelopes")
CHAIN = pki.code_signing_chain("p256")


def _verify(envelope: bytes, media_type: str = nv.JWS, *, chain: pki.Chain = CHAIN, subject=SUBJECT):  # type: ignore[no-untyped-def]
    return verify_notation(envelope=envelope, media_type=media_type, subject=subject,
                           trust=nv.x509_trust(chain, verification_level="audit"), now=pki.NOW)


def _jws_parts(envelope: bytes) -> dict:  # type: ignore[type-arg]
    return json.loads(envelope)


@pytest.mark.parametrize("media_type", [nv.JWS, nv.COSE])
def test_rejects_envelope_when_payload_is_tampered(media_type: str) -> None:
    # Given a valid envelope whose payload is swapped after signing
    vector = nv.sign(SUBJECT, CHAIN, media_type=media_type)
    other = nv.payload_for(SUBJECT, {"injected": "yes"})
    if media_type == nv.JWS:
        parts = _jws_parts(vector.envelope)
        parts["payload"] = nv.b64url(other)
        tampered = json.dumps(parts).encode()
    else:
        body = list(cbor2.loads(vector.envelope).value)
        body[2] = other
        tampered = cbor2.dumps(cbor2.CBORTag(18, body))

    # When / Then
    with pytest.raises(SignatureIntegrityError, match="^integrity: the ES256 signature does not verify"):
        _verify(tampered, media_type)


@pytest.mark.parametrize("media_type", [nv.JWS, nv.COSE])
@pytest.mark.parametrize(("field", "value"), [("digest", "sha256:" + "0" * 64), ("size", 1),
                                              ("mediaType", "application/vnd.docker.distribution.manifest.v2+json")])
def test_rejects_signature_when_target_artifact_differs_from_the_subject(media_type: str, field: str, value: object) -> None:
    # Given a signature over another descriptor (a replay onto this image)
    vector = nv.sign(SUBJECT, CHAIN, media_type=media_type, payload=nv.payload_for(SUBJECT, **{field: value}))

    # When / Then
    with pytest.raises(SignatureIntegrityError, match=f"^integrity: the signature is for {field} "):
        _verify(vector.envelope, media_type)


def test_rejects_jws_when_alg_is_none() -> None:
    vector = nv.sign(SUBJECT, CHAIN, alg="ES256", protected_overrides={"alg": "none"})
    with pytest.raises(SignatureIntegrityError, match="unsupported signature algorithm 'none'"):
        _verify(vector.envelope)


@pytest.mark.parametrize(("key_kind", "claimed"), [("p384", "ES256"), ("rsa3072", "PS256"), ("p256", "PS256")])
@pytest.mark.parametrize("media_type", [nv.JWS, nv.COSE])
def test_rejects_envelope_when_alg_does_not_match_the_key(key_kind: str, claimed: str, media_type: str) -> None:
    # Given a header algorithm other than the one the leaf key dictates
    chain = pki.code_signing_chain(key_kind)
    vector = nv.sign(SUBJECT, chain, media_type=media_type, alg=claimed)

    # When / Then
    with pytest.raises(SignatureIntegrityError, match=f"the envelope says {claimed}, but the signing key requires"):
        _verify(vector.envelope, media_type, chain=chain)


@pytest.mark.parametrize("media_type", [nv.JWS, nv.COSE])
def test_rejects_envelope_when_an_unknown_attribute_is_critical(media_type: str) -> None:
    vector = nv.sign(SUBJECT, CHAIN, media_type=media_type, extra={"com.example.mustUnderstand": "x"},
                     extra_critical=("com.example.mustUnderstand",))
    with pytest.raises(SignatureIntegrityError, match=r"^integrity: unknown critical attributes \['com.example.mustUnderstand'\]"):
        _verify(vector.envelope, media_type)


def test_accepts_unknown_attribute_when_not_critical() -> None:
    vector = nv.sign(SUBJECT, CHAIN, extra={"com.example.informational": "x"})
    assert _verify(vector.envelope).identity.endswith("CN=Test Signer")


def test_rejects_jws_when_crit_lists_a_header_that_is_absent() -> None:
    vector = nv.sign(SUBJECT, CHAIN, extra_critical=("io.cncf.notary.missing",))
    with pytest.raises(SignatureIntegrityError, match="critical header 'io.cncf.notary.missing' is not present"):
        _verify(vector.envelope)


def test_rejects_jws_when_crit_lists_a_registered_header() -> None:
    vector = nv.sign(SUBJECT, CHAIN, extra_critical=("alg",))
    with pytest.raises(SignatureIntegrityError, match=r"crit header lists registered headers \['alg'\]"):
        _verify(vector.envelope)


@pytest.mark.parametrize("media_type", [nv.JWS, nv.COSE])
def test_rejects_envelope_when_expiry_is_not_critical(media_type: str) -> None:
    attributes, crit = nv.notary_attributes(expiry=pki.NOW + timedelta(days=1))
    crit.remove("io.cncf.notary.expiry")
    build = nv.jws_envelope if media_type == nv.JWS else nv.cose_envelope
    envelope, _ = build(chain=CHAIN, payload=nv.payload_for(SUBJECT), attributes=attributes, crit=crit)
    with pytest.raises(SignatureIntegrityError, match="io.cncf.notary.expiry must be marked critical"):
        _verify(envelope, media_type)


def test_rejects_signing_authority_envelope_when_it_carries_signing_time() -> None:
    vector = nv.sign(SUBJECT, CHAIN, scheme="notary.x509.signingAuthority",
                     extra={"io.cncf.notary.signingTime": nv.rfc3339(pki.NOW)})
    with pytest.raises(SignatureIntegrityError, match="forbids io.cncf.notary.signingTime"):
        _verify(vector.envelope)


def test_rejects_envelope_when_signing_scheme_is_unknown() -> None:
    vector = nv.sign(SUBJECT, CHAIN, protected_overrides={"io.cncf.notary.signingScheme": "notary.x509.custom"})
    with pytest.raises(SignatureIntegrityError, match="unsupported signing scheme 'notary.x509.custom'"):
        _verify(vector.envelope)


@pytest.mark.parametrize("value", ["2026-05-01T10:00:00", "2026-05-01T10:00:00Z\n"])
def test_rejects_jws_when_a_time_has_no_offset_or_trails_a_newline(value: str) -> None:
    # (a `$` anchor would let "...Z\n" through; RFC 3339 and notation's time.Parse refuse it)
    vector = nv.sign(SUBJECT, CHAIN, protected_overrides={"io.cncf.notary.signingTime": value})
    with pytest.raises(SignatureIntegrityError, match="is not an RFC 3339 time with an offset"):
        _verify(vector.envelope)


def test_rejects_envelope_when_plugin_min_version_trails_a_newline() -> None:
    vector = nv.sign(SUBJECT, CHAIN, extra={"io.cncf.notary.verificationPlugin": "p",
                                            "io.cncf.notary.verificationPluginMinVersion": "1.0.0\n"},
                     extra_critical=("io.cncf.notary.verificationPlugin", "io.cncf.notary.verificationPluginMinVersion"))
    with pytest.raises(SignatureIntegrityError, match="is not a SemVer version"):
        _verify(vector.envelope)


def test_accepts_jws_time_with_a_non_utc_offset_and_fraction() -> None:
    vector = nv.sign(SUBJECT, CHAIN, protected_overrides={"io.cncf.notary.signingTime": "2023-06-27T13:30:33.123456789+08:00"})
    assert _verify(vector.envelope).warnings == ()


def test_rejects_jws_when_protected_header_has_duplicate_keys() -> None:
    # Given a protected header with two "alg" members (the second must not silently win)
    attributes, crit = nv.notary_attributes()
    raw = ('{"alg":"ES256","alg":"ES256","cty":"application/vnd.cncf.notary.payload.v1+json","crit":["io.cncf.notary.signingScheme"],'
           '"io.cncf.notary.signingScheme":"notary.x509","io.cncf.notary.signingTime":"2026-06-01T11:00:00Z"}').encode()
    envelope, _ = nv.jws_envelope(chain=CHAIN, payload=nv.payload_for(SUBJECT), attributes=attributes, crit=crit, raw_protected=raw)

    # When / Then
    with pytest.raises(SignatureIntegrityError, match="duplicate key 'alg'"):
        _verify(envelope)


def test_rejects_jws_when_envelope_has_duplicate_keys() -> None:
    vector = nv.sign(SUBJECT, CHAIN)
    doubled = vector.envelope.replace(b'{"payload": ', b'{"payload": "e30", "payload": ', 1)
    with pytest.raises(SignatureIntegrityError, match="duplicate key 'payload'"):
        _verify(doubled)


@pytest.mark.parametrize("member", ["payload", "protected", "signature"])
def test_rejects_jws_when_base64url_is_padded(member: str) -> None:
    # Given a member re-encoded with '=' padding (its length varied until it needs padding)
    for filler in range(3):
        vector = nv.sign(SUBJECT, CHAIN, payload=nv.payload_for(SUBJECT) + b" " * filler,
                         extra={"com.example.filler": "x" * filler})
        parts = _jws_parts(vector.envelope)
        if len(parts[member]) % 4:
            break
    parts[member] += "=" * (-len(parts[member]) % 4)

    # When / Then
    with pytest.raises(SignatureIntegrityError, match=f"JWS {member} is not unpadded base64url"):
        _verify(json.dumps(parts).encode())


def test_rejects_jws_when_base64url_uses_the_standard_alphabet() -> None:
    parts = _jws_parts(nv.sign(SUBJECT, CHAIN).envelope)
    parts["signature"] = parts["signature"].replace("-", "+").replace("_", "/") + "+"
    with pytest.raises(SignatureIntegrityError, match="JWS signature is not unpadded base64url"):
        _verify(json.dumps(parts).encode())


def test_rejects_jws_when_x5c_is_base64url_instead_of_standard() -> None:
    parts = _jws_parts(nv.sign(SUBJECT, CHAIN).envelope)
    parts["header"]["x5c"][0] = parts["header"]["x5c"][0].rstrip("=").replace("+", "-").replace("/", "_") + "-"
    with pytest.raises(SignatureIntegrityError, match=r"x5c\[0\] is not standard base64"):
        _verify(json.dumps(parts).encode())


@pytest.mark.parametrize("change", ["extra member", "signatures array", "compact"])
def test_rejects_jws_when_not_flattened_json(change: str) -> None:
    parts = _jws_parts(nv.sign(SUBJECT, CHAIN).envelope)
    if change == "extra member":
        parts["unprotected"] = {}
        data = json.dumps(parts).encode()
    elif change == "signatures array":
        data = json.dumps({"payload": parts["payload"], "signatures": [{"protected": parts["protected"]}]}).encode()
    else:
        data = f'{parts["protected"]}.{parts["payload"]}.{parts["signature"]}'.encode()
    with pytest.raises(SignatureIntegrityError, match="^integrity: (JWS envelope must have exactly|the JWS envelope is not valid JSON)"):
        _verify(data)


def test_rejects_jws_when_content_type_is_not_the_notary_payload() -> None:
    vector = nv.sign(SUBJECT, CHAIN, protected_overrides={"cty": "application/json"})
    with pytest.raises(SignatureIntegrityError, match="unsupported payload content type 'application/json'"):
        _verify(vector.envelope)


def test_rejects_cose_when_truncated() -> None:
    vector = nv.sign(SUBJECT, CHAIN, media_type=nv.COSE)
    with pytest.raises(SignatureIntegrityError, match="truncated CBOR"):
        _verify(vector.envelope[:-10], nv.COSE)


def test_rejects_cose_when_trailing_bytes_follow() -> None:
    vector = nv.sign(SUBJECT, CHAIN, media_type=nv.COSE)
    with pytest.raises(SignatureIntegrityError, match="1 trailing bytes"):
        _verify(vector.envelope + b"\x00", nv.COSE)


def test_rejects_cose_when_tag_is_not_18() -> None:
    vector = nv.sign(SUBJECT, CHAIN, media_type=nv.COSE, tag=98)
    with pytest.raises(SignatureIntegrityError, match=r"not a tagged COSE_Sign1 \(tag 18\)"):
        _verify(vector.envelope, nv.COSE)


def test_rejects_cose_when_signing_time_is_a_bare_integer() -> None:
    vector = nv.sign(SUBJECT, CHAIN, media_type=nv.COSE,
                     protected_overrides={"io.cncf.notary.signingTime": int(pki.NOW.timestamp())})
    with pytest.raises(SignatureIntegrityError, match="io.cncf.notary.signingTime must be a tag-1 epoch time"):
        _verify(vector.envelope, nv.COSE)


def test_rejects_cose_when_protected_header_repeats_a_label() -> None:
    # Given a protected map with alg twice (cbor2 cannot write that, so splice the bytes)
    attributes, crit = nv.notary_attributes()
    protected = cbor2.dumps({1: -7, 2: crit, 3: nv.PAYLOAD_CTY, "io.cncf.notary.signingScheme": "notary.x509",
                             "io.cncf.notary.signingTime": cbor2.CBORTag(1, int(pki.NOW.timestamp()))})
    doubled = bytes([protected[0] + 1]) + b"\x01\x26" + protected[1:]  # one more entry: 1 => -7
    envelope, _ = nv.cose_envelope(chain=CHAIN, payload=nv.payload_for(SUBJECT), attributes=attributes, crit=crit,
                                   raw_protected=doubled)

    # When / Then
    with pytest.raises(SignatureIntegrityError, match="duplicate CBOR map key 1"):
        _verify(envelope, nv.COSE)


def test_rejects_cose_when_crit_lists_an_integer_label() -> None:
    vector = nv.sign(SUBJECT, CHAIN, media_type=nv.COSE, extra_critical=(1,))
    with pytest.raises(SignatureIntegrityError, match="crit header lists reserved label 1"):
        _verify(vector.envelope, nv.COSE)


def test_rejects_cose_when_x5chain_is_a_single_byte_string() -> None:
    body = list(cbor2.loads(nv.sign(SUBJECT, CHAIN, media_type=nv.COSE).envelope).value)
    body[1] = {**body[1], 33: CHAIN.ders[0]}
    with pytest.raises(SignatureIntegrityError, match="x5chain .* is missing or not a non-empty array"):
        _verify(cbor2.dumps(cbor2.CBORTag(18, body)), nv.COSE)


def test_rejects_envelope_when_media_type_is_unknown() -> None:
    with pytest.raises(SignatureIntegrityError, match="unsupported envelope media type 'application/json'"):
        _verify(nv.sign(SUBJECT, CHAIN).envelope, "application/json")


def test_rejects_envelope_when_larger_than_the_limit() -> None:
    with pytest.raises(HostileArtifactError, match=f"larger than {MAX_ENVELOPE_BYTES} bytes"):
        _verify(b" " * (MAX_ENVELOPE_BYTES + 1))


def test_rejects_envelope_when_x5c_is_not_a_complete_chain() -> None:
    # Given x5c without the root: the chain must end in a self-signed root
    parts = _jws_parts(nv.sign(SUBJECT, CHAIN).envelope)
    parts["header"]["x5c"] = parts["header"]["x5c"][:2]
    with pytest.raises(SignatureIntegrityError, match="does not end in a self-signed root"):
        _verify(json.dumps(parts).encode())


def test_rejects_envelope_when_x5c_is_out_of_order() -> None:
    parts = _jws_parts(nv.sign(SUBJECT, CHAIN).envelope)
    x5c = parts["header"]["x5c"]
    parts["header"]["x5c"] = [x5c[0], x5c[2], x5c[1]]
    with pytest.raises(SignatureIntegrityError, match="was not issued by the next one"):
        _verify(json.dumps(parts).encode())


@pytest.mark.parametrize("position", [0, 1, 2])
@pytest.mark.parametrize("breakage", [{"version": 7}, {"key_algorithm": "1.2.3.4.5"}])
def test_rejects_envelope_when_an_x5c_certificate_is_malformed(position: int, breakage: dict) -> None:  # type: ignore[type-arg]
    # Given a signed envelope whose unsigned x5c was given a certificate the X.509 parser refuses
    # lazily (a bad version, an unknown key algorithm): anyone who can push a referrer can do this
    parts = _jws_parts(nv.sign(SUBJECT, CHAIN).envelope)
    bad = pki.malformed_der(CHAIN.issued[position], **breakage)
    parts["header"]["x5c"][position] = base64.b64encode(bad).decode()

    # When / Then it is an integrity failure like any other, not a stray parser exception
    with pytest.raises(SignatureIntegrityError, match="^integrity: "):
        _verify(json.dumps(parts).encode())


@pytest.mark.parametrize(("data", "message"), [
    (bytes.fromhex("a201010102"), "duplicate CBOR map key 1"),
    (bytes.fromhex("9f01ff"), "indefinite-length"),
    (bytes.fromhex("f93c00"), "simple value or float"),
    (bytes.fromhex("a1f501"), "neither an integer nor a text string"),
    (bytes.fromhex("9bffffffffffffffff"), "claims"),
    (bytes.fromhex("62c328"), "not valid UTF-8"),
    (b"\x81" * 40 + b"\x00", "deeper than"),
])
def test_rejects_cbor_when_outside_the_strict_subset(data: bytes, message: str) -> None:
    with pytest.raises(cbor.CborError, match=message):
        cbor.loads(data)


def test_round_trips_cbor_subset() -> None:
    item = cbor.Tag(18, [b"\x01", {1: -35, "k": [True, False, None]}, b"", -(2**40)])
    assert cbor.loads(cbor.dumps(item)) == item
    assert cbor.dumps(item) == cbor2.dumps(cbor2.CBORTag(18, [b"\x01", {1: -35, "k": [True, False, None]}, b"", -(2**40)]))
