"""The break-glass signing Lambda: sign one approved digest with the break-glass KMS key, in cosign format.

Handler setting: ``image_verifier.break_glass.signer.lambda_handler``. The state machine invokes
it after the approval step with ``{"state": ..., "executionArn": ...}``. Before it signs, it judges
the approvals again from scratch and checks them against the execution's own history, so a direct
invocation with a made-up state signs nothing. It signs with the runtime's ``sign_image`` (the
``sign`` command's code): the same ``sha256-<hex>.sig`` signature a CI pipeline writes, with the
request id and ticket as signed annotations.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..cosign.sign import KmsSigner, RegistryWriter, sign_image
from ..reference import ImageReference
from .approval import ApprovalError, ApprovalState
from .audit import audit_record, stdout_writer
from .execution import last_decision

KEY_ARN_ENV = "BREAK_GLASS_KEY_ARN"
APPROVERS_ENV = "BREAK_GLASS_APPROVER_ARNS"  # JSON list of role/user ARNs
STATE_MACHINE_ENV = "BREAK_GLASS_STATE_MACHINE_ARN"
INSECURE_REGISTRIES_ENV = "BREAK_GLASS_INSECURE_REGISTRIES"  # tests only: comma-separated host:port
SIGN_TIMEOUT_ENV = "BREAK_GLASS_SIGN_TIMEOUT_SECONDS"
DEFAULT_SIGN_TIMEOUT_SECONDS = 60.0
REQUEST_ANNOTATION = "dev.signed-images/break-glass-request"
TICKET_ANNOTATION = "dev.signed-images/break-glass-ticket"


@dataclass(frozen=True, kw_only=True)
class SignerSettings:
    key_arn: str
    approvers: tuple[str, ...]
    state_machine_arn: str
    insecure_registries: frozenset[str] = frozenset()
    sign_timeout_seconds: float = DEFAULT_SIGN_TIMEOUT_SECONDS

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SignerSettings:
        env = os.environ if environ is None else environ
        missing = [n for n in (KEY_ARN_ENV, APPROVERS_ENV, STATE_MACHINE_ENV) if not env.get(n)]
        if missing:
            raise ValueError(f"the break-glass signer needs {', '.join(missing)} in its environment "
                             "(BreakGlassSigning sets them)")
        approvers = json.loads(env[APPROVERS_ENV])
        if not isinstance(approvers, list) or not approvers or not all(isinstance(a, str) for a in approvers):
            raise ValueError(f"{APPROVERS_ENV} must be a JSON list of role or user ARNs, got {env[APPROVERS_ENV]!r}")
        return cls(key_arn=env[KEY_ARN_ENV], approvers=tuple(approvers), state_machine_arn=env[STATE_MACHINE_ENV],
                   insecure_registries=frozenset(h.strip() for h in env.get(INSECURE_REGISTRIES_ENV, "").split(",")
                                                 if h.strip()),
                   sign_timeout_seconds=float(env.get(SIGN_TIMEOUT_ENV) or DEFAULT_SIGN_TIMEOUT_SECONDS))


@dataclass(frozen=True, kw_only=True)
class BreakGlassSigner:
    """Signs approved requests; clients are injected (the composition root is :func:`build_signer`)."""

    settings: SignerSettings
    kms_client_for_region: Callable[[str], Any]
    states: Any
    registry: Callable[[], RegistryWriter]  # a registry client bound to a fresh deadline per request
    write: Callable[[dict[str, Any]], None]

    def handle(self, event: Mapping[str, Any]) -> dict[str, Any]:
        state = None
        try:
            state = ApprovalState.from_json(event["state"])
            state.check_approved(self.settings.approvers)
            recorded = last_decision(self.states, str(event["executionArn"]), self.settings.state_machine_arn)
            if recorded != event["state"]:
                raise ApprovalError(f"the state to sign differs from execution {event['executionArn']}'s last "
                                    "approval; nothing was signed")
            ref = ImageReference.parse(state.request.image)
            signer = KmsSigner(self.settings.key_arn, self.kms_client_for_region)
            annotations = {REQUEST_ANNOTATION: state.request.request_id, TICKET_ANNOTATION: state.request.ticket}
            signature = sign_image(self.registry(), ref, signer, annotations)
        except Exception as exc:
            self.write(audit_record("signingFailed", state, error=f"{type(exc).__name__}: {exc}",
                                    executionArn=event.get("executionArn") if isinstance(event, Mapping) else None))
            raise
        self.write(audit_record("signed", state, keyArn=self.settings.key_arn, signatureManifest=signature,
                                executionArn=event["executionArn"], signedAt=int(time.time())))
        return {"image": state.request.image, "signatureManifest": signature, "keyArn": self.settings.key_arn,
                "annotations": annotations}


def build_signer(environ: Mapping[str, str] | None = None, *, aws: Any = None) -> BreakGlassSigner:
    """The composition root: settings, boto3 clients and the registry client, built once per warm function."""
    from ..composition import AwsClients
    from ..deadline import Deadline
    from ..registry import EcrCredentials, RegistryClient

    settings = SignerSettings.from_env(environ)
    aws = aws or AwsClients()
    region = settings.state_machine_arn.split(":")[3]
    client = RegistryClient(insecure_registries=settings.insecure_registries,
                            ecr_auth=EcrCredentials(aws.for_service("ecr")))
    return BreakGlassSigner(settings=settings, kms_client_for_region=aws.for_service("kms"),
                            states=aws.client("stepfunctions", region),
                            registry=lambda: client.bound(Deadline.after(settings.sign_timeout_seconds)),
                            write=stdout_writer())


_lock = threading.Lock()
_signer: BreakGlassSigner | None = None


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    """Sign or raise: a raised error fails the task, and the state machine ends in SigningFailed."""
    global _signer
    with _lock:
        if _signer is None:
            _signer = build_signer()
        signer = _signer
    return signer.handle(event)
