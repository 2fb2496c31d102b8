"""The Lambda custom runtime (docs/design.md §8, §5) against a local Runtime API and moto.

End-to-end tests run the installed ``s3-event-bridge`` as a subprocess, exactly as a Lambda
image does (``ENTRYPOINT ["s3-event-bridge"]``, ``CMD ["python", "handler.py"]``), with
``AWS_LAMBDA_RUNTIME_API`` pointing at ``tests.runtime_api.FakeRuntimeApi``. The in-process
tests at the end cover the client and the poller without subprocesses.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bridge.app import Answer
from bridge.engine import InvocationContext
from bridge.runtime import Poller, StopSignal, max_concurrency, serve
from bridge.runtime_client import (
    NextInvocation,
    RequestRejected,
    RuntimeApiClient,
    RuntimeApiError,
)
from bridge.samples import sample_payload
from bridge.settings import ConfigurationError
from tests.conftest import MotoServer, bridge_command, free_port, subprocess_env
from tests.runtime_api import FakeRuntimeApi, Posted

BUCKET = "uploads"

# The user's handler: what it does depends on the triggering key.
HANDLER = r"""
import json, os, pathlib, subprocess, sys, time

root = pathlib.Path(os.environ["ROOT_FOLDER"])
report = pathlib.Path(os.environ["TEST_REPORT_DIR"])
events = json.loads(pathlib.Path(os.environ["BRIDGE_EVENTS_FILE"]).read_text())
print(f"handler saw {len(events)} event(s)", flush=True)
for event in events:
    key = event["key"]
    if key.startswith("fail/"):
        print("failing on purpose", file=sys.stderr, flush=True)
        sys.exit(3)
    if key.startswith("sleep/"):
        child = subprocess.Popen(["sleep", "600"])
        info = {"pgid": os.getpgid(0), "pid": os.getpid(), "child": child.pid}
        (report / "sleeper.tmp").write_text(json.dumps(info))
        (report / "sleeper.tmp").rename(report / "sleeper.json")
        time.sleep(600)
    if key.startswith("env/"):
        names = ("_X_AMZN_TRACE_ID", "BRIDGE_DEADLINE_MS")
        (root / "env.json").write_text(json.dumps({n: os.environ.get(n) for n in names}))
    if key.startswith("barrier/"):
        (report / (key.replace("/", "_") + ".arrived")).write_text(str(root))
        give_up = time.monotonic() + 30
        while len(list(report.glob("*.arrived"))) < 4:
            if time.monotonic() > give_up:
                sys.exit(4)
            time.sleep(0.02)
    if event["path"]:
        source = root / event["path"]
        source.with_suffix(".out").write_text(source.read_text().upper())
"""


@dataclass
class Runtime:
    """A running ``s3-event-bridge`` runtime process."""

    process: subprocess.Popen[bytes]
    log_path: Path
    tmpdir: Path
    report_dir: Path

    def log_lines(self) -> list[str]:
        """Everything the process wrote to stderr so far."""
        return self.log_path.read_text(encoding="utf-8").splitlines()

    def lines_with(self, text: str) -> list[str]:
        """The log lines containing ``text``."""
        return [line for line in self.log_lines() if text in line]

    def stop(self) -> int | None:
        """SIGTERM, as Lambda does at shutdown; returns the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def open_fds(self) -> int:
        """Open file descriptors of the process right now."""
        return len(os.listdir(f"/proc/{self.process.pid}/fd"))


StartRuntime = Callable[..., Runtime]


@pytest.fixture
def api() -> Iterator[FakeRuntimeApi]:
    with FakeRuntimeApi() as server:
        yield server


@pytest.fixture
def start_runtime(api: FakeRuntimeApi, aws: MotoServer, tmp_path: Path) -> Iterator[StartRuntime]:
    """Start the runtime as the image would: entrypoint + the user's command as arguments."""
    started: list[Runtime] = []
    task = tmp_path / "task"
    task.mkdir()
    (task / "handler.py").write_text(HANDLER, encoding="utf-8")

    def start(*arguments: str, wait_ready: bool = True, bare: bool = False, **env: str) -> Runtime:
        """``bare``: no arguments at all (an image with no CMD: HANDLER_COMMAND in ``env``)."""
        index = len(started)
        tmpdir, report = tmp_path / f"tmp{index}", tmp_path / f"report{index}"
        tmpdir.mkdir()
        report.mkdir()
        log_path = tmp_path / f"runtime{index}.log"
        command = [] if bare else list(arguments) or [sys.executable, "handler.py"]
        variables = {
            "AWS_LAMBDA_RUNTIME_API": api.address,
            "TMPDIR": str(tmpdir),
            "TEST_REPORT_DIR": str(report),
            **env,
        }
        with open(log_path, "wb") as log_file:
            process = subprocess.Popen(
                [*bridge_command(), *command],
                cwd=task,
                env=subprocess_env(**variables),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        runtime = Runtime(process, log_path, tmpdir, report)
        started.append(runtime)
        if wait_ready:
            api.wait_waiting(1)
        return runtime

    yield start
    for runtime in started:
        runtime.stop()


@pytest.fixture
def bucket(s3: Any) -> Any:
    s3.create_bucket(Bucket=BUCKET)
    return s3


def put(s3: Any, key: str, body: str = "hello") -> None:
    s3.put_object(Bucket=BUCKET, Key=key, Body=body.encode())


def read(s3: Any, key: str) -> str:
    return str(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode())


def s3_event(key: str) -> dict[str, object]:
    return sample_payload("s3", BUCKET, key)


def sqs_batch(*records: dict[str, Any]) -> dict[str, object]:
    return {"Records": list(records)}


def sqs_record(key: str) -> dict[str, Any]:
    payload = sample_payload("sqs", BUCKET, key)
    records = payload["Records"]
    assert isinstance(records, list)
    record: dict[str, Any] = records[0]
    return record


def live_members(pgid: int) -> list[int]:
    """Processes of process group ``pgid`` that are still alive (zombies do not count)."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        state, group = fields[0], int(fields[2])
        if group == pgid and state not in ("Z", "X"):
            members.append(int(entry))
    return members


# --- end to end ------------------------------------------------------------------------


def test_one_process_serves_many_invocations_over_one_connection(
    api: FakeRuntimeApi, start_runtime: StartRuntime, bucket: Any
) -> None:
    runtime = start_runtime()
    answers: dict[str, Posted] = {}
    for index in range(3):
        put(bucket, f"in{index}/photo.txt", f"photo {index}")
    ids = [api.enqueue(s3_event("in0/photo.txt"))]
    ids.append(api.enqueue(b"{not json"))
    ids.append(api.enqueue({"unexpected": "shape"}))
    ids += [api.enqueue(s3_event(f"in{index}/photo.txt")) for index in (1, 2)]
    for request_id in ids:
        answers[request_id] = api.wait_answer(request_id)

    ok = [ids[0], ids[3], ids[4]]
    for request_id in ok:
        assert answers[request_id].kind == "response"
        assert answers[request_id].body == {}
    assert [read(bucket, f"in{i}/photo.out") for i in range(3)] == [
        "PHOTO 0",
        "PHOTO 1",
        "PHOTO 2",
    ]
    not_json, unknown = answers[ids[1]], answers[ids[2]]
    assert not_json.kind == "error" and not_json.body["errorType"] == "InvalidEvent"
    assert "not JSON" in not_json.body["errorMessage"]
    assert unknown.kind == "error" and unknown.body["errorType"] == "UnrecognizedEvent"
    assert unknown.headers["Lambda-Runtime-Function-Error-Type"] == "Function.UnrecognizedEvent"

    # One process, one keep-alive connection for every request it made.
    api.wait_waiting(1)
    assert runtime.process.poll() is None
    assert len({r.connection for r in api.requests}) == 1
    assert len(api.next_requests()) == len(ids) + 1  # the last one is waiting

    # Every line of an invocation carries its request id (text format: "[id]").
    for request_id in ok:
        tagged = runtime.lines_with(f"[{request_id}]")
        assert any("handler saw 1 event(s)" in line for line in tagged)
        assert any("group summary" in line and "outcome=succeeded" in line for line in tagged)
        assert any("invocation answered" in line for line in tagged)


def test_sqs_batch_reports_exactly_the_failed_messages(
    api: FakeRuntimeApi, start_runtime: StartRuntime, bucket: Any
) -> None:
    start_runtime()
    put(bucket, "good/a.txt", "a")
    put(bucket, "fail/b.txt", "b")
    put(bucket, "good2/c.txt", "c")
    good, failing, good2 = (sqs_record(k) for k in ("good/a.txt", "fail/b.txt", "good2/c.txt"))
    garbled = dict(sqs_record("good/a.txt"), body="this is not an S3 notification")
    request_id = api.enqueue(sqs_batch(good, failing, garbled, good2))

    answer = api.wait_answer(request_id)

    assert answer.kind == "response"  # a partial batch response, not an error
    failed = {item["itemIdentifier"] for item in answer.body["batchItemFailures"]}
    assert failed == {failing["messageId"], garbled["messageId"]}
    assert read(bucket, "good/a.out") == "A"
    assert read(bucket, "good2/c.out") == "C"
    listed = bucket.list_objects_v2(Bucket=BUCKET, Prefix="fail/")["Contents"]
    assert [o["Key"] for o in listed] == ["fail/b.txt"]  # a failed handler uploads nothing


def test_direct_s3_event_whose_handler_fails_is_an_invocation_error(
    api: FakeRuntimeApi, start_runtime: StartRuntime, bucket: Any
) -> None:
    runtime = start_runtime()
    put(bucket, "fail/x.txt")
    request_id = api.enqueue(s3_event("fail/x.txt"))

    answer = api.wait_answer(request_id)

    assert answer.kind == "error"
    assert answer.headers["Lambda-Runtime-Function-Error-Type"] == "Function.ExecutionGroupFailed"
    assert answer.headers["Content-Type"] == "application/vnd.aws.lambda.error+json"
    assert answer.body["errorType"] == "ExecutionGroupFailed"
    assert "handler exited with status 3" in answer.body["errorMessage"]
    assert isinstance(answer.body["stackTrace"], list)
    assert any("failing on purpose" in line for line in runtime.lines_with(f"[{request_id}]"))
    # The runtime goes on: the next invocation is served by the same process.
    put(bucket, "ok/y.txt", "y")
    assert api.wait_answer(api.enqueue(s3_event("ok/y.txt"))).body == {}
    assert runtime.process.poll() is None


@pytest.mark.parametrize(
    ("arguments", "env", "expected"),
    [
        pytest.param(
            (sys.executable, "handler.py"),
            {"MATCH_KEY": "[", "TRANSFER_CONCURRENCY": "0"},
            [
                "s3-event-bridge: configuration error: MATCH_KEY: invalid regular expression: "
                "unterminated character set at position 0",
                "s3-event-bridge: configuration error: TRANSFER_CONCURRENCY: Input should be "
                "greater than or equal to 1",
            ],
            id="bad-configuration",
        ),
        pytest.param(
            ("lambda",),
            {},
            [
                "s3-event-bridge: configuration error: HANDLER_COMMAND: required when no "
                "handler command is given as arguments"
            ],
            id="no-handler-command",
        ),
        pytest.param(
            (sys.executable, "handler.py"),
            {"AWS_LAMBDA_MAX_CONCURRENCY": "many"},
            [
                "s3-event-bridge: configuration error: AWS_LAMBDA_MAX_CONCURRENCY: must be a "
                "positive integer, got 'many'"
            ],
            id="bad-concurrency",
        ),
    ],
)
def test_start_up_failure_posts_init_error_and_exits_2(
    api: FakeRuntimeApi,
    start_runtime: StartRuntime,
    arguments: tuple[str, ...],
    env: dict[str, str],
    expected: list[str],
) -> None:
    runtime = start_runtime(*arguments, wait_ready=False, **env)

    assert runtime.process.wait(timeout=30) == 2
    init_error = api.wait_init_error()
    assert init_error.body == {
        "errorType": "Runtime.ConfigurationError",
        "errorMessage": "\n".join(expected),
        "stackTrace": [],
    }
    assert init_error.headers["Lambda-Runtime-Function-Error-Type"] == "Runtime.ConfigurationError"
    assert runtime.log_lines() == expected  # the same message the CLI prints
    assert api.next_requests() == []  # never asked for work


def test_no_arguments_with_the_runtime_api_is_lambda_mode_with_handler_command(
    api: FakeRuntimeApi, start_runtime: StartRuntime, bucket: Any
) -> None:
    """ENTRYPOINT ["s3-event-bridge"] and no CMD: the handler comes from HANDLER_COMMAND."""
    runtime = start_runtime(bare=True, HANDLER_COMMAND=f"{sys.executable} handler.py")
    put(bucket, "in/photo.txt", "photo")

    answer = api.wait_answer(api.enqueue(s3_event("in/photo.txt")))

    assert answer.kind == "response" and answer.body == {}
    assert read(bucket, "in/photo.out") == "PHOTO"
    assert runtime.stop() == 0


@pytest.mark.parametrize(
    ("arguments", "bare", "env", "error_type", "expected"),
    [
        pytest.param(
            (),
            True,
            {},
            "Runtime.ConfigurationError",
            "s3-event-bridge: configuration error: HANDLER_COMMAND: required when no handler "
            "command is given as arguments",
            id="bare-without-handler-command",
        ),
        pytest.param(
            (),
            True,
            {"HANDLER_COMMAND": "python handler.py", "PULL_PARENT_DIRS": "two"},
            "Runtime.ConfigurationError",
            "s3-event-bridge: configuration error: PULL_PARENT_DIRS: Input should be a valid "
            "integer, unable to parse string as an integer",
            id="bare-with-bad-configuration",
        ),
        pytest.param(
            ("lambda", "--bogus"),
            False,
            {"HANDLER_COMMAND": "python handler.py"},
            "Runtime.StartupError",
            "s3-event-bridge: lambda: unrecognized arguments: --bogus",
            id="usage-error",
        ),
    ],
)
def test_every_start_up_failure_under_the_runtime_api_posts_init_error_then_exits_2(
    api: FakeRuntimeApi,
    start_runtime: StartRuntime,
    arguments: tuple[str, ...],
    bare: bool,
    env: dict[str, str],
    error_type: str,
    expected: str,
) -> None:
    runtime = start_runtime(*arguments, bare=bare, wait_ready=False, **env)

    assert runtime.process.wait(timeout=30) == 2
    init_error = api.wait_init_error()
    assert init_error.body["errorType"] == error_type
    assert init_error.body["errorMessage"].startswith(expected), init_error.body
    assert api.next_requests() == []


def test_handler_past_the_deadline_margin_is_stopped_and_reported_in_time(
    api: FakeRuntimeApi, start_runtime: StartRuntime, bucket: Any
) -> None:
    runtime = start_runtime()
    put(bucket, "sleep/x.txt")
    # 5 s left at the start: margin max(1 s, 0.5 s) = 1 s, so the handler gets about 4 s.
    request_id = api.enqueue(s3_event("sleep/x.txt"), timeout_s=5)

    answer = api.wait_answer(request_id, timeout=30)

    invocation = api.invocation(request_id)
    assert invocation.deadline_ms is not None and invocation.dispatched_at is not None
    assert answer.received_at * 1000 < invocation.deadline_ms  # answered before the deadline
    assert answer.kind == "error"
    assert "handler timed out and was stopped" in answer.body["errorMessage"]
    sleeper = json.loads((runtime.report_dir / "sleeper.json").read_text())
    assert live_members(sleeper["pgid"]) == []  # the handler and its child are gone
    assert list(runtime.tmpdir.iterdir()) == []


def test_sigterm_stops_the_running_handler_and_exits_0(
    api: FakeRuntimeApi, start_runtime: StartRuntime, bucket: Any
) -> None:
    runtime = start_runtime()
    put(bucket, "sleep/x.txt")
    api.enqueue(s3_event("sleep/x.txt"))
    report = runtime.report_dir / "sleeper.json"
    give_up = time.monotonic() + 30
    while not report.exists():
        assert time.monotonic() < give_up, "the handler did not start"
        time.sleep(0.05)

    assert runtime.stop() == 0

    assert live_members(json.loads(report.read_text())["pgid"]) == []
    assert runtime.lines_with("stopping: SIGTERM")


def test_trace_id_and_deadline_reach_the_handler(
    api: FakeRuntimeApi, start_runtime: StartRuntime, bucket: Any
) -> None:
    start_runtime()
    put(bucket, "env/in.txt")
    trace = "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1"
    request_id = api.enqueue(s3_event("env/in.txt"), trace_id=trace)

    assert api.wait_answer(request_id).body == {}

    seen = json.loads(read(bucket, "env/env.json"))
    assert seen == {
        "_X_AMZN_TRACE_ID": trace,
        "BRIDGE_DEADLINE_MS": str(api.invocation(request_id).deadline_ms),
    }


def test_batch_operations_tasks_are_answered_one_by_one_never_as_an_error(
    api: FakeRuntimeApi, start_runtime: StartRuntime, bucket: Any
) -> None:
    runtime = start_runtime()
    put(bucket, "good/a.txt", "a")
    put(bucket, "fail/b.txt", "b")
    payload: Any = sample_payload("batch-ops", BUCKET, "good/a.txt")
    payload["tasks"] += sample_payload("batch-ops", BUCKET, "fail/b.txt")["tasks"]
    good, failing = (task["taskId"] for task in payload["tasks"])
    request_id = api.enqueue(payload)

    answer = api.wait_answer(request_id)

    assert answer.kind == "response"  # Batch Operations reads the results: not an error
    assert answer.body["invocationId"] == payload["invocationId"]
    assert [(r["taskId"], r["resultCode"]) for r in answer.body["results"]] == [
        (good, "Succeeded"),
        (failing, "TemporaryFailure"),
    ]
    assert read(bucket, "good/a.out") == "A"
    [answered] = runtime.lines_with("invocation answered")
    assert f'failed_messages=1 failed_message_ids=["{failing}"]' in answered


def test_forty_invocations_leave_no_temporary_folders_and_no_open_files(
    api: FakeRuntimeApi, start_runtime: StartRuntime, bucket: Any
) -> None:
    runtime = start_runtime("sh", "-c", 'cp "$ROOT_FOLDER/in.txt" "$ROOT_FOLDER/out.txt"')
    for index in range(40):
        put(bucket, f"job{index}/in.txt", f"input {index}")

    descriptors = []
    for index in range(40):
        answer = api.wait_answer(api.enqueue(s3_event(f"job{index}/in.txt")))
        assert answer.body == {}
        if index in (9, 39):
            api.wait_waiting(1)  # the runtime is idle again, waiting for work
            descriptors.append(runtime.open_fds())

    assert list(runtime.tmpdir.iterdir()) == []
    assert read(bucket, "job39/out.txt") == "input 39"
    # A leak would grow by one or more per invocation (30 here); pooled connections may vary.
    assert descriptors[1] <= descriptors[0] + 2, descriptors


def test_max_concurrency_runs_independent_pollers(
    api: FakeRuntimeApi, start_runtime: StartRuntime, bucket: Any
) -> None:
    runtime = start_runtime(sys.executable, "handler.py", AWS_LAMBDA_MAX_CONCURRENCY="4")
    api.wait_waiting(4)
    for index in range(4):
        put(bucket, f"barrier/{index}/in.txt", str(index))

    # Each handler waits until all four are running: only concurrent pollers can answer.
    ids = [api.enqueue(s3_event(f"barrier/{index}/in.txt")) for index in range(4)]
    answers = [api.wait_answer(request_id, timeout=60) for request_id in ids]

    assert [a.body for a in answers] == [{}] * 4
    assert api.max_in_flight == 4
    # Each poller answers on the connection it got its invocation from; four connections.
    connections = {api.invocation(request_id).dispatched_on for request_id in ids}
    assert len(connections) == 4
    for request_id, answer in zip(ids, answers, strict=True):
        assert answer.connection == api.invocation(request_id).dispatched_on
    roots = {p.read_text() for p in runtime.report_dir.glob("*.arrived")}
    assert len(roots) == 4  # its own temporary folder each
    assert [read(bucket, f"barrier/{i}/in.out") for i in range(4)] == ["0", "1", "2", "3"]
    assert list(runtime.tmpdir.iterdir()) == []


def test_json_log_lines_parse_and_carry_the_request_id(
    api: FakeRuntimeApi, start_runtime: StartRuntime, bucket: Any
) -> None:
    runtime = start_runtime(AWS_LAMBDA_LOG_FORMAT="JSON")  # LOG_FORMAT defaults to json then
    put(bucket, "ok/a.txt")
    put(bucket, "fail/b.txt")
    ok = api.enqueue(s3_event("ok/a.txt"))
    failing = api.enqueue(s3_event("fail/b.txt"))
    api.wait_answer(ok)
    api.wait_answer(failing)
    api.wait_waiting(1)
    assert runtime.stop() == 0

    entries = [json.loads(line) for line in runtime.log_lines()]  # every line is JSON

    for entry in entries:
        assert {"timestamp", "level", "message"} <= entry.keys()
        assert entry["level"] in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
    untagged = {e["message"] for e in entries if "requestId" not in e}
    assert untagged == {"lambda runtime ready", "stopping: SIGTERM"}

    def of(request_id: str) -> list[dict[str, Any]]:
        return [e for e in entries if e.get("requestId") == request_id]

    forwarded = [e for e in of(ok) if e["message"] == "handler saw 1 event(s)"]
    assert len(forwarded) == 1 and forwarded[0]["stream"] == "stdout"
    summary = [e for e in of(ok) if e["message"] == "group summary"]
    assert summary[0]["bucket"] == BUCKET and summary[0]["outcome"] == "succeeded"
    assert any(e["message"] == "failing on purpose" for e in of(failing))
    answered = [e for e in of(failing) if e["message"] == "invocation answered"]
    assert answered[0]["level"] == "ERROR"
    assert answered[0]["error_type"] == "ExecutionGroupFailed"


def test_dropped_connections_are_retried(
    api: FakeRuntimeApi, start_runtime: StartRuntime, bucket: Any
) -> None:
    api.drop_next_requests(2)
    runtime = start_runtime()
    put(bucket, "in/a.txt", "a")

    assert api.wait_answer(api.enqueue(s3_event("in/a.txt"))).body == {}
    assert len(api.next_requests()) >= 3
    assert len(runtime.lines_with("Runtime API connection failed")) == 2


def test_runtime_api_gone_ends_the_process(start_runtime: StartRuntime) -> None:
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    runtime = start_runtime(wait_ready=False, AWS_LAMBDA_RUNTIME_API=address)

    assert runtime.process.wait(timeout=30) == 1
    assert any(
        f"the Runtime API at {address} cannot be reached after 5 attempts" in line
        for line in runtime.lines_with("stopping: the Runtime API is gone")
    )


def test_lambda_mode_needs_the_runtime_api(tmp_path: Path) -> None:
    result = subprocess.run(
        [*bridge_command(), "lambda", "true"],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "AWS_LAMBDA_RUNTIME_API is not set" in result.stderr


# --- in process: client, poller, fake server -------------------------------------------


class StubApp:
    """Stands in for ``App``: records what it was given, answers what it is told."""

    def __init__(self, answer: Callable[[Any, InvocationContext | None], Answer]) -> None:
        self.calls: list[tuple[Any, InvocationContext | None]] = []
        self._answer = answer

    def handle_payload(self, payload: Any, context: InvocationContext | None = None) -> Answer:
        self.calls.append((payload, context))
        return self._answer(payload, context)


def test_client_reads_the_invocation_headers(api: FakeRuntimeApi) -> None:
    client = RuntimeApiClient(api.address)
    request_id = api.enqueue({"a": 1}, trace_id="Root=1-abc", function_arn="arn:x")

    invocation = client.next_invocation()

    assert invocation == NextInvocation(
        request_id=request_id,
        payload=b'{"a": 1}',
        deadline_ms=api.invocation(request_id).deadline_ms,
        trace_id="Root=1-abc",
        function_arn="arn:x",
    )
    client.post_response(request_id, {"done": True})
    assert api.wait_answer(request_id).body == {"done": True}
    with pytest.raises(RequestRejected) as rejected:  # already answered
        client.post_response(request_id, {})
    assert rejected.value.status == 400
    with pytest.raises(RequestRejected, match="Invalid request ID"):
        client.post_error("no-such-id", {"errorType": "X", "errorMessage": "y"})


def test_client_gives_up_on_an_unreachable_api() -> None:
    address = f"127.0.0.1:{free_port()}"
    client = RuntimeApiClient(address, attempts=3, backoff=0.01)
    with pytest.raises(RuntimeApiError, match=f"at {address} cannot be reached after 3 attempts"):
        client.next_invocation()


def test_poller_turns_a_bridge_bug_into_an_error_and_goes_on(api: FakeRuntimeApi) -> None:
    def explode(payload: Any, context: InvocationContext | None) -> Answer:
        if payload == "boom":
            raise KeyError("missing")
        return Answer({}, is_error=False, all_succeeded=True)

    poller = Poller(StubApp(explode), RuntimeApiClient(api.address), export_trace=False)
    first, second = api.enqueue("boom"), api.enqueue("fine")

    poller.run(limit=2)

    error = api.wait_answer(first)
    assert error.kind == "error" and error.body["errorType"] == "Runtime.KeyError"
    assert error.headers["Lambda-Runtime-Function-Error-Type"] == "Runtime.KeyError"
    assert "missing" in error.body["errorMessage"]
    assert any("KeyError" in line for line in error.body["stackTrace"])
    assert api.wait_answer(second).body == {}


DEEPLY_NESTED = b"[" * 1000 + b"]" * 1000  # 2 KB, past the JSON parser's recursion limit


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        (DEEPLY_NESTED, "nested too deeply"),
        (b'{"n": ' + b"9" * 5000 + b"}", "digits"),
        (b'{"a": "\xff"}', "not usable JSON"),
    ],
    ids=["1000-nested-arrays", "5000-digit-integer", "not-utf-8"],
)
def test_poller_answers_unusable_json_with_an_invalid_event_error_and_goes_on(
    api: FakeRuntimeApi, payload: bytes, why: str
) -> None:
    app = StubApp(lambda payload, context: Answer({}, is_error=False, all_succeeded=True))
    poller = Poller(app, RuntimeApiClient(api.address), export_trace=False)
    hostile, fine = api.enqueue(payload), api.enqueue({})

    poller.run(limit=2)

    error = api.wait_answer(hostile)
    assert error.kind == "error" and error.body["errorType"] == "InvalidEvent"
    assert why in error.body["errorMessage"]
    assert api.wait_answer(fine).body == {}
    assert [payload for payload, _ in app.calls] == [{}]  # the hostile one never reached it


def test_poller_passes_trace_and_deadline_and_exports_the_trace_only_when_asked(
    api: FakeRuntimeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("_X_AMZN_TRACE_ID", raising=False)
    app = StubApp(lambda payload, context: Answer({}, is_error=False, all_succeeded=True))
    shared = Poller(app, RuntimeApiClient(api.address), export_trace=False)
    single = Poller(app, RuntimeApiClient(api.address), export_trace=True)

    first = api.enqueue({}, trace_id="Root=1-first")
    shared.run(limit=1)
    assert "_X_AMZN_TRACE_ID" not in os.environ
    second = api.enqueue({}, trace_id="Root=1-second")
    single.run(limit=1)
    assert os.environ["_X_AMZN_TRACE_ID"] == "Root=1-second"

    for (_, context), request_id, trace in zip(
        app.calls, (first, second), ("Root=1-first", "Root=1-second"), strict=True
    ):
        assert context is not None and context.deadline is not None
        deadline_ms = api.invocation(request_id).deadline_ms
        assert context.env == {"_X_AMZN_TRACE_ID": trace, "BRIDGE_DEADLINE_MS": str(deadline_ms)}
        assert context.deadline.epoch_ms == deadline_ms
        # 60 s left at the start: the margin is 10 % of it.
        assert 5.5 < context.deadline.margin_s <= 6.0


def test_poller_survives_a_refused_answer(api: FakeRuntimeApi) -> None:
    other = RuntimeApiClient(api.address)

    def answered_elsewhere(payload: Any, context: InvocationContext | None) -> Answer:
        # Lambda gave up on this invocation meanwhile (here: someone else answered it).
        other.post_error(payload["id"], {"errorType": "Elsewhere", "errorMessage": "x"})
        return Answer({}, is_error=False, all_succeeded=True)

    poller = Poller(StubApp(answered_elsewhere), RuntimeApiClient(api.address), False)
    request_id = api.enqueue(b"{}")
    api.invocation(request_id).payload = json.dumps({"id": request_id}).encode()

    poller.run(limit=1)  # does not raise

    assert api.wait_answer(request_id).body["errorType"] == "Elsewhere"


@pytest.mark.parametrize(
    ("raw", "expected"), [("", 1), ("1", 1), ("4", 4), (" 16 ", 16), ("0", None), ("x", None)]
)
def test_max_concurrency(raw: str, expected: int | None) -> None:
    if expected is None:
        with pytest.raises(ConfigurationError, match="AWS_LAMBDA_MAX_CONCURRENCY"):
            max_concurrency({"AWS_LAMBDA_MAX_CONCURRENCY": raw})
    else:
        assert max_concurrency({"AWS_LAMBDA_MAX_CONCURRENCY": raw}) == expected


def test_fake_runtime_api_follows_the_protocol(api: FakeRuntimeApi) -> None:
    import http.client

    connection = http.client.HTTPConnection(api.address, timeout=10)

    def call(method: str, path: str, body: bytes | None = None) -> tuple[int, Any, Any]:
        connection.request(method, "/2018-06-01/runtime" + path, body=body)
        response = connection.getresponse()
        return response.status, response.headers, json.loads(response.read() or b"null")

    assert call("POST", "/invocation/unknown/response", b"{}")[0] == 400
    status, _, body = call("POST", "/init/error", b'{"errorType":"T","errorMessage":"m"}')
    assert (status, body) == (202, {"status": "OK"})
    assert api.init_errors[0].body == {"errorType": "T", "errorMessage": "m"}
    request_id = api.enqueue({"k": "v"}, timeout_s=30)
    status, headers, body = call("GET", "/invocation/next")
    assert status == 200 and body == {"k": "v"}
    assert headers["Lambda-Runtime-Aws-Request-Id"] == request_id
    assert headers["Lambda-Runtime-Invoked-Function-Arn"].startswith("arn:aws:lambda:")
    assert headers["Lambda-Runtime-Trace-Id"].startswith("Root=1-")
    deadline = int(headers["Lambda-Runtime-Deadline-Ms"])
    assert 0 < deadline - time.time() * 1000 <= 30_000
    assert call("POST", f"/invocation/{request_id}/response", b"{}")[0] == 202
    assert call("POST", f"/invocation/{request_id}/error", b"{}")[0] == 400  # answered
    assert call("GET", "/nowhere")[0] == 404


def test_stop_signal_queues_the_signal_and_restores_the_previous_handler() -> None:
    previous = signal.getsignal(signal.SIGUSR1)
    stop = StopSignal()
    with stop.on_signal(signal.SIGUSR1):
        os.kill(os.getpid(), signal.SIGUSR1)  # the default action would end pytest
        stop.wait()
    assert (stop.reason, stop.failure) == ("SIGUSR1", None)
    assert signal.getsignal(signal.SIGUSR1) is previous


def test_serve_returns_0_on_sigterm_and_restores_the_handler(api: FakeRuntimeApi) -> None:
    previous = signal.getsignal(signal.SIGTERM)
    app = StubApp(lambda payload, context: Answer({}, is_error=False, all_succeeded=True))
    request_id = api.enqueue({})

    def answer_then_terminate() -> None:
        api.wait_answer(request_id)
        api.wait_waiting(1)  # back in GET next
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=answer_then_terminate, daemon=True).start()

    assert serve(api.address, ["true"], make_app=lambda settings, command: app) == 0
    assert signal.getsignal(signal.SIGTERM) is previous
    assert len(app.calls) == 1
