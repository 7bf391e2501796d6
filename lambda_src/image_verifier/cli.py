"""The command line: `verify` images against a policy, and `sign` images in cosign's legacy format.

Exit codes of `verify`: 0 every image admitted, 1 an image rejected, 2 usage or policy error,
3 an image unavailable (registry or AWS unreachable). Nothing ever ends in a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
from pathlib import Path
from typing import Sequence, TextIO

from .deadline import Deadline
from .errors import ImageVerifierError, PolicyError, UnavailableError
from .platform import Platform
from .policy import Policy
from .verdict import Decision, Verdict

EXIT_ADMITTED, EXIT_REJECTED, EXIT_USAGE, EXIT_UNAVAILABLE = 0, 1, 2, 3
DEFAULT_TIMEOUT_SECONDS = 60.0
KEY_PASSWORD_ENV = "IMAGE_VERIFIER_KEY_PASSWORD"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse exits 2 with usage, which is our contract too
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _seconds(text: str) -> float:
    """A timeout: a positive, finite number of seconds (nan would disable every deadline check)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m image_verifier", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    verify = commands.add_parser("verify", help="verify images against a policy")
    verify.add_argument("--policy", required=True, type=Path, help="the policy JSON file")
    verify.add_argument("--insecure-registry", action="append", default=[], metavar="HOST:PORT",
                        help="a registry that may be reached over plain http (repeatable)")
    verify.add_argument("--platform", type=Platform.parse, default=None,
                        help="verify the manifest for this platform of a multi-arch index too, e.g. linux/arm64")
    verify.add_argument("--timeout", type=_seconds, default=DEFAULT_TIMEOUT_SECONDS,
                        help="seconds for the whole decision (default %(default)s)")
    verify.add_argument("--json", action="store_true", help="print one JSON object per image")
    verify.add_argument("images", nargs="+", metavar="IMAGE")

    sign = commands.add_parser("sign", help="sign an image (cosign legacy format, tag sha256-<hex>.sig)")
    source = sign.add_mutually_exclusive_group(required=True)
    source.add_argument("--kms-key", metavar="ARN", help="an asymmetric KMS key ARN (kms:Sign, MessageType=DIGEST)")
    source.add_argument("--key", type=Path, metavar="PRIVATE.pem",
                        help=f"a local ECDSA private key (password from ${KEY_PASSWORD_ENV} if encrypted)")
    sign.add_argument("--annotation", "-a", action="append", default=[], metavar="K=V",
                      help="a signed annotation (repeatable)")
    sign.add_argument("--insecure-registry", action="append", default=[], metavar="HOST:PORT")
    sign.add_argument("--timeout", type=_seconds, default=DEFAULT_TIMEOUT_SECONDS)
    sign.add_argument("image", metavar="IMAGE@DIGEST")

    review = commands.add_parser("review", help="write the security reviewer's report of a synthesized cdk.out/")
    review.add_argument("cdk_out", type=Path, metavar="CDK_OUT_DIR")
    review.add_argument("-o", "--output", type=Path, default=None, metavar="REPORT.md",
                        help="where to write the Markdown report (default: CDK_OUT_DIR/review.md)")
    return parser


def main(argv: Sequence[str] | None = None, *, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    out, err = stdout or sys.stdout, stderr or sys.stderr
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):  # argparse prints to sys.*
            args = _parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    if args.command == "review":  # reads only cdk.out/; reports its own errors (exit 2), never a traceback
        from . import review
        return review.main(args, stdout=out, stderr=err)
    try:
        if args.command == "verify":
            return _verify(args, out, err)
        return _sign(args, out, err)
    except PolicyError as exc:
        print(f"error: invalid policy {args.policy}: {exc}", file=err)
        return EXIT_USAGE
    except UnavailableError as exc:
        print(f"error: unavailable: {exc}", file=err)
        return EXIT_UNAVAILABLE
    except (ImageVerifierError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=err)
        return EXIT_USAGE
    except Exception as exc:  # noqa: BLE001 - the contract is "never a traceback"
        print(f"error: unexpected {type(exc).__name__}: {exc}", file=err)
        return EXIT_USAGE


def _verify(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .composition import build_verifier
    from .verifier import ImageRequest

    try:
        raw = args.policy.read_bytes()
    except OSError as exc:
        print(f"error: cannot read the policy: {exc}", file=err)
        return EXIT_USAGE
    policy = Policy.from_json(raw, environ=os.environ)
    verifier = build_verifier(policy, insecure_registries=args.insecure_registry)
    requests = [ImageRequest(image=image, platform=args.platform) for image in args.images]
    decision = verifier.decide(requests, deadline=Deadline.after(args.timeout))
    for verdict in decision.verdicts:
        if args.json:
            print(json.dumps(verdict.to_json(), sort_keys=True), file=out)
        else:
            print(_human(verdict), file=out)
    return exit_code(decision)


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
            print(f"error: --annotation {item!r} must be KEY=VALUE", file=err)
            return EXIT_USAGE
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
