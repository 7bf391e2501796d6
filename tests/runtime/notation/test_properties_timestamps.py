"""Property-based tests over RFC 3161 timestamp tokens (`notation/timestamp.py`), made by the test TSA
(`notation_vectors.timestamp_token`) over a real Notary signature.

What the TSA signs is the TSTInfo (through the message-digest signed attribute): genTime, accuracy,
policy, the imprint of our signature. The rest of the token (the certificate set, the algorithm
identifiers, unsigned attributes, the outer DER framing) is not signed, but the signer certificate
is pinned by the signed signing-certificate-v2 attribute. So a mutated token may be refused, or
give exactly the time the TSA vouched for; never another one, and never an exception other than
our `TimestampError`. Tokens that the trusted TSA itself signs with odd field values (a genTime
that is not UTC, a negative or huge accuracy, the year 0 or 9999) must also end in a result whose
window is sound, or a `TimestampError`.
"""

from __future__ import annotations

import base64
import json
import re
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from asn1crypto import core
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID
from hypothesis import given, settings
from hypothesis import strategies as st

from image_verifier.notation import verify_notation
from image_verifier.notation.timestamp import TimestampError, verify_timestamp
from image_verifier.errors import VerificationError
from tests.support import notation_vectors as nv
from tests.support import pki
from tests.support.hostile_bytes import byte_edits

_, SUBJECT = nv.image_subject("timestamp-properties")
TSAS = {"p256": pki.tsa_chain(), "rsa2048": pki.tsa_chain(key_kind="rsa2048")}
STAMPED_AT = pki.NOW - timedelta(days=10)
EXPIRED_LEAF = pki.code_signing_chain("p384", role_prefix="timestamps-", leaf_not_after=pki.NOW - timedelta(days=1))
VECTOR = nv.sign(SUBJECT, EXPIRED_LEAF)  # a real ES384 JWS signature: what a token stamps
SIGNATURE = VECTOR.signature
TOKENS = {kind: nv.timestamp_token(SIGNATURE, tsa=tsa, gen_time=STAMPED_AT) for kind, tsa in TSAS.items()}


def _budget(examples: int) -> settings:
    """Each property's share of the file's few-second budget; the fuzz profile multiplies it (tests/conftest.py)."""
    return settings(max_examples=examples)


def _stamp(token: bytes, kind: str = "p256", signature: bytes = SIGNATURE) -> Any | None:
    """The verified timestamp, or None when refused with a reason; any other exception fails the property."""
    try:
        return verify_timestamp(token, signature=signature, hash_algorithm=hashes.SHA384(), tsa_roots=[TSAS[kind].root.cert])
    except TimestampError as exc:
        assert str(exc).strip(), "a refusal without a reason"
        return None


ORIGINAL = {kind: _stamp(token, kind) for kind, token in TOKENS.items()}


def _generalized_time(text: str) -> core.GeneralizedTime:
    """A GeneralizedTime with exactly these contents (asn1crypto would normalize a datetime to UTC 'Z')."""
    return core.GeneralizedTime.load(bytes([0x18, len(text)]) + text.encode("ascii"))


gen_times = (
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(timezone.utc))
    | st.sampled_from(["20260521120000", "20260521120000+0100", "20260521120000-2359", "20260521120000.5Z",
                       "00000101000000Z", "99991231235959Z", "99991231235959.999999Z"]).map(_generalized_time)
)


def test_the_seeds_give_the_stamped_time() -> None:
    for kind, stamp in ORIGINAL.items():
        assert stamp is not None and stamp.gen_time == STAMPED_AT, kind


@_budget(300)
@given(data=st.data(), kind=st.sampled_from(sorted(TOKENS)))
def test_property_an_edited_token_gives_the_stamped_time_or_none(data: st.DataObject, kind: str) -> None:
    # Given a real token with any byte-level edit
    token = data.draw(byte_edits(TOKENS[kind]))
    # When verified, Then refused with a reason, or exactly the time the TSA signed (the edit hit an unsigned part)
    stamp = _stamp(token, kind)
    assert stamp is None or stamp == ORIGINAL[kind]


@_budget(100)
@given(signature=st.binary(min_size=1, max_size=132).filter(lambda s: s != SIGNATURE))
def test_property_a_token_never_vouches_for_another_signature(signature: bytes) -> None:
    assert _stamp(TOKENS["p256"], signature=signature) is None


@_budget(100)
@given(token=st.binary(max_size=256))
def test_property_any_bytes_are_refused(token: bytes) -> None:
    assert _stamp(token) is None


@_budget(150)
@given(gen_time=gen_times, accuracy=st.none() | st.integers(-(2**70), 2**70) | st.sampled_from([-1, 0, 10**6, -(10**6)]),
       policy=st.sampled_from(["1.3.6.1.4.1.4146.2.3", "0.4.0.2023.1.1"]))
def test_property_a_token_the_tsa_signed_gives_a_sound_window_or_none(gen_time: Any, accuracy: int | None,
                                                                      policy: str) -> None:
    # Given a token the trusted TSA signed with odd field values
    token = nv.timestamp_token(SIGNATURE, tsa=TSAS["p256"], gen_time=gen_time, accuracy_seconds=accuracy, policy=policy)
    # When verified
    stamp = _stamp(token)
    # Then refused, or a UTC time inside a window that does not run backwards
    if stamp is not None:
        assert stamp.gen_time.utcoffset() == timedelta(0)
        assert stamp.earliest <= stamp.gen_time <= stamp.latest


@_budget(100)
@given(data=st.data())
def test_property_an_envelope_with_an_edited_token_never_gets_another_signing_time(data: st.DataObject) -> None:
    # Given a signature whose leaf has expired since, stamped by a policy TSA; the token sits in the
    # unsigned header, so anyone can swap it without breaking the envelope's signature
    token = data.draw(byte_edits(TOKENS["p256"]))
    # When verified
    try:
        result = _verify_with_token(token)
    except VerificationError as exc:
        assert str(exc).strip()
        return
    # Then only the time the TSA signed can prove the expired leaf was valid
    assert result.signing_time == STAMPED_AT


def _verify_with_token(token: bytes) -> Any:
    """Verify VECTOR with `token` put in its unsigned header, under a signer that always wants a timestamp."""
    envelope = json.loads(VECTOR.envelope)
    envelope["header"]["io.cncf.notary.timestampSignature"] = base64.b64encode(token).decode()
    trust = nv.x509_trust(EXPIRED_LEAF, tsa_root_certificates=(TSAS["p256"].root.pem,), verify_timestamp="always")
    return verify_notation(envelope=json.dumps(envelope).encode(), media_type=VECTOR.media_type, subject=SUBJECT,
                           trust=trust, now=pki.NOW)


def test_the_seed_token_proves_the_signing_time_of_the_envelope() -> None:
    assert _verify_with_token(TOKENS["p256"]).signing_time == STAMPED_AT


# ---- regressions found by the properties above -------------------------------------------------


@pytest.mark.parametrize("gen_time", ["20260521120000", "20260521120000+0100"])
def test_rejects_token_when_gen_time_is_not_utc(gen_time: str) -> None:
    # Given a token the TSA signed with a local genTime (read as a naive datetime, which crashed the
    # validity comparison with a TypeError) or with an offset: RFC 3161 §2.4.2 requires UTC with "Z"
    token = nv.timestamp_token(SIGNATURE, tsa=TSAS["p256"], gen_time=_generalized_time(gen_time))
    # When / Then
    with pytest.raises(TimestampError, match=f"^timestamp genTime '{re.escape(gen_time)}' is not UTC"):
        verify_timestamp(token, signature=SIGNATURE, hash_algorithm=hashes.SHA384(), tsa_roots=[TSAS["p256"].root.cert])


@pytest.mark.parametrize("accuracy", [-1, -(10**6)])
def test_rejects_token_when_accuracy_is_negative(accuracy: int) -> None:
    # Given a token whose accuracy is negative: its window [genTime - a, genTime + a] ran backwards,
    # so a leaf that expired up to |a| before genTime passed the validity check
    token = nv.timestamp_token(SIGNATURE, tsa=TSAS["p256"], gen_time=STAMPED_AT, accuracy_seconds=accuracy)
    # When / Then
    with pytest.raises(TimestampError, match="^timestamp accuracy .* is not a valid RFC 3161 accuracy"):
        verify_timestamp(token, signature=SIGNATURE, hash_algorithm=hashes.SHA384(), tsa_roots=[TSAS["p256"].root.cert])


def test_rejects_token_when_accuracy_is_too_large_for_a_time_window() -> None:
    # Given a token whose accuracy no datetime arithmetic can hold (it raised OverflowError)
    token = nv.timestamp_token(SIGNATURE, tsa=TSAS["p256"], gen_time=STAMPED_AT, accuracy_seconds=10**15)
    # When / Then
    with pytest.raises(TimestampError, match="^timestamp accuracy .* is not a valid RFC 3161 accuracy"):
        verify_timestamp(token, signature=SIGNATURE, hash_algorithm=hashes.SHA384(), tsa_roots=[TSAS["p256"].root.cert])


def test_rejects_token_when_gen_time_plus_accuracy_leaves_the_calendar() -> None:
    # Given a TSA whose chain never expires (RFC 5280's 99991231235959Z) stamping the last second there is
    forever = datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone.utc)
    root = pki.issue(subject=pki.name("Forever TSA Root"), private_key=pki.key("p256", "forever-root"), ca=True,
                     not_after=forever)
    leaf = pki.issue(subject=pki.name("Forever TSA"), private_key=pki.key("p256", "forever-tsa"), issuer=root,
                     not_after=forever, eku=[ExtendedKeyUsageOID.TIME_STAMPING], eku_critical=True)
    tsa = pki.Chain(leaf=leaf, intermediates=(), root=root)
    token = nv.timestamp_token(SIGNATURE, tsa=tsa, gen_time=forever, accuracy_seconds=1)
    # When / Then: genTime + 1 s is no datetime (it raised OverflowError)
    with pytest.raises(TimestampError, match=r"^timestamp genTime 9999-12-31T23:59:59\+00:00 plus its accuracy leaves the calendar$"):
        verify_timestamp(token, signature=SIGNATURE, hash_algorithm=hashes.SHA384(), tsa_roots=[root.cert])
