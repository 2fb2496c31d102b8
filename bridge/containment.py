"""Containing the handler's descendants: nothing it started outlives its group or the bridge.

A process group is not enough: a daemon that double-forks and calls ``setsid`` leaves it,
keeps the output pipes open and goes on writing into the root folder. So every handler gets a
marker variable, ``BRIDGE_GROUP_TOKEN=<owner>.<n>`` (``owner`` = the bridge's pid and process
start time), which every descendant inherits whatever session or group it moves to. When the
group ends the bridge finds the processes carrying its token in ``/proc/<pid>/environ`` and
kills them, pinning each with a pidfd so a recycled pid is never hit. Only processes whose
pid was allocated after the handler started are read (``PidWindow``), so the cost does not
grow with the number of processes on the machine.

Why this design (Linux; elsewhere the scan finds nothing and only the process group applies):

- the marker survives ``setsid``, double forks and several groups running side by side in
  one bridge; a walk of the process tree would lose a daemon once its parent exits;
- the drivers make the bridge a child subreaper (``PR_SET_CHILD_SUBREAPER``), so orphaned
  descendants re-parent to it rather than to init: it reaps them (as it must when it is PID 1
  of a container) instead of leaving zombies;
- a kill -9 of the bridge runs no code of its, so a tiny guard process (this file run as a
  script, standard library only, started before the first handler) waits for the bridge's
  end on a pipe and then kills every process marked with the bridge's owner tag. A
  parent-death signal would reach only the direct child, and setting it needs Popen's
  ``preexec_fn``, which is unsafe once threads run (several groups, the heartbeat);
- cgroups would contain everything, but are rarely writable inside a container or on
  Lambda; the marker works unprivileged everywhere.

A descendant that deliberately clears its environment and leaves the process group escapes
the marker: it is still re-parented to the bridge and reaped when it exits.

This module imports only the standard library: it also runs as the guard script.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

MARKER_VAR = "BRIDGE_GROUP_TOKEN"
PR_SET_CHILD_SUBREAPER = 36
KILL_ROUNDS_SECONDS = 5.0  # give up re-killing after this long (a process stuck in the kernel)

_lock = threading.Lock()  # serialises spawning handlers and reaping orphans
_spawned: set[int] = set()  # pids whose Popen object will reap them: never reap those here
_counter = iter(range(1, 2**63))
_state: dict[str, object] = {}


@dataclass(frozen=True)
class Owner:
    """A bridge process, identified across pid reuse by its pid and start time."""

    pid: int
    start_ticks: int

    @property
    def tag(self) -> str:
        """``<pid>-<start time>``: names the process's markers and temporary folders."""
        return f"{self.pid}-{self.start_ticks}"


def process_start_ticks(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot (None: no such process, or no /proc)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stream:
            stat = stream.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ")".
    return int(stat.rsplit(b")", 1)[1].split()[19])


def current_owner() -> Owner:
    """This process as an owner (recomputed after a fork)."""
    pid = os.getpid()
    owner = _state.get("owner")
    if not isinstance(owner, Owner) or owner.pid != pid:
        owner = Owner(pid, process_start_ticks(pid) or 0)
        _state["owner"] = owner
    return owner


def new_group_token() -> str:
    """A fresh marker value for one handler run of this process."""
    return f"{current_owner().tag}.{next(_counter)}"


def _needle(value: str, whole: bool) -> bytes:
    return (f"\0{MARKER_VAR}={value}" + ("\0" if whole else "")).encode()


@dataclass(frozen=True)
class PidWindow:
    """Where pid allocation stood before a handler started: its descendants' pids all come
    after ``last_pid`` in the kernel's cyclic order, unless the pid space wrapped around
    entirely since (told by the system-wide fork counter). Lets a scan skip older processes.
    """

    last_pid: int
    forks: int
    pid_max: int

    @classmethod
    def now(cls) -> PidWindow | None:
        """The current position (None where /proc does not tell it: scan everything)."""
        last, forks, pid_max = _last_pid(), _forks(), _read_int("/proc/sys/kernel/pid_max")
        if last is None or forks is None or pid_max is None:
            return None
        return cls(last, forks, pid_max)

    def admits(self) -> Callable[[int], bool] | None:
        """A test of "allocated since", or None when the window cannot be trusted."""
        last, forks = _last_pid(), _forks()
        if last is None or forks is None or forks - self.forks >= self.pid_max - 1:
            return None
        span = (last - self.last_pid) % self.pid_max
        return lambda pid: 0 < (pid - self.last_pid) % self.pid_max <= span


def _read_int(path: str) -> int | None:
    try:
        with open(path, "rb") as stream:
            return int(stream.read())
    except (OSError, ValueError):
        return None


def _last_pid() -> int | None:
    return _read_int("/proc/sys/kernel/ns_last_pid")


def _forks() -> int | None:
    try:
        with open("/proc/stat", "rb") as stream:
            for line in stream:
                if line.startswith(b"processes "):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def marked_processes(value: str, whole: bool = True, since: PidWindow | None = None) -> list[int]:
    """Pids (other than this one) whose environment has ``BRIDGE_GROUP_TOKEN=value``.

    ``whole=False`` matches every value starting with ``value``. With ``since``, only
    processes started after that window are looked at (when the window can be trusted).
    """
    needle = _needle(value, whole)
    me = os.getpid()
    admits = since.admits() if since is not None else None
    found = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for name in entries:
        if not name.isdigit() or int(name) == me:
            continue
        if admits is not None and not admits(int(name)):
            continue
        if _carries(int(name), needle):
            found.append(int(name))
    return found


def _carries(pid: int, needle: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as stream:
            environ = stream.read()
    except OSError:  # gone, or not ours to read
        return False
    return needle in b"\0" + environ + b"\0"


def kill_marked(value: str, whole: bool = True, since: PidWindow | None = None) -> list[int]:
    """SIGKILL every process marked ``value`` until none is left; returns the pids killed.

    Rounds repeat because a marked process may fork between a scan and its kill. Each pid
    is pinned with a pidfd and re-checked before the signal, so a recycled pid is never hit.
    """
    needle = _needle(value, whole)
    killed: list[int] = []
    deadline = time.monotonic() + KILL_ROUNDS_SECONDS
    while time.monotonic() < deadline:
        found = marked_processes(value, whole, since)
        if not found:
            break
        for pid in found:
            if _kill_pinned(pid, needle) and pid not in killed:
                killed.append(pid)
        time.sleep(0.005)
    return killed


def _kill_pinned(pid: int, needle: bytes) -> bool:
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError) as exc:
        if isinstance(exc, OSError) and not _no_pidfd(exc):
            return False  # gone already
        if not _carries(pid, needle):
            return False
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
            return True
        return False
    try:
        if not _carries(pid, needle):  # the pid was recycled after the scan
            return False
        with contextlib.suppress(ProcessLookupError, PermissionError):
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            return True
        return False
    finally:
        os.close(pidfd)


def _no_pidfd(exc: OSError) -> bool:
    return exc.errno in (errno.ENOSYS, errno.EPERM, errno.EINVAL)


def reap(pids: Iterable[int]) -> None:
    """Wait for those of ``pids`` that are this process's children (adopted orphans)."""
    for pid in pids:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)


# --------------------------------------------------------------------------- spawning


@contextlib.contextmanager
def spawning() -> Iterator[set[int]]:
    """Hold while starting a child whose Popen will reap it: add its pid to the yielded set.

    Reaping orphans takes the same lock, so it never steals a child a Popen waits for.
    """
    with _lock:
        yield _spawned


def spawned_done(pid: int) -> None:
    """The Popen of ``pid`` has reaped it."""
    with _lock:
        _spawned.discard(pid)


def reap_orphans() -> int:
    """Reap exited children this process adopted as subreaper (or PID 1); returns how many.

    Only when this process reaps orphans: elsewhere any zombie child belongs to a Popen.
    """
    if not (_state.get("subreaper") or os.getpid() == 1):
        return 0
    reaped = 0
    with _lock:
        while True:
            try:  # peek at one exited child, without reaping it: usually there is none
                exited = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return reaped
            if exited is None:
                return reaped
            if exited.si_pid in _spawned:  # a Popen's to reap; others may hide behind it
                return reaped + _reap_zombies_by_scan()
            with contextlib.suppress(ChildProcessError):
                os.waitpid(exited.si_pid, os.WNOHANG)
                reaped += 1


def _reap_zombies_by_scan() -> int:
    me = str(os.getpid())
    reaped = 0
    try:
        entries = os.listdir("/proc")
    except OSError:
        return 0
    for name in entries:
        if not name.isdigit() or int(name) in _spawned:
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as stream:
                fields = stream.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if fields[0] == b"Z" and fields[1].decode() == me:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(int(name), os.WNOHANG)
                reaped += 1
    return reaped


# --------------------------------------------------------------------------- the drivers' set-up


def become_subreaper() -> bool:
    """Make orphaned descendants re-parent to this process (Linux); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        ok = bool(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False
    _state["subreaper"] = ok
    return ok


def enable() -> None:
    """Driver set-up: become a subreaper, and guard every handler started from now on."""
    become_subreaper()
    _state["guarded"] = True


def ensure_guard() -> None:
    """Start the guard if the driver asked for one (see ``enable``) and it is not running."""
    if _state.get("guarded"):
        start_guard()


def start_guard() -> None:
    """Start (once per process) the guard that kills this bridge's marked processes after it.

    The guard reads a pipe only this process holds; end of file means the bridge is gone,
    however it ended (kill -9 included).
    """
    owner = current_owner()
    with _lock:
        guard = _state.get("guard")
        if (
            isinstance(guard, subprocess.Popen)
            and _state.get("guard_owner") == owner
            and guard.poll() is None  # a guard that died (OOM, a stray kill) is replaced
        ):
            return
        guard = subprocess.Popen(
            [sys.executable, "-I", "-S", os.path.abspath(__file__), f"{owner.tag}."],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C or a group signal meant for the bridge misses it
            # Unmarked: a bridge that is itself some outer bridge's handler is killed with
            # its group, and its guard must outlive it to kill the bridge's own handlers.
            env={name: value for name, value in os.environ.items() if name != MARKER_VAR},
        )
        _spawned.add(guard.pid)
        _state["guard"], _state["guard_owner"] = guard, owner


def stop_guard() -> None:
    """Close the guard's pipe, as this process's end would, and wait for the guard to exit."""
    with _lock:
        guard = _state.pop("guard", None)
    if isinstance(guard, subprocess.Popen):
        if guard.stdin is not None:
            guard.stdin.close()
        guard.wait()
        spawned_done(guard.pid)


def guard_pid() -> int | None:
    """The pid of this process's guard, if started."""
    guard = _state.get("guard")
    return guard.pid if isinstance(guard, subprocess.Popen) else None


def _guard_main(prefix: str) -> int:
    """The guard process: wait for the bridge's end, then kill what it marked."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # stops only when the bridge is gone
    while sys.stdin.buffer.read(4096):
        pass
    killed = kill_marked(prefix, whole=False)
    if killed:
        print(
            f"s3-event-bridge guard: killed {len(killed)} handler process(es) left by bridge "
            f"process {prefix.split('-')[0]}: {' '.join(map(str, killed))}",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(_guard_main(sys.argv[1]))
