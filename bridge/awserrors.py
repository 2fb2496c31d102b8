"""AWS failures told in one line, with what to check and the exit status they deserve.

botocore raises rich exceptions whose ``str()`` is accurate but whose traceback is not what
an operator needs at start-up. ``describe`` turns one into a sentence naming what is wrong
and what to check, and classifies it: ``EXIT_CONFIGURATION`` (2) for what the caller must fix
in the command line or the environment (no region, no credentials, a queue that does not
exist), ``EXIT_FAILED`` (1) for the rest (endpoint unreachable, access denied, throttling).
"""

from __future__ import annotations

from dataclasses import dataclass

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProfileNotFound,
    ReadTimeoutError,
)

EXIT_FAILED, EXIT_CONFIGURATION = 1, 2

# SQS answers a missing queue with either name, depending on the protocol (query or JSON).
MISSING_QUEUE_CODES = frozenset(
    {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist", "NonExistentQueue"}
)
ACCESS_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "AuthorizationError",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidAccessKeyId",
    }
)


@dataclass(frozen=True)
class Problem:
    """An AWS failure as an operator reads it."""

    message: str
    exit_code: int


def error_code(exc: BaseException) -> str:
    """The AWS error code of a ``ClientError`` (``""`` for anything else)."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def is_fatal_at_start(exc: BaseException) -> bool:
    """Whether retrying cannot help: a missing queue, refused access, no region or credentials."""
    if isinstance(exc, NoRegionError | NoCredentialsError | PartialCredentialsError):
        return True
    code = error_code(exc)
    return code in MISSING_QUEUE_CODES or code in ACCESS_CODES


def describe(exc: BotoCoreError | ClientError, queue_url: str | None = None) -> Problem:
    """One line naming what went wrong and what to check."""
    if isinstance(exc, NoRegionError):
        return Problem(
            "no AWS region configured: set AWS_REGION (or AWS_DEFAULT_REGION, or a region in "
            "the AWS profile)",
            EXIT_CONFIGURATION,
        )
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return Problem(
            f"{exc}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or run "
            "with a role",
            EXIT_CONFIGURATION,
        )
    if isinstance(exc, ProfileNotFound):
        return Problem(f"{exc}: check AWS_PROFILE", EXIT_CONFIGURATION)
    if isinstance(exc, EndpointConnectionError | ConnectTimeoutError | ReadTimeoutError):
        endpoint = getattr(exc, "kwargs", {}).get("endpoint_url", "the AWS endpoint")
        return Problem(
            f"cannot reach {endpoint}: {exc}; check AWS_ENDPOINT_URL (or the per-service "
            "AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL_SQS), AWS_REGION and the network",
            EXIT_FAILED,
        )
    code = error_code(exc)
    if code in MISSING_QUEUE_CODES:
        queue = queue_url or "the queue"
        return Problem(
            f"queue {queue} does not exist: check --queue-url (and AWS_REGION / "
            "AWS_ENDPOINT_URL: a queue exists in one region of one account)",
            EXIT_CONFIGURATION,
        )
    if code in ACCESS_CODES:
        needs = (
            " (consume needs sqs:ReceiveMessage, sqs:DeleteMessage, sqs:ChangeMessageVisibility "
            "and sqs:GetQueueAttributes on the queue)"
            if queue_url
            else ""
        )
        return Problem(
            f"access denied ({code}): {_message(exc)}; check the credentials and the IAM "
            f"policy{needs}",
            EXIT_FAILED,
        )
    if isinstance(exc, ClientError):
        operation = getattr(exc, "operation_name", "request")
        return Problem(f"{operation} failed: {code}: {_message(exc)}", EXIT_FAILED)
    return Problem(f"{type(exc).__name__}: {exc}", EXIT_FAILED)


def _message(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Message", "")) or str(exc)
    return str(exc)
