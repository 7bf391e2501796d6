"""Secure defaults of the admission controller, in one place (see constructs_lib/_defaults.py for the rest).

Override order: these defaults, then the caller's props, then what the controller enforces
(PRE_SCALE_UP in every hook, no ROLLING services, the policy validated at synth).
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs

# Python 3.14 is the newest Lambda Python runtime in aws-cdk-lib 2.275 (cdk-nag AwsSolutions-L1 asks for the latest).
RUNTIME = lambda_.Runtime.PYTHON_3_14
ARCHITECTURE = lambda_.Architecture.ARM_64  # cheaper per GB-second; the wheels are fetched for it
MEMORY_MB = 512  # cryptography and parallel registry reads; more memory also means more CPU
# Well above a decision's usual second or two; a slow registry ends in IN_PROGRESS, not a timeout.
TIMEOUT = Duration.seconds(60)
MIN_TIMEOUT_SECONDS = 15  # leaves 10 seconds to decide after the margin
DEADLINE_MARGIN_SECONDS = 5  # kept back from the timeout to write the audit record and answer
MAX_ATTEMPTS = 3  # invocations per hook (IN_PROGRESS in between) before "unavailable" is final
CALLBACK_DELAY = Duration.seconds(30)  # ECS's own default callBackDelay
LOG_RETENTION = logs.RetentionDays.ONE_YEAR  # the audit trail of every deployment decision
LOG_REMOVAL_POLICY = RemovalPolicy.RETAIN
METRICS_NAMESPACE = "SignedImages/Admission"
SERVICE_NAME = "image-admission"
POLICY_FILE = "admission_policy.json"  # written into the asset; tokens travel as environment variables
HANDLER = "image_verifier.handler.app.lambda_handler"
