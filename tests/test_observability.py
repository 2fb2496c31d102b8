"""Logs an on-call engineer can follow, and metrics without code (docs/design.md §7, §8).

- each group logs ``group started`` and one summary whose timings carry their unit (``pull_ms``);
- a failure reason names the failed messages and ends with the handler's last stderr lines;
- the batch line lists the failed message ids;
- long pulls and pushes log their progress, at most once per interval;
- JSON lines carry ``requestId``, ``xray_trace_id`` and ``function_name``;
- ``METRICS=emf`` writes one Embedded Metric Format line per group, valid per AWS's
  specification (``tests/emf_spec.py``); on by default under Lambda only.
"""

from __future__ import annotations

import io
import json
import logging
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge import progress as progress_module
from bridge.logs import JsonFormatter, log, request_context, xray_root
from bridge.metrics import GroupMetrics, emf_document
from bridge.progress import Progress
from tests.conftest import MotoServer, bridge_command, subprocess_env
from tests.emf_spec import EmfError, emf_lines, validate_emf_line
from tests.helpers import handler, make_app, put, s3_notification, sqs_payload
from tests.runtime_api import FakeRuntimeApi

BUCKET = "observed"
TIMEOUT = 60


@pytest.fixture
def bucket(aws: MotoServer, s3: Any) -> Any:
    s3.create_bucket(Bucket=BUCKET)
    return s3


def invoke(payload: Any, *command: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*bridge_command(), "invoke", "--", *command],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        env=subprocess_env(**env),
        timeout=TIMEOUT,
    )


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


# --- log lines -----------------------------------------------------------------------------


def test_failure_names_its_messages_and_ends_with_the_handlers_stderr(bucket: Any) -> None:
    put(bucket, BUCKET, "in/a.txt")
    put(bucket, BUCKET, "ok/b.txt")
    payload, ids = sqs_payload(
        [s3_notification(BUCKET, ["in/a.txt"]), s3_notification(BUCKET, ["ok/b.txt"])]
    )
    crash = handler("crash")
    result = invoke(payload, *crash, LOG_FORMAT="json", MATCH_KEY="^in/")
    assert result.returncode == 1
    lines = json_lines(result.stderr)

    [started] = [line for line in lines if line["message"] == "group started"]
    assert started["prefix"] == "in/" and started["message_ids"] == [ids[0]]
    [summary] = [line for line in lines if line["message"] == "group summary"]
    assert summary["message_ids"] == [ids[0]]
    assert summary["reason"].startswith("handler exited with status 1; its stderr ended with: ")
    assert summary["reason"].endswith("KeyError: 'missing-setting'")
    assert "a line on stdout" not in summary["reason"]
    assert set(summary["timings"]) >= {"list_ms", "pull_ms", "handler_ms"}
    assert all(isinstance(v, int | float) for v in summary["timings"].values())
    assert json.loads(result.stdout) == {"batchItemFailures": [{"itemIdentifier": ids[0]}]}


def test_consumer_batch_line_lists_the_failed_message_ids(
    bucket: Any, sqs: Any, tmp_path: Path
) -> None:
    put(bucket, BUCKET, "in/a.txt")
    url = sqs.create_queue(QueueName="observed")["QueueUrl"]
    sent = sqs.send_message(QueueUrl=url, MessageBody=s3_notification(BUCKET, ["in/a.txt"]))
    result = subprocess.run(
        [
            *bridge_command(),
            "consume",
            "--queue-url",
            url,
            "--once",
            "--wait-time",
            "5",
            "--",
            *handler("crash"),
        ],
        capture_output=True,
        text=True,
        env=subprocess_env(LOG_FORMAT="json"),
        timeout=TIMEOUT,
    )
    assert result.returncode == 1
    [batch] = [line for line in json_lines(result.stderr) if line["message"] == "batch done"]
    assert batch["level"] == "WARNING"
    assert batch["failed"] == 1 and batch["failed_message_ids"] == [sent["MessageId"]]


def test_json_lines_carry_request_trace_and_function(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "thumbnails")
    stream = io.StringIO()
    handler_ = logging.StreamHandler(stream)
    handler_.setFormatter(JsonFormatter())
    logger = logging.getLogger("tests.observability.json")
    logger.addHandler(handler_)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    trace = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
    with request_context("8476a536-e9f4-11e8-9739-2dfe598c3fcd", trace):
        log(logger, logging.INFO, "inside")
    log(logger, logging.INFO, "outside")
    inside, outside = json_lines(stream.getvalue())
    assert inside["requestId"] == "8476a536-e9f4-11e8-9739-2dfe598c3fcd"
    assert inside["xray_trace_id"] == "1-5759e988-bd862e3fe1be46a994272793"
    assert inside["function_name"] == outside["function_name"] == "thumbnails"
    assert "xray_trace_id" not in outside and "requestId" not in outside


@pytest.mark.parametrize(
    ("header", "root"),
    [("Root=1-a-b;Parent=c;Sampled=1", "1-a-b"), ("Parent=c", None), (None, None), ("", None)],
)
def test_xray_root(header: str | None, root: str | None) -> None:
    assert xray_root(header) == root


# --- progress ------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_progress_is_logged_at_most_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    progress = Progress("pull", 20, 20000, interval=5.0, clock=clock, label="b/in/")
    with caplog.at_level(logging.INFO, logger="bridge.progress"):
        for _ in range(12):  # an object of 1000 bytes every second
            clock.now += 1.0
            progress.object_done(1000)
    lines = [r for r in caplog.records if r.getMessage() == "pull progress"]
    assert len(lines) == 2  # at 5 s and 10 s, not at every object
    fields: dict[str, Any] = lines[0].fields  # type: ignore[attr-defined]
    assert fields == {
        "group": "b/in/",
        "objects_done": 5,
        "objects_total": 20,
        "bytes_done": 5000,
        "bytes_total": 20000,
        "mib_per_s": round(5000 / 5.0 / 2**20, 2),
        "elapsed_ms": 5000,
    }
    assert lines[1].fields["objects_done"] == 10  # type: ignore[attr-defined]


def test_a_short_transfer_logs_no_progress(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    progress = Progress("push", 1, 10, interval=5.0, clock=clock)
    with caplog.at_level(logging.INFO, logger="bridge.progress"):
        clock.now += 1
        progress.object_done(10)
    assert not [r for r in caplog.records if "progress" in r.getMessage()]


def test_long_pull_and_push_report_progress(
    bucket: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(progress_module, "INTERVAL_SECONDS", 0.0)  # every event is "long"
    for index in range(12):
        put(bucket, BUCKET, f"in/{index:02d}.txt", "x" * 100)
    app = make_app(handler("copier"))
    payload, _ = sqs_payload([s3_notification(BUCKET, ["in/00.txt"])])
    with caplog.at_level(logging.INFO):
        assert app.handle_payload(payload).all_succeeded
    # copier copies the triggering object: 12 objects pulled, 1 output pushed.
    for what, objects, size in (("pull", 12, 1200), ("push", 1, 100)):
        lines: list[dict[str, Any]] = [
            r.fields  # type: ignore[attr-defined]
            for r in caplog.records
            if r.getMessage() == f"{what} progress"
        ]
        assert lines, what
        assert lines[-1]["objects_done"] == lines[-1]["objects_total"] == objects
        assert lines[-1]["bytes_done"] == lines[-1]["bytes_total"] == size
        assert lines[-1]["group"] == f"s3://{BUCKET}/in/"


# --- metrics -------------------------------------------------------------------------------


def test_emf_document_follows_the_specification() -> None:
    group = GroupMetrics("b", "in/", "succeeded", 12.5, 100, 200, 2, 1)
    document = validate_emf_line(json.dumps(emf_document(group, "fn")))
    [directive] = document["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "S3EventBridge"
    assert directive["Dimensions"] == [["FunctionName"]]
    assert {m["Name"]: m["Unit"] for m in directive["Metrics"]} == {
        "GroupsSucceeded": "Count",
        "GroupsSkipped": "Count",
        "GroupsFailed": "Count",
        "HandlerDuration": "Milliseconds",
        "BytesIn": "Bytes",
        "BytesOut": "Bytes",
        "OutputsUploaded": "Count",
        "OutputsUnchanged": "Count",
    }
    assert (document["GroupsSucceeded"], document["GroupsFailed"]) == (1, 0)
    assert (document["BytesIn"], document["BytesOut"]) == (100, 200)
    assert (document["OutputsUploaded"], document["OutputsUnchanged"]) == (2, 1)
    assert document["HandlerDuration"] == 12.5 and document["FunctionName"] == "fn"


def test_a_skipped_group_has_no_handler_duration() -> None:
    group = GroupMetrics("b", "in/", "skipped", None, 0, 0, 0, 0)
    document = validate_emf_line(json.dumps(emf_document(group, "fn")))
    assert "HandlerDuration" not in document
    assert "HandlerDuration" not in {
        m["Name"] for m in document["_aws"]["CloudWatchMetrics"][0]["Metrics"]
    }
    assert document["GroupsSkipped"] == 1


@pytest.mark.parametrize(
    "broken",
    [
        '{"_aws": {"CloudWatchMetrics": []}}',  # no Timestamp
        '{"_aws": {"Timestamp": 1, "CloudWatchMetrics": []}}',  # decades old
        'x {"_aws": {}}',
        "NOW",
    ],
)
def test_the_validator_rejects_what_the_specification_forbids(broken: str) -> None:
    now = int(time.time() * 1000)
    line = broken.replace(
        "NOW", json.dumps(_metric_doc(now, Metrics=[{"Name": "M", "Unit": "Lumens"}]))
    )
    with pytest.raises(EmfError):
        validate_emf_line(line)


def _metric_doc(now: int, **directive: Any) -> dict[str, Any]:
    return {
        "_aws": {
            "Timestamp": now,
            "CloudWatchMetrics": [{"Namespace": "N", "Dimensions": [], **directive}],
        },
        "M": 1,
    }


def test_metrics_emf_writes_one_valid_line_per_group(bucket: Any) -> None:
    for key in ("in/a.txt", "two/b.txt"):
        put(bucket, BUCKET, key, "abc")
    payload, _ = sqs_payload(
        [s3_notification(BUCKET, ["in/a.txt"]), s3_notification(BUCKET, ["two/b.txt"])]
    )
    result = invoke(payload, *handler("copier"), METRICS="emf")
    assert result.returncode == 0, result.stderr
    documents = emf_lines(result.stderr)
    assert sorted(d["prefix"] for d in documents) == ["in/", "two/"]
    for document in documents:
        assert document["GroupsSucceeded"] == 1 and document["GroupsFailed"] == 0
        assert document["BytesIn"] == 3 and document["OutputsUploaded"] == 1
        assert document["FunctionName"] == "s3-event-bridge"
        assert document["HandlerDuration"] > 0


def test_metrics_count_a_failed_group(bucket: Any) -> None:
    put(bucket, BUCKET, "in/a.txt")
    payload, _ = sqs_payload([s3_notification(BUCKET, ["in/a.txt"])])
    result = invoke(payload, *handler("fail"), METRICS="emf")
    [document] = emf_lines(result.stderr)
    assert (document["GroupsFailed"], document["GroupsSucceeded"]) == (1, 0)
    assert document["outcome"] == "failed" and document["OutputsUploaded"] == 0


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, 0),  # off outside Lambda
        ({"AWS_LAMBDA_FUNCTION_NAME": "fn"}, 1),  # on under Lambda
        ({"AWS_LAMBDA_FUNCTION_NAME": "fn", "METRICS": "off"}, 0),
    ],
)
def test_metrics_default_on_under_lambda_only(
    bucket: Any, env: dict[str, str], expected: int
) -> None:
    put(bucket, BUCKET, "in/a.txt")
    payload, _ = sqs_payload([s3_notification(BUCKET, ["in/a.txt"])])
    result = invoke(payload, *handler("copier"), **env)
    assert result.returncode == 0, result.stderr
    documents = emf_lines(result.stderr)
    assert len(documents) == expected
    if documents:
        assert documents[0]["FunctionName"] == "fn"


# --- the same under the Lambda runtime ---------------------------------------------------------


@pytest.fixture
def runtime_api() -> Iterator[FakeRuntimeApi]:
    with FakeRuntimeApi() as server:
        yield server


def test_lambda_json_lines_and_metrics(
    bucket: Any, runtime_api: FakeRuntimeApi, tmp_path: Path
) -> None:
    put(bucket, BUCKET, "in/a.txt")
    log_path = tmp_path / "runtime.log"
    env = subprocess_env(
        AWS_LAMBDA_RUNTIME_API=runtime_api.address,
        AWS_LAMBDA_FUNCTION_NAME="observed-fn",
        AWS_LAMBDA_LOG_FORMAT="JSON",
        TMPDIR=str(tmp_path),
    )
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            [*bridge_command(), *handler("crash")],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        payload, ids = sqs_payload([s3_notification(BUCKET, ["in/a.txt"])])
        trace = "Root=1-65f0e8c1-0123456789abcdef01234567;Parent=1111111111111111;Sampled=1"
        request = runtime_api.enqueue(payload, trace_id=trace)
        answer = runtime_api.wait_answer(request)
        assert answer.body == {"batchItemFailures": [{"itemIdentifier": ids[0]}]}
        runtime_api.wait_waiting(1)
    finally:
        process.terminate()
        process.wait(timeout=TIMEOUT)
    text = log_path.read_text(encoding="utf-8")
    [metrics] = emf_lines(text)
    assert metrics["FunctionName"] == "observed-fn" and metrics["GroupsFailed"] == 1
    entries = [e for e in json_lines(text) if "_aws" not in e]
    tagged = [e for e in entries if e.get("requestId") == request]
    assert {"group started", "group summary", "invocation answered"} <= {
        e["message"] for e in tagged
    }
    for entry in tagged:
        assert entry["xray_trace_id"] == "1-65f0e8c1-0123456789abcdef01234567"
        assert entry["function_name"] == "observed-fn"
    [answered] = [e for e in tagged if e["message"] == "invocation answered"]
    assert answered["failed_message_ids"] == ids
