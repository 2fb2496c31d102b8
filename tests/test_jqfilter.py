"""Unit tests for bridge.jqfilter: the execution filter (docs/design.md §2 step 5)."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.jqfilter import ExecutionFilter, FilterCompileError, FilterRuntimeError, FilterVerdict

LISTING: list[dict[str, Any]] = [
    {"Key": "job/a.out", "Size": 3, "LastModified": "2024-01-01T00:00:00+00:00"},
    {"Key": "job/b.out", "Size": 5, "LastModified": "2024-01-01T00:00:01+00:00"},
]


def verdict(program: str, objects: list[dict[str, Any]] | None = None) -> FilterVerdict:
    return ExecutionFilter.compile(program).evaluate(LISTING if objects is None else objects)


# --------------------------------------------------------------------------- compile


@pytest.mark.parametrize("program", [".[", "map(", "foo(1)", "1 +", "}"])
def test_compile_errors(program: str) -> None:
    with pytest.raises(FilterCompileError) as info:
        ExecutionFilter.compile(program)
    message = str(info.value)
    assert message.startswith("invalid jq program: jq: error")
    assert "compile error" in message  # jq's own wording is kept
    assert "\n" not in message  # one line, for a one-line configuration problem


def test_compile_error_names_unknown_function() -> None:
    with pytest.raises(FilterCompileError, match=r"foo/1 is not defined"):
        ExecutionFilter.compile("foo(1)")


def test_compile_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        ExecutionFilter.compile(".[")


def test_program_is_kept() -> None:
    assert ExecutionFilter.compile("length > 1").program == "length > 1"


# --------------------------------------------------------------------------- evaluate


def test_false_skips() -> None:
    result = verdict("false")
    assert result == FilterVerdict(proceed=False, first_output=False, produced_output=True)


def test_computed_false_skips() -> None:
    assert verdict("length > 2").proceed is False
    assert verdict("length == 2").proceed is True


def test_filter_sees_the_listing() -> None:
    program = '[.[] | select(.Key | endswith(".out")) | .Size] | add'
    assert verdict(program).first_output == 8
    assert verdict(".[0].LastModified").first_output == "2024-01-01T00:00:00+00:00"


@pytest.mark.parametrize(
    ("program", "output"),
    [
        ("true", True),
        ("null", None),
        ("0", 0),
        ('""', ""),
        ('"false"', "false"),
        ("[]", []),
        ("[false]", [False]),
        ("{}", {}),
        ("1.5", 1.5),
    ],
)
def test_any_other_output_proceeds(program: str, output: Any) -> None:
    result = verdict(program)
    assert result.proceed is True
    assert result.produced_output is True
    assert result.first_output == output
    assert type(result.first_output) is type(output)


def test_no_output_proceeds() -> None:
    result = verdict("empty")
    assert result == FilterVerdict(proceed=True, first_output=None, produced_output=False)


def test_no_output_from_an_empty_listing() -> None:
    result = verdict(".[] | false", [])
    assert result.proceed is True
    assert result.produced_output is False


def test_only_first_output_counts_false_first() -> None:
    # Two objects: `.[] | false` outputs false twice; the first decides.
    assert verdict(".[] | false").proceed is False
    assert verdict("(false, true)").proceed is False


def test_only_first_output_counts_true_first() -> None:
    result = verdict("(true, false)")
    assert result.proceed is True
    assert result.first_output is True


def test_later_outputs_are_not_evaluated() -> None:
    # An error after the first output never happens: only the first output is taken.
    assert verdict('(true, error("never"))').proceed is True
    assert verdict('(false, error("never"))').proceed is False


@pytest.mark.parametrize(
    ("program", "fragment"),
    [
        ('error("boom")', "boom"),
        (".[0].Key.x", "Cannot index string"),
        ('.[] | .Size + "x"', "cannot be added"),
    ],
)
def test_runtime_error(program: str, fragment: str) -> None:
    with pytest.raises(FilterRuntimeError) as info:
        verdict(program)
    assert str(info.value).startswith("execution filter failed: ")
    assert fragment in str(info.value)


def test_runtime_error_before_first_output_fails() -> None:
    with pytest.raises(FilterRuntimeError):
        verdict('(error("first"), true)')


def test_evaluate_twice_is_independent() -> None:
    flt = ExecutionFilter.compile("length >= 1")
    assert flt.evaluate([]).proceed is False
    assert flt.evaluate(LISTING).proceed is True
    assert flt.evaluate([]).proceed is False


# --------------------------------------------------------------------------- describe


def test_describe() -> None:
    assert verdict("false").describe() == "first output false: skip"
    assert verdict("true").describe() == "first output true: proceed"
    assert verdict("null").describe() == "first output null: proceed"
    assert verdict("empty").describe() == "no output: proceed"
    assert verdict('{"a": [1, "x"]}').describe() == 'first output {"a": [1, "x"]}: proceed'


def test_describe_shortens_long_outputs() -> None:
    text = verdict('"' + "x" * 200 + '"').describe()
    assert text.endswith("…: proceed")
    shown = text.removeprefix("first output ").removesuffix(": proceed")
    assert len(shown) == 80
    assert shown == '"' + "x" * 78 + "…"
