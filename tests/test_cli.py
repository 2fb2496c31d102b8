"""The ``s3-event-bridge`` command as a subprocess, against the moto server over real HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bridge.events import Source, parse_invocation
from tests.conftest import MotoServer, bridge_command, subprocess_env
from tests.helpers import handler, objects, put, versioned_bucket

BUCKET = "src"
TARGET = "tgt"
TIMEOUT = 60


def cli(*args: str, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the command with the test environment plus ``env``; capture both streams."""
    return subprocess.run(
        [*bridge_command(), *args],
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        env=subprocess_env(**env),
        timeout=TIMEOUT,
    )


def all_versions(s3: Any, bucket: str) -> list[tuple[str, str]]:
    listed = s3.list_object_versions(Bucket=bucket)
    return sorted((v["Key"], v["VersionId"]) for v in listed.get("Versions", []))


@pytest.fixture
def src(aws: MotoServer, s3: Any) -> Any:
    versioned_bucket(s3, BUCKET)
    return s3


# --- event | invoke --------------------------------------------------------------------------


def test_event_piped_into_invoke(src: Any, tmp_path: Path) -> None:
    key = "in/red flower+1.txt"
    put(src, BUCKET, key, "petals")
    event = subprocess.Popen(
        [*bridge_command(), "event", "sqs", "--bucket", BUCKET, "--key", key],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=subprocess_env(),
    )
    invoke = subprocess.run(
        [*bridge_command(), "invoke", "--", *handler("copier")],
        stdin=event.stdout,
        capture_output=True,
        text=True,
        env=subprocess_env(COUNTER_FILE=str(tmp_path / "runs.jsonl")),
        timeout=TIMEOUT,
    )
    assert event.stdout is not None and event.stderr is not None
    event.stdout.close()
    assert event.wait(timeout=TIMEOUT) == 0, event.stderr.read()
    event.stderr.close()

    assert invoke.returncode == 0, invoke.stderr
    assert json.loads(invoke.stdout) == {"batchItemFailures": []}
    assert (tmp_path / "runs.jsonl").read_text(encoding="utf-8") == json.dumps([key]) + "\n"
    assert objects(src, BUCKET) == {key: b"petals", "in/out/red flower+1.txt": b"petals"}
    assert "group summary" in invoke.stderr


def event_payload(shape: str, key: str, *extra: str) -> str:
    result = cli("event", shape, "--bucket", BUCKET, "--key", key, *extra)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_invoke_failure_exits_1_and_reports_the_message(src: Any) -> None:
    put(src, BUCKET, "in/a.txt", "a")
    payload = event_payload("sqs", "in/a.txt")
    message_id = json.loads(payload)["Records"][0]["messageId"]

    result = cli("invoke", "--", *handler("fail"), stdin=payload)

    assert result.returncode == 1
    assert json.loads(result.stdout) == {"batchItemFailures": [{"itemIdentifier": message_id}]}
    assert "handler exited with status 3" in result.stderr
    assert set(objects(src, BUCKET)) == {"in/a.txt"}


def test_invoke_direct_failure_prints_the_error_document(src: Any) -> None:
    put(src, BUCKET, "in/a.txt", "a")
    result = cli("invoke", "--", *handler("fail"), stdin=event_payload("s3", "in/a.txt"))
    assert result.returncode == 1
    document = json.loads(result.stdout)
    assert document["errorType"] == "ExecutionGroupFailed"
    assert "handler exited with status 3" in document["errorMessage"]


def test_invoke_direct_success_prints_an_empty_object(src: Any, tmp_path: Path) -> None:
    put(src, BUCKET, "in/a b.txt", "ab")
    event_file = tmp_path / "event.json"
    event_file.write_text(event_payload("eventbridge", "in/a b.txt"), encoding="utf-8")

    result = cli("invoke", "--event", str(event_file), "--", *handler("copier"))

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {}
    assert objects(src, BUCKET)["in/out/a b.txt"] == b"ab"


def poison_size_body(bucket: str) -> str:
    """The issue's record whose size "²" passes str.isdigit but not int()."""
    return json.dumps(
        {
            "Records": [
                {
                    "eventSource": "aws:s3",
                    "eventName": "ObjectCreated:Put",
                    "s3": {"bucket": {"name": bucket}, "object": {"key": "in/a", "size": "\u00b2"}},
                }
            ]
        }
    )


def test_invoke_poison_size_direct_is_processed_with_an_unknown_size(src: Any) -> None:
    put(src, BUCKET, "in/a", "a")
    result = cli("invoke", "--", *handler("copier"), stdin=poison_size_body(BUCKET))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {}
    assert "Traceback" not in result.stderr
    assert objects(src, BUCKET)["in/out/a"] == b"a"


def test_invoke_poison_size_in_sqs_fails_only_that_message(src: Any) -> None:
    """As lambda mode would: the issue's body (bucket "b" is missing) fails only its message."""
    put(src, BUCKET, "in/b.txt", "b")
    payload = json.loads(event_payload("sqs", "in/b.txt"))
    poison = dict(payload["Records"][0], messageId="poison", body=poison_size_body("b"))
    payload["Records"].append(poison)

    result = cli("invoke", "--", *handler("copier"), stdin=json.dumps(payload))

    assert result.returncode == 1
    assert json.loads(result.stdout) == {"batchItemFailures": [{"itemIdentifier": "poison"}]}
    assert "Traceback" not in result.stderr
    assert objects(src, BUCKET)["in/out/b.txt"] == b"b"


def test_invoke_unreadable_event(aws: MotoServer, tmp_path: Path) -> None:
    missing = cli("invoke", "--event", str(tmp_path / "nope.json"), "--", *handler("copier"))
    assert missing.returncode == 1
    assert json.loads(missing.stdout)["errorType"] == "InvalidEvent"

    garbage = cli("invoke", "--", *handler("copier"), stdin="{not json")
    assert garbage.returncode == 1
    assert json.loads(garbage.stdout)["errorType"] == "InvalidEvent"

    unknown = cli("invoke", "--", *handler("copier"), stdin='{"hello": "world"}')
    assert unknown.returncode == 1
    assert json.loads(unknown.stdout)["errorType"] == "UnrecognizedEvent"


def test_invoke_deeply_nested_event_prints_an_invalid_event_document(aws: MotoServer) -> None:
    result = cli("invoke", "--", *handler("copier"), stdin="[" * 1000 + "]" * 1000)
    assert result.returncode == 1
    document = json.loads(result.stdout)
    assert document["errorType"] == "InvalidEvent"
    assert "nested too deeply" in document["errorMessage"]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_invoke_key_with_a_lone_surrogate_is_a_clear_error_without_traceback(
    src: Any, log_format: str
) -> None:
    payload = json.loads(event_payload("eventbridge", "in/x.txt"))
    payload["detail"]["object"]["key"] = "in/\ud800.txt"
    result = cli(
        "invoke", "--", *handler("copier"), stdin=json.dumps(payload), LOG_FORMAT=log_format
    )
    assert result.returncode == 1
    document = json.loads(result.stdout)
    assert "lone surrogate" in document["errorMessage"]
    assert "UnicodeEncodeError" not in result.stderr and "Traceback" not in result.stderr


def test_invoke_stdout_carries_only_the_result(src: Any) -> None:
    put(src, BUCKET, "in/a.txt", "a")
    result = cli("invoke", "--", *handler("echo"), stdin=event_payload("sqs", "in/a.txt"))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"batchItemFailures": []}
    assert "hello from stdout" not in result.stdout
    for line in ("hello from stdout", "second stdout line", "hello from stderr", "group summary"):
        assert line in result.stderr
    forwarded = [line for line in result.stderr.splitlines() if "hello from stdout" in line]
    assert len(forwarded) == 1 and "s3://src/in/" in forwarded[0]


def test_invoke_json_logs(src: Any) -> None:
    put(src, BUCKET, "in/a.txt", "a")
    result = cli(
        "invoke", "--", *handler("echo"), stdin=event_payload("sqs", "in/a.txt"), LOG_FORMAT="json"
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    assert {"timestamp", "level", "message"} <= set(lines[0])
    [summary] = [line for line in lines if line["message"] == "group summary"]
    assert summary["outcome"] == "succeeded" and summary["prefix"] == "in/"
    [echoed] = [line for line in lines if line["message"] == "hello from stderr"]
    assert echoed["group"] == "s3://src/in/" and echoed["stream"] == "stderr"


def test_invoke_uses_handler_command_variable(src: Any) -> None:
    put(src, BUCKET, "in/a.txt", "a")
    command = " ".join(f"'{part}'" for part in handler("copier"))
    result = cli("invoke", stdin=event_payload("sqs", "in/a.txt"), HANDLER_COMMAND=command)
    assert result.returncode == 0, result.stderr
    assert "in/out/a.txt" in objects(src, BUCKET)


# --- run ---------------------------------------------------------------------------------------


def test_run_one_group(src: Any) -> None:
    put(src, BUCKET, "jobs/1/a.txt", "a")
    put(src, BUCKET, "jobs/1/sub/b.txt", "b")
    put(src, BUCKET, "jobs/2/c.txt", "c")

    result = cli("run", "--bucket", BUCKET, "--prefix", "jobs/1/", "--", *handler("manifest"))

    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    stored = objects(src, BUCKET)
    assert json.loads(stored["jobs/1/manifest.json"]) == ["a.txt", "sub/b.txt"]
    assert "jobs/2/manifest.json" not in stored
    assert src.head_object(Bucket=BUCKET, Key="jobs/1/manifest.json")["Metadata"] == {
        "bridge-depth": "1"
    }


def test_run_in_events_scope_pulls_nothing_and_says_so(src: Any) -> None:
    put(src, BUCKET, "jobs/1/a.txt", "a")

    result = cli(
        "run", "--bucket", BUCKET, "--prefix", "jobs/1/", "--", *handler("manifest"),
        PULL_SCOPE="events",
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert "run in events scope pulls nothing" in result.stderr
    assert json.loads(objects(src, BUCKET)["jobs/1/manifest.json"]) == []


def test_run_prefix_without_a_trailing_slash_is_a_folder(src: Any) -> None:
    """``--prefix jobs/1`` means the folder jobs/1/ (the only kind of prefix a trigger makes).

    Taken literally it would pull ``jobs/10/...`` as ``0/...``, treat every ``jobs/1/x`` as an
    unsafe absolute path, and write ``jobs/1manifest.json``. Normalising it or refusing it
    (usage error) are both fine; doing that is not.
    """
    put(src, BUCKET, "jobs/1/a.txt", "a")
    put(src, BUCKET, "jobs/10/b.txt", "b")

    result = cli("run", "--bucket", BUCKET, "--prefix", "jobs/1", "--", *handler("manifest"))

    stored = objects(src, BUCKET)
    assert "jobs/1manifest.json" not in stored
    if result.returncode == 0:
        assert json.loads(stored["jobs/1/manifest.json"]) == ["a.txt"]
    else:
        assert result.returncode == 2 and len(result.stderr.splitlines()) == 1


def test_run_defaults_to_the_bucket_and_prefix_variables(src: Any) -> None:
    put(src, BUCKET, "jobs/1/a.txt", "a")
    result = cli(
        "run", *handler("manifest"), BUCKET_VAR="MY_BUCKET", MY_BUCKET=BUCKET, KEY_PREFIX="jobs/1/"
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(objects(src, BUCKET)["jobs/1/manifest.json"]) == ["a.txt"]


def test_run_exit_codes(src: Any) -> None:
    put(src, BUCKET, "in/a.txt", "a")
    before = all_versions(src, BUCKET)

    skipped = cli(
        "run", "--bucket", BUCKET, "--prefix", "in/", "--", *handler("manifest"),
        EXECUTION_FILTER_EXPR="length > 5",
    )  # fmt: skip
    assert skipped.returncode == 0, skipped.stderr
    assert all_versions(src, BUCKET) == before
    assert "skipped" in skipped.stderr

    failed = cli("run", "--bucket", BUCKET, "--prefix", "in/", "--", *handler("fail"))
    assert failed.returncode == 1
    assert "handler exited with status 3" in failed.stderr
    assert all_versions(src, BUCKET) == before

    timed_out = cli(
        "run", "--bucket", BUCKET, "--prefix", "in/", "--", *handler("sleep"),
        HANDLER_TIMEOUT="0.5",
    )  # fmt: skip
    assert timed_out.returncode == 1
    assert "timed out" in timed_out.stderr
    assert all_versions(src, BUCKET) == before

    missing_bucket = cli("run", "--bucket", "no-such-bucket", "--", *handler("manifest"))
    assert missing_bucket.returncode == 1
    assert "NoSuchBucket" in missing_bucket.stderr


def test_run_without_a_bucket_is_a_usage_error(aws: MotoServer) -> None:
    result = cli("run", "--", *handler("manifest"))
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1 and "--bucket" in result.stderr


# --- plan ----------------------------------------------------------------------------------------

PLAN_ENV = {
    "TARGET_BUCKET": TARGET,
    "PULL_MATCH_KEYS": r"\.txt$",
    "EXECUTION_FILTER_EXPR": "length > 10",
}


@pytest.fixture
def planned(src: Any) -> Any:
    for key in [
        "in/a.txt",
        "in/b.csv",
        "in/../x.txt",
        "in/sub/",
        "in/c/",
        "in/c/d.txt",
        "other.txt",
    ]:
        put(src, BUCKET, key, key)
    src.create_bucket(Bucket=TARGET)
    return src


def test_plan_json(planned: Any) -> None:
    before = all_versions(planned, BUCKET)
    result = cli("plan", "--bucket", BUCKET, "--key", "in/a.txt", "--json", **PLAN_ENV)

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["trigger"] == {
        "bucket": BUCKET,
        "key": "in/a.txt",
        "selected": True,
        "ignored_because": None,
    }
    assert report["group"] == {"bucket": BUCKET, "prefix": "in/"}
    assert report["listed"] == 6
    assert report["pull"] == [
        {"key": "in/a.txt", "path": "a.txt", "size": 8},
        {"key": "in/c/d.txt", "path": "c/d.txt", "size": 10},
    ]
    reasons = {entry["key"]: entry["reason"] for entry in report["skip"]}
    assert reasons["in/b.csv"] == "does not match PULL_MATCH_KEYS"
    assert reasons["in/sub/"] == reasons["in/c/"] == "folder marker"
    assert set(reasons) == {"in/b.csv", "in/sub/", "in/c/", "in/../x.txt"}
    assert report["filter"]["decision"] == "skip" and report["filter"]["first_output"] is False
    assert report["target"] == {"bucket": TARGET, "key_prefix": "in/", "exists": True}
    assert report["scope"] == "prefix"
    assert report["chain_depth"] == {"depth": 0, "limit": 16, "decision": "run"}
    # Nothing was written anywhere.
    assert all_versions(planned, BUCKET) == before
    assert "Contents" not in planned.list_objects_v2(Bucket=TARGET)


def test_plan_unsafe_keys_are_reported_with_a_reason(planned: Any) -> None:
    result = cli("plan", "--bucket", BUCKET, "--key", "in/a.txt", "--json")
    report = json.loads(result.stdout)
    reasons = {entry["key"]: entry["reason"] for entry in report["skip"]}
    assert reasons["in/../x.txt"].startswith("unsafe key")
    assert report["filter"]["decision"] == "proceed (no filter)"
    assert report["target"] == {"bucket": BUCKET, "key_prefix": "in/", "exists": True}


def test_plan_text(planned: Any) -> None:
    before = all_versions(planned, BUCKET)
    result = cli("plan", "--bucket", BUCKET, "--key", "in/a.txt", **PLAN_ENV)

    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "s3://src/in/a.txt" in text
    assert "s3://src/in/" in text and "6 listed" in text
    assert "in/a.txt -> $ROOT_FOLDER/a.txt" in text
    assert "in/c/d.txt -> $ROOT_FOLDER/c/d.txt" in text
    assert "in/b.csv: does not match PULL_MATCH_KEYS" in text
    assert "in/sub/: folder marker" in text
    assert "in/../x.txt: unsafe key" in text
    assert "length > 10" in text
    assert "first output false: skip" in text  # jq's spelling of the verdict, not Python's
    assert "s3://tgt/in/" in text
    assert all_versions(planned, BUCKET) == before


def test_plan_shows_ignored_triggers_and_filter_errors(planned: Any) -> None:
    ignored = cli("plan", "--bucket", BUCKET, "--key", "in/a.txt", MATCH_KEY=r"\.csv$")
    assert ignored.returncode == 0, ignored.stderr
    assert "IGNORED" in ignored.stdout and "MATCH_KEY" in ignored.stdout

    broken = cli(
        "plan", "--bucket", BUCKET, "--key", "in/a.txt", "--json",
        EXECUTION_FILTER_EXPR='error("no way")',
    )  # fmt: skip
    assert broken.returncode == 0, broken.stderr
    verdict = json.loads(broken.stdout)["filter"]
    assert verdict["decision"] == "fail" and "no way" in verdict["error"]

    silent = cli("plan", "--bucket", BUCKET, "--key", "in/a.txt", EXECUTION_FILTER_EXPR="empty")
    assert "no output: proceed" in silent.stdout

    parents = cli("plan", "--bucket", BUCKET, "--key", "in/c/d.txt", "--json", PULL_PARENT_DIRS="1")
    assert json.loads(parents.stdout)["group"]["prefix"] == "in/"


def test_plan_in_events_scope_lists_nothing_and_shows_the_fetch(planned: Any) -> None:
    put(planned, BUCKET, "in/a.txt", "again", Metadata={"bridge-depth": "2"})
    before = all_versions(planned, BUCKET)
    env = {"PULL_SCOPE": "events", "TARGET_BUCKET": TARGET}

    report = json.loads(
        cli("plan", "--bucket", BUCKET, "--key", "in/a.txt", "--json", **env).stdout
    )

    assert report["scope"] == "events"
    assert report["listed"] is None
    assert report["pull"] == [{"key": "in/a.txt", "path": "a.txt", "size": None}]
    assert report["skip"] == []
    assert report["chain_depth"] == {"depth": 2, "limit": 16, "decision": "run"}
    assert report["target"] == {"bucket": TARGET, "key_prefix": "in/", "exists": True}

    text = cli("plan", "--bucket", BUCKET, "--key", "in/a.txt", MAX_CHAIN_DEPTH="2", **env).stdout
    assert "scope:    events" in text
    assert "nothing listed (PULL_SCOPE=events, no filter)" in text
    assert "in/a.txt -> $ROOT_FOLDER/a.txt" in text
    assert "FAIL: chain depth limit reached" in text

    filtered = cli(
        "plan", "--bucket", BUCKET, "--key", "in/a.txt", "--json",
        EXECUTION_FILTER_EXPR="length > 10", **env,
    )  # fmt: skip
    report = json.loads(filtered.stdout)
    assert report["listed"] == 6 and report["filter"]["decision"] == "skip"
    assert [p["key"] for p in report["pull"]] == ["in/a.txt"]
    assert all_versions(planned, BUCKET) == before


def test_plan_cannot_list(aws: MotoServer) -> None:
    result = cli("plan", "--bucket", "no-such-bucket", "--key", "in/a.txt")
    assert result.returncode == 1
    assert result.stdout == ""
    assert "cannot list" in result.stderr


# --- event -------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["s3", "sqs", "sns", "eventbridge"])
def test_event_shapes(shape: str) -> None:
    key = "in/red flower+1 ü.txt"
    result = cli("event", shape, "--bucket", BUCKET, "--key", key, "--size", "42")

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    payload = json.loads(result.stdout)
    invocation = parse_invocation(payload)
    [message] = invocation.messages
    [event] = message.events
    assert (event.bucket, event.key, event.event_name, event.size) == (
        BUCKET,
        key,
        "ObjectCreated:Put",
        42,
    )
    assert invocation.source is (Source.SQS if shape == "sqs" else Source.DIRECT)
    assert (key in result.stdout) is (shape == "eventbridge")  # encoded where AWS encodes


def test_event_names() -> None:
    removed = json.loads(
        cli(
            "event", "eventbridge", "--bucket", BUCKET, "--key", "k", "--event-name",
            "ObjectRemoved:Delete",
        ).stdout
    )  # fmt: skip
    assert removed["detail-type"] == "Object Deleted"
    s3 = json.loads(
        cli(
            "event", "s3", "--bucket", BUCKET, "--key", "k", "--event-name", "s3:ObjectCreated:Copy"
        ).stdout
    )
    assert s3["Records"][0]["eventName"] == "ObjectCreated:Copy"


# --- help, usage and configuration errors ------------------------------------------------------


@pytest.mark.parametrize("mode", ["lambda", "run", "invoke", "consume", "plan", "event"])
def test_help_for_every_mode(mode: str) -> None:
    result = cli(mode, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage:") and mode in result.stdout


def test_consume_help_explains_max_messages_against_max_receive_count() -> None:
    help_text = " ".join(cli("consume", "--help").stdout.split())
    assert "default 10: events of one folder arriving together share one handler run" in help_text
    assert "maxReceiveCount of at least 5" in help_text


def test_top_level_help() -> None:
    result = cli("--help")
    assert result.returncode == 0
    for mode in ["lambda", "run", "invoke", "consume", "plan", "event"]:
        assert mode in result.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["frobnicate"],
        ["python", "handler.py"],  # a bare command outside Lambda
        ["run", "--bogus"],
        ["plan", "--bucket", BUCKET],
        ["plan", "--bucket", BUCKET, "--key", "k", "--", "extra"],
        ["event"],
        ["event", "gcs", "--bucket", BUCKET, "--key", "k"],
        ["event", "s3", "--bucket", BUCKET, "--key", "k", "--size", "-1"],
        ["event", "s3", "--bucket", BUCKET, "--key", "k", "--size", "big"],
        ["event", "eventbridge", "--bucket", BUCKET, "--key", "k", "--event-name", "Nope:Nope"],
        ["consume"],
        ["consume", "--queue-url", "http://q", "--workers", "0"],
        ["consume", "--queue-url", "http://q", "--max-messages", "11"],
        ["lambda", "--", "python", "handler.py"],  # AWS_LAMBDA_RUNTIME_API is not set
    ],
)
def test_usage_errors_exit_2_with_one_line(args: list[str]) -> None:
    result = cli(*args)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("s3-event-bridge"), result.stderr


def test_no_arguments_is_a_usage_error_with_one_line() -> None:
    result = cli()
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1, result.stderr


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MATCH_KEY", "in/[a-"),
        ("MATCH_EVENTS", "ObjectCreated:(*"),
        ("PULL_PARENT_DIRS", "two"),
        ("PULL_MATCH_KEYS", r"\.txt$,[unclosed"),
        ("EXECUTION_FILTER_EXPR", "map(.Key"),
        ("EXECUTION_FILTER_FILE", "/nonexistent/filter.jq"),
        ("HANDLER_TIMEOUT", "0"),
        ("HANDLER_TIMEOUT", "-3"),
        ("TRANSFER_CONCURRENCY", "0"),
        ("SKIP_UNCHANGED", "maybe"),
        ("MAX_CHAIN_DEPTH", "-1"),
        ("LOG_FORMAT", "xml"),
        ("LOG_LEVEL", "loud"),
        ("ROOT_FOLDER_VAR", "1bad"),
        ("BUCKET_VAR", "has space"),
        ("KEY_PREFIX_VAR", "a-b"),
        ("HANDLER_COMMAND", "python 'unterminated"),
    ],
)
def test_bad_configuration_exits_2_naming_the_variable(variable: str, value: str) -> None:
    args = ["run", "--bucket", BUCKET]
    if variable != "HANDLER_COMMAND":
        args += ["--", sys.executable, "-c", "pass"]

    result = cli(*args, **{variable: value})

    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"s3-event-bridge: configuration error: {variable}: ")


@pytest.mark.parametrize(
    "args",
    [
        ["invoke", "--", sys.executable, "-c", "pass"],
        ["plan", "--bucket", BUCKET, "--key", "k"],
        ["consume", "--queue-url", "http://127.0.0.1:9/q", "--once", "--", "true"],
    ],
)
def test_every_mode_validates_the_configuration_first(args: list[str]) -> None:
    result = cli(*args, stdin="{}", TRANSFER_CONCURRENCY="0")
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("s3-event-bridge: configuration error: TRANSFER_CONCURRENCY: ")


def test_both_filter_variables_is_a_configuration_error(tmp_path: Path) -> None:
    program = tmp_path / "filter.jq"
    program.write_text("true\n", encoding="utf-8")
    result = cli(
        "run", "--bucket", BUCKET, "--", sys.executable, "-c", "pass",
        EXECUTION_FILTER_EXPR="true", EXECUTION_FILTER_FILE=str(program),
    )  # fmt: skip
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert "EXECUTION_FILTER_FILE" in line and "EXECUTION_FILTER_EXPR" in line


def test_no_handler_command_is_a_configuration_error() -> None:
    for args in (["run", "--bucket", BUCKET], ["invoke"]):
        result = cli(*args, stdin="{}")
        assert result.returncode == 2
        [line] = result.stderr.splitlines()
        assert "HANDLER_COMMAND" in line


def test_every_bad_variable_is_reported_at_once() -> None:
    bad = {
        "MATCH_KEY": "[",
        "PULL_PARENT_DIRS": "x",
        "HANDLER_TIMEOUT": "0",
        "SKIP_UNCHANGED": "maybe",
        "LOG_LEVEL": "loud",
        "ROOT_FOLDER_VAR": "1bad",
    }
    result = cli("run", "--bucket", BUCKET, "--", sys.executable, "-c", "pass", **bad)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == len(bad), result.stderr
    for variable in bad:
        assert any(f"configuration error: {variable}: " in line for line in lines), variable


def test_missing_command_is_reported_with_the_other_problems() -> None:
    result = cli("run", "--bucket", BUCKET, MATCH_KEY="[", LOG_LEVEL="loud")
    assert result.returncode == 2
    text = result.stderr
    assert "MATCH_KEY" in text and "LOG_LEVEL" in text
    assert "HANDLER_COMMAND" in text, "a missing handler command is a problem like the others"
