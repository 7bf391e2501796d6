"""`inventory REPOSITORY --last N --policy P`: which recent images of a repository the policy admits today.

One row per digest, newest first (ECR: by `imagePushedAt`; other registries: the tag list's
order, walked from its end, since a tag list has no push time): the outcome, the tags, the push
time where known, and the reasons. `--json` prints one object per row (`digest`, `tags`,
`pushedAt`, `order`, `verdict`: the same verdict JSON as `verify --json`).

Exit codes: 0 the inventory was produced (whatever the verdicts: it is a report, not a gate),
2 usage or policy error, 3 the repository could not be listed.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from .cli_policy import UsageError
from .deadline import Deadline

if TYPE_CHECKING:
    from .inventory import InventoryRow

DEFAULT_TIMEOUT_SECONDS = 120.0
EXIT_CODES_EPILOG = """exit codes:
  0  the inventory was produced, whatever the verdicts (a report, not a gate)
  1  (not used by inventory)
  2  usage or policy error: the message names the bad argument or policy field
  3  the repository could not be listed (registry or ECR unreachable)"""
MAX_LAST = 100  # rows per inventory: each is one verification (inventory.collect_inventory enforces it)


def add_inventory_command(commands: argparse._SubParsersAction, parser_class: type[argparse.ArgumentParser]) -> None:
    inventory = commands.add_parser(
        "inventory", help="list a repository's recent digests with the verdict each gets under the policy",
        description="List the N most recent image digests of a repository and verify each, by digest, under the "
                    "policy: which images can be rolled forward or back to. ECR repositories are listed with "
                    "ecr:DescribeImages by push time; other registries by their tag list, in the registry's order "
                    "(a tag list has no push time).",
        epilog=EXIT_CODES_EPILOG,
    )
    inventory.add_argument("repository", metavar="REPOSITORY", help="registry/repository, without a tag or digest")
    inventory.add_argument("--last", type=int, default=10, metavar="N",
                           help=f"how many digests, newest first (1-{MAX_LAST}, default %(default)s)")
    inventory.add_argument("--policy", required=True, type=Path, metavar="POLICY.json", help="the policy file")
    inventory.add_argument("--insecure-registry", action="append", default=[], metavar="HOST:PORT",
                           help="a registry that may be reached over plain http (repeatable)")
    inventory.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_SECONDS, metavar="SECONDS",
                           help="seconds for listing and verifying everything (default %(default)s)")
    inventory.add_argument("--json", action="store_true", help="print one JSON object per digest")


def run_inventory(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    # Imported here, not at the top: building the parser for another command must stay cheap.
    from .composition import AwsClients, build_verifier
    from .inventory import EcrLister, TagListLister, collect_inventory, parse_repository
    from .policy.files import load_policy_file
    from .registry import EcrCredentials, RegistryClient
    from .registry.auth import parse_ecr_host

    ref = parse_repository(args.repository)
    if not 1 <= args.last <= MAX_LAST:
        raise UsageError(f"--last must be between 1 and {MAX_LAST}, got {args.last}")
    if not 0 < args.timeout < float("inf"):
        raise UsageError(f"--timeout must be a positive number of seconds, got {args.timeout}")
    try:
        policy = load_policy_file(args.policy, environ=os.environ)
    except OSError as exc:
        raise UsageError(f"cannot read the policy {args.policy}: {exc.strerror or exc}") from exc
    for warning in policy.warnings:
        print(f"warning: {warning}", file=err)
    aws = AwsClients()
    registry = RegistryClient(insecure_registries=frozenset(args.insecure_registry),
                              ecr_auth=EcrCredentials(aws.for_service("ecr")))
    ecr = parse_ecr_host(ref.registry)
    lister: Any = (EcrLister(aws.for_service("ecr"), account=ecr.account, region=ecr.region) if ecr
                   else TagListLister(registry))
    verifier = build_verifier(policy, aws=aws, registry=registry)
    rows = collect_inventory(ref, lister=lister, verifier=verifier, last=args.last,
                             deadline=Deadline.after(args.timeout))
    print_inventory(rows, order=lister.order, repository=ref.name, as_json=args.json, out=out, err=err)
    return 0


def print_inventory(rows: list[InventoryRow], *, order: str, repository: str, as_json: bool, out: TextIO,
                    err: TextIO) -> None:
    from .inventory import ORDER_PUSHED_AT

    if as_json:
        for row in rows:
            print(json.dumps({**row.to_json(), "order": order}, sort_keys=True), file=out)
        return
    how = ("newest first by imagePushedAt" if order == ORDER_PUSHED_AT
           else "in the reverse of the registry's tag-list order (no push time is known)")
    print(f"# {repository}: {len(rows)} digest(s), {how}", file=err)
    for row in rows:
        verdict, candidate = row.verdict, row.candidate
        pushed = f"  pushed {candidate.pushed_at.isoformat()}" if candidate.pushed_at else ""
        tags = ", ".join(candidate.tags) or "(untagged)"
        print(f"{verdict.outcome.value.upper():<11} {candidate.digest}  {tags}{pushed}", file=out)
        for reason in verdict.reasons:
            print(f"    {reason}", file=out)
        for warning in verdict.warnings:
            print(f"    WARNING (logged, not enforced): {warning}", file=out)
