"""Does the evidence for one digest hold a valid keyless signature of one `cosignKeyless` signer?

The same walk as a key signer's (`cosign/candidates.py`: the `.sig` layers first, then the v3
bundle referrers; every candidate's failure kept as a reason), with the keyless checks of
verify.py in place of a fixed key. Imported only when a policy has a keyless signer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator

from ...errors import NoSignatureError, PolicyError, SignatureIntegrityError, UnavailableError, VerificationError
from ...evidence import Evidence
from ...policy import CosignKeylessTrust, Rule, SignerKind, TrustedSigner
from ...policy.keys import key_id
from ...signer_checks import _fail
from ...verdict import SignerMatch
from ..candidates import verified_cosign_signatures
from ..legacy import signature_tag
from .verify import KeylessResult, verify_bundle_keyless, verify_legacy_keyless


def keyless_matches(signer: TrustedSigner, rule: Rule, evidence: Evidence) -> Iterator[SignerMatch]:
    """Every valid keyless signature of `signer` on `evidence.digest`; raises when there is none."""
    trust = signer.trust
    assert isinstance(trust, CosignKeylessTrust)
    reasons: list[str] = []
    found = 0
    expected_reference = evidence.ref.name if rule.match_docker_reference else None
    for verified in verified_cosign_signatures(
            evidence, reasons,
            legacy=lambda layer, payload, signature: _one_candidate(lambda: verify_legacy_keyless(
                annotations=layer.annotations, payload=payload, signature=signature, trust=trust,
                subject_digest=evidence.digest, required_annotations=rule.required_annotations,
                expected_reference=expected_reference)),
            bundle=lambda raw: _one_candidate(lambda: verify_bundle_keyless(
                raw, trust=trust, subject_digest=evidence.digest, required_annotations=rule.required_annotations,
                expected_reference=expected_reference))):
        found += 1
        result: KeylessResult = verified.result
        yield SignerMatch(signer=signer.name, kind=SignerKind.COSIGN_KEYLESS.value, identity=result.identity,
                          format=verified.format, verified_digest=evidence.digest, signature_digest=verified.carrier,
                          signature_sha256="sha256:" + hashlib.sha256(verified.signed).hexdigest(),
                          key_fingerprint=key_id(result.key))
    if found:
        return
    if not reasons:
        raise NoSignatureError(f"signer {signer.name!r}: no cosign signature for {evidence.digest} (no "
                               f"{signature_tag(evidence.digest)} tag and no sigstore bundle referrer)")
    raise _fail(signer, reasons)


def _one_candidate(check: Callable[[], KeylessResult]) -> KeylessResult:
    """Run one candidate's checks; an unexpected parser error refuses that candidate, not the verdict."""
    try:
        return check()
    except (VerificationError, UnavailableError, PolicyError):
        raise
    except Exception as exc:  # noqa: BLE001 - a malformed certificate must not hide the signatures beside it
        raise SignatureIntegrityError(f"could not be parsed ({type(exc).__name__}: {exc})") from exc
