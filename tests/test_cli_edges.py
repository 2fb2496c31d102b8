"""The command line at its edges: closed pipes, JSON diagnostics, crashes, hints, batches."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from bridge import cli as cli_module
from bridge.events import parse_invocation
from tests.conftest import MotoServer, bridge_command, subprocess_env
from tests.helpers import put

TIMEOUT = 60


def cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*bridge_command(), *args],
        input="",
        capture_output=True,
        text=True,
        env=subprocess_env(**env),
        timeout=TIMEOUT,
    )


def piped_into_head(*args: str, **env: str) -> tuple[int, str, str]:
    """``s3-event-bridge ARGS | head -1``: the bridge's status and stderr, head's output."""
    bridge = subprocess.Popen(
        [*bridge_command(), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=subprocess_env(**env),
    )
    assert bridge.stdout is not None and bridge.stderr is not None
    head = subprocess.run(
        ["head", "-1"], stdin=bridge.stdout, capture_output=True, text=True, timeout=TIMEOUT
    )
    bridge.stdout.close()  # head is gone: the bridge's next write finds no reader
    status = bridge.wait(timeout=TIMEOUT)
    stderr = bridge.stderr.read().decode()
    bridge.stderr.close()
    return status, stderr, head.stdout


def test_plan_into_head_ends_quietly(aws: MotoServer, s3: Any) -> None:
    s3.create_bucket(Bucket="pipe")
    for index in range(400):  # more than a pipe buffer of plan output
        put(s3, "pipe", f"in/file-{index:04d}-{'x' * 100}.txt")
    status, stderr, first = piped_into_head("plan", "--bucket", "pipe", "--key", "in/a.txt")
    assert first.startswith("trigger:")
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr
    assert status == 141  # what a shell reports for a tool whose reader went away


def test_event_into_head_ends_quietly() -> None:
    keys = [arg for index in range(300) for arg in ("--key", f"in/{index}-{'y' * 200}")]
    status, stderr, first = piped_into_head("event", "sqs", "--bucket", "b", *keys)
    assert first == "{\n"
    assert stderr == ""
    assert status == 141


def test_configuration_errors_are_json_lines_with_log_format_json() -> None:
    result = cli(
        "run", "--bucket", "b", "--", "true", LOG_FORMAT="json", MATCH_KEY="[", LOG_LEVEL="loud"
    )
    assert result.returncode == 2
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    assert {line["level"] for line in lines} == {"ERROR"}
    messages = [line["message"] for line in lines]
    assert any(m.startswith("s3-event-bridge: configuration error: MATCH_KEY: ") for m in messages)
    assert any("LOG_LEVEL" in m for m in messages)


def test_usage_errors_are_json_lines_under_lambda_json_logs() -> None:
    result = cli("run", "--no-such-option", AWS_LAMBDA_LOG_FORMAT="JSON")
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert "unrecognized arguments: --no-such-option" in json.loads(line)["message"]


@pytest.fixture
def crash_in_event_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug inside the ``event`` mode: building the sample raises ``KeyError('bug')``."""

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise KeyError("bug")

    monkeypatch.setattr("bridge.samples.sample_batch", broken)  # imported on use


def test_a_crash_is_one_line_without_traceback(
    crash_in_event_mode: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_module.main(["event", "s3", "--bucket", "b", "--key", "k"]) == 1
    [line] = capsys.readouterr().err.splitlines()
    expected = "s3-event-bridge: internal error: KeyError: 'bug'"
    assert line == f"{expected} (set LOG_LEVEL=DEBUG for the traceback)"


def test_a_crash_is_a_json_line_with_its_stack_with_log_format_json(
    crash_in_event_mode: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LOG_FORMAT", "json")
    assert cli_module.main(["event", "s3", "--bucket", "b", "--key", "k"]) == 1
    [line] = capsys.readouterr().err.splitlines()
    entry = json.loads(line)
    assert entry["level"] == "CRITICAL"
    assert entry["message"].startswith("s3-event-bridge: internal error: KeyError: 'bug'")
    assert any("KeyError" in frame for frame in entry["stackTrace"])


def test_a_crash_shows_its_traceback_with_log_level_debug(
    crash_in_event_mode: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LOG_LEVEL", "debug")
    assert cli_module.main(["event", "s3", "--bucket", "b", "--key", "k"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("s3-event-bridge: internal error: KeyError: 'bug'\n")
    assert "Traceback (most recent call last)" in err


def test_forgotten_double_dash_gets_a_hint() -> None:
    result = cli("run", "--bucket", "b", "--verbose", "python", "handler.py")
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert "unrecognized arguments: --verbose" in line
    assert "put '--' before it: s3-event-bridge run [OPTIONS] -- COMMAND" in line


def test_an_unknown_option_of_a_mode_without_command_gets_no_double_dash_hint() -> None:
    result = cli("plan", "--bucket", "b", "--key", "k", "--verbose")
    assert result.returncode == 2
    assert "'--'" not in result.stderr


def test_help_lists_version() -> None:
    result = cli("--help")
    assert result.returncode == 0
    assert "--version" in result.stdout
    version = cli("--version")
    assert version.returncode == 0 and version.stdout.startswith("s3-event-bridge ")


@pytest.mark.parametrize("shape", ["s3", "sqs", "sns"])
def test_event_with_repeated_keys_is_a_record_per_key(shape: str) -> None:
    keys = ["in/a b.txt", "in/c+d.txt", "other/e.txt"]
    result = cli("event", shape, "--bucket", "b", *[a for k in keys for a in ("--key", k)])
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert len(payload["Records"]) == len(keys)
    invocation = parse_invocation(payload)
    # SQS: one message per key, each acknowledged on its own; a direct invocation is one.
    expected = [[k] for k in keys] if shape == "sqs" else [keys]
    assert [[e.key for e in m.events] for m in invocation.messages] == expected


@pytest.mark.parametrize("shape", ["sqs", "sns"])
def test_event_batch_is_one_message_with_a_record_per_key(shape: str) -> None:
    keys = ["in/a b.txt", "in/c+d.txt"]
    args = [a for k in keys for a in ("--key", k)]
    result = cli("event", shape, "--bucket", "b", *args, "--batch")
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert len(payload["Records"]) == 1
    [message] = parse_invocation(payload).messages
    assert [e.key for e in message.events] == keys


def test_event_eventbridge_takes_one_key() -> None:
    result = cli("event", "eventbridge", "--bucket", "b", "--key", "a", "--key", "b")
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert "an EventBridge event carries one object" in line


def test_python_m_bridge_cli_runs_main() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bridge.cli", "--version"],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=TIMEOUT,
    )
    assert result.returncode == 0 and result.stdout.startswith("s3-event-bridge ")


def test_parse_command_line_splits_mode_options_and_handler_command() -> None:
    line = cli_module.parse_command_line(
        ["consume", "--queue-url", "https://q", "--once", "python", "h.py", "--once"]
    )
    assert (line.mode, line.options.queue_url, line.options.once) == ("consume", "https://q", True)
    assert line.command == ["python", "h.py", "--once"], "the command is left untouched"
    line = cli_module.parse_command_line(["run", "--bucket", "b", "--", "-x", "--y"])
    assert (line.mode, line.options.bucket, line.command) == ("run", "b", ["-x", "--y"])


def test_parse_command_line_bare_command_means_lambda_only_under_a_runtime_api() -> None:
    line = cli_module.parse_command_line(["python", "-u", "h.py"], runtime_api="127.0.0.1:9001")
    assert (line.mode, line.command) == ("lambda", ["python", "-u", "h.py"])
    assert cli_module.parse_command_line([], runtime_api="127.0.0.1:9001").command == []
    with pytest.raises(cli_module.UsageError, match="unknown mode 'python'"):
        cli_module.parse_command_line(["python", "h.py"])
    with pytest.raises(cli_module.UsageError, match="plan: unexpected arguments: extra"):
        cli_module.parse_command_line(["plan", "--bucket", "b", "--key", "k", "--", "extra"])
