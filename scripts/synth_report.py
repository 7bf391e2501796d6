#!/usr/bin/env python3
"""Summarize a synthesized cloud assembly and judge it: cdk-nag (AwsSolutions, v3) and cfn-lint.

Usage: ``python scripts/synth_report.py cdk.out``. For each stack it prints the resource counts by
type, the cdk-nag verdict and the cfn-lint verdict. cdk-nag is re-run here on each *template*
(through ``cloudformation_include``), with the acknowledgements the template carries in its
``Metadata.cdk_nag`` (written by ``write_suppressions_to_cloud_formation``) and those recorded in the
stack's metadata file (``aws:cdk:acknowledged-rules``: what ``Validations.of(x).acknowledge()`` writes,
so acknowledgements this package makes in code count in a user's app that does not write
suppressions to the template), so the verdict rests on the assembly a reviewer reads. Exit status: 0 when every stack is
clean, 1 on an unacknowledged cdk-nag finding, an acknowledgement without a reason, a cfn-lint
error or a failed validation report, 2 on a usage error.
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")


@dataclass
class StackReport:
    """What this script finds about one stack's template."""

    name: str
    template: Path
    environment: str
    resources: Counter[str] = field(default_factory=Counter)
    acknowledged: list[tuple[str, str, str]] = field(default_factory=list)  # (logical id, rule, reason)
    nag_findings: list[str] = field(default_factory=list)
    lint_errors: list[str] = field(default_factory=list)
    lint_warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.nag_findings and not self.lint_errors


def load_stacks(assembly: Path) -> list[StackReport]:
    """The CloudFormation stacks listed in the assembly manifest."""
    manifest = json.loads((assembly / "manifest.json").read_text())
    reports = []
    for name, artifact in manifest.get("artifacts", {}).items():
        if artifact.get("type") != "aws:cloudformation:stack":
            continue
        template = assembly / artifact["properties"]["templateFile"]
        report = StackReport(name=name, template=template, environment=artifact.get("environment", "?"))
        body = json.loads(template.read_text())
        paths: dict[str, str] = {}  # logical id -> construct path
        for logical_id, resource in body.get("Resources", {}).items():
            report.resources[resource["Type"]] += 1
            paths[logical_id] = "/" + str(resource.get("Metadata", {}).get("aws:cdk:path", "")).strip("/")
            for rule in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", []):
                report.acknowledged.append((logical_id, rule.get("id", ""), (rule.get("reason") or "").strip()))
        metadata_file = artifact.get("additionalMetadataFile")
        if metadata_file and (assembly / metadata_file).exists():
            metadata = json.loads((assembly / metadata_file).read_text())
            for construct_path, entries in metadata.items():  # the CLI's path metadata may be off: ids are here too
                for entry in entries:
                    if entry.get("type") == "aws:cdk:logicalId" and entry.get("data") in paths:
                        paths[entry["data"]] = construct_path
            for entry in code_acknowledgements(metadata, paths):
                if entry not in report.acknowledged:
                    report.acknowledged.append(entry)
        reports.append(report)
    return reports


ACKNOWLEDGED_RULES = "aws:cdk:acknowledged-rules"


def code_acknowledgements(metadata: dict[str, list[dict]], paths: dict[str, str]) -> list[tuple[str, str, str]]:
    """(logical id, rule, reason) for each acknowledgement made in code, applied to the resources under its construct.

    An acknowledgement on a construct covers the resources it holds, as cdk-nag applies it at synth.
    """
    found = []
    for construct_path, entries in metadata.items():
        for entry in entries:
            if entry.get("type") != ACKNOWLEDGED_RULES or not isinstance(entry.get("data"), dict):
                continue
            for key, reason in entry["data"].items():
                rule = key.removeprefix("Annotation::")
                for logical_id, path in paths.items():
                    if path == construct_path or path.startswith(construct_path.rstrip("/") + "/"):
                        found.append((logical_id, rule, str(reason or "").strip()))
    return found


def run_cdk_nag(reports: list[StackReport]) -> None:
    """Re-run AwsSolutionsChecks on each template, honouring only acknowledgements that carry a reason."""
    from aws_cdk import Acknowledgment, App, Stack, Validations
    from aws_cdk import cloudformation_include as cfn_include
    from cdk_nag import AwsSolutionsChecks

    for report in reports:
        app = App(analytics_reporting=False)
        stack = Stack(app, report.name)
        included = cfn_include.CfnInclude(stack, "Template", template_file=str(report.template))
        for logical_id, rule, reason in report.acknowledged:
            if not reason:
                report.nag_findings.append(f"{logical_id}: acknowledgement of {rule} has no reason")
                continue
            Validations.of(included.get_resource(logical_id)).acknowledge(Acknowledgment(id=rule, reason=reason))
        result = AwsSolutionsChecks().validate_scope(app)
        for violation in result.violations:
            for resource in violation.violating_resources:
                where = (resource.construct_path or resource.resource_logical_id or "?").split("/")[-1]
                report.nag_findings.append(f"{where}: {violation.rule_name}: {violation.description}")


def run_cfn_lint(reports: list[StackReport]) -> None:
    """cfn-lint each template; errors fail the report, warnings are shown."""
    from cfnlint.api import ManualArgs, lint_file

    for report in reports:
        for match in lint_file(report.template, config=ManualArgs()):
            line = f"{match.rule.id} {match.message} ({report.template.name}:{match.linenumber})"
            (report.lint_errors if match.rule.id.startswith("E") else report.lint_warnings).append(line)


def validation_report_failures(assembly: Path) -> list[str]:
    """Violations that the synth-time validation plugins reported, if the report is present."""
    path = assembly / "validation-report.json"
    if not path.exists():
        return []
    failures = []
    for plugin in json.loads(path.read_text()).get("pluginReports", []):
        for violation in plugin.get("violations", []):
            paths = ", ".join(c.get("constructPath", "?") for c in violation.get("violatingConstructs", []))
            failures.append(f"{plugin.get('pluginName')}: {violation.get('ruleName')} at {paths}")
    return failures


def print_report(reports: list[StackReport], plugin_failures: list[str]) -> None:
    for report in reports:
        total = sum(report.resources.values())
        print(f"stack {report.name} ({report.environment}): {total} resources")
        for kind, count in sorted(report.resources.items()):
            print(f"  {count:3d}  {kind}")
        nag = "clean" if not report.nag_findings else f"{len(report.nag_findings)} unacknowledged finding(s)"
        print(f"  cdk-nag AwsSolutions: {nag}; {len(report.acknowledged)} acknowledgement(s) with reasons")
        for logical_id, rule, reason in report.acknowledged:
            print(f"    acknowledged {rule} on {logical_id}: {reason}")
        for finding in report.nag_findings:
            print(f"    FINDING {finding}")
        lint = "no error" if not report.lint_errors else f"{len(report.lint_errors)} error(s)"
        print(f"  cfn-lint: {lint}, {len(report.lint_warnings)} warning(s)")
        for line in report.lint_errors + report.lint_warnings:
            print(f"    {line}")
    for failure in plugin_failures:
        print(f"validation report: {failure}")


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: synth_report.py CLOUD_ASSEMBLY_DIR", file=sys.stderr)
        return 2
    assembly = Path(argv[1])
    if not (assembly / "manifest.json").exists():
        print(f"{assembly} holds no manifest.json; run `cdk synth` first", file=sys.stderr)
        return 2
    reports = load_stacks(assembly)
    if not reports:
        print(f"{assembly} holds no CloudFormation stack", file=sys.stderr)
        return 1
    run_cfn_lint(reports)
    run_cdk_nag(reports)
    plugin_failures = validation_report_failures(assembly)
    print_report(reports, plugin_failures)
    ok = all(r.ok for r in reports) and not plugin_failures
    print(f"verdict: {'clean' if ok else 'NOT clean'} ({len(reports)} stacks)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
