"""Synth-time coverage check: every image a protected service runs must be covered by the policy.

An image that no rule and no exemption covers is rejected before any network call, so every
deployment of the service would roll back. The check reads each container of the service's task
definition (sidecars, init containers and ``ContainerImage.from_asset`` images included) and judges
it with the runtime's own matching (``Policy.rule_for`` / the exemptions' patterns):

- a literal image (``nginx:1.25``, ``public.ecr.aws/...``), or one that becomes literal once the
  stack's own pseudo parameters are filled in (an imported repository, a ``from_asset`` image in
  the CDK bootstrap repository of a stack with a concrete environment), is matched by name;
- an image built from a repository construct is covered when the controller covers that
  repository; a repository the app knows but the controller does not cover is an error;
- any other deploy-time value cannot be judged: a warning names it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aws_cdk import Annotations, Stack, Token
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_ecs as ecs
from constructs import IConstruct

from image_verifier.policy import Policy
from image_verifier.reference import ImageReference

from .._tree import find_in_app

WARNING_ID = "signed-images:AdmissionImageUnknown"
BOOTSTRAP_REPOSITORY_MARK = "container-assets"  # DefaultStackSynthesizer: cdk-<qualifier>-container-assets-<account>-<region>


@dataclass(frozen=True, kw_only=True)
class Coverage:
    """What the controller's policy covers: its validated model and the repository constructs it names."""

    policy: Policy
    repositories: tuple[ecr.IRepository, ...]
    controller_path: str


def containers_of(service: ecs.BaseService) -> list[ecs.ContainerDefinition]:
    """Every container of the service's task definition, in the order they were added."""
    return [c for c in service.task_definition.node.find_all() if isinstance(c, ecs.ContainerDefinition)]


def check_service(service: ecs.BaseService, coverage: Coverage, *, now: datetime | None = None) -> list[str]:
    """Synth errors for the service's uncovered images (warnings for images only known at deploy time)."""
    now = now or datetime.now(UTC)
    errors: list[str] = []
    unknown: list[str] = []
    for container in containers_of(service):
        image = container.image_name
        literal = render_image(service, image)
        if literal is not None:
            problem = _judge_name(literal, coverage, now)
            if problem:
                errors.append(_uncovered(service, container, literal, problem, coverage))
            continue
        if any(_names_repository(image, repo) for repo in coverage.repositories):
            continue
        known = [r for r in find_in_app(service, ecr.RepositoryBase) if _names_repository(image, r)]
        if known:
            errors.append(_uncovered(service, container, f"an image of repository {known[0].node.path}",
                                     "the controller does not cover that repository", coverage,
                                     fix="add that repository to the controller's repositories (or supply_chains)"))
        else:
            unknown.append(f"{container.container_name} ({json.dumps(Stack.of(service).resolve(image))})")
    if unknown:
        Annotations.of(service).add_warning_v2(
            WARNING_ID,
            f"cannot check at synth that admission controller {coverage.controller_path} covers the images of "
            f"containers {', '.join(unknown)}: they are only known at deploy time; an image no rule covers is "
            "rejected at every deployment",
        )
    return errors


def render_image(scope: IConstruct, image: str) -> str | None:
    """The image as a literal string, filling in the stack's own pseudo parameters; None if it stays a token."""
    if not Token.is_unresolved(image):
        return image
    stack = Stack.of(scope)
    pseudo = {"AWS::URLSuffix": _url_suffix(stack.region)}
    for name, value in (("AWS::AccountId", stack.account), ("AWS::Region", stack.region),
                        ("AWS::Partition", stack.partition)):
        if not Token.is_unresolved(value):
            pseudo[name] = value
    if pseudo["AWS::URLSuffix"] is None:
        del pseudo["AWS::URLSuffix"]
    return _render(stack.resolve(image), pseudo)


def _render(value: Any, pseudo: dict[str, str]) -> str | None:
    if isinstance(value, str):
        return value
    if not isinstance(value, dict) or len(value) != 1:
        return None
    (kind, body), = value.items()
    if kind == "Ref":
        return pseudo.get(body)
    if kind == "Fn::Join" and isinstance(body, list) and len(body) == 2:
        parts = [_render(p, pseudo) for p in body[1]]
        return None if any(p is None for p in parts) else body[0].join(parts)  # type: ignore[arg-type]
    if kind == "Fn::Sub" and isinstance(body, str):
        text = body
        for name, replacement in pseudo.items():
            text = text.replace("${" + name + "}", replacement)
        return None if "${" in text else text
    return None


def _url_suffix(region: str) -> str | None:
    if Token.is_unresolved(region):
        return None
    return "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"


def _names_repository(image: str, repository: ecr.IRepository) -> bool:
    """Whether the image string was built from this repository's name (a token, or a literal path)."""
    name = repository.repository_name
    if Token.is_unresolved(name):
        return name in image
    return False  # a literal name makes the image literal too: judged by name


def _judge_name(image: str, coverage: Coverage, now: datetime) -> str | None:
    """None when a rule or a live exemption covers the image; else why not."""
    try:
        name = ImageReference.parse(image).name
    except ValueError as exc:
        return f"it is not a valid image reference ({exc})"
    if coverage.policy.rule_for(name) is not None:
        return None
    matching = [e for e in coverage.policy.exemptions if any(p.matches(name) for p in e.images)]
    if any(now < e.expires for e in matching):
        return None
    if matching:
        return f"its exemption expired on {max(e.expires for e in matching).isoformat()}"
    return f"no rule or exemption matches {name}"


def _uncovered(service: ecs.BaseService, container: ecs.ContainerDefinition, image: str, problem: str,
               coverage: Coverage, *, fix: str | None = None) -> str:
    if fix is None:
        try:
            name = ImageReference.parse(image).name
        except ValueError:
            name = image
        if BOOTSTRAP_REPOSITORY_MARK in name:
            fix = (f"ContainerImage.from_asset pushes to the CDK bootstrap repository, which the policy does not "
                   f"cover: push the image to a repository of the supply chain and use from_ecr_repository, or add "
                   f"image_patterns=['{name}'] and sign that repository (a signing rule for it)")
        else:
            fix = (f"add its repository to repositories (or supply_chains), an image pattern (image_patterns="
                   f"['{name}']), or an exemption with an expiry (exemptions=[AdmissionExemption(images=['{name}'], "
                   "reason=..., expires=...)])")
    return (f"container '{container.container_name}' of ECS service {service.node.path} runs {image}, which "
            f"admission controller {coverage.controller_path} would reject at every deployment: {problem}; {fix}")
