"""Crash leftovers: a bridge killed with kill -9 leaves its temporary folders; the next bridge
to start (run, invoke, consume, lambda) removes them, and nothing else (bridge.workspace).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge import workspace
from tests.conftest import bridge_command, subprocess_env
from tests.helpers import GUARD_SECONDS, handler, put, wait_for


def owner_folders(tmp: Path) -> list[str]:
    return sorted(entry.name for entry in tmp.iterdir() if entry.name.startswith("s3-event-"))


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    folder = tmp_path / "tmp"
    folder.mkdir()
    return folder


@pytest.fixture
def live_owner(tmp: Path) -> Iterator[Path]:
    """Another bridge process, alive, with a group folder in the same TMPDIR."""
    code = (
        "from bridge import workspace\n"
        "with workspace.group_folder() as path:\n"
        "    print(path, flush=True)\n"
        "    input()"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code],
        env=subprocess_env(TMPDIR=str(tmp)),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    folder = Path(process.stdout.readline().strip())
    yield folder
    process.communicate("\n", timeout=GUARD_SECONDS)


def crash_a_bridge(tmp: Path, tmp_path: Path) -> Path:
    """Run a group whose handler waits, kill -9 the bridge: its group folder stays behind."""
    started = tmp_path / "started"
    bridge = subprocess.Popen(
        [*bridge_command(), "run", "--bucket", "bkt", "--prefix", "in/", "--", *handler("sleep")],
        env=subprocess_env(TMPDIR=str(tmp), COUNTER_FILE=str(started)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(started.exists, f"{started} to appear")
    finally:
        bridge.send_signal(signal.SIGKILL)
        bridge.wait(timeout=GUARD_SECONDS)
    # Named after its owner: pid and process start time.
    (left,) = [p for p in tmp.iterdir() if p.name.startswith(f"s3-event-bridge-{bridge.pid}-")]
    # With the pulled input and the handler's first output.
    assert {p.name for p in left.glob("root/*")} == {"a.txt", "early.txt"}
    return left


def not_ours(tmp: Path, tmp_path: Path) -> list[str]:
    """Entries a cleanup must never touch, named like ours or not."""
    old = tmp / "s3-event-bridge-abc12345"  # the old naming: whose, nobody can tell
    old.mkdir()
    (old / "owner.lock").write_text("")
    (tmp / "s3-event-bridge-3-4-nolock").mkdir()  # no lock file
    (tmp / "s3-event-bridge-5-6-afile").write_text("a file")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "owner.lock").write_text("")
    (tmp / "s3-event-bridge-7-8-link").symlink_to(elsewhere)  # never followed
    (tmp / "other").mkdir()
    return [
        f"s3-event-bridge-{name}" for name in ("3-4-nolock", "5-6-afile", "7-8-link", "abc12345")
    ]


def start_command(mode: str, tmp_path: Path, sqs: Any) -> list[str]:
    if mode == "run":
        return ["run", "--bucket", "bkt", "--prefix", "in/", "--", *handler("copier")]
    if mode == "invoke":
        event = tmp_path / "event.json"
        event.write_text(json.dumps({"Records": []}))
        return ["invoke", "--event", str(event), "--", *handler("copier")]
    queue = sqs.create_queue(QueueName="empty")["QueueUrl"]
    return ["consume", "--queue-url", queue, "--once", "--wait-time", "0", "--", *handler("copier")]


@pytest.mark.parametrize("mode", ["run", "invoke", "consume"])
def test_next_start_removes_the_folders_a_kill_9_left(
    mode: str, s3: Any, sqs: Any, tmp: Path, tmp_path: Path, live_owner: Path
) -> None:
    s3.create_bucket(Bucket="bkt")
    put(s3, "bkt", "in/a.txt", "a")
    left = crash_a_bridge(tmp, tmp_path)
    kept = not_ours(tmp, tmp_path)

    restarted = subprocess.run(
        [*bridge_command(), *start_command(mode, tmp_path, sqs)],
        env=subprocess_env(TMPDIR=str(tmp)),
        capture_output=True,
        text=True,
        timeout=GUARD_SECONDS * 2,
    )
    assert f"removed the temporary folder {left} of a bridge process" in restarted.stderr
    assert not left.exists()
    # A live bridge's folder stays, and so does everything not ours.
    assert owner_folders(tmp) == sorted([live_owner.name, *kept])
    assert (live_owner / "owner.lock").exists()
    assert (tmp_path / "elsewhere" / "owner.lock").exists() and (tmp / "other").is_dir()


def test_a_clean_exit_leaves_no_folder(s3: Any, tmp: Path) -> None:
    s3.create_bucket(Bucket="bkt")
    put(s3, "bkt", "in/a.txt", "a")
    done = subprocess.run(
        [*bridge_command(), "run", "--bucket", "bkt", "--prefix", "in/", "--", *handler("copier")],
        env=subprocess_env(TMPDIR=str(tmp)),
        capture_output=True,
        text=True,
        timeout=GUARD_SECONDS * 2,
    )
    assert done.returncode == 0, done.stderr
    assert "removed the temporary folder" not in done.stderr
    assert os.listdir(tmp) == []


def test_folder_is_removed_with_its_lock_file_last(
    tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed part way through removing a folder, the bridge must leave its lock file behind."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    removed: list[str] = []
    real_unlink = os.unlink

    def unlink(path: Any, *args: Any, **kwargs: Any) -> None:
        removed.append(os.path.basename(path))
        real_unlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", unlink)
    with workspace.group_folder() as path:
        Path(path, "root").mkdir()
        for name in ("a", "b", "z"):
            Path(path, name).write_text(name)
        Path(path, "root", "locked").mkdir()
        Path(path, "root", "locked", "f").write_text("x")
        Path(path, "root", "locked").chmod(0o500)  # a handler may leave read-only folders
    assert removed[-1] == "owner.lock" and set(removed) >= {"a", "b", "z", "owner.lock"}
    assert list(tmp.iterdir()) == []
