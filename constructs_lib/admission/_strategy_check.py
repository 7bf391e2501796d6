"""A synth-time check on the synthesized templates: a protected ECS service must deploy BLUE_GREEN.

Why a validation plugin and not a construct validation: the L2 service does not expose its
deployment strategy, and reading the L1 ``deploymentConfiguration`` from Python fails while CDK
still holds an unresolved alarm configuration; the template is where the truth is.

Why refuse ROLLING: ECS documents Lambda lifecycle hooks for blue/green deployments (with or
without a load balancer) and says nothing of them under ROLLING; CloudFormation accepts the hook
there, so a service could look protected while the check never runs. LINEAR and CANARY are
ECS-managed blue/green variants and are accepted.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsii
from aws_cdk import (
    IPolicyValidationPlugin,
    PolicyValidationPluginReport,
    PolicyViolatingResource,
    PolicyViolation,
    Stage,
    Validations,
)
from constructs import IConstruct

METADATA_KEY = "signed-images:admission"  # set on each protected AWS::ECS::Service by protect()
RULE_ID = "SignedImages-AdmissionBlueGreen"
HOOK_STRATEGIES = ("BLUE_GREEN", "LINEAR", "CANARY")
_REGISTERED_ATTR = "_signed_images_admission_strategy_check"


@jsii.implements(IPolicyValidationPlugin)
class AdmissionStrategyCheck:
    @property
    def name(self) -> str:
        return "signed-images-admission"

    @property
    def version(self) -> str:
        return "1.0.0"

    @property
    def rule_ids(self) -> list[str]:
        return [RULE_ID]

    def validate(self, context: object) -> PolicyValidationPluginReport:
        violations = []
        for template_path in context.template_paths:  # type: ignore[attr-defined]
            template = json.loads(Path(template_path).read_text(encoding="utf-8"))
            for logical_id, resource in (template.get("Resources") or {}).items():
                if resource.get("Type") != "AWS::ECS::Service" or METADATA_KEY not in (resource.get("Metadata") or {}):
                    continue
                config = (resource.get("Properties") or {}).get("DeploymentConfiguration") or {}
                strategy = config.get("Strategy") or "ROLLING"
                if strategy in HOOK_STRATEGIES:
                    continue
                path = (resource.get("Metadata") or {}).get("aws:cdk:path", logical_id)
                violations.append(PolicyViolation(
                    rule_name=RULE_ID,
                    description=(f"ECS service {path} is protected by an image admission hook but deploys with "
                                 f"{strategy}; ECS documents Lambda lifecycle hooks for blue/green deployments, so "
                                 "the image check might never run"),
                    fix="set deployment_strategy=ecs.DeploymentStrategy.BLUE_GREEN (no load balancer is needed)",
                    violating_resources=[PolicyViolatingResource(
                        resource_logical_id=logical_id, template_path=template_path,
                        locations=["Properties/DeploymentConfiguration/Strategy"])],
                ))
        return PolicyValidationPluginReport(success=not violations, violations=violations)


def register(scope: IConstruct) -> None:
    """Add the check once to the stage (or app) that holds ``scope``."""
    stage = Stage.of(scope) or scope.node.root
    if not getattr(stage, _REGISTERED_ATTR, False):
        Validations.of(stage).add_plugins(AdmissionStrategyCheck())
        setattr(stage, _REGISTERED_ATTR, True)
