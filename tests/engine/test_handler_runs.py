"""The handler's run: its environment and events file, temporary folders, free space,
timeouts, processes left behind, forwarded output, and one engine serving many groups
(docs/design.md §2, §4).

End to end over real HTTP (the moto server in its own process); payloads go through
``App.handle_payload`` as the Lambda runtime hands them over. Fixtures: ``conftest.py``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

import bridge.engine
from bridge.engine import Engine
from bridge.outcomes import Status
from tests.engine.conftest import (
    BUCKET,
    group,
    process_gone,
    sqs_run,
)
from tests.helpers import (
    failed_ids,
    handler,
    make_app,
    make_engine,
    objects,
    put,
    read_lines,
    s3_notification,
)


def test_handler_that_cannot_start_fails_the_group(src: Any) -> None:
    put(src, BUCKET, "in/a.txt", "a")
    outcome = make_engine(["/nonexistent/handler-binary"]).run_group(group("in/", "in/a.txt"))
    assert outcome.status is Status.FAILED
    assert outcome.reason is not None and "could not be started" in outcome.reason


def test_handler_environment_and_events_file(
    src: Any, tmp_path: Path, tmpdir_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dump = tmp_path / "dump.json"
    monkeypatch.setenv("DUMP_FILE", str(dump))
    monkeypatch.setenv("SOME_BRIDGE_VARIABLE", "inherited")
    put(src, BUCKET, "jobs/7/in put.txt", "x")
    put(src, BUCKET, "jobs/7/skipped.bin", "y")
    app = make_app(handler("envdump"), pull_match_keys=r"\.txt$")
    notification = s3_notification(BUCKET, ["jobs/7/in put.txt", "jobs/7/skipped.bin"])
    sent = json.loads(notification)["Records"]

    body, _ = sqs_run(app, [notification])

    assert failed_ids(body) == []
    seen = json.loads(dump.read_text(encoding="utf-8"))
    env = seen["env"]
    root = Path(env["ROOT_FOLDER"])
    assert root.is_absolute() and root.is_relative_to(tmpdir_root)
    assert env["BUCKET"] == BUCKET and env["KEY_PREFIX"] == "jobs/7/"
    assert env["SOME_BRIDGE_VARIABLE"] == "inherited"
    events_file = Path(env["BRIDGE_EVENTS_FILE"])
    assert events_file.is_relative_to(tmpdir_root) and not events_file.is_relative_to(root)
    assert seen["events"] == [
        {
            "bucket": BUCKET,
            "key": "jobs/7/in put.txt",
            "path": "in put.txt",
            "event_name": "ObjectCreated:Put",
            "size": sent[0]["s3"]["object"]["size"],
            "etag": sent[0]["s3"]["object"]["eTag"],
        },
        {
            "bucket": BUCKET,
            "key": "jobs/7/skipped.bin",
            "path": None,  # not pulled (PULL_MATCH_KEYS)
            "event_name": "ObjectCreated:Put",
            "size": sent[1]["s3"]["object"]["size"],
            "etag": sent[1]["s3"]["object"]["eTag"],
        },
    ]
    # The dump written into the root is an output like any other.
    assert json.loads(objects(src, BUCKET)["jobs/7/env.json"]) == seen
    assert list(tmpdir_root.iterdir()) == []
    assert not root.exists() and not events_file.exists()


def test_handler_variables_can_be_renamed(
    src: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dump = tmp_path / "dump.json"
    monkeypatch.setenv("DUMP_FILE", str(dump))
    monkeypatch.setenv("ROOT_VAR_NAME", "MY_ROOT")
    put(src, BUCKET, "in/a.txt", "a")
    engine = make_engine(
        handler("envdump"), root_folder_var="MY_ROOT", bucket_var="MY_BUCKET",
        key_prefix_var="MY_PREFIX",
    )  # fmt: skip

    outcome = engine.run_group(group("in/", "in/a.txt"))

    assert outcome.status is Status.SUCCEEDED, outcome.reason
    env = json.loads(dump.read_text(encoding="utf-8"))["env"]
    assert Path(env["MY_ROOT"]).is_absolute()
    assert (env["MY_BUCKET"], env["MY_PREFIX"]) == (BUCKET, "in/")
    assert not {"ROOT_FOLDER", "BUCKET", "KEY_PREFIX"} & set(env)
    assert "in/env.json" in objects(src, BUCKET)


@pytest.mark.parametrize("name", ["fail", "copier"])
def test_temporary_folders_are_removed_after_success_and_failure(
    src: Any, tmpdir_root: Path, name: str
) -> None:
    put(src, BUCKET, "in/a.txt", "a")
    outcome = make_engine(handler(name)).run_group(group("in/", "in/a.txt"))
    assert outcome.status is (Status.FAILED if name == "fail" else Status.SUCCEEDED)
    assert list(tmpdir_root.iterdir()) == []


def test_not_enough_free_space_fails_the_group(
    src: Any, counter: Path, tmpdir_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    put(src, BUCKET, "in/big.bin", b"0" * 4096)
    real = shutil.disk_usage

    def tiny(path: Any) -> Any:
        usage = real(path)
        return type(usage)(usage.total, usage.total - 100, 100)

    monkeypatch.setattr("bridge.engine.shutil.disk_usage", tiny)

    outcome = make_engine(handler("copier")).run_group(group("in/", "in/big.bin"))

    assert outcome.status is Status.FAILED
    assert outcome.reason is not None
    assert "not enough space" in outcome.reason and "4096" in outcome.reason
    assert not counter.exists()
    assert list(tmpdir_root.iterdir()) == []
    assert set(objects(src, BUCKET)) == {"in/big.bin"}


def test_handler_timeout_stops_a_sleeping_handler(
    src: Any, counter: Path, tmpdir_root: Path
) -> None:
    put(src, BUCKET, "in/a.txt", "a")
    app = make_app(handler("sleep"), handler_timeout=0.5)

    body, ids = sqs_run(app, [s3_notification(BUCKET, ["in/a.txt"])])

    assert failed_ids(body) == ids
    assert counter.read_text() == "started"
    assert set(objects(src, BUCKET)) == {"in/a.txt"}  # early.txt was not uploaded
    assert list(tmpdir_root.iterdir()) == []


def test_handler_timeout_kills_the_whole_process_group(
    src: Any, tmp_path: Path, tmpdir_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The engine's SIGTERM -> SIGKILL grace, shortened (the handler ignores SIGTERM).
    monkeypatch.setattr(bridge.engine, "KILL_GRACE_SECONDS", 0.3)
    pid_file = tmp_path / "child.pid"
    monkeypatch.setenv("PID_FILE", str(pid_file))
    monkeypatch.setenv("IGNORE_TERM", "1")  # the handler itself ignores SIGTERM too
    put(src, BUCKET, "in/a.txt", "a")

    outcome = make_engine(handler("stubborn"), handler_timeout=0.5).run_group(
        group("in/", "in/a.txt")
    )

    assert outcome.status is Status.FAILED
    assert outcome.reason == "handler timed out and was stopped"
    assert process_gone(int(pid_file.read_text()))
    assert set(objects(src, BUCKET)) == {"in/a.txt"}
    assert list(tmpdir_root.iterdir()) == []


def test_children_left_behind_by_a_successful_handler_are_stopped(
    src: Any, tmp_path: Path, tmpdir_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid_file = tmp_path / "child.pid"
    monkeypatch.setenv("PID_FILE", str(pid_file))
    monkeypatch.setenv("EXIT_AT_ONCE", "1")
    put(src, BUCKET, "in/a.txt", "a")

    outcome = make_engine(handler("stubborn")).run_group(group("in/", "in/a.txt"))

    assert outcome.status is Status.SUCCEEDED, outcome.reason
    assert process_gone(int(pid_file.read_text()))
    assert list(tmpdir_root.iterdir()) == []


def test_handler_output_is_forwarded_to_the_logs_tagged_with_the_group(
    src: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    put(src, BUCKET, "in/a.txt", "a")

    outcome = make_engine(handler("echo")).run_group(group("in/", "in/a.txt"))

    assert outcome.status is Status.SUCCEEDED
    forwarded = {
        (r.getMessage(), r.__dict__["fields"].get("stream"), r.__dict__["fields"].get("group"))
        for r in caplog.records
        if r.name == "bridge.handler"
    }
    assert forwarded == {
        ("hello from stdout", "stdout", "s3://src/in/"),
        ("second stdout line", "stdout", "s3://src/in/"),
        ("hello from stderr", "stderr", "s3://src/in/"),
    }


def test_engine_is_reusable_for_many_groups(src: Any, counter: Path) -> None:
    """One engine (as a driver keeps it) serves groups one after another."""
    engine: Engine = make_engine(handler("copier"))
    for index in range(3):
        put(src, BUCKET, f"g{index}/f.txt", str(index))
        assert engine.run_group(group(f"g{index}/", f"g{index}/f.txt")).ok
    assert {k: v for k, v in objects(src, BUCKET).items() if "/out/" in k} == {
        f"g{i}/out/f.txt": str(i).encode() for i in range(3)
    }
    assert len(read_lines(counter)) == 3
    assert os.environ.get("ROOT_FOLDER") is None  # the bridge's own environment is untouched
