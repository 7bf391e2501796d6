"""Every problem of a policy file at once, for `policy validate`.

`Policy.from_json` stops at the first problem, which is right for the Lambda but makes a person fix
a file one error per run. This module asks the same loader about each part of the document on its
own: the top-level fields, each trusted signer, each rule and each exemption, every part placed in
an otherwise valid stand-in document, and each error's path mapped back to the file. So the
verdict is always the loader's own (nothing here re-implements a check); what it can add is one
error per part. A part with two problems shows the first; fixing it reveals the next.
Checks across parts (duplicate names, one key under two names, ambiguous rules) come from the
whole document, as the loader reports them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .errors import PolicyError
from .policy import Policy
from .policy.files import collect_inlined_files, read_policy_document

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # a name a stand-in signer may carry
_STAND_IN_RULE_IMAGES = ["probe.invalid/**"]  # .invalid is reserved (RFC 2606): never a real registry
_SECTIONS = ("trustedSigners", "rules", "exemptions")


def check_policy_file(path: Path, *, environ: Mapping[str, str] | None) -> tuple[Policy | None, list[PolicyError]]:
    """The parsed policy and no errors, or None and every error found (OSError if the file is unreadable)."""
    document = read_policy_document(path)  # invalid JSON is one error: nothing else can be read
    inlined, file_errors = collect_inlined_files(document, base_dir=path.parent)
    errors = list(file_errors)
    try:
        policy = Policy.from_json(inlined, environ=environ)
    except PolicyError as first:
        errors += _Probe(inlined, environ).errors(skip_signers=_failed_signers(errors))
        # The whole document's first problem is new when it is a check across parts, or when it
        # does not follow from a file error (a field whose file failed is left out of `inlined`).
        follows_a_file_error = any(_inside(first.path, e.path) or _inside(e.path, first.path) for e in file_errors)
        if not follows_a_file_error:
            errors.append(first)  # a duplicate of a part's own error is dropped below
        return None, sorted(_unique(errors), key=_document_order)
    if errors:
        return None, errors
    return policy, []


def _failed_signers(errors: list[PolicyError]) -> set[int]:
    """Signers whose key or certificate files failed: their stand-in checks would only repeat that."""
    found = (re.match(r"trustedSigners\[(\d+)\]", e.path) for e in errors)
    return {int(m.group(1)) for m in found if m}


def _unique(errors: list[PolicyError]) -> list[PolicyError]:
    seen: set[tuple[str, str]] = set()
    result = []
    for error in errors:
        if (error.path, error.message) not in seen:
            seen.add((error.path, error.message))
            result.append(error)
    return result


def _inside(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith((prefix + ".", prefix + "["))


class _Probe:
    """Runs the loader on stand-in documents that hold one real part each."""

    def __init__(self, document: Any, environ: Mapping[str, str] | None) -> None:
        self._document = document if isinstance(document, dict) else {}
        self._environ = environ
        self._ok = isinstance(document, dict)
        names = [s.get("name") for s in self._list("trustedSigners") if isinstance(s, dict)]
        unique = list(dict.fromkeys(n for n in names if isinstance(n, str) and _NAME.fullmatch(n)))
        # Rules and exemptions are checked against stand-ins that carry only the signers' names.
        self._stand_ins = [_stand_in_signer(name, index) for index, name in enumerate(unique or ["probe"])]
        self._top: dict[str, Any] = {"version": "1"}

    def errors(self, *, skip_signers: set[int]) -> list[PolicyError]:
        if not self._ok:
            return []
        found = self._top_level()
        # Parts are judged under the document's own modes (a check may depend on failureMode); when
        # those are broken (already reported), under 'audit', so no stand-in invents a mode error.
        self._top = {k: v for k, v in self._document.items() if k not in _SECTIONS} if not found else {
            "version": "1", "failureMode": "audit", "unavailableMode": "audit"}
        for index, signer in enumerate(self._list("trustedSigners")):
            if index not in skip_signers:
                found += self._part("trustedSigners", index, {"trustedSigners": [signer], "rules": [self._rule_for(signer)]})
        for index, rule in enumerate(self._list("rules")):
            found += self._part("rules", index, {"trustedSigners": self._stand_ins, "rules": [rule]})
        for index, exemption in enumerate(self._list("exemptions")):
            found += self._part("exemptions", index, {**self._minimal(), "exemptions": [exemption]})
        return found

    def _list(self, key: str) -> list[Any]:
        value = self._document.get(key)
        return value if isinstance(value, list) else []

    def _minimal(self) -> dict[str, Any]:
        return {"trustedSigners": self._stand_ins[:1], "rules": [self._rule_for(self._stand_ins[0])]}

    @staticmethod
    def _rule_for(signer: Any) -> dict[str, Any]:
        name = signer.get("name") if isinstance(signer, dict) else None
        return {"name": "probe", "images": _STAND_IN_RULE_IMAGES, "anyOf": [name if isinstance(name, str) else "probe"]}

    def _top_level(self) -> list[PolicyError]:
        """Each top-level field on its own (beside stand-in sections), then the required fields."""
        found: list[PolicyError] = []
        for key, value in self._document.items():
            if key in _SECTIONS and isinstance(value, list):
                continue  # its entries are checked part by part
            found += self._load({"version": "1", **self._minimal(), key: value}, keep=_any, rename=_same)
        complete = {"version": "1", **self._minimal()}
        for key in complete:  # the loader names the first missing field: ask once per field
            if key not in self._document:
                found += self._load({k: v for k, v in complete.items() if k != key}, keep=_any, rename=_same)
        return found

    def _part(self, section: str, index: int, parts: dict[str, Any]) -> list[PolicyError]:
        prefix = f"{section}[0]"
        return self._load(
            {**self._top, **parts},
            keep=lambda path: _inside(path, prefix),
            rename=lambda path: f"{section}[{index}]{path[len(prefix):]}",
        )

    def _load(self, document: dict[str, Any], *, keep: Callable[[str], bool], rename: Callable[[str], str]) -> list[PolicyError]:
        try:
            Policy.from_json(document, environ=self._environ)
        except PolicyError as exc:
            if keep(exc.path):
                return [PolicyError(rename(exc.path), exc.message)]
        return []


def _any(path: str) -> bool:
    return True


def _same(path: str) -> str:
    return path


def _document_order(error: PolicyError) -> tuple[int, int]:
    match = re.match(r"(trustedSigners|rules|exemptions)\[(\d+)\]", error.path)
    return (1 + _SECTIONS.index(match.group(1)), int(match.group(2))) if match else (0, 0)


def _stand_in_signer(name: str, index: int) -> dict[str, Any]:
    # A syntactically valid KMS key ARN per name: the loader refuses one key under two names.
    return {"name": name, "cosignKey": {"kmsKeyArn": f"arn:aws:kms:us-east-1:000000000000:key/probe-{index}"}}
