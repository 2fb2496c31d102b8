"""Running the handler subprocess (docs/design.md §2 step 8, §4).

No shell is involved. The handler gets its own process group, so a timeout (SIGTERM, then
SIGKILL after a grace period) reaches every child it started. When it ends, every descendant
it left running is killed, even one that left the group (``bridge.containment``), before
the bridge looks at the root folder. Its stdout and stderr are forwarded line by line as
they come.
"""

from __future__ import annotations

import codecs
import contextlib
import contextvars
import logging
import os
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import IO

from bridge import containment
from bridge.logs import log, printable

logger = logging.getLogger("bridge.handler")

KILL_GRACE_SECONDS = 5.0
FORWARD_PIECE_BYTES = 64 * 1024  # longer output lines are forwarded in pieces of this size
STDERR_TAIL_LINES = 5  # kept for the failure reason (a traceback's last lines say what failed)
STDERR_TAIL_WIDTH = 300  # characters kept of each of those lines

# Process groups of the handlers running now, so a driver can stop them all at shutdown.
_running: set[int] = set()
_running_lock = threading.Condition()  # notified when a handler ends


@dataclass(frozen=True)
class HandlerResult:
    """How the handler ended. ``ok`` only for a clean exit with status 0."""

    exit_code: int | None
    timed_out: bool = False
    start_error: str | None = None
    stderr_tail: tuple[str, ...] = ()  # its last stderr lines, for the failure reason

    @property
    def ok(self) -> bool:
        """Whether the handler succeeded."""
        return self.exit_code == 0 and not self.timed_out and self.start_error is None

    def describe(self) -> str:
        """Why the handler failed (or ``exited 0``), with the last lines of its stderr."""
        if self.start_error is not None:
            return f"handler could not be started: {self.start_error}"
        if self.timed_out:
            what = "handler timed out and was stopped"
        elif self.exit_code is not None and self.exit_code < 0:
            what = f"handler was killed by signal {signal.Signals(-self.exit_code).name}"
        else:
            what = f"handler exited with status {self.exit_code}"
        if self.stderr_tail:
            what += "; its stderr ended with: " + " | ".join(self.stderr_tail)
        return what


def run_handler(
    command: Sequence[str],
    env: Mapping[str, str],
    timeout: float | None,
    tags: Mapping[str, str],
    kill_grace: float = KILL_GRACE_SECONDS,
) -> HandlerResult:
    """Run ``command`` with ``env``; stop it after ``timeout`` seconds (None: no limit).

    Output lines are logged with ``tags`` (e.g. the group) and the stream name.
    """
    if timeout is not None and timeout <= 0:
        return HandlerResult(exit_code=None, timed_out=True)
    containment.ensure_guard()
    token = containment.new_group_token()
    window = containment.PidWindow.now()  # the handler's descendants all start after this
    try:
        # Registered under the lock stop_all_handlers takes: a handler that exists when a
        # stop is requested is one it sees, however late this thread is scheduled.
        with containment.spawning() as spawned, _running_lock:
            process = subprocess.Popen(
                list(command),
                env={**env, containment.MARKER_VAR: token},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
            spawned.add(process.pid)
            _running.add(process.pid)
    except OSError as exc:
        return HandlerResult(exit_code=None, start_error=f"{command[0]!r}: {exc.strerror or exc}")

    assert process.stdout is not None and process.stderr is not None
    stderr_tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
    forwarders = [
        _forward(process.stdout, "stdout", tags),
        _forward(process.stderr, "stderr", tags, keep=stderr_tail),
    ]
    timed_out = False
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        _signal_group(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=kill_grace)
        except subprocess.TimeoutExpired:
            _signal_group(process.pid, signal.SIGKILL)
            process.wait()
    finally:
        # Descendants the handler left behind would write into a folder about to be diffed
        # and removed, and keep its output pipes open: the group ends with the handler.
        _signal_group(process.pid, signal.SIGKILL)
        process.wait()
        containment.spawned_done(process.pid)
        with _running_lock:
            _running.discard(process.pid)
            _running_lock.notify_all()
        containment.reap(containment.kill_marked(token, since=window))
        containment.reap_orphans()
        for forwarder in forwarders:
            forwarder.join(timeout=kill_grace)
    return HandlerResult(
        exit_code=process.returncode, timed_out=timed_out, stderr_tail=tuple(stderr_tail)
    )


def stop_all_handlers(kill_grace: float | None = None, wait: bool = False) -> None:
    """Stop every running handler: SIGTERM to its process group, SIGKILL after the grace.

    The ``run_handler`` calls involved return as usual, reporting the signal. With ``wait``
    this returns once every one of them has ended or been sent SIGKILL; otherwise at once
    (the SIGKILL of survivors then goes out from a timer thread).
    """
    with _running_lock:
        groups = list(_running)
    for pgid in groups:
        _signal_group(pgid, signal.SIGTERM)

    def kill_survivors() -> None:
        with _running_lock:
            survivors = [pgid for pgid in groups if pgid in _running]
        for pgid in survivors:
            _signal_group(pgid, signal.SIGKILL)

    grace = KILL_GRACE_SECONDS if kill_grace is None else kill_grace
    if wait:
        deadline = time.monotonic() + grace
        with _running_lock:
            while any(pgid in _running for pgid in groups):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                _running_lock.wait(left)
        kill_survivors()
        return
    timer = threading.Timer(grace, kill_survivors)
    timer.daemon = True
    timer.start()


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _forward(
    stream: IO[bytes], name: str, tags: Mapping[str, str], keep: deque[str] | None = None
) -> threading.Thread:
    """Log each line of ``stream`` as it comes; a line longer than ``FORWARD_PIECE_BYTES`` is
    logged in pieces of at most that size, numbered ``part`` 1, 2, ... (memory stays bounded
    whatever the handler writes on one line). ``keep`` collects the last non-blank lines (or
    pieces), shortened, for a failure reason."""
    context = contextvars.copy_context()  # keeps the request id on forwarded lines

    def pump() -> None:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")  # no split character
        part = 0
        with stream:
            for raw in iter(lambda: stream.readline(FORWARD_PIECE_BYTES), b""):
                cut = len(raw) >= FORWARD_PIECE_BYTES and not raw.endswith(b"\n")
                text = decoder.decode(raw, final=not cut)
                if not cut:
                    text = text.rstrip("\r\n")
                if keep is not None and text.strip():
                    keep.append(printable(text.strip())[:STDERR_TAIL_WIDTH])
                if part == 0 and not cut:
                    log(logger, logging.INFO, text, stream=name, **tags)
                    continue
                part += 1
                if cut or text:  # the newline alone, after a cut piece, is not a piece
                    log(logger, logging.INFO, text, stream=name, part=part, **tags)
                if not cut:
                    part = 0

    thread = threading.Thread(target=context.run, args=(pump,), daemon=True)
    thread.start()
    return thread
