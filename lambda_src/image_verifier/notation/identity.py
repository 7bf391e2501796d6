"""Trusted identities of a `notationX509` signer: `x509.subject: <DN>` entries, or `*`.

DN syntax (the spec's, after RFC 4514): RDNs separated by `,` (or `;`), `TYPE=value`, where
`\\,` `\\;` `\\+` `\\\\` `\\"` `\\<` `\\>` `\\=` `\\#`, `\\ ` and `\\HH` (hex UTF-8 bytes) escape a
character, and unescaped spaces around a value are dropped. A DN must name C, ST (or S) and O.
Multi-valued RDNs (`+`) and `#` hex values are refused rather than guessed at.

Matching: every attribute of the identity must appear, with exactly the same value, in the leaf
certificate's subject (a subset match, as notation does). Values compare case-sensitively. A leaf
subject that repeats an attribute type or has a multi-valued RDN matches no DN (notation refuses it too).
"""

from __future__ import annotations

from typing import Iterable, Sequence

from cryptography import x509
from cryptography.x509.oid import NameOID

WILDCARD = "*"
X509_SUBJECT_PREFIX = "x509.subject:"
MAX_IDENTITY_LENGTH = 4096  # a subject DN is rarely over 300 characters

_TYPES: dict[str, x509.ObjectIdentifier] = {
    "C": NameOID.COUNTRY_NAME,
    "ST": NameOID.STATE_OR_PROVINCE_NAME,
    "S": NameOID.STATE_OR_PROVINCE_NAME,
    "L": NameOID.LOCALITY_NAME,
    "O": NameOID.ORGANIZATION_NAME,
    "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "CN": NameOID.COMMON_NAME,
    "SERIALNUMBER": NameOID.SERIAL_NUMBER,
    "STREET": NameOID.STREET_ADDRESS,
    "POSTALCODE": NameOID.POSTAL_CODE,
    "DC": NameOID.DOMAIN_COMPONENT,
    "E": NameOID.EMAIL_ADDRESS,
    "EMAILADDRESS": NameOID.EMAIL_ADDRESS,
    "T": NameOID.TITLE,
    "TITLE": NameOID.TITLE,
    "UID": NameOID.USER_ID,
}
_SHORT_NAMES = {oid: name for name, oid in reversed(_TYPES.items()) if name not in ("S", "EMAILADDRESS", "TITLE")}
_REQUIRED = (("C", NameOID.COUNTRY_NAME), ("ST", NameOID.STATE_OR_PROVINCE_NAME), ("O", NameOID.ORGANIZATION_NAME))
_SPECIAL = set(',;+\\"<>=# ')
_HEX = set("0123456789abcdefABCDEF")

DistinguishedName = tuple[tuple[str, str], ...]  # ((OID dotted string, value), ...) in written order


def parse_trusted_identity(entry: str) -> DistinguishedName | None:
    """`*` gives None (anyone the roots vouch for); `x509.subject: DN` gives the parsed DN."""
    if not isinstance(entry, str):
        raise ValueError("a trusted identity must be a string")
    if entry == WILDCARD:
        return None
    if not entry.startswith(X509_SUBJECT_PREFIX):
        raise ValueError(f"trusted identity {entry!r} must be '*' or start with '{X509_SUBJECT_PREFIX}'")
    return parse_distinguished_name(entry[len(X509_SUBJECT_PREFIX) :])


def parse_trusted_identities(entries: Sequence[str]) -> list[DistinguishedName] | None:
    """The whole list: None for `["*"]`; `*` cannot be mixed with DNs; no DN may contain another."""
    if not entries:
        raise ValueError("trusted identities must not be empty (use ['*'] to trust any identity the roots vouch for)")
    parsed = [parse_trusted_identity(entry) for entry in entries]
    if any(dn is None for dn in parsed):
        if len(parsed) > 1:
            raise ValueError("'*' cannot be combined with other trusted identities")
        return None
    dns = [dn for dn in parsed if dn is not None]
    for i, first in enumerate(dns):
        for j, second in enumerate(dns):
            if i != j and set(first) <= set(second):
                raise ValueError(f"trusted identities {entries[i]!r} and {entries[j]!r} overlap")
    return dns


def parse_distinguished_name(text: str) -> DistinguishedName:
    if len(text) > MAX_IDENTITY_LENGTH:
        raise ValueError(f"distinguished name is longer than {MAX_IDENTITY_LENGTH} characters")
    pairs: list[tuple[str, str]] = []
    for segment in _split_rdns(text.strip()):
        type_part, value_part = _split_type(segment, text)
        name = "".join(char for char, _ in type_part).strip()
        oid = _TYPES.get(name.upper())
        if oid is None:
            raise ValueError(f"unsupported attribute type {name!r} in distinguished name {text!r}")
        value = _decode_value(value_part, text)
        if any(existing == oid.dotted_string for existing, _ in pairs):
            raise ValueError(f"attribute {name} appears twice in distinguished name {text!r}")
        pairs.append((oid.dotted_string, value))
    missing = [short for short, oid in _REQUIRED if all(existing != oid.dotted_string for existing, _ in pairs)]
    if missing:
        raise ValueError(f"distinguished name {text!r} must contain C, ST and O (missing {', '.join(missing)})")
    return tuple(pairs)


def _split_rdns(text: str) -> list[list[tuple[str, bool]]]:
    """Characters (with an escaped flag) of each RDN; `\\HH` pairs are kept as one escaped token."""
    segments: list[list[tuple[str, bool]]] = [[]]
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\":
            nxt = text[i + 1 : i + 3]
            if len(nxt) == 2 and set(nxt) <= _HEX:
                segments[-1].append(("\\" + nxt, True))
                i += 3
                continue
            if nxt[:1] and nxt[0] in _SPECIAL:
                segments[-1].append((nxt[0], True))
                i += 2
                continue
            raise ValueError(f"invalid escape at position {i} in distinguished name {text!r}")
        if char in ",;":
            segments.append([])
        elif char == "+":
            raise ValueError(f"multi-valued RDNs ('+') are not supported in distinguished name {text!r}")
        else:
            segments[-1].append((char, False))
        i += 1
    return segments


def _split_type(segment: list[tuple[str, bool]], text: str) -> tuple[list[tuple[str, bool]], list[tuple[str, bool]]]:
    for index, (char, escaped) in enumerate(segment):
        if char == "=" and not escaped:
            return segment[:index], segment[index + 1 :]
    raise ValueError(f"an RDN without '=' in distinguished name {text!r}")


def _decode_value(tokens: list[tuple[str, bool]], text: str) -> str:
    while tokens and tokens[0] == (" ", False):
        tokens = tokens[1:]
    while tokens and tokens[-1] == (" ", False):
        tokens = tokens[:-1]
    if not tokens:
        raise ValueError(f"an empty attribute value in distinguished name {text!r}")
    if tokens[0] == ("#", False) or tokens[0] == ('"', False):
        raise ValueError(f"hex-encoded or quoted values are not supported in distinguished name {text!r}")
    if any(not escaped and char in '"<>=' for char, escaped in tokens):
        raise ValueError(f"an unescaped special character in distinguished name {text!r}")
    raw = b"".join(bytes.fromhex(char[1:]) if len(char) == 3 else char.encode("utf-8") for char, _ in tokens)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"hex escapes are not valid UTF-8 in distinguished name {text!r}") from exc


def subject_pairs(name: x509.Name) -> set[tuple[str, str]]:
    return {(attribute.oid.dotted_string, _text(attribute.value)) for attribute in name}


def ambiguous_subject(subject: x509.Name) -> str | None:
    """Why a certificate subject cannot be matched against a DN, or None. notation refuses the
    same subjects: with `O=Evil, O=Acme` or `O=Acme+CN=x` it is unclear which value an identity means."""
    seen: set[x509.ObjectIdentifier] = set()
    for rdn in subject.rdns:
        if len(rdn) > 1:
            return "its subject has a multi-valued RDN"
        for attribute in rdn:
            if attribute.oid in seen:
                return f"its subject repeats {_SHORT_NAMES.get(attribute.oid, attribute.oid.dotted_string)}"
            seen.add(attribute.oid)
    return None


def matches(identity: DistinguishedName, subject: x509.Name) -> bool:
    """Every attribute of the trusted identity is present, with an equal value, in an unambiguous subject."""
    return ambiguous_subject(subject) is None and set(identity) <= subject_pairs(subject)


def any_matches(identities: Iterable[DistinguishedName] | None, subject: x509.Name) -> bool:
    return identities is None or any(matches(identity, subject) for identity in identities)


def render_name(name: x509.Name) -> str:
    """The subject in the trusted-identity syntax (certificate order), so it can be pasted into a policy."""
    parts = []
    for attribute in name:
        short = _SHORT_NAMES.get(attribute.oid, attribute.oid.dotted_string)
        parts.append(f"{short}={_escape(_text(attribute.value))}")
    return ", ".join(parts)


def _text(value: str | bytes) -> str:
    return value if isinstance(value, str) else value.hex()


def _escape(value: str) -> str:
    escaped = "".join("\\" + char if char in ',;+\\"<>=' else char for char in value)
    if escaped.startswith((" ", "#")):
        escaped = "\\" + escaped
    if escaped.endswith(" ") and not escaped.endswith("\\ "):
        escaped = escaped[:-1] + "\\ "
    return escaped
