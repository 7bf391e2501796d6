"""`KeylessIdentity`: a cosign keyless signer (a CI job's OIDC identity) for the admission policy.

    release = KeylessIdentity(
        name="release",
        issuer="https://token.actions.githubusercontent.com",
        subject_regexp=r"https://github\\.com/acme/app/\\.github/workflows/release\\.yml@refs/tags/v.*",
        trusted_root="sigstore/trusted_root.json",  # Sigstore's trusted_root.json, read at synth
    )
    AdmissionController(stack, "Admission", keyless_signers=[release], repositories=[repo])

The identity becomes a ``cosignKeyless`` signer of the policy with the trusted root inlined (the
Lambda asset holds no file reference, and nothing is fetched from Sigstore at verification). The
checks here run when the identity is made, so a wrong identity fails at the line that wrote it;
the whole policy is then parsed again by the runtime's own loader when the controller builds it.
"""

from __future__ import annotations

import copy
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aws_cdk import Token

from image_verifier._json import strict_json_loads
from image_verifier.cosign.keyless.trusted_root import TrustedRoot, TrustedRootError
from image_verifier.errors import HostileArtifactError
from image_verifier.policy.codec import MAX_POLICY_BYTES
from image_verifier.policy.keyless_fields import MAX_IDENTITY_PATTERN

# The policy's signer-name rule (policy/codec.py): the name appears in rules, verdicts and audit records.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_ROOT_HINT = ("pass the path of Sigstore's trusted_root.json (the public-good instance's TUF target, or "
              "'cosign trusted-root create' for a private one) or its JSON text")


@dataclass(frozen=True, kw_only=True)
class KeylessIdentity:
    """A CI identity whose cosign keyless signatures admit an image (``cosign verify --certificate-identity``).

    Give exactly one of ``issuer`` / ``issuer_regexp`` and one of ``subject`` / ``subject_regexp``.
    Regular expressions match the **whole** value (unlike cosign's ``--certificate-identity-regexp``,
    which matches anywhere unless anchored): write the whole workflow ref.

    :param name: the signer's name in the policy, rules and verdicts (1-64 letters, digits, ``.``, ``_``, ``-``).
    :param trusted_root: Sigstore's ``trusted_root.json``: a file path (read at synth, relative to the
        directory ``cdk`` runs the app in) or the JSON text itself. Its Fulcio CAs, Rekor and CT log keys
        are what signatures are verified against, offline.
    :param issuer: the OIDC issuer in the Fulcio certificate, exactly. :default: - ``issuer_regexp``
    :param issuer_regexp: the OIDC issuer, as a regular expression. :default: - ``issuer``
    :param subject: the certificate identity (a workflow ref URI or an email), exactly. :default: - ``subject_regexp``
    :param subject_regexp: the certificate identity, as a regular expression. :default: - ``subject``
    :param ignore_sct: accept certificates without a verifiable SCT (``cosign --insecure-ignore-sct``), for a
        private Fulcio without certificate transparency. :default: False
    """

    name: str
    trusted_root: str | os.PathLike[str]
    issuer: str | None = None
    issuer_regexp: str | None = None
    subject: str | None = None
    subject_regexp: str | None = None
    ignore_sct: bool = False
    _root: dict[str, Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or Token.is_unresolved(self.name) or not _NAME.fullmatch(self.name):
            raise ValueError(f"keyless identity name must be 1-64 letters, digits, '.', '_' or '-' (starting with a "
                             f"letter or digit), got {self.name!r}")
        for prop in ("issuer", "subject"):
            self._check_exact_or_regexp(prop)
        if not isinstance(self.ignore_sct, bool):
            raise ValueError(f"keyless identity {self.name!r}: ignore_sct must be True or False, got {self.ignore_sct!r}")
        object.__setattr__(self, "_root", self._read_trusted_root())

    def to_json(self) -> dict[str, Any]:
        """The ``cosignKeyless`` body of the policy, with the trusted root inline."""
        body: dict[str, Any] = {"trustedRoot": copy.deepcopy(self._root), "ignoreSct": self.ignore_sct}
        for key, value in (("issuer", self.issuer), ("issuerRegExp", self.issuer_regexp),
                           ("subject", self.subject), ("subjectRegExp", self.subject_regexp)):
            if value is not None:
                body[key] = value
        return body

    # -- checks -----------------------------------------------------------------------------------
    def _check_exact_or_regexp(self, prop: str) -> None:
        exact, pattern = getattr(self, prop), getattr(self, f"{prop}_regexp")
        example = ("issuer='https://token.actions.githubusercontent.com'" if prop == "issuer" else
                   "subject='https://github.com/ORG/REPO/.github/workflows/FILE.yml@refs/heads/main'")
        if (exact is None) == (pattern is None):
            given = "both" if exact is not None else "neither"
            raise ValueError(f"keyless identity {self.name!r}: give exactly one of {prop} or {prop}_regexp, got {given} "
                             f"({prop}={exact!r}, {prop}_regexp={pattern!r}); e.g. {example}")
        which, value = (prop, exact) if exact is not None else (f"{prop}_regexp", pattern)
        if not isinstance(value, str) or not value:
            raise ValueError(f"keyless identity {self.name!r}: {which} must be a non-empty string, got {value!r}")
        if Token.is_unresolved(value):  # the identity is what a reviewer reads in the policy
            raise ValueError(f"keyless identity {self.name!r}: {which} is a token ({value}); give the identity as "
                             "literal text, so that it is in the synthesized policy for review")
        if pattern is None:
            return
        if len(pattern) > MAX_IDENTITY_PATTERN:
            raise ValueError(f"keyless identity {self.name!r}: {which} is {len(pattern)} characters long, over "
                             f"{MAX_IDENTITY_PATTERN}; write a shorter expression")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"keyless identity {self.name!r}: {which} {pattern!r} is not a valid regular expression "
                             f"({exc}); escape literal characters such as '.' with a backslash, or use {prop}= for an "
                             "exact value") from exc

    def _read_trusted_root(self) -> dict[str, Any]:
        source, raw = self._trusted_root_bytes()
        try:
            document = strict_json_loads(raw, what=f"trusted_root {source}")
        except HostileArtifactError as exc:
            raise ValueError(f"keyless identity {self.name!r}: {exc}; {_ROOT_HINT}") from exc
        try:
            root = TrustedRoot.from_document(document)
        except TrustedRootError as exc:
            raise ValueError(f"keyless identity {self.name!r}: trusted_root {source} is not a usable Sigstore trusted "
                             f"root ({exc}); {_ROOT_HINT}") from exc
        if not root.ctlogs and not self.ignore_sct:
            raise ValueError(f"keyless identity {self.name!r}: trusted_root {source} lists no ctlogs, so no "
                             "certificate's SCT can be verified and every signature would be refused; add your "
                             "Fulcio's CT log keys to it, or set ignore_sct=True for a private Fulcio without CT")
        return document

    def _trusted_root_bytes(self) -> tuple[str, bytes]:
        """Where the root came from (for messages) and its bytes: the JSON text, or the file's content."""
        value = self.trusted_root
        if isinstance(value, str) and Token.is_unresolved(value):
            raise ValueError(f"keyless identity {self.name!r}: trusted_root is a token ({value}); the root is inlined "
                             f"into the policy at synth, so {_ROOT_HINT}")
        if isinstance(value, str) and value.lstrip().startswith("{"):
            raw = value.encode()
            source = "(JSON text)"
        elif isinstance(value, (str, os.PathLike)) and str(value):
            path = Path(value)
            source = repr(str(path))
            try:
                with path.open("rb") as handle:
                    raw = handle.read(MAX_POLICY_BYTES + 1)
            except OSError as exc:
                raise ValueError(f"keyless identity {self.name!r}: cannot read trusted_root {source} "
                                 f"({exc.strerror or type(exc).__name__}, from {Path.cwd()}); {_ROOT_HINT}") from exc
        else:
            raise ValueError(f"keyless identity {self.name!r}: trusted_root must be a file path or JSON text, got "
                             f"{value!r}; {_ROOT_HINT}")
        if len(raw) > MAX_POLICY_BYTES:  # the policy that inlines it may be no larger
            raise ValueError(f"keyless identity {self.name!r}: trusted_root {source} is over {MAX_POLICY_BYTES} bytes; "
                             "a Sigstore trusted root is a few kilobytes: is this the right file?")
        return source, raw
