"""Property-based tests over Notary envelopes, JWS (`notation/envelope_jws.py`) and COSE
(`notation/envelope_cose.py`), and the strict CBOR decoder (`notation/cbor.py`).

Envelopes go through the real `verify_notation` with real signatures (a P-256 `notary.x509` chain,
and an AWS-Signer-shaped ES384 `signingAuthority` chain), under `audit` so that only integrity, which
no level can log away, decides. What is signed, and so what a mutation may leave admitted:
- JWS: the `protected` and `payload` members exactly as written (base64url text). The unprotected
  `header` (the certificates, a timestamp, the signing agent) and JSON whitespace are not signed;
  the certificates must still chain and verify the signature, so an admitted envelope must carry the
  signed members, the signature and the certificates unchanged (as a plain JSON reader reads them).
- COSE: Sig_structure over the protected header bytes as received and the payload; the same holds
  for the unprotected map, read here with `cbor2`, independently of the verifier's decoder.
Envelopes re-signed after a change to the protected header show that the attribute rules fail only
with our errors. CBOR: items generated and encoded by `cbor2` decode to the same value or fail with
`CborError`; indefinite lengths, duplicate keys, trailing bytes and deep nesting always fail.
"""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any, Mapping

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from image_verifier.errors import VerificationError
from image_verifier.notation import cbor, verify_notation
from tests.support import notation_vectors as nv
from tests.support import pki
from tests.support.hostile_bytes import byte_edits, json_values
from tests.support.json_mutations import SPELLINGS, at, object_paths, respell, with_member

_, SUBJECT = nv.image_subject("envelope-properties")
CHAIN = pki.code_signing_chain("p256", role_prefix="envelopes-")
AWS_CHAIN = pki.aws_signer_chain()
TRUST = nv.x509_trust(CHAIN, verification_level="audit")
SEEDS = {
    "jws": (nv.sign(SUBJECT, CHAIN), TRUST),
    "cose": (nv.sign(SUBJECT, CHAIN, media_type=nv.COSE), TRUST),
    "aws-jws": (nv.aws_signer_signature(SUBJECT, chain=AWS_CHAIN), nv.aws_trust(AWS_CHAIN)),
}
NOTARY_NAMES = ["io.cncf.notary.signingScheme", "io.cncf.notary.signingTime", "io.cncf.notary.authenticSigningTime",
                "io.cncf.notary.expiry", "io.cncf.notary.verificationPlugin", "io.cncf.notary.verificationPluginMinVersion",
                "com.amazonaws.signer.signingJob", "alg", "cty", "crit", "x5c", "io.cncf.notary.timestampSignature"]
nearly_right_jws = st.sampled_from([
    "notary.x509", "notary.x509.signingAuthority", "2026-05-01T00:00:00Z", "9999-12-31T23:59:59-23:59",
    "0001-01-01T00:00:00+23:59", "2026-02-30T00:00:00Z", "2026-05-01T24:00:00Z", "2026-05-01 00:00:00Z", "ES256", "ES384",
    "none", "HS256", nv.PAYLOAD_CTY, ["io.cncf.notary.signingScheme"], ["alg"], NOTARY_NAMES, nv.AWS_PLUGIN, "1.0.0",
    "01.0.0", [], {}, None, 0, True, "",
])


def _budget(examples: int) -> settings:
    """Each property's share of the file's few-second budget; the fuzz profile multiplies it (tests/conftest.py)."""
    return settings(max_examples=examples)


def _verdict(envelope: bytes, seed: str) -> Any | None:
    """The verification, or None when refused with a reason; any other exception fails the property."""
    vector, trust = SEEDS[seed]
    try:
        return verify_notation(envelope=envelope, media_type=vector.media_type, subject=SUBJECT, trust=trust, now=pki.NOW)
    except VerificationError as exc:
        assert str(exc).strip(), "a refusal without a reason"
        return None


def _jws_signed_parts(envelope: bytes) -> tuple[Any, ...] | None:
    try:
        top = json.loads(envelope)
        return top["protected"], top["payload"], top["signature"], top["header"]["x5c"]
    except (ValueError, KeyError, TypeError):
        return None


def _cose_signed_parts(envelope: bytes) -> tuple[Any, ...] | None:
    try:
        body = cbor2.loads(envelope).value
        return body[0], body[2], body[3], list(body[1][33])
    except Exception:  # noqa: BLE001 - cbor2 is the plain reader here; whatever it cannot read has no parts
        return None


def _signed_parts(envelope: bytes, seed: str) -> tuple[Any, ...] | None:
    return (_cose_signed_parts if seed == "cose" else _jws_signed_parts)(envelope)


def test_the_seeds_verify() -> None:
    # The unspoiled envelopes are admitted, so every refusal below is the mutation's doing.
    for seed, (vector, _) in SEEDS.items():
        assert _verdict(vector.envelope, seed) is not None, seed


@_budget(300)
@given(data=st.data(), seed=st.sampled_from(sorted(SEEDS)))
def test_property_an_edited_envelope_is_admitted_only_with_its_signed_parts_unchanged(data: st.DataObject,
                                                                                      seed: str) -> None:
    # Given a real envelope with any byte-level edit
    original = SEEDS[seed][0].envelope
    envelope = data.draw(byte_edits(original))
    # When verified / Then refused, or admitted with the very bytes that were signed (the edit hit an unsigned part)
    if _verdict(envelope, seed) is not None:
        assert _signed_parts(envelope, seed) == _signed_parts(original, seed)


@_budget(150)
@given(data=st.data(), seed=st.sampled_from(["jws", "aws-jws"]))
def test_property_a_re_signed_protected_header_fails_only_with_our_errors(data: st.DataObject, seed: str) -> None:
    # Given a protected header with one Notary attribute (or alg, cty, crit) set to another value, signed again
    name = data.draw(st.sampled_from(NOTARY_NAMES) | st.text(max_size=12))
    value = data.draw(nearly_right_jws | json_values)
    chain = AWS_CHAIN if seed == "aws-jws" else CHAIN
    options: dict[str, Any] = {}
    if seed == "aws-jws":
        options = dict(scheme="notary.x509.signingAuthority", signing_time=pki.NOW - timedelta(days=1))
        options["extra"], options["extra_critical"] = nv.aws_signer_attributes()
    vector = nv.sign(SUBJECT, chain, protected_overrides={name: value}, **options)
    # When verified, Then a result or a reasoned refusal, nothing else
    _verdict(vector.envelope, seed)


@_budget(150)
@given(label=st.integers(-40, 40) | st.sampled_from(NOTARY_NAMES), value=st.deferred(lambda: cbor_items))
def test_property_a_re_signed_cose_protected_header_fails_only_with_our_errors(label: Any, value: Any) -> None:
    # Given a COSE protected header with one label set to any CBOR value, signed again / When / Then
    vector = nv.sign(SUBJECT, CHAIN, media_type=nv.COSE, protected_overrides={label: value})
    _verdict(vector.envelope, "cose")


@_budget(100)
@given(data=st.data(), how=st.sampled_from(SPELLINGS), protected=st.booleans())
def test_property_a_jws_with_a_folded_or_duplicate_key_is_never_admitted(data: st.DataObject, how: str,
                                                                        protected: bool) -> None:
    # Given the envelope, or its protected header signed again, with one more member that Go's
    # decoder reads as an existing key (the same key again, or a case-folded spelling of it)
    if protected:
        document = json.loads(base64.urlsafe_b64decode(json.loads(SEEDS["jws"][0].envelope)["protected"] + "=="))
    else:
        document = json.loads(SEEDS["jws"][0].envelope)
    path = data.draw(st.sampled_from([p for p in object_paths(document) if at(document, p)]))
    key = data.draw(st.sampled_from(sorted(at(document, path))))
    raw = with_member(document, path, respell(key, how), data.draw(nearly_right_jws))
    envelope = nv.sign(SUBJECT, CHAIN, raw_protected=raw).envelope if protected else raw
    # When / Then: refused, whatever the value of the extra member
    assert _verdict(envelope, "jws") is None


# ---- the strict CBOR decoder -----------------------------------------------------------------

cbor_keys = st.integers(-30, 30) | st.text(max_size=6) | st.binary(max_size=4)


def _cbor_containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    # (a named function: hypothesis cannot see that a multi-line lambda uses its argument)
    return (st.lists(inner, max_size=4) | st.dictionaries(cbor_keys, inner, max_size=4)
            | st.builds(cbor2.CBORTag, st.sampled_from([18, 33, 65000]), inner))


cbor_items = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**64), 2**64 - 1) | st.binary(max_size=16) | st.text(max_size=16)
    | st.floats(allow_nan=False),
    _cbor_containers,
    max_leaves=12,
)


def _plain(item: Any) -> Any:
    """One form for both decoders' output: tags as triples, arrays as lists, maps as dicts."""
    if isinstance(item, (cbor.Tag, cbor2.CBORTag)):
        return ("tag", item.number if isinstance(item, cbor.Tag) else item.tag, _plain(item.value))
    if isinstance(item, (list, tuple)):
        return [_plain(element) for element in item]
    if isinstance(item, Mapping):  # cbor2 freezes maps inside tags
        return {key: _plain(value) for key, value in item.items()}
    return item


def _decoded(data: bytes) -> tuple[Any, cbor.CborError | None]:
    try:
        return cbor.loads(data), None
    except cbor.CborError as exc:
        assert str(exc).strip()
        return None, exc


def _refused(data: bytes, reason: str) -> None:
    with pytest.raises(cbor.CborError, match=reason):
        cbor.loads(data)


@_budget(300)
@given(item=cbor_items)
def test_property_cbor_from_another_encoder_decodes_to_the_same_item_or_a_cbor_error(item: Any) -> None:
    # Given any item as cbor2 encodes it
    data = cbor2.dumps(item)
    # When decoded strictly
    decoded, refusal = _decoded(data)
    # Then the same item as cbor2 reads it back, or CborError (floats, byte-string keys, bignums)
    if refusal is None:
        assert _plain(decoded) == _plain(cbor2.loads(data))


@_budget(200)
@given(data=st.binary(max_size=64))
def test_property_any_bytes_decode_or_fail_with_a_cbor_error(data: bytes) -> None:
    _decoded(data)


@_budget(150)
@given(data=st.data(), seed=st.sampled_from(["cose"]))
def test_property_edited_cose_bytes_decode_or_fail_with_a_cbor_error(data: st.DataObject, seed: str) -> None:
    _decoded(data.draw(byte_edits(SEEDS[seed][0].envelope)))


@_budget(100)
@given(item=cbor_items, head=st.sampled_from([0x5F, 0x7F, 0x9F, 0xBF]))
def test_property_indefinite_lengths_are_refused(item: Any, head: int) -> None:
    # An indefinite-length byte string, text string, array or map around anything
    _refused(bytes([head]) + cbor2.dumps(item) + b"\xff", "indefinite-length")


@_budget(100)
@given(key=st.integers(-(2**63), 2**63) | st.text(max_size=8), first=cbor_items, second=cbor_items)
def test_property_duplicate_map_keys_are_refused(key: Any, first: Any, second: Any) -> None:
    data = b"\xa2" + cbor2.dumps(key) + cbor2.dumps(first) + cbor2.dumps(key) + cbor2.dumps(second)
    decoded, refusal = _decoded(data)
    assert decoded is None and refusal is not None  # the first value may already be refused (a float, say)


@_budget(100)
@given(item=cbor_items, trailing=st.binary(min_size=1, max_size=8))
def test_property_trailing_bytes_are_refused(item: Any, trailing: bytes) -> None:
    decoded, refusal = _decoded(cbor2.dumps(item) + trailing)
    assert decoded is None and refusal is not None


@_budget(50)
@given(depth=st.integers(cbor.MAX_DEPTH + 1, 4 * cbor.MAX_DEPTH), wrapper=st.sampled_from([b"\x81", b"\xd2", b"\xa1\x01"]))
def test_property_deep_nesting_is_refused(depth: int, wrapper: bytes) -> None:
    # Arrays of one, tags, or maps of one, nested past the limit
    _refused(wrapper * depth + b"\x00", "nests deeper")
