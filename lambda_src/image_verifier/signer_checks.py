"""Does the evidence for one digest hold a valid signature from one trusted signer?

`cosign_matches` and `notation_matches` yield every valid signature of one signer, as a
`SignerMatch` that records what the signature *is* (its bytes' hash, the public key that verified
it), and raise when none verified: `NoSignatureError` when nothing of the signer's kind was found,
another `VerificationError` (with every candidate's reason) when nothing verified, and
`UnavailableError` when evidence could not be read. `check_cosign`/`check_notation` take the first.
`distinct_assignment` decides an all-of rule: one signature, or one key, counts once.
"""

from __future__ import annotations

import hashlib
import sys
from datetime import datetime
from importlib import import_module
from typing import TYPE_CHECKING, Iterator, Sequence

from .cosign.bundle import verify_bundle
from .cosign.candidates import verified_cosign_signatures
from .cosign.keys import CosignKeyResolver, check_key_usable
from .cosign.payload import check_required_annotations
from .cosign.legacy import signature_tag, verify_simple_signing
from .errors import NoSignatureError, PolicyError, UnavailableError, VerificationError
from .evidence import Evidence
from .policy import CosignKeyTrust, Rule, SignerKind, TrustedSigner
from .policy.keys import key_id
from .verdict import SignerMatch

if TYPE_CHECKING:
    from .notation.awssigner import RevocationChecker

MAX_REASONS = 4  # per signer, so a flood of bad signatures cannot flood the audit record
# Imported on first use (PEP 562): a cosign-only run never loads the Notation stack (envelopes, asn1crypto).
_NOTATION_NAMES = {"MAX_ENVELOPE_BYTES": ".notation.manifest", "NOTATION_ARTIFACT_TYPE": ".notation.manifest",
                   "signature_envelope_descriptor": ".notation.manifest", "verify_notation": ".notation.verify"}


def __getattr__(name: str) -> object:
    if name not in _NOTATION_NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(_NOTATION_NAMES[name], __package__), name)
    globals()[name] = value
    return value


def _fail(signer: TrustedSigner, reasons: list[str]) -> VerificationError:
    shown = reasons[:MAX_REASONS] + ([f"and {len(reasons) - MAX_REASONS} more"] if len(reasons) > MAX_REASONS else [])
    return VerificationError(f"signer {signer.name!r}: " + "; ".join(shown))


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def check_cosign(signer: TrustedSigner, rule: Rule, evidence: Evidence, keys: CosignKeyResolver,
                 now: datetime) -> SignerMatch:
    """The first valid cosign signature of `signer` (two registry requests for a legacy one)."""
    return next(cosign_matches(signer, rule, evidence, keys, now))


def check_notation(signer: TrustedSigner, rule: Rule, evidence: Evidence, now: datetime,
                   revocation: RevocationChecker | None) -> SignerMatch:
    """The first valid Notation signature of `signer`."""
    return next(notation_matches(signer, rule, evidence, now, revocation))


def cosign_matches(signer: TrustedSigner, rule: Rule, evidence: Evidence, keys: CosignKeyResolver,
                   now: datetime) -> Iterator[SignerMatch]:
    trust = signer.trust
    assert isinstance(trust, CosignKeyTrust)
    check_key_usable(signer.name, trust, now)
    key = keys.public_key(trust)
    # By material, not by name: a KMS ARN and a PEM of one key, or two ARNs of one multi-region
    # key, have one fingerprint once the ARN is resolved to its public key.
    fingerprint = key_id(key)
    match = lambda fmt, sig_digest, signature: SignerMatch(  # noqa: E731 - a local constructor keeps the two paths alike
        signer=signer.name, kind=SignerKind.COSIGN_KEY.value, identity=trust.kms_key_arn or fingerprint,
        format=fmt, verified_digest=evidence.digest, break_glass=trust.break_glass, signature_digest=sig_digest,
        signature_sha256=_sha256(signature), key_fingerprint=fingerprint)
    found = 0
    expected_reference = evidence.ref.name if rule.match_docker_reference else None
    reasons: list[str] = []
    for verified in verified_cosign_signatures(
            evidence, reasons,
            legacy=lambda layer, payload, signature: verify_simple_signing(
                payload=payload, signature=signature, key=key, subject_digest=evidence.digest,
                required_annotations=dict(rule.required_annotations), expected_reference=expected_reference),
            bundle=lambda raw: verify_bundle(raw, key=key, subject_digest=evidence.digest,
                                             required_annotations=rule.required_annotations,
                                             expected_reference=expected_reference)):
        found += 1
        yield match(verified.format, verified.carrier, verified.signed)

    if found:
        return
    if not reasons:
        raise NoSignatureError(
            f"signer {signer.name!r}: no cosign signature for {evidence.digest} (no {signature_tag(evidence.digest)} "
            "tag and no sigstore bundle referrer)"
        )
    raise _fail(signer, reasons)


def notation_matches(signer: TrustedSigner, rule: Rule, evidence: Evidence, now: datetime,
                     revocation: RevocationChecker | None) -> Iterator[SignerMatch]:
    notation = sys.modules[__name__]  # the lazily imported names below (see __getattr__), patchable in tests
    subject = evidence.subject_descriptor()
    reasons: list[str] = []
    found = 0
    candidates, problems = evidence.referrer_manifests(lambda d: d.artifact_type == notation.NOTATION_ARTIFACT_TYPE)
    reasons += problems
    for manifest in candidates:
        try:
            layer = notation.signature_envelope_descriptor(manifest, evidence.digest)
            result = notation.verify_notation(envelope=evidence.blob(layer, max_bytes=notation.MAX_ENVELOPE_BYTES),
                                     media_type=layer.media_type, subject=subject, trust=signer.trust,
                                     now=now, revocation=revocation, signer_name=signer.name)
            check_required_annotations(result.user_annotations, rule.required_annotations)
        except VerificationError as exc:
            reasons.append(f"notation signature {manifest.digest}: {exc}")
            continue
        except (UnavailableError, PolicyError):
            raise  # not about this signature: the evidence or the policy itself
        except Exception as exc:  # noqa: BLE001 - a parser bug on one signature must not hide the others
            reasons.append(f"notation signature {manifest.digest}: could not be parsed ({type(exc).__name__})")
            continue
        found += 1
        fmt = "notation-jws" if layer.media_type == "application/jose+json" else "notation-cose"
        yield SignerMatch(signer=signer.name, kind=signer.kind.value, identity=result.identity, format=fmt,
                          verified_digest=evidence.digest, signature_digest=manifest.digest,
                          signature_sha256=result.signature_sha256, key_fingerprint=result.key_fingerprint,
                          warnings=tuple(f"signer {signer.name!r}: {w}" for w in result.warnings),
                          steps=result.steps)
    if found:
        return
    if not reasons:
        raise NoSignatureError(f"signer {signer.name!r}: no Notation signature is associated with {evidence.digest}")
    raise _fail(signer, reasons)


def distinct_assignment(names: Sequence[str], options: Sequence[Sequence[SignerMatch]]
                        ) -> tuple[tuple[SignerMatch, ...] | None, list[str]]:
    """Give each signer of an all-of rule its own signature and its own key, if that is possible.

    Matches that share a signature or a public key (directly or through a chain of shared
    material) are one piece of evidence: they may satisfy one signer, never two. The assignment is
    a bipartite matching (Kuhn's augmenting paths, polynomial), so the order of the signers and of
    their signatures does not decide the outcome. Returns the matches in the order of `names`, or
    None and a reason for every signer left without independent evidence.
    """
    groups = _material_groups([m for ms in options for m in ms])
    holder: dict[int, int] = {}  # material group -> index of the signer that holds it
    chosen: dict[int, SignerMatch] = {}

    def assign(i: int, visited: set[int]) -> bool:
        for match in options[i]:
            group = groups[id(match)]
            if group in visited:
                continue
            visited.add(group)
            if group not in holder or assign(holder[group], visited):
                holder[group], chosen[i] = i, match
                return True
        return False

    unmatched = [i for i in range(len(names)) if not assign(i, set())]
    if not unmatched:
        return tuple(chosen[i] for i in range(len(names))), []
    reasons = []
    for i in unmatched:
        if not options[i]:
            reasons.append(f"signer {names[i]!r}: no valid signature")
            continue
        first = options[i][0]
        other = chosen[holder[groups[id(first)]]]
        shared = first.shares_material_with(other) or "signatures linked by a shared key"
        reasons.append(f"signer {names[i]!r}: its signature rests on {shared}, already counted for signer "
                       f"{other.signer!r}; an allOf rule needs a distinct signature by a distinct key per signer")
    return None, reasons


def _material_groups(matches: list[SignerMatch]) -> dict[int, int]:
    """Union matches that share a signature hash or a key fingerprint; map id(match) -> group."""
    parent = list(range(len(matches)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first_seen: dict[tuple[str, str], int] = {}
    for index, match in enumerate(matches):
        for material in (("signature", match.signature_sha256), ("key", match.key_fingerprint)):
            if material[1] is None:
                continue
            if material in first_seen:
                parent[find(index)] = find(first_seen[material])
            else:
                first_seen[material] = index
    return {id(match): find(index) for index, match in enumerate(matches)}
