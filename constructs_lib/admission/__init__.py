"""The admission side: a Lambda lifecycle hook that refuses ECS deployments of unsigned images.

    from constructs_lib.admission import AdmissionController, RequireImageAdmission

    admission = AdmissionController(stack, "Admission", signing_keys=[key], repositories=[repo])
    admission.protect(service)
    Aspects.of(stack).add(RequireImageAdmission())
"""

from __future__ import annotations

from ._policy import AdmissionExemption
from .aspect import RequireImageAdmission
from .controller import AdmissionController, AdmissionMode
from .keyless import KeylessIdentity

__all__ = ["AdmissionController", "AdmissionExemption", "AdmissionMode", "KeylessIdentity", "RequireImageAdmission"]
