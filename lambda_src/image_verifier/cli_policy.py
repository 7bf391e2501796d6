"""`policy validate` and `policy init`: check policy files, and write a first one that passes the check."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any, TextIO

from .cli_policy_check import check_policy_file
from .errors import PolicyError
from .policy import Policy
from .policy.files import inline_policy_files
from .policy.keys import validate_cosign_public_key
from .policy.patterns import ImagePattern

EXIT_VALID, EXIT_INVALID = 0, 2
INIT_SIGNER_NAME = "ci"


class UsageError(Exception):
    """A command line the program cannot act on (exit 2); the message says what to change."""


def add_policy_commands(commands: argparse._SubParsersAction, parser_class: type[argparse.ArgumentParser]) -> None:
    policy = commands.add_parser("policy", help="check policy files or write a first one",
                                 description="Check policy files, or write a starting policy.")
    sub = policy.add_subparsers(dest="policy_command", required=True, parser_class=parser_class, metavar="COMMAND")

    validate = sub.add_parser(
        "validate", help="check policy files; print every error with its field path",
        description="Load each policy file as `verify` would (key and certificate files included) and print "
                    "every error with the path of its field, or the policy's hash and warnings.",
    )
    validate.add_argument("files", nargs="+", type=Path, metavar="FILE", help="a policy JSON file")
    validate.add_argument("--json", action="store_true",
                          help="print one JSON object: each file's errors, warnings and policy hash")

    init = sub.add_parser(
        "init", help="write a starting policy for one registry and one signing key",
        description="Write a policy that admits images under REGISTRY/REPOSITORY signed by one cosign key "
                    "and rejects every other image. Notes on what to change next go to stderr; the JSON "
                    "itself stays plain (JSON has no comments).",
    )
    init.add_argument("--registry", required=True, metavar="HOST",
                      help="the registry host, e.g. 111111111111.dkr.ecr.us-east-1.amazonaws.com")
    init.add_argument("--repository", default="**", metavar="GLOB",
                      help="repositories in that registry: '*' is one path segment, '**' any depth (default %(default)s)")
    key = init.add_mutually_exclusive_group(required=True)
    key.add_argument("--kms-key", metavar="ARN", help="the KMS signing key's ARN (not an alias)")
    key.add_argument("--public-key", type=Path, metavar="FILE",
                     help="a cosign public key PEM file; referenced as publicKeyPemFile with --output, else inlined")
    init.add_argument("--output", "-o", type=Path, metavar="FILE", help="write the policy here (default: stdout)")
    init.add_argument("--force", action="store_true", help="overwrite --output if it exists")

    notation = sub.add_parser(
        "import-notation", help="convert a notation trust policy and trust store into a policy",
        description="Convert a Notary Project trust policy (version 1.0, OCI or blob form) and its trust store "
                    "folder into this project's policy, or refuse, naming the field and why it cannot be "
                    "expressed faithfully. Notes on differences go to stderr (docs/notation.md).",
    )
    notation.add_argument("trust_policy", type=Path, metavar="TRUSTPOLICY.json", help="the notation trust policy")
    notation.add_argument("--truststore", required=True, type=Path, metavar="DIR",
                          help="the trust store folder that holds x509/{ca,signingAuthority,tsa}/<name>/")
    notation.add_argument("--registry-map", action="append", default=[], metavar="FROM=TO",
                          help="use registry host TO where a scope names FROM, e.g. a mirror (repeatable)")
    notation.add_argument("--failure-mode", choices=("block", "audit"), default="block",
                          help="the policy's failureMode; 'audit' is needed to import level audit (default %(default)s)")
    notation.add_argument("--skip-as-exemption-until", metavar="TIME", default=None,
                          help="import level skip statements as exemptions that expire at TIME (RFC 3339, e.g. "
                               "2027-01-31T00:00:00Z); without it, skip is refused")
    notation.add_argument("--output", "-o", type=Path, metavar="FILE", help="write the policy here (default: stdout)")
    notation.add_argument("--force", action="store_true", help="overwrite --output if it exists")


def run_policy_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if args.policy_command == "validate":
        return _validate(args.files, as_json=args.json, out=out, err=err)
    if args.policy_command == "import-notation":
        from .cli_notation_import import import_notation_command
        return import_notation_command(args, out, err)
    return _init(args, out, err)


# -- validate ------------------------------------------------------------------------------------
def _validate(files: list[Path], *, as_json: bool, out: TextIO, err: TextIO) -> int:
    reports = [_check(path) for path in files]
    invalid = [r for r in reports if not r["valid"]]
    if as_json:
        summary: dict[str, Any] = {"files": reports, "exitCode": EXIT_INVALID if invalid else EXIT_VALID}
        if invalid:
            summary["error"] = f"{len(invalid)} of {len(reports)} policy file(s) invalid"
        print(json.dumps(summary, sort_keys=True), file=out)
    else:
        for report in reports:
            _print_report(report, out, err)
    return EXIT_INVALID if invalid else EXIT_VALID


def _check(path: Path) -> dict[str, Any]:
    try:
        policy, errors = check_policy_file(path, environ=os.environ)
    except PolicyError as exc:  # the file is not JSON at all
        policy, errors = None, [exc]
    except OSError as exc:
        return {"file": str(path), "valid": False,
                "errors": [{"path": "", "message": f"cannot read the policy file: {exc.strerror or exc}"}]}
    if policy is None:
        return {"file": str(path), "valid": False,
                "errors": [{"path": e.path, "message": e.message} for e in errors]}
    # Load-time warnings (e.g. a key past its validUntil) where this version of the model has them.
    warnings = [str(w) for w in getattr(policy, "warnings", ())]
    return {"file": str(path), "valid": True, "policyHash": policy.policy_hash, "warnings": warnings,
            "signers": len(policy.trusted_signers), "rules": len(policy.rules), "exemptions": len(policy.exemptions)}


def _print_report(report: dict[str, Any], out: TextIO, err: TextIO) -> None:
    name = report["file"]
    if not report["valid"]:
        count = len(report["errors"])
        print(f"{name}: invalid, {count} error{'s' if count != 1 else ''}", file=err)
        for error in report["errors"]:
            print(f"  {error['path'] + ': ' if error['path'] else ''}{error['message']}", file=err)
        return
    print(f"{name}: valid ({report['signers']} signer(s), {report['rules']} rule(s), "
          f"{report['exemptions']} exemption(s)); policy hash {report['policyHash']}", file=out)
    for warning in report["warnings"]:
        print(f"  warning: {warning}", file=err)


# -- init ----------------------------------------------------------------------------------------
def _init(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    document = _starting_policy(args)
    text = json.dumps(document, indent=2) + "\n"
    if args.output is None:
        out.write(text)
        where = "the policy on stdout"
    else:
        if args.output.exists() and not args.force:
            raise UsageError(f"{args.output} exists; choose another --output or pass --force to overwrite it")
        args.output.write_text(text)
        where = str(args.output)
    pattern = document["rules"][0]["images"][0]
    print(f"# {where}: images matching {pattern} need a cosign signature by the key named "
          f"'{INIT_SIGNER_NAME}'; every other image is rejected.", file=err)
    print("# Next: add rules for other repositories, exemptions (with a reason and an expiry) for images you "
          "cannot sign yet, and set failureMode/unavailableMode to 'audit' while you roll out (docs/policy.md).",
          file=err)
    if args.output is not None:
        print(f"# Check it with: image-verifier policy validate {args.output}", file=err)
    return EXIT_VALID


def _starting_policy(args: argparse.Namespace) -> dict[str, Any]:
    host = args.registry.strip().lower()
    if "://" in host or "/" in host:
        raise UsageError(f"--registry {args.registry!r} must be a host[:port] only, e.g. registry.example.com:5000")
    pattern = f"{host}/{args.repository}"
    try:
        ImagePattern.parse(pattern)
    except ValueError as exc:
        raise UsageError(f"--registry/--repository: {exc}") from exc
    document: dict[str, Any] = {
        "version": "1",
        "failureMode": "block",
        "unavailableMode": "block",
        "trustedSigners": [{"name": INIT_SIGNER_NAME, "cosignKey": _key_body(args)}],
        "rules": [{"name": f"signed-by-{INIT_SIGNER_NAME}", "images": [pattern], "anyOf": [INIT_SIGNER_NAME]}],
    }
    base_dir = args.output.parent if args.output is not None else Path.cwd()
    try:  # what is written must pass `policy validate`
        Policy.from_json(inline_policy_files(document, base_dir=base_dir))
    except PolicyError as exc:
        raise UsageError(f"the policy would be invalid: {exc}") from exc
    return document


def _key_body(args: argparse.Namespace) -> dict[str, str]:
    if args.kms_key:
        return {"kmsKeyArn": args.kms_key}
    try:
        pem = args.public_key.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--public-key {args.public_key}: cannot read a PEM public key: {exc}") from exc
    try:
        validate_cosign_public_key(pem)
    except ValueError as exc:
        raise UsageError(f"--public-key {args.public_key}: {exc}") from exc
    if args.output is None:
        return {"publicKeyPem": pem}  # stdout may be redirected anywhere: a relative path could point nowhere
    relative = os.path.relpath(args.public_key.resolve(), args.output.resolve().parent)
    return {"publicKeyPemFile": Path(relative).as_posix()}
