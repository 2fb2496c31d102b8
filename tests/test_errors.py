"""The error vocabulary: document shape and the Category.Reason header form."""

from __future__ import annotations

import re

import pytest

from bridge import errors

CATEGORY_REASON = re.compile(r"[A-Z][A-Za-z]*\.[A-Z][A-Za-z]*")


def test_document_has_the_runtime_api_shape() -> None:
    document = errors.error_document(errors.EXECUTION_GROUP_FAILED, "b/p/: handler exited 1")
    assert document == {
        "errorType": "ExecutionGroupFailed",
        "errorMessage": "b/p/: handler exited 1",
        "stackTrace": [],
    }


@pytest.mark.parametrize("error_type", list(errors.KNOWN.values()), ids=lambda e: e.name)
def test_every_known_type_has_a_category_reason_header(error_type: errors.ErrorType) -> None:
    header = errors.header_for(errors.error_document(error_type, "x"))
    assert CATEGORY_REASON.fullmatch(header), header
    assert header.endswith(error_type.name.split(".")[-1])


def test_headers_of_the_invocation_errors() -> None:
    assert errors.UNRECOGNIZED_EVENT.header == "Function.UnrecognizedEvent"
    assert errors.INVALID_EVENT.header == "Function.InvalidEvent"
    assert errors.EXECUTION_GROUP_FAILED.header == "Function.ExecutionGroupFailed"
    assert errors.CONFIGURATION_ERROR.header == "Runtime.ConfigurationError"


def test_unexpected_exception_is_a_runtime_error_with_its_stack() -> None:
    table: dict[str, int] = {}
    try:
        table["missing"]
    except KeyError as exc:
        document = errors.exception_document(exc, "unexpected error: 'missing'")
    assert document["errorType"] == "Runtime.KeyError"
    assert errors.header_for(document) == "Runtime.KeyError"
    assert any("KeyError" in line for line in document["stackTrace"])


def test_unknown_names_still_get_a_category() -> None:
    assert errors.header_for({"errorType": "Whatever"}) == "Runtime.Whatever"
    assert errors.header_for({}) == "Runtime.Unknown"
