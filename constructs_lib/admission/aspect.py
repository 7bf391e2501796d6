"""`RequireImageAdmission`: an aspect that fails synth for every ECS service no controller protects."""

from __future__ import annotations

import jsii
from aws_cdk import IAspect
from aws_cdk import aws_ecs as ecs
from constructs import IConstruct

from .._tree import add_validation, find_in_app
from .controller import AdmissionController


@jsii.implements(IAspect)
class RequireImageAdmission:
    """Every ECS service in the scope must be protected (by ``controller``, or by any controller).

    ``Aspects.of(stack).add(RequireImageAdmission())``: each unprotected service becomes a synth
    error naming it and the fix. L1 ``CfnService`` resources without an L2 service cannot be
    protected by :meth:`AdmissionController.protect` and are reported too.
    """

    def __init__(self, *, controller: AdmissionController | None = None) -> None:
        self._controller = controller
        self._seen: set[str] = set()

    def visit(self, node: IConstruct) -> None:
        if isinstance(node, ecs.BaseService):
            target = node
        elif isinstance(node, ecs.CfnService) and not isinstance(node.node.scope, ecs.BaseService):
            target = node
        else:
            return
        path = target.node.path
        if path in self._seen:
            return
        self._seen.add(path)
        add_validation(target, lambda: self._check(target))

    def _check(self, service: IConstruct) -> list[str]:
        if isinstance(service, ecs.BaseService):
            controllers = [self._controller] if self._controller else find_in_app(service, AdmissionController)
            if any(c.is_protecting(service) for c in controllers):
                return []
            by = f" by {self._controller.node.path}" if self._controller else ""
            return [f"ECS service {service.node.path} is not protected{by} by an image admission controller; "
                    "call AdmissionController.protect(service) (or remove RequireImageAdmission from its scope)"]
        return [f"ECS service {service.node.path} is an L1 CfnService, which AdmissionController.protect() cannot "
                "wire; define it with ecs.FargateService / ecs.Ec2Service and protect it"]
