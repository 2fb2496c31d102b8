"""The error vocabulary: every error document the bridge returns, and its type names.

An error document is the Runtime API's JSON shape ``{"errorType", "errorMessage",
"stackTrace"}`` (docs/design.md §7, §8). Its ``errorType`` is what users see in the Lambda
console, in async on-failure destinations and in ``invoke``'s output; the Runtime API's
``Lambda-Runtime-Function-Error-Type`` header carries the same type in the ``Category.Reason``
form AWS recommends for it (``Runtime.ConfigurationError``): ``Function.*`` for what the
bridge decided about an invocation, ``Runtime.*`` for the runtime's own faults.
"""

from __future__ import annotations

import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ErrorType:
    """One kind of error: ``name`` in the document, ``category`` in front of it in the header."""

    name: str
    category: str = "Function"

    @property
    def header(self) -> str:
        """The ``Category.Reason`` form for the ``Lambda-Runtime-Function-Error-Type`` header."""
        return self.name if "." in self.name else f"{self.category}.{self.name}"


# The invocation's payload has no shape the bridge knows (the message names what it saw).
UNRECOGNIZED_EVENT = ErrorType("UnrecognizedEvent")
# The payload cannot be read at all: not JSON, or an unreadable file given to ``invoke``.
INVALID_EVENT = ErrorType("InvalidEvent")
# A direct invocation (S3, SNS, EventBridge) with at least one failed execution group.
EXECUTION_GROUP_FAILED = ErrorType("ExecutionGroupFailed")
# The runtime's own faults, reported to Lambda in its ``Runtime.*`` namespace.
CONFIGURATION_ERROR = ErrorType("Runtime.ConfigurationError", "Runtime")
STARTUP_ERROR = ErrorType("Runtime.StartupError", "Runtime")
RESPONSE_TOO_LARGE = ErrorType("Runtime.ResponseTooLarge", "Runtime")

KNOWN = {
    error.name: error
    for error in (
        UNRECOGNIZED_EVENT,
        INVALID_EVENT,
        EXECUTION_GROUP_FAILED,
        CONFIGURATION_ERROR,
        STARTUP_ERROR,
        RESPONSE_TOO_LARGE,
    )
}


def unexpected(exc: BaseException) -> ErrorType:
    """The type of a bug of the bridge's own: ``Runtime.<ExceptionClass>``."""
    return ErrorType(f"Runtime.{type(exc).__name__}", "Runtime")


def error_document(
    error_type: ErrorType, message: str, stack_trace: Sequence[str] = ()
) -> dict[str, Any]:
    """The Runtime API's error JSON shape."""
    return {"errorType": error_type.name, "errorMessage": message, "stackTrace": list(stack_trace)}


def exception_document(exc: BaseException, message: str) -> dict[str, Any]:
    """An error document for an unexpected exception, with its stack trace."""
    return error_document(unexpected(exc), message, traceback.format_exception(exc))


def header_for(document: Mapping[str, Any]) -> str:
    """The ``Category.Reason`` error-type header for an error document."""
    name = str(document.get("errorType") or "Unknown")
    known = KNOWN.get(name)
    if known is not None:
        return known.header
    return ErrorType(name, "Runtime").header
