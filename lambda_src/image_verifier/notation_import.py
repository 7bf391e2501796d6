"""Convert a Notary Project trust policy (version 1.0) and its trust store into this project's policy.

`import_notation` reads the OCI form (`trustPolicies[]` with `registryScopes`) or the blob form
(`globalPolicy`, no scopes) and writes one policy document, or refuses with `NotationImportError`,
whose path names the trust-policy field and whose message says why the policy cannot express it.

| notation | this policy |
|---|---|
| statement `name` | rule `name` (and signer names) |
| `registryScopes`: `registry/ns/repo` | an exact image pattern (beats any glob, as notation's exact match beats `*`) |
| `registryScopes`: `["*"]` | the pattern `*/**` (every image, lowest precedence) |
| `signatureVerification.level` / `override` / `verifyTimestamp` | `verificationLevel` / `override` / `verifyTimestamp` |
| `trustStores` `ca:` + x509.subject identities | a `notationX509` signer, scheme `notary.x509` |
| `trustStores` `signingAuthority:` + x509.subject identities | a `notationX509` signer, scheme `notary.x509.signingAuthority` |
| `trustStores` `tsa:` | `tsaRootCertificates` of the `ca:` signer |
| `signingAuthority:` + AWS Signer profile ARNs | an `awsSigner` signer (level and override folded into `override`) |
| level `skip` | an exemption, only with an expiry given (`skip_until`): notation's skip never ends |

A statement listing both `ca:` and `signingAuthority:` stores becomes two signers under one `anyOf`
rule: notation checks a signature against the stores of its own scheme, and so does each signer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from .errors import ImageVerifierError, PolicyError
from .notation.awssigner import check_pinned_root, parse_signing_profile_arn
from .notation.identity import parse_trusted_identities
from .notation.levels import AUTHENTICITY, LOG, STRICT, Level, effective_level, level_named, override_entry
from .notation_truststore import NamedStore, TrustStoreError, read_named_store
from .policy import Policy

GLOBAL_PATTERN = "*/**"
MAX_TRUST_POLICY_BYTES = 1024 * 1024
_STATEMENT_FIELDS = ("name", "registryScopes", "signatureVerification", "trustStores", "trustedIdentities",
                     "globalPolicy")
_VERIFICATION_FIELDS = ("level", "override", "verifyTimestamp")
_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_AWS_SIGNER_ARN = re.compile(r"arn:aws[a-z-]*:signer:")


class NotationImportError(ImageVerifierError):
    """The trust policy or trust store cannot be converted faithfully; `path` names the field."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


@dataclass(frozen=True, kw_only=True)
class ImportResult:
    document: dict[str, Any]  # this project's policy, loadable by Policy.from_json
    notes: tuple[str, ...]  # what differs, or was ignored, and why: for the person who runs the import


def import_notation(trust_policy: Mapping[str, Any], truststore: Path, *,
                    registry_map: Mapping[str, str] | None = None, failure_mode: str = "block",
                    skip_until: datetime | None = None) -> ImportResult:
    """Convert a parsed trust policy; `registry_map` renames scope registries (notation host -> pulled host)."""
    converter = _Converter(truststore, dict(registry_map or {}), failure_mode, skip_until)
    document = converter.convert(trust_policy)
    try:
        policy = Policy.from_json(document)
    except PolicyError as exc:
        raise NotationImportError("", f"the converted policy does not load: {exc}") from exc
    return ImportResult(document=document, notes=tuple(converter.notes) + tuple(f"warning: {w}" for w in policy.warnings))


class _Converter:
    def __init__(self, truststore: Path, registry_map: dict[str, str], failure_mode: str,
                 skip_until: datetime | None) -> None:
        self.truststore, self.registry_map = truststore, registry_map
        self.failure_mode, self.skip_until = failure_mode, skip_until
        self.notes: list[str] = []
        self.signers: list[dict[str, Any]] = []
        self.rules: list[dict[str, Any]] = []
        self.exemptions: list[dict[str, Any]] = []
        self._stores: dict[tuple[str, str], NamedStore] = {}
        self._names: set[str] = set()

    def convert(self, document: Mapping[str, Any]) -> dict[str, Any]:
        _object(document, "", ("version", "trustPolicies"), required=("version", "trustPolicies"))
        if document["version"] != "1.0":
            raise NotationImportError("version", f"unsupported trust policy version {document['version']!r}; "
                                                 "this importer reads version '1.0'")
        statements = document["trustPolicies"]
        if not isinstance(statements, list) or not statements:
            raise NotationImportError("trustPolicies", "expected a non-empty list of trust policy statements")
        blob = any(isinstance(s, dict) and "registryScopes" not in s for s in statements)
        seen_names: set[str] = set()
        global_statement = None
        scopes: dict[str, str] = {}
        for index, statement in enumerate(statements):
            path = f"trustPolicies[{index}]"
            _object(statement, path, _STATEMENT_FIELDS, required=("name", "signatureVerification"))
            name = statement["name"]
            if not isinstance(name, str) or not name:
                raise NotationImportError(f"{path}.name", "expected a non-empty string")
            if name in seen_names:
                raise NotationImportError(f"{path}.name", f"duplicate statement name {name!r}")
            seen_names.add(name)
            patterns = self._scopes(statement, path, blob, scopes, name)
            if patterns == [GLOBAL_PATTERN]:
                if global_statement is not None:
                    what = "globalPolicy" if blob else "global scope '*'"
                    raise NotationImportError(path, f"only one statement may have the {what} "
                                                    f"(also {global_statement!r})")
                global_statement = name
            self._statement(statement, path, patterns)
        if not self.rules:
            raise NotationImportError("trustPolicies", "no statement applies to container images, so the policy "
                                                       "would have no rule (a blob policy needs a globalPolicy)")
        policy: dict[str, Any] = {"version": "1", "failureMode": self.failure_mode, "unavailableMode": "block",
                                  "trustedSigners": self.signers, "rules": self.rules}
        if self.exemptions:
            policy["exemptions"] = self.exemptions
        return policy

    # -- scopes ----------------------------------------------------------------------------------
    def _scopes(self, statement: Mapping[str, Any], path: str, blob: bool, seen: dict[str, str],
                name: str) -> list[str] | None:
        if blob:
            if "registryScopes" in statement:
                raise NotationImportError(f"{path}.registryScopes", "a blob trust policy has no registryScopes; do "
                                                                    "not mix the OCI and the blob form in one file")
            if statement.get("globalPolicy") is True:
                return [GLOBAL_PATTERN]
            if statement.get("globalPolicy") not in (None, False):
                raise NotationImportError(f"{path}.globalPolicy", "expected true or false")
            return None
        if "globalPolicy" in statement:
            raise NotationImportError(f"{path}.globalPolicy", "globalPolicy belongs to the blob form; an OCI "
                                                              "statement is selected by registryScopes")
        scopes = statement.get("registryScopes")
        if not isinstance(scopes, list) or not scopes or not all(isinstance(s, str) and s for s in scopes):
            raise NotationImportError(f"{path}.registryScopes", "expected a non-empty list of repository names")
        if "*" in scopes:
            if len(scopes) > 1:
                raise NotationImportError(f"{path}.registryScopes", "'*' (global scope) must be the only scope")
            return [GLOBAL_PATTERN]
        patterns = []
        for position, scope in enumerate(scopes):
            where = f"{path}.registryScopes[{position}]"
            if "*" in scope or "@" in scope or "/" not in scope:
                raise NotationImportError(where, f"{scope!r} is not a fully qualified repository "
                                                 "(registry/namespace/repository, no wildcard, tag or digest)")
            registry, _, repository = scope.partition("/")
            if ":" in repository:
                raise NotationImportError(where, f"{scope!r} names a tag; a scope is a repository")
            registry = self.registry_map.get(registry, registry)
            pattern = f"{'docker.io' if registry == 'index.docker.io' else registry}/{repository}"
            if pattern != pattern.lower():
                raise NotationImportError(where, f"{scope!r} has upper-case letters, which no repository name has")
            if pattern in seen:
                raise NotationImportError(where, f"{pattern!r} is also a scope of statement {seen[pattern]!r}; "
                                                 "a scope may appear in only one statement")
            seen[pattern] = name
            patterns.append(pattern)
        return patterns

    # -- one statement ---------------------------------------------------------------------------
    def _statement(self, statement: Mapping[str, Any], path: str, patterns: list[str] | None) -> None:
        verification = statement["signatureVerification"]
        vpath = f"{path}.signatureVerification"
        _object(verification, vpath, _VERIFICATION_FIELDS, required=("level",))
        level = verification["level"]
        name = self._unique_name(statement["name"])
        if level == "skip":
            self._skip(statement, path, patterns, name)
            return
        try:
            level_named(level if isinstance(level, str) else repr(level))
        except ValueError as exc:
            raise NotationImportError(f"{vpath}.level", f"{exc} (or 'skip')") from exc
        override = self._override(verification, vpath)
        stores = self._trust_stores(statement, path)
        identities = statement.get("trustedIdentities")
        if not isinstance(identities, list) or not identities or not all(isinstance(i, str) for i in identities):
            raise NotationImportError(f"{path}.trustedIdentities", "expected a non-empty list of identities "
                                                                   "(required unless the level is skip)")
        arns = [i for i in identities if _AWS_SIGNER_ARN.match(i.strip())]
        effective = effective_level(level, override)
        if effective[AUTHENTICITY] is LOG and self.failure_mode != "audit":
            raise NotationImportError(vpath, "authenticity is only logged here (level 'audit' or override "
                                             "authenticity: log), so anyone's signature would verify; this policy "
                                             "allows that only when failureMode is 'audit' for the whole policy, "
                                             "which also admits what the other statements reject. Pass "
                                             "--failure-mode audit if that is what you want")
        if arns:
            signer_names = [self._aws_signer(name, path, identities, arns, stores, effective)]
        else:
            signer_names = self._x509_signers(name, path, statement, identities, stores, level, override)
        if patterns is not None:
            self.rules.append({"name": name, "images": patterns, "anyOf": signer_names})
        else:
            self.notes.append(f"{path} ({name!r}): a blob statement without globalPolicy is chosen by name "
                              "(notation blob verify --policy-name); its signers are imported, but no rule uses "
                              "them: add one naming the images they should cover")

    def _override(self, verification: Mapping[str, Any], vpath: str) -> dict[str, str]:
        raw = verification.get("override", {})
        if not isinstance(raw, dict):
            raise NotationImportError(f"{vpath}.override", "expected a map of step -> action")
        override = {}
        for key, value in raw.items():
            try:
                step, action = override_entry(key, value)
            except ValueError as exc:
                raise NotationImportError(f"{vpath}.override.{key}", str(exc)) from exc
            override[step.value] = action.value
        return override

    def _trust_stores(self, statement: Mapping[str, Any], path: str) -> dict[str, list[NamedStore]]:
        entries = statement.get("trustStores")
        if not isinstance(entries, list) or not entries:
            raise NotationImportError(f"{path}.trustStores", "expected a non-empty list of 'type:name' entries "
                                                             "(required unless the level is skip)")
        stores: dict[str, list[NamedStore]] = {"ca": [], "signingAuthority": [], "tsa": []}
        for position, entry in enumerate(entries):
            where = f"{path}.trustStores[{position}]"
            kind, sep, store = entry.partition(":") if isinstance(entry, str) else ("", "", "")
            if not sep or not store or store == "*":
                raise NotationImportError(where, f"{entry!r} is not 'type:name' (ca, signingAuthority or tsa)")
            key = (kind, store)
            if key not in self._stores:
                try:
                    self._stores[key] = read_named_store(self.truststore, kind, store)
                except TrustStoreError as exc:
                    raise NotationImportError(where, str(exc)) from exc
                self.notes += self._stores[key].notes
            stores[kind].append(self._stores[key])
        return stores

    def _x509_signers(self, name: str, path: str, statement: Mapping[str, Any], identities: list[str],
                      stores: dict[str, list[NamedStore]], level: str, override: dict[str, str]) -> list[str]:
        x509_ids = [i for i in identities if i.strip() == "*" or i.strip().startswith("x509.subject:")]
        others = [i for i in identities if i not in x509_ids]
        if others:
            raise NotationImportError(f"{path}.trustedIdentities", f"{others[0]!r} is neither '*', an "
                                      "'x509.subject:' DN nor an AWS Signer profile ARN; notation hands such "
                                      "identities to a verification plugin, which this verifier does not run")
        if not stores["ca"] and not stores["signingAuthority"]:
            raise NotationImportError(f"{path}.trustStores", "no 'ca:' or 'signingAuthority:' store: a "
                                                             "timestamping store alone trusts no signer")
        try:
            parse_trusted_identities([i.strip() for i in x509_ids])
        except ValueError as exc:
            raise NotationImportError(f"{path}.trustedIdentities", str(exc)) from exc
        verification = statement["signatureVerification"]
        if verification.get("verifyTimestamp", "always") not in ("always", "afterCertExpiry"):
            raise NotationImportError(f"{path}.signatureVerification.verifyTimestamp",
                                      f"expected 'always' or 'afterCertExpiry', got {verification['verifyTimestamp']!r}")
        common: dict[str, Any] = {"trustedIdentities": [i.strip() for i in x509_ids], "verificationLevel": level}
        if override:
            common["override"] = override
        if "verifyTimestamp" in verification:
            common["verifyTimestamp"] = verification["verifyTimestamp"]
        if override.get("revocation") != "skip":
            self.notes.append(f"{path} ({name!r}): notation checks OCSP/CRL revocation of the signing chain; this "
                              "verifier fetches nothing at verification time, so its revocation step says "
                              "'notChecked' (set override revocation: skip in both to make them agree)")
        names = []
        for kind, scheme in (("ca", "notary.x509"), ("signingAuthority", "notary.x509.signingAuthority")):
            if not stores[kind]:
                continue
            body = dict(common, rootCertificates=_pems(stores[kind]), signingScheme=scheme)
            if kind == "ca" and stores["tsa"]:
                body["tsaRootCertificates"] = _pems(stores["tsa"])
            signer = name if not (stores["ca"] and stores["signingAuthority"]) else f"{name[:50]}.{kind}"
            self.signers.append({"name": signer, "notationX509": body})
            names.append(signer)
        if stores["tsa"] and not stores["ca"]:
            self.notes.append(f"{path} ({name!r}): 'tsa:' stores are ignored: a signingAuthority signature carries "
                              "its own authentic signing time")
        return names

    def _aws_signer(self, name: str, path: str, identities: list[str], arns: list[str],
                    stores: dict[str, list[NamedStore]], effective: Level) -> str:
        if len(arns) != len(identities):
            raise NotationImportError(f"{path}.trustedIdentities", "AWS Signer profile ARNs mixed with other "
                                      "identities: notation checks the x509.subject ones itself and the ARNs through "
                                      "the AWS Signer plugin; this policy's awsSigner checks only profiles")
        if stores["ca"] or not stores["signingAuthority"]:
            raise NotationImportError(f"{path}.trustStores", "AWS Signer signatures use the signingAuthority "
                                                             "scheme: list exactly 'signingAuthority:' stores")
        for position, arn in enumerate(arns):
            try:
                parse_signing_profile_arn(arn.strip())
            except ValueError as exc:
                raise NotationImportError(f"{path}.trustedIdentities[{position}]", str(exc)) from exc
        pinned, custom = [], []
        for pem in _pems(stores["signingAuthority"]):
            try:
                check_pinned_root(pem)
                pinned.append(pem)
            except ValueError:
                custom.append(pem)
        if custom:
            self.notes.append(f"{path} ({name!r}): the signingAuthority store holds roots other than the AWS Signer "
                              "root; they become customRootCertificates")
        body: dict[str, Any] = {"signingProfileArns": [a.strip() for a in arns]}
        if pinned:
            body["rootCertificates"] = pinned
        if custom:
            body["customRootCertificates"] = custom
        override = {step.value: action.value for step, action in effective.items() if action is not STRICT[step]}
        if override:
            body["override"] = override
        self.signers.append({"name": name, "awsSigner": body})
        return name

    def _skip(self, statement: Mapping[str, Any], path: str, patterns: list[str] | None, name: str) -> None:
        if patterns is None:
            self.notes.append(f"{path} ({name!r}): a blob skip statement is chosen by name and names no images; "
                              "nothing to import")
            return
        if patterns == [GLOBAL_PATTERN]:
            raise NotationImportError(f"{path}.signatureVerification.level", "level 'skip' cannot apply to every "
                                      "artifact (the spec forbids it with the global scope)")
        if self.skip_until is None:
            raise NotationImportError(f"{path}.signatureVerification.level", "level 'skip' has no equivalent: this "
                                      "policy verifies every image a rule names, and lets one through unverified "
                                      "only by an exemption, which expires. Pass --skip-as-exemption-until TIME to "
                                      "import it as an exemption that ends then")
        self.exemptions.append({"images": patterns, "expires": self.skip_until.isoformat().replace("+00:00", "Z"),
                                "reason": f"imported from the notation trust policy statement {name!r} (level skip)"})
        self.notes.append(f"{path} ({name!r}): level skip became an exemption that expires {self.skip_until.isoformat()}")

    def _unique_name(self, raw: str) -> str:
        base = _NAME.sub("-", raw).strip("-.")[:60] or "statement"
        if not base[0].isalnum():
            base = "n" + base[:59]
        name, counter = base, 2
        while name in self._names:
            name, counter = f"{base}-{counter}", counter + 1
        self._names.add(name)
        if name != raw:
            self.notes.append(f"statement {raw!r} is named {name!r} here (names allow letters, digits, '.', '_', '-')")
        return name


def _pems(stores: list[NamedStore]) -> list[str]:
    return [pem for store in stores for pem in store.pems]


def _object(value: Any, path: str, allowed: tuple[str, ...], *, required: tuple[str, ...]) -> None:
    """An object with only known keys, spelled exactly: notation (Go) would also read re-cased keys."""
    if not isinstance(value, dict):
        raise NotationImportError(path, "expected an object")
    folded = {key.casefold(): key for key in allowed}
    for key in value:
        if key in allowed:
            continue
        where = f"{path}.{key}" if path else key
        if key.casefold() in folded:
            raise NotationImportError(where, f"notation reads this key as {folded[key.casefold()]!r} (Go's JSON is "
                                             "case-insensitive); spell it exactly so both read the same policy")
        raise NotationImportError(where, f"unknown field; this importer knows {', '.join(allowed)}, and will not "
                                         "drop a field it cannot judge")
    for key in required:
        if key not in value:
            raise NotationImportError(path, f"missing required field {key!r}")
