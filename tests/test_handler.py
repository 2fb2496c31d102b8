"""Unit tests for bridge.handler: the handler as a real subprocess (docs/design.md §2 step 8)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from bridge.handler import FORWARD_PIECE_BYTES, HandlerResult, run_handler, stop_all_handlers
from bridge.logs import request_context, request_id
from tests.helpers import wait_for

TAGS = {"group": "s3://bkt/in/"}
GUARD_SECONDS = 30.0  # a guard against hanging, never a timing assertion


def python(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


def env(**extra: str) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", ""), **extra}


def wait_for_file(path: Path) -> str:
    """The stripped text of ``path`` once a whole line has been written to it."""

    def written() -> str | None:
        text = path.read_text() if path.exists() else ""
        return text if text.endswith("\n") else None

    text: str = wait_for(written, f"{path} to be written", timeout=GUARD_SECONDS, interval=0.02)
    return text.strip()


def is_gone(pid: int) -> bool:
    """The process no longer runs: it does not exist, or it is a zombie awaiting its reaper."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def wait_until_gone(pid: int) -> None:
    """Killing is asynchronous: wait (with a guard) until ``pid`` no longer runs."""
    deadline = time.monotonic() + GUARD_SECONDS
    while not is_gone(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            raise AssertionError(f"process {pid} survived its handler")
        time.sleep(0.02)


def spawn_grandchild(pid_file: Path, then: str = "") -> list[str]:
    """A handler that starts a sleeping grandchild, records its pid, then runs ``then``."""
    code = f"""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
        with open({str(pid_file)!r}, "w") as f:
            f.write(f"{{child.pid}}\\n")
    """
    return python(textwrap.dedent(code) + then)


# --------------------------------------------------------------------------- exit status


def test_exit_zero_is_ok() -> None:
    result = run_handler(python("pass"), env(), timeout=GUARD_SECONDS, tags=TAGS)
    assert result == HandlerResult(exit_code=0)
    assert result.ok
    assert result.describe() == "handler exited with status 0"


def test_no_timeout_runs_to_completion() -> None:
    result = run_handler(python("import sys; sys.exit(0)"), env(), timeout=None, tags=TAGS)
    assert result.ok


def test_non_zero_exit_fails() -> None:
    result = run_handler(python("import sys; sys.exit(3)"), env(), timeout=GUARD_SECONDS, tags=TAGS)
    assert result == HandlerResult(exit_code=3)
    assert not result.ok
    assert result.describe() == "handler exited with status 3"


def test_killed_by_signal_fails() -> None:
    code = "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"
    result = run_handler(python(code), env(), timeout=GUARD_SECONDS, tags=TAGS)
    assert result.exit_code == -signal.SIGKILL
    assert not result.ok
    assert result.describe() == "handler was killed by signal SIGKILL"


def test_nonexistent_command_is_a_start_error(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-handler")
    result = run_handler([missing, "arg"], env(), timeout=GUARD_SECONDS, tags=TAGS)
    assert result.exit_code is None
    assert not result.timed_out
    assert result.start_error == f"{missing!r}: No such file or directory"
    assert not result.ok
    assert result.describe() == (
        f"handler could not be started: {missing!r}: No such file or directory"
    )


def test_non_executable_command_is_a_start_error(tmp_path: Path) -> None:
    script = tmp_path / "handler.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o644)
    result = run_handler([str(script)], env(), timeout=GUARD_SECONDS, tags=TAGS)
    assert result.start_error is not None
    assert "Permission denied" in result.start_error
    assert not result.ok


def test_arguments_are_passed_without_a_shell(tmp_path: Path) -> None:
    out = tmp_path / "argv.txt"
    code = f"import sys; open({str(out)!r}, 'w').write(repr(sys.argv[1:]))"
    args = ["$HOME", "a b", "*", "'quoted'", "; echo no"]
    result = run_handler([*python(code), *args], env(), timeout=GUARD_SECONDS, tags=TAGS)
    assert result.ok
    assert out.read_text() == repr(args)


def test_environment_is_passed_through(tmp_path: Path) -> None:
    out = tmp_path / "env.txt"
    code = f"""
        import os
        with open({str(out)!r}, "w") as f:
            f.write(os.environ["ROOT_FOLDER"] + "|" + os.environ["BUCKET"] + "|")
            f.write(str("NOT_GIVEN" in os.environ))
    """
    os.environ["NOT_GIVEN"] = "leak"
    try:
        result = run_handler(
            python(code),
            env(ROOT_FOLDER="/tmp/root é", BUCKET="bkt"),
            timeout=GUARD_SECONDS,
            tags=TAGS,
        )
    finally:
        del os.environ["NOT_GIVEN"]
    assert result.ok
    # Exactly the given environment: nothing of the caller's own is added.
    assert out.read_text() == "/tmp/root é|bkt|False"


def test_stdin_is_empty() -> None:
    code = "import sys; sys.exit(0 if sys.stdin.read() == '' else 1)"
    assert run_handler(python(code), env(), timeout=GUARD_SECONDS, tags=TAGS).ok


# --------------------------------------------------------------------------- timeouts


@pytest.mark.parametrize("timeout", [0, -1, -0.5])
def test_no_time_left_means_timed_out_without_starting(tmp_path: Path, timeout: float) -> None:
    marker = tmp_path / "started"
    code = f"open({str(marker)!r}, 'w').close()"
    result = run_handler(python(code), env(), timeout=timeout, tags=TAGS)
    assert result == HandlerResult(exit_code=None, timed_out=True)
    assert not result.ok
    assert result.describe() == "handler timed out and was stopped"
    assert not marker.exists()


def test_timeout_stops_the_whole_process_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    command = spawn_grandchild(pid_file, then="time.sleep(300)\n")
    result = run_handler(command, env(), timeout=2.0, tags=TAGS, kill_grace=GUARD_SECONDS)
    assert result.timed_out
    assert not result.ok
    assert result.exit_code == -signal.SIGTERM  # stopped by SIGTERM, within the grace
    assert result.describe() == "handler timed out and was stopped"
    wait_until_gone(int(wait_for_file(pid_file)))


def test_child_ignoring_sigterm_is_killed_after_grace(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    code = f"""
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        with open({str(ready)!r}, "w") as f:
            f.write("ready\\n")
        while True:
            time.sleep(1)
    """
    result = run_handler(python(code), env(), timeout=2.0, tags=TAGS, kill_grace=0.5)
    assert wait_for_file(ready) == "ready"  # it really was ignoring SIGTERM by then
    assert result.timed_out
    assert result.exit_code == -signal.SIGKILL
    assert result.describe() == "handler timed out and was stopped"


def test_background_children_are_killed_after_a_clean_exit(tmp_path: Path) -> None:
    # The grandchild also inherited stdout/stderr: forwarding must not wait for it either.
    pid_file = tmp_path / "grandchild.pid"
    result = run_handler(spawn_grandchild(pid_file), env(), timeout=GUARD_SECONDS, tags=TAGS)
    assert result == HandlerResult(exit_code=0)
    grandchild = int(wait_for_file(pid_file))
    wait_until_gone(grandchild)


def run_in_thread(command: list[str]) -> tuple[threading.Thread, list[HandlerResult]]:
    """Run a handler in a thread (as a poller does); its result lands in the returned list."""
    results: list[HandlerResult] = []
    thread = threading.Thread(
        target=lambda: results.append(run_handler(command, env(), None, TAGS)), daemon=True
    )
    thread.start()
    return thread, results


def test_stop_all_handlers_with_wait_returns_once_the_handler_has_ended(tmp_path: Path) -> None:
    ready, finished = tmp_path / "ready", tmp_path / "finished"
    # On SIGTERM the handler takes its time to clean up, then exits.
    code = f"""
        import signal, sys, time
        def cleanup(signum, frame):
            time.sleep(0.5)
            open({str(finished)!r}, "w").write("clean\\n")
            sys.exit(0)
        signal.signal(signal.SIGTERM, cleanup)
        open({str(ready)!r}, "w").write("ready\\n")
        time.sleep(300)
    """
    thread, results = run_in_thread(python(code))
    wait_for_file(ready)

    stop_all_handlers(kill_grace=GUARD_SECONDS, wait=True)

    assert finished.read_text() == "clean\n"  # written before stop_all_handlers returned
    thread.join(GUARD_SECONDS)
    assert results == [HandlerResult(exit_code=0)]


def ignoring_sigterm(ready: Path) -> list[str]:
    """A handler that ignores SIGTERM, writes ``ready`` and would sleep for 5 minutes."""
    return python(f"""
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        open({str(ready)!r}, "w").write("ready\\n")
        time.sleep(300)
    """)


def test_stop_all_handlers_with_wait_kills_a_handler_ignoring_sigterm(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    thread, results = run_in_thread(ignoring_sigterm(ready))
    wait_for_file(ready)

    stop_all_handlers(kill_grace=0.2, wait=True)  # SIGKILL is sent before this returns

    thread.join(GUARD_SECONDS)
    assert results == [HandlerResult(exit_code=-signal.SIGKILL)]


def test_a_stop_requested_while_a_handler_is_being_started_still_reaches_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The thread starting the handler is held right after its Popen returns (as a loaded
    # machine may deschedule it), while the handler is already running: the stop must
    # still reach it, not find an empty list and leave it running.
    ready = tmp_path / "ready"
    release = threading.Event()
    real_popen = subprocess.Popen

    def descheduled_popen(args: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        process = real_popen(args, **kwargs)
        if str(ready) in " ".join(args):
            release.wait(GUARD_SECONDS)
        return process

    monkeypatch.setattr(subprocess, "Popen", descheduled_popen)
    thread, results = run_in_thread(ignoring_sigterm(ready))
    wait_for_file(ready)

    stopper = threading.Thread(target=lambda: stop_all_handlers(kill_grace=0.2, wait=True))
    stopper.start()
    stopper.join(timeout=1.0)  # a stop that misses the handler is over by now
    release.set()
    stopper.join(GUARD_SECONDS)
    thread.join(GUARD_SECONDS)
    assert results == [HandlerResult(exit_code=-signal.SIGKILL)]


# --------------------------------------------------------------------------- output forwarding


def test_output_lines_are_logged_with_tags_and_stream(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bridge.handler")
    code = """
        import sys
        print("first out", flush=True)
        print("an error line", file=sys.stderr, flush=True)
        sys.stdout.write("no newline at the end")
    """
    result = run_handler(python(code), env(), timeout=GUARD_SECONDS, tags=TAGS)
    assert result.ok
    lines = {
        (r.getMessage(), r.fields["stream"], r.fields["group"])  # type: ignore[attr-defined]
        for r in caplog.records
        if r.name == "bridge.handler"
    }
    assert lines == {
        ("first out", "stdout", "s3://bkt/in/"),
        ("an error line", "stderr", "s3://bkt/in/"),
        ("no newline at the end", "stdout", "s3://bkt/in/"),
    }
    assert all(r.levelno == logging.INFO for r in caplog.records if r.name == "bridge.handler")


def test_output_lines_keep_their_order_per_stream(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bridge.handler")
    code = """
        for i in range(200):
            print(f"line {i}\\r")
    """
    assert run_handler(python(code), env(), timeout=GUARD_SECONDS, tags=TAGS).ok
    messages = [r.getMessage() for r in caplog.records if r.name == "bridge.handler"]
    assert messages == [f"line {i}" for i in range(200)]  # CR LF stripped too


def test_invalid_utf8_output_is_replaced(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bridge.handler")
    code = r"import sys; sys.stdout.buffer.write(b'bad \xff byte\n')"
    assert run_handler(python(code), env(), timeout=GUARD_SECONDS, tags=TAGS).ok
    messages = [r.getMessage() for r in caplog.records if r.name == "bridge.handler"]
    assert messages == ["bad \ufffd byte"]


def forwarded(caplog: pytest.LogCaptureFixture) -> list[tuple[str, int | None]]:
    """(message, part) of every forwarded stdout line."""
    return [
        (r.getMessage(), r.fields.get("part"))  # type: ignore[attr-defined]
        for r in caplog.records
        if r.name == "bridge.handler" and r.fields["stream"] == "stdout"  # type: ignore[attr-defined]
    ]


def test_a_very_long_line_is_forwarded_in_bounded_numbered_pieces(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A handler writing megabytes on one line: bounded pieces, no character split."""
    caplog.set_level(logging.INFO, logger="bridge.handler")
    line = "a" + "é" * (2 * FORWARD_PIECE_BYTES)  # odd byte offsets: cuts fall inside "é"
    code = f"""
        import sys
        sys.stdout.write("a" + "é" * {2 * FORWARD_PIECE_BYTES} + "\\n" + "after\\n")
    """
    assert run_handler(python(code), env(), timeout=GUARD_SECONDS, tags=TAGS).ok

    lines = forwarded(caplog)
    pieces, rest = lines[:-1], lines[-1]
    assert rest == ("after", None)
    assert [part for _, part in pieces] == list(range(1, len(pieces) + 1))
    assert len(pieces) == 5  # 4 * 64 KiB + 1 byte
    assert all(len(text.encode("utf-8")) <= FORWARD_PIECE_BYTES for text, _ in pieces)
    assert "".join(text for text, _ in pieces) == line  # nothing lost, no U+FFFD


def test_a_line_of_exactly_whole_pieces_has_no_empty_last_piece(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="bridge.handler")
    code = f"print('x' * {2 * FORWARD_PIECE_BYTES}); print('y' * {FORWARD_PIECE_BYTES + 5}, end='')"
    assert run_handler(python(code), env(), timeout=GUARD_SECONDS, tags=TAGS).ok
    assert forwarded(caplog) == [
        ("x" * FORWARD_PIECE_BYTES, 1),
        ("x" * FORWARD_PIECE_BYTES, 2),
        ("y" * FORWARD_PIECE_BYTES, 1),
        ("y" * 5, 2),
    ]


def test_output_is_forwarded_as_it_comes(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A line is logged while the handler still runs (not only after it exits)."""
    caplog.set_level(logging.INFO, logger="bridge.handler")
    go = tmp_path / "go"
    code = f"""
        import os, time
        print("before", flush=True)
        while not os.path.exists({str(go)!r}):
            time.sleep(0.02)
        print("after", flush=True)
    """

    # The handler waits for `go`, which only the log handler creates, on seeing "before".
    class Releaser(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage() == "before":
                go.touch()

    releaser = Releaser()
    logging.getLogger("bridge.handler").addHandler(releaser)
    try:
        result = run_handler(python(code), env(), timeout=GUARD_SECONDS, tags=TAGS)
    finally:
        logging.getLogger("bridge.handler").removeHandler(releaser)
    assert result.ok  # it would have timed out if "before" had been held back
    messages = [r.getMessage() for r in caplog.records if r.name == "bridge.handler"]
    assert messages == ["before", "after"]


def test_forwarded_lines_keep_the_request_id() -> None:
    seen: list[tuple[str, str | None]] = []

    class Spy(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append((record.getMessage(), request_id.get()))

    spy = Spy()
    logger = logging.getLogger("bridge.handler")
    logger.addHandler(spy)
    previous = logger.level
    logger.setLevel(logging.INFO)
    try:
        with request_context("req-42"):
            result = run_handler(python("print('hi')"), env(), timeout=GUARD_SECONDS, tags=TAGS)
    finally:
        logger.removeHandler(spy)
        logger.setLevel(previous)
    assert result.ok
    assert seen == [("hi", "req-42")]
