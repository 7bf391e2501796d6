"""ECS services: which ones a lifecycle hook sends to an admission function, at which stages, and which not.

A service is protected when ``DeploymentConfiguration.LifecycleHooks`` has a hook whose target is an
admission function of the assembly (one that carries an admission policy). A hook to a Lambda outside
the assembly cannot be judged and is reported as such. Services that use another deployment
controller (CODE_DEPLOY, EXTERNAL) get no ECS lifecycle hooks at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .assembly import Assembly
from .iam import describe_resource
from .values import Resolver, ResourceRef

SERVICE_TYPES = ("AWS::ECS::Service",)


@dataclass(frozen=True, kw_only=True)
class Hook:
    target_label: str
    admission: ResourceRef | None  # the admission function, when the hook targets one
    stages: tuple[str, ...]
    target_type: str


@dataclass(frozen=True, kw_only=True)
class Service:
    ref: ResourceRef
    label: str
    cluster: str
    strategy: str
    controller: str
    images: tuple[str, ...]
    hooks: tuple[Hook, ...]

    @property
    def admission_hooks(self) -> tuple[Hook, ...]:
        return tuple(h for h in self.hooks if h.admission is not None)

    @property
    def protected(self) -> bool:
        return bool(self.admission_hooks)

    @property
    def stages(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s for h in self.admission_hooks for s in h.stages))


def read_services(assembly: Assembly, resolver: Resolver, admission_functions: set[tuple[str, str]]) -> list[Service]:
    services = []
    for stack in assembly.stacks:
        for logical_id, resource in stack.resources_of(*SERVICE_TYPES):
            ref = ResourceRef(stack=stack, logical_id=logical_id)
            props = ref.properties
            deployment = props.get("DeploymentConfiguration") or {}
            hooks = tuple(_hook(resolver, ref, raw, admission_functions)
                          for raw in deployment.get("LifecycleHooks") or [] if isinstance(raw, dict))
            cluster = resolver.target(stack, props.get("Cluster"))
            services.append(Service(
                ref=ref, label=describe_resource(resolver, ref),
                cluster=describe_resource(resolver, cluster) if cluster else resolver.text(stack, props.get("Cluster", "default")),
                strategy=resolver.text(stack, deployment.get("Strategy", "ROLLING")),
                controller=resolver.text(stack, (props.get("DeploymentController") or {}).get("Type", "ECS")),
                images=_images(resolver, ref, props.get("TaskDefinition")),
                hooks=hooks,
            ))
    return services


def _hook(resolver: Resolver, service: ResourceRef, raw: dict[str, Any], admission: set[tuple[str, str]]) -> Hook:
    target = _function(resolver, service, raw.get("HookTargetArn"))
    stages = tuple(resolver.text(service.stack, s) for s in raw.get("LifecycleStages") or [])
    target_type = resolver.text(service.stack, raw.get("TargetType", "AWS_LAMBDA"))
    if target is None:
        label = "a pause hook" if target_type == "PAUSE" else (
            f"`{resolver.text(service.stack, raw.get('HookTargetArn'))}` (not in this assembly: cannot tell what it checks)")
    else:
        label = describe_resource(resolver, target)
    return Hook(target_label=label, admission=target if target is not None and target.key in admission else None,
                stages=stages, target_type=target_type)


def _function(resolver: Resolver, stack_owner: ResourceRef, value: Any) -> ResourceRef | None:
    """The Lambda function a hook calls, through an alias or version when there is one."""
    target = resolver.target(stack_owner.stack, value)
    for _ in range(3):
        if target is None or target.type == "AWS::Lambda::Function":
            return target
        if target.type in ("AWS::Lambda::Alias", "AWS::Lambda::Version"):
            target = resolver.target(target.stack, target.properties.get("FunctionName"))
        else:
            return None
    return None


def _images(resolver: Resolver, service: ResourceRef, task_definition: Any) -> tuple[str, ...]:
    task = resolver.target(service.stack, task_definition)
    if task is None or task.type != "AWS::ECS::TaskDefinition":
        return ()
    containers = task.properties.get("ContainerDefinitions") or []
    return tuple(f"{resolver.text(task.stack, c.get('Name', '?'))}: {resolver.text(task.stack, c.get('Image', '?'))}"
                 for c in containers if isinstance(c, dict))
