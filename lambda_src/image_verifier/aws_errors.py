"""How an AWS API error is judged (the hook's ECS calls, and the verifier's KMS, ECR and Signer calls):
`unavailable` only when AWS did not answer.

| error | judged | why |
|---|---|---|
| no connection, connect/read timeout, closed connection, TLS failure, a truncated body | unavailable | AWS did not answer; the next invocation may reach it |
| HTTP 429 and throttling codes (`ThrottlingException`, `TooManyRequestsException`, ...) | unavailable | AWS answered "later" |
| HTTP 5xx and `ServerException`, `InternalFailure`, `ServiceUnavailable` | unavailable | AWS failed on its side |
| `AccessDeniedException` and every other 4xx (`ClientException`, `InvalidParameterException`, `ResourceNotFoundException`, ...) | refused (FAILED in every mode) | AWS answered, and asking again gives the same answer |
| no credentials, a bad parameter, any other botocore error | refused (FAILED in every mode) | a misconfigured function does not heal by retrying |

docs/admission.md shows the same table for operators.
"""

from __future__ import annotations

from typing import Any

from .errors import AwsUnavailableError, ImageVerifierError, VerificationError

THROTTLING_CODES = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "TooManyRequestsException", "RequestLimitExceeded",
    "RequestThrottled", "RequestThrottledException", "SlowDown", "ProvisionedThroughputExceededException",
})
SERVER_CODES = frozenset({
    "ServerException", "InternalFailure", "InternalError", "InternalServerError", "InternalServiceError",
    "ServiceUnavailable", "ServiceUnavailableException", "RequestTimeout", "RequestTimeoutException",
    "PriorRequestNotComplete",
})


class AwsRefusedError(VerificationError):
    """AWS answered a call with a refusal that retrying will not change: the image is rejected (the hook
    answers FAILED) in every mode, since `unavailableMode: audit` must not admit what AWS denied."""


class MalformedAnswerError(ImageVerifierError):
    """AWS answered in a shape the handler does not read: nothing is known of what will run, so FAILED."""


def judge_aws_error(exc: Exception, call: str, *, denied_hint: str = "grant the admission function's role this action"
                    ) -> AwsUnavailableError | AwsRefusedError:
    """The error to raise for `exc`, raised by the boto3 call `call` (e.g. "ECS DescribeServiceRevisions")."""
    from botocore.exceptions import ClientError, HTTPClientError, IncompleteReadError
    from botocore.exceptions import ConnectionError as BotoConnectionError

    if isinstance(exc, ClientError):
        response: Any = exc.response if isinstance(exc.response, dict) else {}
        error = response.get("Error") if isinstance(response.get("Error"), dict) else {}
        metadata = response.get("ResponseMetadata") if isinstance(response.get("ResponseMetadata"), dict) else {}
        code, message, status = str(error.get("Code") or ""), str(error.get("Message") or ""), metadata.get("HTTPStatusCode")
        said = f"{call} failed: {code or 'no error code'}: {message}"[:1000]
        if code in THROTTLING_CODES or code in SERVER_CODES or (isinstance(status, int) and (status == 429 or status >= 500)):
            return AwsUnavailableError(said)
        hint = f" ({denied_hint})" if "AccessDenied" in code else ""
        return AwsRefusedError(said + hint)
    if isinstance(exc, (BotoConnectionError, HTTPClientError, IncompleteReadError)):
        return AwsUnavailableError(f"{call} did not answer: {type(exc).__name__}: {exc}"[:1000])
    return AwsRefusedError(f"{call} could not be made: {type(exc).__name__}: {exc}"[:1000])
