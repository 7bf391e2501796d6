"""cdk-nag acknowledgements with their reasons, wherever a synth put them.

Two places, and an app may use both:

- written to the template: ``Metadata.cdk_nag.rules_to_suppress[{id, reason}]`` on a resource
  (cdk-nag's ``write_suppressions_to_cloud_formation``, or ``NagSuppressions`` of cdk-nag v2);
- applied in code with cdk-nag v3's ``Validations.of(construct).acknowledge(...)``: CDK records these
  in the stack's metadata (``<stack>.metadata.json``, or the manifest's inline ``metadata``) as an
  ``aws:cdk:acknowledged-rules`` entry at the construct path: ``{"Annotation::<rule>": reason}``.

The same acknowledgement found in both places is one row. Validation reports
(``validation-report.json``) list what the plugins still found unacknowledged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .assembly import Assembly, read_json

ACKNOWLEDGED_RULES = "aws:cdk:acknowledged-rules"
_PREFIXES = ("Annotation::",)


@dataclass(frozen=True, kw_only=True)
class Acknowledgement:
    stack: str
    resource: str  # logical id, or the construct path when no logical id is recorded
    rule: str
    reason: str
    where: tuple[str, ...]  # "template", "code"


def read_acknowledgements(assembly: Assembly) -> list[Acknowledgement]:
    found: dict[tuple[str, str, str, str], set[str]] = {}
    for stack in assembly.stacks:
        for logical_id, resource in stack.resources.items():
            metadata = resource.get("Metadata") if isinstance(resource, dict) else None
            nag = metadata.get("cdk_nag") if isinstance(metadata, dict) else None
            for rule in (nag or {}).get("rules_to_suppress") or [] if isinstance(nag, dict) else []:
                if isinstance(rule, dict):
                    key = (stack.name, logical_id, str(rule.get("id", "?")), str(rule.get("reason") or "").strip())
                    found.setdefault(key, set()).add("template")
        for path, entries in stack.metadata.items():
            for entry in entries:
                data = entry.get("data")
                if entry.get("type") != ACKNOWLEDGED_RULES or not isinstance(data, dict):
                    continue
                resource = stack.logical_id_of_path(path) or path
                for rule, reason in data.items():
                    key = (stack.name, resource, _rule_id(rule), str(reason or "").strip())
                    found.setdefault(key, set()).add("code")
    return [Acknowledgement(stack=s, resource=r, rule=rule, reason=reason, where=tuple(sorted(where, reverse=True)))
            for (s, r, rule, reason), where in found.items()]


def _rule_id(key: str) -> str:
    for prefix in _PREFIXES:
        if key.startswith(prefix):
            return key[len(prefix):]
    return key


def unacknowledged_findings(assembly: Assembly) -> list[str]:
    """What the validation plugins reported at synth (empty when every finding was acknowledged)."""
    findings = []
    for path in assembly.validation_reports:
        report: Any = read_json(path)
        for plugin in (report.get("pluginReports") or []) if isinstance(report, dict) else []:
            for violation in plugin.get("violations") or []:
                where = ", ".join(c.get("constructPath", "?") for c in violation.get("violatingConstructs") or [])
                findings.append(f"{plugin.get('pluginName', '?')}: {violation.get('ruleName', '?')} at {where}")
    return findings
