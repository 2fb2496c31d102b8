"""Nothing a handler starts outlives its group, nor the bridge (bridge.containment).

The handler of most tests is tests/handlers/daemon.py: it leaves a daemon behind that
double-forked and called ``setsid`` (so the process-group kill misses it), keeps the output
pipes open and writes ``late.txt`` into the root folder once the handler is gone.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge import containment
from bridge.groups import ExecutionGroup
from bridge.handler import run_handler
from bridge.samples import sample_payload
from tests.conftest import bridge_command, subprocess_env
from tests.helpers import (
    GUARD_SECONDS,
    handler,
    make_engine,
    objects,
    put,
    s3_notification,
    wait_for,
)
from tests.runtime_api import FakeRuntimeApi

TAGS = {"group": "s3://bkt/in/"}


def process_state(pid: int) -> tuple[str, int] | None:
    """(state letter, parent pid) of ``pid``, or None when it does not exist at all."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return fields[0], int(fields[1])


def is_gone(pid: int) -> bool:
    """No longer running: it does not exist, or it is a zombie awaiting its reaper."""
    state = process_state(pid)
    return state is None or state[0] in ("Z", "X")


def read_pids(path: Path) -> list[int]:
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    return [int(word) for word in text.split()] if text.endswith("\n") else []


@pytest.fixture
def strays() -> Iterator[list[int]]:
    """Pids a test saw; whatever still runs at the end is killed, so no test leaks one."""
    seen: list[int] = []
    yield seen
    for pid in seen:
        if not is_gone(pid):
            os.kill(pid, signal.SIGKILL)


def daemon_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    root = tmp_path / "root"
    root.mkdir(exist_ok=True)
    return {
        "PATH": os.environ.get("PATH", ""),
        "ROOT_FOLDER": str(root),
        "PID_FILE": str(tmp_path / "daemon.pid"),
        **extra,
    }


# --------------------------------------------------------------------------- one handler run


def test_setsid_daemon_is_gone_when_run_handler_returns(tmp_path: Path, strays: list[int]) -> None:
    env = daemon_env(tmp_path, LATE_AFTER="0")
    result = run_handler(handler("daemon"), env, timeout=GUARD_SECONDS, tags=TAGS)
    daemon = read_pids(tmp_path / "daemon.pid")[0]
    strays.append(daemon)
    assert result.ok
    # Not "soon": the group is over, so it is gone now.
    assert is_gone(daemon)


def test_daemon_holding_the_output_pipes_does_not_hold_up_the_group(
    tmp_path: Path, strays: list[int]
) -> None:
    """With a grace longer than the guard, waiting for the daemon's pipes would hang here."""
    env = daemon_env(tmp_path, LATE_AFTER="3600")
    results: list[Any] = []
    runner = threading.Thread(
        target=lambda: results.append(
            run_handler(handler("daemon"), env, timeout=None, tags=TAGS, kill_grace=3600)
        ),
        daemon=True,
    )
    runner.start()
    runner.join(timeout=GUARD_SECONDS)
    strays.extend(read_pids(tmp_path / "daemon.pid")[:1])
    assert not runner.is_alive(), "the group waited for the pipes of an escaped daemon"
    assert results[0].ok


def test_timed_out_handler_takes_its_daemon_with_it(tmp_path: Path, strays: list[int]) -> None:
    env = daemon_env(tmp_path, HANDLER_WAITS="1", HANDLER_PID_FILE=str(tmp_path / "h.pid"))
    env["LATE_AFTER"] = "3600"
    result = run_handler(handler("daemon"), env, timeout=2.0, tags=TAGS, kill_grace=1.0)
    daemon = read_pids(tmp_path / "daemon.pid")[0]
    strays.append(daemon)
    assert result.timed_out
    assert is_gone(daemon)


def test_groups_side_by_side_kill_only_their_own_descendants(
    tmp_path: Path, strays: list[int]
) -> None:
    """Two groups at once: the one ending first must not touch the other's daemon."""
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    waiting_env = daemon_env(
        second, LATE_AFTER="3600", HANDLER_WAITS="1", HANDLER_PID_FILE=str(second / "h.pid")
    )
    results: list[Any] = []
    waiting = threading.Thread(
        target=lambda: results.append(
            run_handler(handler("daemon"), waiting_env, timeout=GUARD_SECONDS, tags=TAGS)
        ),
        daemon=True,
    )
    waiting.start()
    other_daemon = wait_for(lambda: read_pids(second / "daemon.pid"), "the daemon")[0]
    strays.append(other_daemon)

    result = run_handler(handler("daemon"), daemon_env(first), timeout=GUARD_SECONDS, tags=TAGS)
    own_daemon = read_pids(first / "daemon.pid")[0]
    strays.append(own_daemon)
    assert result.ok
    assert is_gone(own_daemon)
    assert not is_gone(other_daemon)

    os.kill(read_pids(second / "h.pid")[0], signal.SIGTERM)
    waiting.join(timeout=GUARD_SECONDS)
    assert not waiting.is_alive()
    assert is_gone(other_daemon)


def test_kill_marked_spares_unmarked_and_recycled_processes(tmp_path: Path) -> None:
    token = containment.new_group_token()
    code = "import time\nwhile True: time.sleep(1)"
    marked = subprocess.Popen(
        [sys.executable, "-c", code], env={**os.environ, containment.MARKER_VAR: token}
    )
    longer = subprocess.Popen(  # a token that merely starts with ours is another group's
        [sys.executable, "-c", code], env={**os.environ, containment.MARKER_VAR: token + "0"}
    )
    unmarked = subprocess.Popen([sys.executable, "-c", code])
    try:
        wait_for(lambda: containment.marked_processes(token) == [marked.pid], "the marker")
        assert containment.kill_marked(token) == [marked.pid]
        assert marked.wait(timeout=GUARD_SECONDS) == -signal.SIGKILL
        assert longer.poll() is None and unmarked.poll() is None
    finally:
        for process in (marked, longer, unmarked):
            process.kill()
            process.wait()


def test_a_pid_window_skips_processes_started_before_it_unless_pids_wrapped() -> None:
    token = containment.new_group_token()
    code = "import time\nwhile True: time.sleep(1)"
    env = {**os.environ, containment.MARKER_VAR: token}
    before = subprocess.Popen([sys.executable, "-c", code], env=env)
    wait_for(lambda: containment.marked_processes(token), "the marker")
    window = containment.PidWindow.now()
    after = subprocess.Popen([sys.executable, "-c", code], env=env)
    try:
        assert window is not None
        wait_for(lambda: len(containment.marked_processes(token)) == 2, "both")
        assert containment.marked_processes(token, since=window) == [after.pid]
        # As many forks as there are pids since: the window proves nothing, all are looked at.
        wrapped = containment.PidWindow(
            window.last_pid, window.forks - window.pid_max, window.pid_max
        )
        found = containment.marked_processes(token, since=wrapped)
        assert sorted(found) == sorted([before.pid, after.pid])
    finally:
        for process in (before, after):
            process.kill()
            process.wait()


def test_a_dead_guard_is_replaced_and_a_guard_kills_what_its_bridge_marked() -> None:
    containment.start_guard()
    first = containment.guard_pid()
    assert first is not None
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: is_gone(first), "the guard to die")
    containment.start_guard()
    second = containment.guard_pid()
    assert second is not None and second != first
    # This process's marked processes are the guard's to kill once the pipe closes.
    token = containment.new_group_token()
    marked = subprocess.Popen(
        [sys.executable, "-c", "import time\nwhile True: time.sleep(1)"],
        env={**os.environ, containment.MARKER_VAR: token},
    )
    try:
        wait_for(lambda: containment.marked_processes(token), "the marker")
        containment.stop_guard()
        assert marked.wait(timeout=GUARD_SECONDS) == -signal.SIGKILL
        assert is_gone(second)
    finally:
        marked.kill()
        marked.wait()


def test_the_guard_of_a_nested_bridge_is_not_marked_by_the_outer_group(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A bridge run as another bridge's handler dies with the outer group; its guard must
    survive that kill to take the inner handlers down."""
    outer = "999-1.1"
    monkeypatch.setenv(containment.MARKER_VAR, outer)
    containment.stop_guard()
    containment.start_guard()
    guard = containment.guard_pid()
    try:
        assert guard is not None and process_state(guard) is not None
        assert guard not in containment.marked_processes(outer)
    finally:
        containment.stop_guard()


REAP_SCENARIO = """
import os, subprocess, sys, time
from bridge import containment
containment._state["subreaper"] = True  # as the drivers set it (the orphans here are direct)

def orphan():  # a child no Popen will reap, exited at once
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    return pid

def managed():  # a child its Popen reaps, exited with status 3
    with containment.spawning() as spawned:
        process = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
        spawned.add(process.pid)
    return process

def zombie(pid):
    while open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z":
        time.sleep(0.01)

if sys.argv[1] == "orphan first":
    first, process = orphan(), None
    zombie(first)
    process = managed()
else:
    process = managed()
    first = orphan()
zombie(first)
zombie(process.pid)
reaped = containment.reap_orphans()
print(reaped, os.path.exists(f"/proc/{first}"), process.wait())
"""


@pytest.mark.parametrize("order", ["orphan first", "managed first"])
def test_orphans_are_reaped_and_children_of_a_popen_are_left_to_it(order: str) -> None:
    """Whichever exited child the peek sees first, orphans are reaped and a Popen still
    gets its child's status."""
    done = subprocess.run(
        [sys.executable, "-c", REAP_SCENARIO, order],
        capture_output=True,
        text=True,
        timeout=GUARD_SECONDS,
    )
    assert done.stdout.split() == ["1", "False", "3"], done.stderr


# --------------------------------------------------------------------------- a whole group


def test_file_written_by_a_daemon_after_the_handler_is_not_uploaded(
    s3: Any, tmp_path: Path, strays: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon starts writing late.txt 3 s after the handler exits: it must be dead by then.

    (Without containment the group waits 2 x 5 s for the pipes the daemon holds, then
    uploads late.txt with the handler's outputs.)
    """
    s3.create_bucket(Bucket="bkt")
    put(s3, "bkt", "in/a.txt", "a")
    monkeypatch.setenv("PID_FILE", str(tmp_path / "daemon.pid"))
    monkeypatch.setenv("LATE_AFTER", "3")
    outcome = make_engine(handler("daemon")).run_group(ExecutionGroup("bkt", "in/", ()))
    daemon = read_pids(tmp_path / "daemon.pid")[0]
    strays.append(daemon)
    assert outcome.ok, outcome.reason
    assert outcome.uploaded == ("in/output.txt",)
    assert set(objects(s3, "bkt")) == {"in/a.txt", "in/output.txt"}
    assert is_gone(daemon)


# --------------------------------------------------------------------------- the bridge killed


def start_bridge(mode_args: list[str], tmp_path: Path, **env: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*bridge_command(), *mode_args, "--", *handler("daemon")],
        env=subprocess_env(
            PID_FILE=str(tmp_path / "daemon.pid"),
            HANDLER_PID_FILE=str(tmp_path / "handler.pid"),
            HANDLER_WAITS="1",
            LATE_AFTER="3600",
            **env,
        ),
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "bridge.log").open("wb"),
    )


def kill_9_and_expect_no_handler_left(
    bridge: subprocess.Popen[bytes], tmp_path: Path, strays: list[int]
) -> None:
    try:
        handler_pid = wait_for(lambda: read_pids(tmp_path / "handler.pid"), "the handler")[0]
        daemon_pid = read_pids(tmp_path / "daemon.pid")[0]
    finally:
        if bridge.poll() is not None:
            print((tmp_path / "bridge.log").read_text())
    strays.extend([handler_pid, daemon_pid])
    assert not is_gone(handler_pid) and not is_gone(daemon_pid)
    bridge.send_signal(signal.SIGKILL)
    assert bridge.wait(timeout=GUARD_SECONDS) == -signal.SIGKILL
    wait_for(lambda: is_gone(handler_pid), "the handler to be killed after the bridge")
    wait_for(lambda: is_gone(daemon_pid), "the daemon to be killed after the bridge")


def test_kill_9_of_run_leaves_no_handler_process(
    s3: Any, tmp_path: Path, strays: list[int]
) -> None:
    s3.create_bucket(Bucket="bkt")
    put(s3, "bkt", "in/a.txt", "a")
    bridge = start_bridge(["run", "--bucket", "bkt", "--prefix", "in/"], tmp_path)
    kill_9_and_expect_no_handler_left(bridge, tmp_path, strays)


def test_kill_9_of_consume_leaves_no_handler_process(
    s3: Any, sqs: Any, tmp_path: Path, strays: list[int]
) -> None:
    s3.create_bucket(Bucket="bkt")
    put(s3, "bkt", "in/a.txt", "a")
    queue = sqs.create_queue(QueueName="work")["QueueUrl"]
    sqs.send_message(QueueUrl=queue, MessageBody=s3_notification("bkt", ["in/a.txt"]))
    bridge = start_bridge(["consume", "--queue-url", queue, "--wait-time", "1"], tmp_path)
    kill_9_and_expect_no_handler_left(bridge, tmp_path, strays)


def test_kill_9_of_invoke_leaves_no_handler_process(
    s3: Any, tmp_path: Path, strays: list[int]
) -> None:
    s3.create_bucket(Bucket="bkt")
    put(s3, "bkt", "in/a.txt", "a")
    event = tmp_path / "event.json"
    event.write_text(json.dumps(sample_payload("s3", "bkt", "in/a.txt")))
    bridge = start_bridge(["invoke", "--event", str(event)], tmp_path)
    kill_9_and_expect_no_handler_left(bridge, tmp_path, strays)


def test_kill_9_of_the_lambda_runtime_leaves_no_handler_process(
    s3: Any, tmp_path: Path, strays: list[int]
) -> None:
    """As when a Lambda emulator kills the runtime mid-invocation."""
    s3.create_bucket(Bucket="bkt")
    put(s3, "bkt", "in/a.txt", "a")
    with FakeRuntimeApi() as api:
        api.enqueue(sample_payload("s3", "bkt", "in/a.txt"))
        bridge = start_bridge(["lambda"], tmp_path, AWS_LAMBDA_RUNTIME_API=api.address)
        kill_9_and_expect_no_handler_left(bridge, tmp_path, strays)


def start_consumer(queue: str, handler_name: str, log: Path, **env: str) -> subprocess.Popen[bytes]:
    """``s3-event-bridge consume`` on ``queue`` running test handler ``handler_name``."""
    return subprocess.Popen(
        [*bridge_command(), "consume", "--queue-url", queue, "--wait-time", "1", "--",
         *handler(handler_name)],
        env=subprocess_env(**env),
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
    )  # fmt: skip


def test_consume_adopts_and_reaps_an_escaped_daemon(
    s3: Any, sqs: Any, tmp_path: Path, strays: list[int]
) -> None:
    """As a subreaper the consumer becomes the daemon's parent, so it must also reap it."""
    s3.create_bucket(Bucket="bkt")
    put(s3, "bkt", "in/a.txt", "a")
    queue = sqs.create_queue(QueueName="work")["QueueUrl"]
    sqs.send_message(QueueUrl=queue, MessageBody=s3_notification("bkt", ["in/a.txt"]))
    log = tmp_path / "bridge.log"
    bridge = start_consumer(
        queue, "daemon", log, PID_FILE=str(tmp_path / "daemon.pid"), LATE_AFTER="3600"
    )
    try:
        daemon, parent = wait_for(lambda: read_pids(tmp_path / "daemon.pid"), "the daemon")
        strays.append(daemon)
        assert parent == bridge.pid
        wait_for(lambda: "batch done" in log.read_text(errors="replace"), "the batch")
        # Reaped: not even a zombie is left, and the consumer has no other child.
        wait_for(lambda: process_state(daemon) is None, "the daemon to be reaped")
        children = [
            pid
            for pid in map(int, filter(str.isdigit, os.listdir("/proc")))
            if (state := process_state(pid)) and state[1] == bridge.pid
        ]
        assert children == [guard_of(bridge.pid)]
    finally:
        bridge.send_signal(signal.SIGTERM)
        assert bridge.wait(timeout=GUARD_SECONDS) == 0


def test_consume_reaps_an_orphan_that_escaped_the_marker(
    s3: Any, sqs: Any, tmp_path: Path, strays: list[int]
) -> None:
    """A child that emptied its environment outlives its group (it cannot be told apart),
    but it is adopted by the subreaper consumer, which reaps it once it exits at the end of
    a group: no zombie piles up."""
    s3.create_bucket(Bucket="bkt")
    put(s3, "bkt", "in/a.txt", "a")
    put(s3, "bkt", "other/b.txt", "b")
    queue = sqs.create_queue(QueueName="work")["QueueUrl"]
    sqs.send_message(QueueUrl=queue, MessageBody=s3_notification("bkt", ["in/a.txt"]))
    log = tmp_path / "bridge.log"
    bridge = start_consumer(queue, "orphan", log, PID_FILE=str(tmp_path / "orphan.pid"))
    try:
        orphan, parent = wait_for(lambda: read_pids(tmp_path / "orphan.pid"), "the orphan")
        strays.append(orphan)
        assert parent == bridge.pid  # adopted by the consumer
        wait_for(lambda: process_state(orphan) in (("Z", bridge.pid), None), "its exit")
        # Reaped at the end of a group: this one, or the next.
        sqs.send_message(QueueUrl=queue, MessageBody=s3_notification("bkt", ["other/b.txt"]))
        wait_for(lambda: log.read_text(errors="replace").count("batch done") >= 2, "batch 2")
        assert process_state(orphan) is None
    finally:
        bridge.send_signal(signal.SIGTERM)
        assert bridge.wait(timeout=GUARD_SECONDS) == 0


def guard_of(pid: int) -> int:
    """The guard process of bridge ``pid``: its child running bridge/containment.py."""
    for entry in filter(str.isdigit, os.listdir("/proc")):
        state = process_state(int(entry))
        if state and state[1] == pid:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            if b"containment.py" in cmdline:
                return int(entry)
    raise AssertionError(f"bridge {pid} has no guard process")
