"""The command line: `verify` images against a policy, `sign` images in cosign's legacy format, and
check or start a policy (`policy validate`, `policy init`).

Exit codes: 0 every image admitted, 1 an image rejected, 2 usage or policy error, 3 an image
unavailable (registry or AWS unreachable). Nothing ever ends in a traceback; with `--json`, an
error is one JSON object `{"error": ..., "exitCode": ...}` on stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from .cli_break_glass import add_break_glass_commands
from .cli_hints import plain_http_hint, program_name, program_version
from .cli_policy import UsageError, add_policy_commands, run_policy_command
from .deadline import Deadline
from .errors import ImageVerifierError, PolicyError, UnavailableError
from .platform import Platform
from .verdict import Decision, Outcome, Verdict

EXIT_ADMITTED, EXIT_REJECTED, EXIT_USAGE, EXIT_UNAVAILABLE = 0, 1, 2, 3
DEFAULT_TIMEOUT_SECONDS = 60.0
KEY_PASSWORD_ENV = "IMAGE_VERIFIER_KEY_PASSWORD"
EXIT_CODES_EPILOG = """exit codes:
  0  success: every image admitted (verified, exempt, or let through by an audit mode), signed, or valid
  1  rejected: an image has no valid signature from a trusted signer (failureMode block)
  2  usage or policy error: the message names the bad argument or policy field
  3  unavailable: a registry or AWS did not answer in time (unavailableMode block)"""


class _ArgumentError(Exception):
    """argparse refused the command line; `parser` is the (sub)command whose usage applies."""

    def __init__(self, parser: argparse.ArgumentParser, message: str) -> None:
        super().__init__(message)
        self.parser = parser


class _HelpFormatter(argparse.HelpFormatter):
    """Wraps one-paragraph descriptions; keeps text that has its own lines (the exit code table)."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        kwargs.setdefault("epilog", EXIT_CODES_EPILOG)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        # Raised, not printed: main() reports it as usage + message, or as JSON under --json.
        raise _ArgumentError(self, message)


class _VersionAction(argparse.Action):
    """`--version`, reading the distribution's metadata only when asked (every start paid for it)."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, help: str | None = None) -> None:  # noqa: A002
        super().__init__(option_strings=option_strings, dest=dest, default=argparse.SUPPRESS, nargs=0, help=help)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        print(f"{parser.prog} {program_version()}")  # stdout, as argparse's own version action
        parser.exit()


def _seconds(text: str) -> float:
    """A timeout: a positive, finite number of seconds (nan would disable every deadline check)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _platform(text: str) -> Platform:
    try:
        return Platform.parse(text)
    except ValueError as exc:  # argparse would only say "invalid parse value"
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = _Parser(prog=prog, description="Verify container images against a signature policy (the verifier the "
                                            "admission Lambda runs), sign images in cosign's format, and check or "
                                            "start a policy.")
    parser.add_argument("--version", action=_VersionAction, help="print the version of signed-images-cdk and exit")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")

    verify = commands.add_parser("verify", help="verify images against a policy",
                                 description="Verify each image's signatures against the policy, by digest.")
    verify.add_argument("--policy", required=True, type=Path, metavar="POLICY.json",
                        help="the policy file (key and certificate files it names are read relative to it)")
    verify.add_argument("--insecure-registry", action="append", default=[], metavar="HOST:PORT",
                        help="a registry that may be reached over plain http (repeatable)")
    verify.add_argument("--platform", type=_platform, default=None, metavar="OS/ARCH[/VARIANT]",
                        help="verify the manifest for this platform of a multi-arch index too, e.g. linux/arm64")
    verify.add_argument("--timeout", type=_seconds, default=DEFAULT_TIMEOUT_SECONDS, metavar="SECONDS",
                        help="seconds for the whole decision; a registry slower than that makes the image "
                             "unavailable (default %(default)s)")
    verify.add_argument("--json", action="store_true",
                        help="print one JSON object per image (and errors as one JSON object)")
    verify.add_argument("images", nargs="+", metavar="IMAGE", help="an image reference, by tag or digest")

    sign = commands.add_parser("sign", help="sign an image (cosign legacy format, tag sha256-<hex>.sig)",
                               description="Write a cosign-compatible signature for an image given by digest.")
    source = sign.add_mutually_exclusive_group(required=True)
    source.add_argument("--kms-key", metavar="ARN", help="an asymmetric KMS key ARN (kms:Sign, MessageType=DIGEST)")
    source.add_argument("--key", type=Path, metavar="PRIVATE.pem",
                        help=f"a local ECDSA private key (password from ${KEY_PASSWORD_ENV} if encrypted)")
    sign.add_argument("--annotation", "-a", action="append", default=[], metavar="K=V",
                      help="a signed annotation (repeatable)")
    sign.add_argument("--insecure-registry", action="append", default=[], metavar="HOST:PORT",
                      help="a registry that may be reached over plain http (repeatable)")
    sign.add_argument("--timeout", type=_seconds, default=DEFAULT_TIMEOUT_SECONDS, metavar="SECONDS",
                      help="seconds for reading the image and pushing the signature (default %(default)s)")
    sign.add_argument("image", metavar="IMAGE@DIGEST", help="the image to sign, by digest")

    add_policy_commands(commands, _Parser)
    add_break_glass_commands(commands, _Parser)

    review = commands.add_parser("review", help="write the security reviewer's report of a synthesized cdk.out/")
    review.add_argument("cdk_out", type=Path, metavar="CDK_OUT_DIR", help="the cdk.out/ directory of `cdk synth`")
    review.add_argument("-o", "--output", type=Path, default=None, metavar="REPORT.md",
                        help="where to write the Markdown report (default: CDK_OUT_DIR/review.md)")

    from .cli_inventory import add_inventory_command  # the deployable inventory (issue 14)
    add_inventory_command(commands, _Parser)
    return parser


def main(argv: Sequence[str] | None = None, *, stdout: TextIO | None = None, stderr: TextIO | None = None,
         prog: str | None = None) -> int:
    """Run one command; `prog` is the name help and errors show (default: from how we were started)."""
    out, err = stdout or sys.stdout, stderr or sys.stderr
    arguments = list(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in arguments[: arguments.index("--")] if "--" in arguments else "--json" in arguments
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):  # argparse prints to sys.*
            args = _parser(prog or program_name()).parse_args(arguments)
    except SystemExit as exc:  # --help, --version
        return int(exc.code or 0)
    except _ArgumentError as exc:
        if not as_json:
            exc.parser.print_usage(err)
        return _report(f"{exc.parser.prog}: error: {exc}", EXIT_USAGE, as_json=as_json, out=out, err=err, prefix="")
    if args.command == "break-glass":  # reports its own errors (1 refused, 2 usage, 3 unreachable)
        from . import cli_break_glass
        return cli_break_glass.main(args, stdout=out, stderr=err)
    if args.command == "review":  # reads only cdk.out/; reports its own errors (exit 2), never a traceback
        from . import review
        return review.main(args, stdout=out, stderr=err)
    try:
        if args.command == "verify":
            return _verify(args, out, err)
        if args.command == "policy":
            return run_policy_command(args, out, err)
        if args.command == "inventory":
            from .cli_inventory import run_inventory
            return run_inventory(args, out, err)
        return _sign(args, out, err)
    except PolicyError as exc:
        source = getattr(args, "policy", None)
        message = f"invalid policy {source}: {exc}" if source else f"invalid policy: {exc}"
        return _report(message, EXIT_USAGE, as_json=as_json, out=out, err=err)
    except UnavailableError as exc:
        hint = plain_http_hint(str(exc), getattr(args, "image", ""), getattr(args, "insecure_registry", ()))
        message = f"unavailable: {exc}" + (f"\nhint: {hint}" if hint else "")
        return _report(message, EXIT_UNAVAILABLE, as_json=as_json, out=out, err=err)
    except (UsageError, ImageVerifierError, OSError, ValueError) as exc:
        return _report(str(exc), EXIT_USAGE, as_json=as_json, out=out, err=err)
    except Exception as exc:  # noqa: BLE001 - the contract is "never a traceback"
        return _report(f"unexpected {type(exc).__name__}: {exc}", EXIT_USAGE, as_json=as_json, out=out, err=err)


def _report(message: str, code: int, *, as_json: bool, out: TextIO, err: TextIO, prefix: str = "error: ") -> int:
    """An error: `error: ...` on stderr, or under --json one object on stdout (where the results go)."""
    if as_json:
        print(json.dumps({"error": message, "exitCode": code}, sort_keys=True), file=out)
    else:
        print(f"{prefix}{message}", file=err)
    return code


def _verify(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .composition import build_verifier
    from .policy.files import load_policy_file
    from .reference import ImageReference
    from .verifier import ImageRequest

    for image in args.images:  # a malformed reference is the caller's mistake (exit 2), not a rejection
        ImageReference.parse(image)
    try:
        policy = load_policy_file(args.policy, environ=os.environ)
    except OSError as exc:
        raise UsageError(f"cannot read the policy {args.policy}: {exc.strerror or exc}") from exc
    for warning in policy.warnings:  # a weakened signer is a choice that must stay visible
        print(f"warning: {warning}", file=err)
    verifier = build_verifier(policy, insecure_registries=args.insecure_registry)
    requests = [ImageRequest(image=image, platform=args.platform) for image in args.images]
    decision = verifier.decide(requests, deadline=Deadline.after(args.timeout))
    for verdict in decision.verdicts:
        if args.json:
            print(json.dumps(verdict.to_json(), sort_keys=True), file=out)
        else:
            print(_human(verdict), file=out)
        _print_hints(verdict, args.insecure_registry, err)
    return exit_code(decision)


def _print_hints(verdict: Verdict, insecure_registries: Sequence[str], err: TextIO) -> None:
    if verdict.outcome is not Outcome.UNAVAILABLE:
        return
    for reason in verdict.reasons:
        hint = plain_http_hint(reason, verdict.image, insecure_registries)
        if hint:
            print(f"hint: {hint}", file=err)
            return


def exit_code(decision: Decision) -> int:
    if decision.admitted:
        return EXIT_ADMITTED
    if decision.blocked_by_rejection:
        return EXIT_REJECTED
    return EXIT_UNAVAILABLE


def _human(verdict: Verdict) -> str:
    head = f"{verdict.outcome.value.upper():<11} {verdict.image}"
    if verdict.digest and verdict.digest not in verdict.image:
        head += f" ({verdict.digest})"
    lines = [head] + [f"    {reason}" for reason in verdict.reasons]
    lines += [f"    WARNING (logged, not enforced): {warning}" for warning in verdict.warnings]
    for match in verdict.signers:  # what each Notation step did, when any step was not simply enforced
        if any(step.action.value != "enforce" or step.outcome != "passed" for step in match.steps):
            lines.append(f"    signer {match.signer!r} steps: " + ", ".join(step.text() for step in match.steps))
    if verdict.break_glass:
        lines.append("    BREAK-GLASS key used: this deployment must be reviewed")
    return "\n".join(lines)


def _sign(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .composition import AwsClients
    from .cosign.sign import KmsSigner, PemSigner, sign_image
    from .reference import ImageReference
    from .registry import EcrCredentials, RegistryClient

    annotations = {}
    for item in args.annotation:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--annotation {item!r} must be KEY=VALUE")
        annotations[key] = value
    ref = ImageReference.parse(args.image)
    aws = AwsClients()
    if args.kms_key:
        signer = KmsSigner(args.kms_key, aws.for_service("kms"))
    else:
        password = os.environ.get(KEY_PASSWORD_ENV)
        signer = PemSigner(args.key.read_bytes(), password.encode() if password else None)
    client = RegistryClient(insecure_registries=frozenset(args.insecure_registry),
                            ecr_auth=EcrCredentials(aws.for_service("ecr")))
    digest = sign_image(client.bound(Deadline.after(args.timeout)), ref, signer, annotations)
    print(f"signed {ref}: signature manifest {digest}", file=out)
    return EXIT_ADMITTED
