"""The `cosignKeyless` part of a policy: parsing, validation and writing back.

```json
{"name": "release", "cosignKeyless": {
  "issuer": "https://token.actions.githubusercontent.com",
  "subjectRegExp": "https://github\\.com/acme/app/\\.github/workflows/release\\.yml@refs/tags/v.*",
  "trustedRootFile": "sigstore/trusted_root.json"}}
```
`issuer` | `issuerRegExp` and `subject` | `subjectRegExp` (exactly one of each; expressions must
match the whole value), `trustedRoot` (Sigstore's trusted_root.json, inline) or `trustedRootFile`
(read by policy/files.py, relative to the policy file), and `ignoreSct`. The trusted root is
parsed here, so a malformed one fails at load with the path of the bad field inside it; its
parser is imported only when a policy has such a signer (cosign-only start-up stays light).
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import PolicyError
from ._reader import Node
from .model import CosignKeylessTrust

MAX_IDENTITY_PATTERN = 1024  # a workflow ref is a URL; a reviewable expression stays short
_FIELDS = ("issuer", "issuerRegExp", "subject", "subjectRegExp", "trustedRoot", "ignoreSct")


def cosign_keyless_trust(node: Node) -> CosignKeylessTrust:
    from ..cosign.keyless.trusted_root import TrustedRoot, TrustedRootError, canonical_text

    node.object(optional=_FIELDS)
    issuer, issuer_regexp = _exact_or_pattern(node, "issuer", "the OIDC issuer, e.g. "
                                              "'https://token.actions.githubusercontent.com'")
    subject, subject_regexp = _exact_or_pattern(node, "subject", "the certificate identity (an email or a URI such "
                                                "as a GitHub Actions workflow ref)")
    if not node.has("trustedRoot"):
        raise node.fail("missing 'trustedRoot' (Sigstore's trusted_root.json, inline) or 'trustedRootFile' (its path, "
                        "relative to the policy file); get it with 'cosign trusted-root create' or from your "
                        "Sigstore instance's TUF repository")
    root_node = node.child("trustedRoot")
    try:
        root = TrustedRoot.from_document(root_node.value)
    except TrustedRootError as exc:
        inner = f".{exc.path}" if exc.path else ""
        raise PolicyError(f"{root_node.path}{inner}", str(exc).removeprefix(f"{exc.path}: ")) from exc
    ignore_sct = node.child("ignoreSct").boolean() if node.has("ignoreSct") else False
    if not root.ctlogs and not ignore_sct:
        raise root_node.fail("the trusted root lists no ctlogs, so no certificate's SCT (its proof of being in a "
                             "certificate transparency log) can be verified, and such certificates are refused; add "
                             "the CT log keys of your Fulcio, or set 'ignoreSct': true (cosign --insecure-ignore-sct) "
                             "for a private Fulcio without CT")
    return CosignKeylessTrust(trusted_root=canonical_text(root_node.value), issuer=issuer, issuer_regexp=issuer_regexp,
                              subject=subject, subject_regexp=subject_regexp, ignore_sct=ignore_sct)


def cosign_keyless_document(trust: CosignKeylessTrust) -> dict[str, Any]:
    body: dict[str, Any] = {"trustedRoot": json.loads(trust.trusted_root), "ignoreSct": trust.ignore_sct}
    for key, value in (("issuer", trust.issuer), ("issuerRegExp", trust.issuer_regexp), ("subject", trust.subject),
                       ("subjectRegExp", trust.subject_regexp)):
        if value is not None:
            body[key] = value
    return body


def _exact_or_pattern(node: Node, field: str, what: str) -> tuple[str | None, str | None]:
    pattern_field = f"{field}RegExp"
    if node.has(field) == node.has(pattern_field):
        raise node.fail(f"give exactly one of {field!r} or {pattern_field!r}: {what}")
    if node.has(field):
        return node.child(field).string(), None
    child = node.child(pattern_field)
    if not isinstance(child.value, str):  # a pattern is reviewed in the policy, never supplied at deploy time
        raise child.fail("expected a regular expression (a string)")
    return None, child.regex(max_length=MAX_IDENTITY_PATTERN)

