"""`policy import-notation`: read a notation trust policy and trust store, write this project's policy.

The conversion itself is `notation_import.import_notation`; this module reads the files, turns
command-line values into arguments, and writes the result (stdout, or `--output`) and its notes
(stderr). Any refusal is exit 2 with the trust-policy field and the reason.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from typing import TextIO

from ._json import strict_json_loads
from .cli_policy import EXIT_VALID, UsageError
from .errors import ImageVerifierError
from .notation_import import MAX_TRUST_POLICY_BYTES, import_notation
from .notation_truststore import TrustStoreError, read_bounded


def import_notation_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    source = args.trust_policy
    try:
        raw = read_bounded(source, MAX_TRUST_POLICY_BYTES)
    except TrustStoreError as exc:
        raise UsageError(f"the trust policy: {exc}") from exc
    if not args.truststore.is_dir():
        raise UsageError(f"--truststore {args.truststore} is not a directory")
    try:
        document = strict_json_loads(raw, what=f"the trust policy {source}")
        result = import_notation(document, args.truststore, registry_map=_registry_map(args.registry_map),
                                 failure_mode=args.failure_mode, skip_until=_time(args.skip_as_exemption_until))
    except ImageVerifierError as exc:
        raise UsageError(f"cannot import {source}: {exc}") from exc
    text = json.dumps(result.document, indent=2) + "\n"
    if args.output is None:
        out.write(text)
    else:
        if args.output.exists() and not args.force:
            raise UsageError(f"{args.output} exists; choose another --output or pass --force to overwrite it")
        args.output.write_text(text)
    for note in result.notes:
        print(f"# {note}", file=err)
    return EXIT_VALID


def _registry_map(items: list[str]) -> dict[str, str]:
    mapping = {}
    for item in items:
        source, sep, target = item.partition("=")
        if not sep or not source or not target or "/" in source + target or "://" in target:
            raise UsageError(f"--registry-map {item!r} must be FROM=TO, two registry hosts (host[:port])")
        mapping[source] = target.lower()
    return mapping


def _time(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise UsageError(f"--skip-as-exemption-until {text!r} is not an RFC 3339 time: {exc}") from exc
    if moment.tzinfo is None:
        raise UsageError(f"--skip-as-exemption-until {text!r} needs a time zone, e.g. 2027-01-31T00:00:00Z")
    return moment
