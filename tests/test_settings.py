"""Unit tests for bridge.settings: configuration from environment variables (docs/design.md §3)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from bridge.jqfilter import ExecutionFilter
from bridge.settings import ConfigurationError, Settings, load_settings


def _regex_reason(pattern: str) -> str:
    """Python's own message for a bad regex (its wording is the interpreter's, not ours)."""
    with pytest.raises(re.error) as info:
        re.compile(pattern)
    return str(info.value)


def _problems(monkeypatch: pytest.MonkeyPatch, **env: str) -> list[str]:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError) as info:
        load_settings()
    assert str(info.value).startswith("invalid configuration: ")
    return info.value.problems


# --------------------------------------------------------------------------- defaults


def test_defaults() -> None:
    settings = load_settings()
    assert settings.match_key is None
    assert settings.match_events is None
    assert settings.pull_parent_dirs == 0
    assert settings.pull_match_keys == ()
    assert settings.execution_filter_expr is None
    assert settings.execution_filter_file is None
    assert settings.execution_filter is None
    assert settings.target_bucket is None
    assert settings.handler_command == ()
    assert settings.root_folder_var == "ROOT_FOLDER"
    assert settings.bucket_var == "BUCKET"
    assert settings.key_prefix_var == "KEY_PREFIX"
    assert settings.handler_timeout is None
    assert settings.transfer_concurrency == 16
    assert settings.skip_unchanged is True
    assert settings.max_chain_depth == 16
    assert settings.log_format == "text"
    assert settings.log_level == "INFO"


def test_settings_are_frozen() -> None:
    settings = load_settings()
    with pytest.raises(ValueError):
        settings.pull_parent_dirs = 3


# --------------------------------------------------------------------------- parsing


def test_every_variable_is_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "MATCH_KEY": r"\.jpg$",
        "MATCH_EVENTS": "ObjectCreated:.*",
        "PULL_PARENT_DIRS": "2",
        "PULL_MATCH_KEYS": r"\.jpg$, ^in/",
        "EXECUTION_FILTER_EXPR": "length > 1",
        "TARGET_BUCKET": "out-bucket",
        "HANDLER_COMMAND": "python handler.py --fast",
        "ROOT_FOLDER_VAR": "MY_ROOT",
        "BUCKET_VAR": "MY_BUCKET",
        "KEY_PREFIX_VAR": "MY_PREFIX",
        "HANDLER_TIMEOUT": "2.5",
        "TRANSFER_CONCURRENCY": "4",
        "SKIP_UNCHANGED": "false",
        "MAX_CHAIN_DEPTH": "0",
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "DEBUG",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.match_key is not None and settings.match_key.pattern == r"\.jpg$"
    assert settings.match_events is not None
    assert settings.match_events.pattern == "ObjectCreated:.*"
    assert settings.pull_parent_dirs == 2
    assert [p.pattern for p in settings.pull_match_keys] == [r"\.jpg$", "^in/"]
    assert settings.execution_filter_expr == "length > 1"
    assert settings.execution_filter is not None
    assert settings.execution_filter.program == "length > 1"
    assert settings.target_bucket == "out-bucket"
    assert settings.handler_command == ("python", "handler.py", "--fast")
    assert settings.root_folder_var == "MY_ROOT"
    assert settings.bucket_var == "MY_BUCKET"
    assert settings.key_prefix_var == "MY_PREFIX"
    assert settings.handler_timeout == 2.5
    assert settings.transfer_concurrency == 4
    assert settings.skip_unchanged is False
    assert settings.max_chain_depth == 0
    assert settings.log_format == "json"
    assert settings.log_level == "DEBUG"


def test_pull_match_keys_is_a_comma_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULL_MATCH_KEYS", r"^a/, \.csv$ ,,x{2}")
    settings = load_settings()
    assert [p.pattern for p in settings.pull_match_keys] == ["^a/", r"\.csv$", "x{2}"]
    assert all(isinstance(p, re.Pattern) for p in settings.pull_match_keys)


def test_pull_match_keys_single_regex(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULL_MATCH_KEYS", r"\.json$")
    assert [p.pattern for p in load_settings().pull_match_keys] == [r"\.json$"]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("python handler.py", ("python", "handler.py")),
        ("python \"my handler.py\" --name 'a b'", ("python", "my handler.py", "--name", "a b")),
        (r"echo a\ b", ("echo", "a b")),
        ("sh -c 'echo $HOME; exit 3'", ("sh", "-c", "echo $HOME; exit 3")),
        ("  spaced   out  ", ("spaced", "out")),
    ],
)
def test_handler_command_is_split_like_a_shell(
    monkeypatch: pytest.MonkeyPatch, line: str, expected: tuple[str, ...]
) -> None:
    monkeypatch.setenv("HANDLER_COMMAND", line)
    assert load_settings().handler_command == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("true", True),
        ("True", True),
        ("1", True),
        ("false", False),
        ("FALSE", False),
        ("0", False),
    ],
)
def test_skip_unchanged_booleans(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: bool
) -> None:
    monkeypatch.setenv("SKIP_UNCHANGED", value)
    assert load_settings().skip_unchanged is expected


def test_log_format_defaults_to_json_under_lambda_json_logging(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_LAMBDA_LOG_FORMAT", "JSON")
    assert load_settings().log_format == "json"


def test_log_format_default_text_under_lambda_text_logging(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_LAMBDA_LOG_FORMAT", "Text")
    assert load_settings().log_format == "text"


def test_explicit_log_format_wins_over_lambda_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_LAMBDA_LOG_FORMAT", "JSON")
    monkeypatch.setenv("LOG_FORMAT", "text")
    assert load_settings().log_format == "text"


def test_log_format_is_case_insensitive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_FORMAT", "JSON")
    assert load_settings().log_format == "json"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("debug", "DEBUG"), ("Info", "INFO"), ("warning", "WARNING"), ("ERROR", "ERROR")],
)
def test_log_level_is_case_insensitive(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: str
) -> None:
    monkeypatch.setenv("LOG_LEVEL", value)
    assert load_settings().log_level == expected


@pytest.mark.parametrize(
    "name",
    [
        "MATCH_KEY",
        "MATCH_EVENTS",
        "PULL_PARENT_DIRS",
        "PULL_MATCH_KEYS",
        "EXECUTION_FILTER_EXPR",
        "EXECUTION_FILTER_FILE",
        "TARGET_BUCKET",
        "HANDLER_COMMAND",
        "ROOT_FOLDER_VAR",
        "HANDLER_TIMEOUT",
        "TRANSFER_CONCURRENCY",
        "SKIP_UNCHANGED",
        "MAX_CHAIN_DEPTH",
        "LOG_FORMAT",
        "LOG_LEVEL",
    ],
)
def test_empty_variable_counts_as_unset(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv(name, "")
    assert load_settings() == Settings()


def test_unrelated_variables_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOMETHING_ELSE", "[")
    assert load_settings().match_key is None


def test_match_key_regex_is_compiled_for_search(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MATCH_KEY", r"\.jpe?g$")
    pattern = load_settings().match_key
    assert pattern is not None
    assert pattern.search("in/photo.jpeg")
    assert not pattern.search("in/photo.png")


def test_overrides_are_validated_like_variables() -> None:
    settings = load_settings(match_key="^in/", handler_command="a 'b c'", pull_match_keys="x,y")
    assert settings.match_key is not None and settings.match_key.pattern == "^in/"
    assert settings.handler_command == ("a", "b c")
    assert [p.pattern for p in settings.pull_match_keys] == ["x", "y"]


# --------------------------------------------------------------------------- execution filter


def test_execution_filter_expr_is_compiled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXECUTION_FILTER_EXPR", 'any(.[]; .Key == "done") | not')
    flt = load_settings().execution_filter
    assert flt is not None
    assert flt.program == 'any(.[]; .Key == "done") | not'
    assert flt.evaluate([{"Key": "done"}]).proceed is False
    assert flt.evaluate([{"Key": "other"}]).proceed is True
    assert flt.evaluate([]).first_output is True


def test_execution_filter_file_is_read_and_compiled(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    program = 'map(select(.Key | endswith(".done"))) | length >= 2 # comment\n'
    path = tmp_path / "filter.jq"
    path.write_text(program, encoding="utf-8")
    monkeypatch.setenv("EXECUTION_FILTER_FILE", str(path))
    settings = load_settings()
    assert settings.execution_filter_file == path
    assert settings.execution_filter_expr is None
    flt = settings.execution_filter
    assert flt is not None
    assert flt.program == program
    assert flt.evaluate([{"Key": "a.done"}]).proceed is False
    assert flt.evaluate([{"Key": "a.done"}, {"Key": "b.done"}]).proceed is True


def test_execution_filter_file_utf8(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "filter.jq"
    path.write_text('any(.[]; .Key == "résumé.txt")', encoding="utf-8")
    monkeypatch.setenv("EXECUTION_FILTER_FILE", str(path))
    flt = load_settings().execution_filter
    assert flt is not None
    assert flt.evaluate([{"Key": "résumé.txt"}]).first_output is True


def test_both_filter_variables_is_an_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "filter.jq"
    path.write_text("true", encoding="utf-8")
    problems = _problems(monkeypatch, EXECUTION_FILTER_EXPR="true", EXECUTION_FILTER_FILE=str(path))
    assert len(problems) == 1
    assert problems[0].startswith("EXECUTION_FILTER_FILE: ")
    assert "EXECUTION_FILTER_EXPR" in problems[0]


@pytest.mark.parametrize("source", ["expr", "file"])
def test_the_filter_program_is_read_and_compiled_once(
    source: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "filter.jq"
    path.write_text("length > 1", encoding="utf-8")
    compiled: list[str] = []
    read: list[Path] = []
    compile_program, read_text = ExecutionFilter.compile, Path.read_text

    def counting_compile(cls: type[ExecutionFilter], program: str) -> ExecutionFilter:
        compiled.append(program)
        return compile_program(program)

    def counting_read_text(self: Path, *args: Any, **kwargs: Any) -> str:
        if self == path:
            read.append(self)
        return read_text(self, *args, **kwargs)

    monkeypatch.setattr(ExecutionFilter, "compile", classmethod(counting_compile))
    monkeypatch.setattr(Path, "read_text", counting_read_text)
    if source == "expr":
        monkeypatch.setenv("EXECUTION_FILTER_EXPR", "length > 1")
    else:
        monkeypatch.setenv("EXECUTION_FILTER_FILE", str(path))

    settings = load_settings()

    assert settings.execution_filter is not None
    assert settings.execution_filter.program == "length > 1"
    assert compiled == ["length > 1"]
    assert len(read) == (1 if source == "file" else 0)


def test_both_filter_variables_reported_even_when_expr_is_invalid(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "filter.jq"
    path.write_text("true", encoding="utf-8")
    problems = _problems(monkeypatch, EXECUTION_FILTER_EXPR="map(", EXECUTION_FILTER_FILE=str(path))
    assert [p.split(":", 1)[0] for p in problems] == [
        "EXECUTION_FILTER_EXPR",
        "EXECUTION_FILTER_FILE",
    ]
    assert "invalid jq program" in problems[0]
    assert "EXECUTION_FILTER_EXPR" in problems[1]


def test_missing_filter_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    missing = tmp_path / "nope.jq"
    problems = _problems(monkeypatch, EXECUTION_FILTER_FILE=str(missing))
    assert len(problems) == 1
    assert problems[0].startswith(f"EXECUTION_FILTER_FILE: cannot read {str(missing)!r}: ")
    assert "No such file or directory" in problems[0]


def test_filter_file_not_utf8(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "latin1.jq"
    path.write_bytes(b'.[] | .Key == "r\xe9sum\xe9"')
    problems = _problems(monkeypatch, EXECUTION_FILTER_FILE=str(path))
    assert len(problems) == 1
    assert problems[0].startswith("EXECUTION_FILTER_FILE: cannot read ")
    assert "utf-8" in problems[0]


def test_filter_file_that_does_not_compile(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "bad.jq"
    path.write_text(".[", encoding="utf-8")
    problems = _problems(monkeypatch, EXECUTION_FILTER_FILE=str(path))
    assert len(problems) == 1
    assert problems[0].startswith("EXECUTION_FILTER_FILE: invalid jq program: ")
    assert "syntax error" in problems[0]


def test_filter_expr_that_does_not_compile(monkeypatch: pytest.MonkeyPatch) -> None:
    problems = _problems(monkeypatch, EXECUTION_FILTER_EXPR="map(")
    assert len(problems) == 1
    assert problems[0].startswith("EXECUTION_FILTER_EXPR: invalid jq program: jq: error")
    assert "\n" not in problems[0]


# --------------------------------------------------------------------------- invalid values


def test_bad_match_key_names_variable_and_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    problems = _problems(monkeypatch, MATCH_KEY="[ab")
    assert problems == [f"MATCH_KEY: invalid regular expression: {_regex_reason('[ab')}"]
    assert problems[0].startswith("MATCH_KEY: invalid regular expression: unterminated character")


def test_bad_match_events(monkeypatch: pytest.MonkeyPatch) -> None:
    problems = _problems(monkeypatch, MATCH_EVENTS="ObjectCreated:(")
    assert problems == [
        f"MATCH_EVENTS: invalid regular expression: {_regex_reason('ObjectCreated:(')}"
    ]


def test_bad_pull_match_keys_names_the_bad_part(monkeypatch: pytest.MonkeyPatch) -> None:
    problems = _problems(monkeypatch, PULL_MATCH_KEYS=r"\.txt$,[b")
    assert problems == [f"PULL_MATCH_KEYS: invalid regular expression '[b': {_regex_reason('[b')}"]


def test_unbalanced_quote_in_handler_command(monkeypatch: pytest.MonkeyPatch) -> None:
    problems = _problems(monkeypatch, HANDLER_COMMAND='python "handler.py')
    assert problems == ["HANDLER_COMMAND: cannot split command line: No closing quotation"]


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("PULL_PARENT_DIRS", "one", "valid integer"),
        ("PULL_PARENT_DIRS", "1.5", "valid integer"),
        ("HANDLER_TIMEOUT", "soon", "valid number"),
        ("HANDLER_TIMEOUT", "0", "greater than 0"),
        ("HANDLER_TIMEOUT", "-3", "greater than 0"),
        ("TRANSFER_CONCURRENCY", "0", "greater than or equal to 1"),
        ("TRANSFER_CONCURRENCY", "1001", "less than or equal to 1000"),
        ("TRANSFER_CONCURRENCY", "many", "valid integer"),
        ("SKIP_UNCHANGED", "maybe", "valid boolean"),
        ("MAX_CHAIN_DEPTH", "-1", "greater than or equal to 0"),
        ("LOG_FORMAT", "xml", "'text' or 'json'"),
        ("LOG_LEVEL", "VERBOSE", "'DEBUG', 'INFO', 'WARNING' or 'ERROR'"),
        ("ROOT_FOLDER_VAR", "1ROOT", "'1ROOT' is not a valid environment variable name"),
        ("BUCKET_VAR", "MY-BUCKET", "'MY-BUCKET' is not a valid environment variable name"),
        ("KEY_PREFIX_VAR", "A=B", "'A=B' is not a valid environment variable name"),
    ],
)
def test_invalid_value_names_variable_and_reason(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, reason: str
) -> None:
    problems = _problems(monkeypatch, **{name: value})
    assert len(problems) == 1
    assert problems[0].startswith(f"{name}: ")
    assert reason in problems[0]


def test_every_problem_is_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    problems = _problems(
        monkeypatch,
        MATCH_KEY="[ab",
        PULL_PARENT_DIRS="x",
        PULL_MATCH_KEYS="(",
        HANDLER_TIMEOUT="0",
        TRANSFER_CONCURRENCY="0",
        LOG_LEVEL="loud",
        BUCKET_VAR="1",
        EXECUTION_FILTER_EXPR="map(",
    )
    variables = sorted(problem.split(":", 1)[0] for problem in problems)
    assert variables == sorted(
        [
            "MATCH_KEY",
            "PULL_PARENT_DIRS",
            "PULL_MATCH_KEYS",
            "HANDLER_TIMEOUT",
            "TRANSFER_CONCURRENCY",
            "LOG_LEVEL",
            "BUCKET_VAR",
            "EXECUTION_FILTER_EXPR",
        ]
    )
    message = str(ConfigurationError(problems))
    assert message == "invalid configuration: " + "; ".join(problems)


# --------------------------------------------------------------------------- target_for


def test_target_for_defaults_to_source_bucket() -> None:
    settings = load_settings()
    assert settings.target_for("source-bucket") == "source-bucket"
    assert settings.target_for("other") == "other"


def test_target_for_uses_target_bucket(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TARGET_BUCKET", "outputs")
    assert load_settings().target_for("source-bucket") == "outputs"


def test_pull_scope_defaults_to_prefix_and_accepts_events(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().pull_scope == "prefix"
    monkeypatch.setenv("PULL_SCOPE", "Events")
    assert load_settings().pull_scope == "events"
    monkeypatch.setenv("PULL_SCOPE", "folder")
    with pytest.raises(ConfigurationError) as error:
        load_settings()
    [problem] = error.value.problems
    assert problem.startswith("PULL_SCOPE: ") and "'prefix'" in problem and "'events'" in problem
