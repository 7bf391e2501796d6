"""Policy JSON <-> model. Every problem in the input becomes a PolicyError naming the bad field."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Any, Mapping

from ..errors import PolicyError
from ..reference import is_digest
from ._reader import Node
from .keys import key_id, load_cosign_public_key, validate_cosign_public_key
from .keyless_fields import cosign_keyless_document, cosign_keyless_trust
from .notation_fields import aws_signer_document, aws_signer_trust, notation_x509_document, notation_x509_trust
from .model import (
    POLICY_VERSION,
    AwsSignerTrust,
    CosignKeylessTrust,
    CosignKeyTrust,
    Exemption,
    KeyState,
    Mode,
    NotationX509Trust,
    Policy,
    Rule,
    TrustedSigner,
)
from .patterns import ImagePattern, find_overlap

MAX_POLICY_BYTES = 1024 * 1024  # a policy with hundreds of rules and certificates is far smaller
MAX_SIGNERS, MAX_RULES, MAX_EXEMPTIONS = 100, 500, 500  # keeps the pairwise overlap check cheap
MAX_PATTERNS_PER_ENTRY = 50
MAX_ANNOTATION_PATTERN = 256  # required-annotation regexes stay short and reviewable

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_KMS_KEY_ARN = re.compile(r"arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]{1,128}")
_DOCUMENT = "(document)"  # the path of a problem with the whole text, before any field can be named
_MODES = {m.value: m for m in Mode}
_STATES = {s.value: s for s in KeyState}


def policy_from_json(raw: str | bytes | Mapping[str, Any], *, environ: Mapping[str, str] | None) -> Policy:
    root = Node(_load(raw), "", environ).object(
        required=("version", "trustedSigners", "rules"),
        optional=("failureMode", "unavailableMode", "exemptions"),
    )
    version = root.child("version")
    if version.value != POLICY_VERSION:
        raise version.fail(f"unsupported policy version {version.value!r}; this verifier reads version {POLICY_VERSION!r}")
    signers = tuple(_signer(n) for n in root.child("trustedSigners").items(min_items=1, max_items=MAX_SIGNERS))
    _unique([s.name for s in signers], root.child("trustedSigners"), "signer name")
    _refuse_shared_keys(signers, root.child("trustedSigners"))
    known = {s.name for s in signers}
    rules_node = root.child("rules")
    rules = tuple(_rule(n, known) for n in rules_node.items(min_items=1, max_items=MAX_RULES))
    _unique([r.name for r in rules], rules_node, "rule name")
    _refuse_ambiguous(rules, rules_node)
    exemptions_node = root.get("exemptions")
    exemptions = (
        tuple(_exemption(n) for n in exemptions_node.items(max_items=MAX_EXEMPTIONS)) if exemptions_node else ()
    )
    failure_mode = root.child("failureMode").choice(_MODES) if root.has("failureMode") else Mode.BLOCK
    _refuse_audit_level_when_blocking(signers, failure_mode, root.child("trustedSigners"))
    return Policy(
        trusted_signers=signers,
        rules=rules,
        exemptions=exemptions,
        failure_mode=failure_mode,
        unavailable_mode=root.child("unavailableMode").choice(_MODES) if root.has("unavailableMode") else Mode.BLOCK,
    )


def _refuse_audit_level_when_blocking(signers: tuple[TrustedSigner, ...], failure_mode: Mode, node: Node) -> None:
    """Level `audit` (or an override of authenticity to `log`) only logs an untrusted root or
    identity, so its signer accepts a signature made by anyone: in a blocking policy that is an
    admission nobody meant. It is a trial setting, and only an audit policy (which admits rejected
    images anyway, visibly) may hold it."""
    if failure_mode is Mode.AUDIT:
        return
    for index, signer in enumerate(signers):
        trust = signer.trust
        if isinstance(trust, (CosignKeyTrust, CosignKeylessTrust)):
            continue
        body = node.child(index).child(signer.kind.value)
        if trust.override.get("authenticity") == "log":
            raise body.child("override").child("authenticity").fail(
                f"signer {signer.name!r}: authenticity 'log' accepts signatures from untrusted roots and identities "
                "(it only logs them), as level 'audit' does, so it would admit images anyone signed; it is allowed "
                "only when failureMode is 'audit'. Remove the override, or set failureMode to 'audit' while you "
                "trial the policy"
            )
        if (isinstance(trust, NotationX509Trust) and trust.verification_level == "audit"
                and trust.override.get("authenticity") != "enforce"):
            raise body.child("verificationLevel").fail(
                f"signer {signer.name!r}: level 'audit' accepts signatures from untrusted roots and identities "
                "(it only logs them), so it would admit images anyone signed; it is allowed only when "
                "failureMode is 'audit'. Use 'strict' (or 'permissive'), or set failureMode to 'audit' "
                "while you trial the policy (or override authenticity to 'enforce')"
            )


def _load(raw: str | bytes | Mapping[str, Any]) -> Any:
    if isinstance(raw, Mapping):
        return json.loads(json.dumps(raw))  # a deep, plain copy: callers may pass any mapping
    if len(raw) > MAX_POLICY_BYTES:
        raise PolicyError(_DOCUMENT, f"the policy is larger than {MAX_POLICY_BYTES} bytes")

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for key, value in pairs:
            if key in seen:
                raise PolicyError(_DOCUMENT, f"the key {key!r} appears twice in one object; keep one")
            seen[key] = value
        return seen

    try:
        return json.loads(raw, object_pairs_hook=no_duplicates)
    except (ValueError, RecursionError) as exc:
        if isinstance(exc, PolicyError):
            raise
        raise PolicyError(_DOCUMENT, f"the policy is not valid JSON: {exc}") from exc


def _unique(names: list[str], node: Node, what: str) -> None:
    seen: set[str] = set()
    for index, name in enumerate(names):
        if name in seen:
            raise node.child(index).fail(f"duplicate {what} {name!r}; names must be unique")
        seen.add(name)


def _refuse_shared_keys(signers: tuple[TrustedSigner, ...], node: Node) -> None:
    """One cosign key under two names would let one signature satisfy an all-of rule twice."""
    owners: dict[str, str] = {}
    for index, signer in enumerate(signers):
        trust = signer.trust
        if not isinstance(trust, CosignKeyTrust):
            continue
        identity = trust.kms_key_arn or key_id(load_cosign_public_key(trust.public_key_pem.encode()))  # type: ignore[union-attr]
        if identity in owners:
            raise node.child(index).fail(
                f"signer {signer.name!r} uses the same key as signer {owners[identity]!r}; give each key one name"
            )
        owners[identity] = signer.name


def _signer(node: Node) -> TrustedSigner:
    node.object(required=("name",), optional=("cosignKey", "awsSigner", "notationX509", "cosignKeyless"))
    name = node.child("name").string(pattern=_NAME, hint="use 1-64 letters, digits, '.', '_' or '-'")
    kinds = [k for k in ("cosignKey", "awsSigner", "notationX509", "cosignKeyless") if node.has(k)]
    if len(kinds) != 1:
        raise node.fail("a trusted signer needs exactly one of 'cosignKey', 'awsSigner', 'notationX509' or "
                        "'cosignKeyless'")
    body = node.child(kinds[0])
    if kinds[0] == "cosignKey":
        return TrustedSigner(name=name, trust=_cosign_key(body))
    if kinds[0] == "cosignKeyless":
        return TrustedSigner(name=name, trust=cosign_keyless_trust(body))
    trust = aws_signer_trust(body) if kinds[0] == "awsSigner" else notation_x509_trust(body)
    return TrustedSigner(name=name, trust=trust)


def _cosign_key(node: Node) -> CosignKeyTrust:
    node.object(optional=("publicKeyPem", "kmsKeyArn", "state", "validFrom", "validUntil", "breakGlass"))
    if node.has("publicKeyPem") == node.has("kmsKeyArn"):
        raise node.fail("give exactly one of 'publicKeyPem' or 'kmsKeyArn'")
    pem = node.child("publicKeyPem").string() if node.has("publicKeyPem") else None
    if pem is not None:
        node.child("publicKeyPem").convert(lambda _: validate_cosign_public_key(pem))
    arn = None
    if node.has("kmsKeyArn"):
        arn = node.child("kmsKeyArn").string(
            pattern=_KMS_KEY_ARN, hint="use a key ARN 'arn:aws:kms:<region>:<account>:key/<key-id>' (not an alias)"
        )
    valid_from = node.child("validFrom").timestamp() if node.has("validFrom") else None
    valid_until = node.child("validUntil").timestamp() if node.has("validUntil") else None
    if valid_from and valid_until and valid_from >= valid_until:
        raise node.child("validUntil").fail("must be later than validFrom")
    return CosignKeyTrust(
        public_key_pem=pem,
        kms_key_arn=arn,
        state=node.child("state").choice(_STATES) if node.has("state") else KeyState.ACTIVE,
        valid_from=valid_from,
        valid_until=valid_until,
        break_glass=node.child("breakGlass").boolean() if node.has("breakGlass") else False,
    )


def _patterns(node: Node) -> tuple[ImagePattern, ...]:
    return tuple(n.convert(lambda _, n=n: ImagePattern.parse(n.string()))
                 for n in node.items(min_items=1, max_items=MAX_PATTERNS_PER_ENTRY))


def _rule(node: Node, known_signers: set[str]) -> Rule:
    node.object(
        required=("name", "images"),
        optional=("anyOf", "allOf", "requiredAnnotations", "matchDockerReference"),
    )
    if node.has("anyOf") == node.has("allOf"):
        raise node.fail("give exactly one of 'anyOf' (one valid signature suffices) or 'allOf' (every signer must sign)")
    which = "anyOf" if node.has("anyOf") else "allOf"
    names_node = node.child(which)
    names = tuple(n.string() for n in names_node.items(min_items=1, max_items=MAX_SIGNERS))
    for index, name in enumerate(names):
        if name not in known_signers:
            raise names_node.child(index).fail(
                f"unknown signer {name!r}; define it under trustedSigners (known: {', '.join(sorted(known_signers))})"
            )
    _unique(list(names), names_node, "signer")
    annotations: dict[str, str] = {}
    if node.has("requiredAnnotations"):
        ann = node.child("requiredAnnotations")
        if not isinstance(ann.value, dict):
            raise ann.fail("expected an object of annotation name -> regular expression")
        for key in ann.value:
            annotations[key] = ann.child(key).regex(max_length=MAX_ANNOTATION_PATTERN)
    return Rule(
        name=node.child("name").string(pattern=_NAME, hint="use 1-64 letters, digits, '.', '_' or '-'"),
        images=_patterns(node.child("images")),
        any_of=names if which == "anyOf" else (),
        all_of=names if which == "allOf" else (),
        required_annotations=annotations,
        match_docker_reference=node.child("matchDockerReference").boolean() if node.has("matchDockerReference") else False,
    )


def _exemption(node: Node) -> Exemption:
    node.object(required=("images", "reason", "expires"), optional=("digests",))
    digests = tuple(_digest(n) for n in node.child("digests").items(min_items=1)) if node.has("digests") else ()
    reason = node.child("reason").string()
    if len(reason.strip()) < 10:
        raise node.child("reason").fail("say why the exemption exists (at least 10 characters): a ticket, an owner")
    return Exemption(images=_patterns(node.child("images")), reason=reason,
                     expires=node.child("expires").timestamp(), digests=digests)


def _digest(node: Node) -> str:
    value = node.string()
    if not is_digest(value):
        raise node.fail(f"{value!r} is not a digest; use 'sha256:<64 lower-case hex>'")
    return value


def _refuse_ambiguous(rules: tuple[Rule, ...], node: Node) -> None:
    for i, first in enumerate(rules):
        for j in range(i + 1, len(rules)):
            second = rules[j]
            for a in first.images:
                for b in second.images:
                    if a.precedence != b.precedence:
                        continue
                    example = find_overlap(a, b)
                    if example is not None:
                        raise node.child(j).fail(
                            f"rule {second.name!r} and rule {first.name!r} both match {example!r} with equal "
                            f"precedence ({b} vs {a}); make one pattern more specific or merge the rules"
                        )


def policy_to_json(policy: Policy) -> str:
    return json.dumps(_document(policy), sort_keys=True, separators=(",", ":"))


def _time(value: datetime) -> str:
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _document(policy: Policy) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "version": policy.version,
        "failureMode": policy.failure_mode.value,
        "unavailableMode": policy.unavailable_mode.value,
        "trustedSigners": [_signer_document(s) for s in policy.trusted_signers],
        "rules": [_rule_document(r) for r in policy.rules],
    }
    if policy.exemptions:
        doc["exemptions"] = [_exemption_document(e) for e in policy.exemptions]
    return doc


def _signer_document(signer: TrustedSigner) -> dict[str, Any]:
    trust = signer.trust
    if isinstance(trust, CosignKeyTrust):
        body: dict[str, Any] = {"state": trust.state.value, "breakGlass": trust.break_glass}
        if trust.public_key_pem:
            body["publicKeyPem"] = trust.public_key_pem
        if trust.kms_key_arn:
            body["kmsKeyArn"] = trust.kms_key_arn
        if trust.valid_from:
            body["validFrom"] = _time(trust.valid_from)
        if trust.valid_until:
            body["validUntil"] = _time(trust.valid_until)
        return {"name": signer.name, "cosignKey": body}
    if isinstance(trust, AwsSignerTrust):
        return {"name": signer.name, "awsSigner": aws_signer_document(trust)}
    if isinstance(trust, CosignKeylessTrust):
        return {"name": signer.name, "cosignKeyless": cosign_keyless_document(trust)}
    assert isinstance(trust, NotationX509Trust)
    return {"name": signer.name, "notationX509": notation_x509_document(trust)}


def _rule_document(rule: Rule) -> dict[str, Any]:
    doc: dict[str, Any] = {"name": rule.name, "images": [p.text for p in rule.images]}
    doc["allOf" if rule.requires_all else "anyOf"] = list(rule.signer_names)
    if rule.required_annotations:
        doc["requiredAnnotations"] = dict(rule.required_annotations)
    if rule.match_docker_reference:
        doc["matchDockerReference"] = True
    return doc


def _exemption_document(exemption: Exemption) -> dict[str, Any]:
    doc: dict[str, Any] = {"images": [p.text for p in exemption.images], "reason": exemption.reason,
                           "expires": _time(exemption.expires)}
    if exemption.digests:
        doc["digests"] = list(exemption.digests)
    return doc
