"""Temporary folders of execution groups, named after their owner; a dead owner's are removed.

Each group's folder is ``$TMPDIR/s3-event-bridge-<pid>-<process start time>-<random>/`` (the
root folder and the events file are inside) and holds ``owner.lock``, which the bridge keeps
locked (``flock``) while the group runs. The kernel drops the lock when the process dies,
however it dies, so at start a driver removes every such folder whose lock it can take: its
owner is dead (a kill -9 left it behind). The lock, not the pid, decides: a container
restarted in a fresh pid namespace reuses pids, and bridges sharing one ``TMPDIR`` (a
Kubernetes ``emptyDir``) see each other's folders but not each other's processes. Nothing
else is touched: only directories of this user named like a group folder and holding a lock
file; the name says whose it was.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bridge.containment import current_owner

FOLDER_PREFIX = "s3-event-bridge-"
LOCK_NAME = "owner.lock"
_FOLDER_NAME = re.compile(re.escape(FOLDER_PREFIX) + r"\d+-\d+-[A-Za-z0-9_]+")
_LOCK_FLAGS = os.O_NOFOLLOW | os.O_CLOEXEC


def temp_root() -> Path:
    """Where temporary folders go: ``TMPDIR`` (``/tmp`` on Lambda)."""
    return Path(tempfile.gettempdir())


@contextmanager
def group_folder() -> Iterator[str]:
    """A fresh temporary folder for one group, locked by this process; removed on exit."""
    path = tempfile.mkdtemp(prefix=f"{FOLDER_PREFIX}{current_owner().tag}-")
    descriptor = os.open(Path(path, LOCK_NAME), os.O_CREAT | os.O_RDWR | _LOCK_FLAGS, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield path
    finally:
        _remove(Path(path))
        os.close(descriptor)


def _remove(folder: Path) -> None:
    """Remove a group folder, its lock file last: a process killed part way through leaves a
    folder that still has its lock file, so the next start can still judge and remove it."""
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name == LOCK_NAME:
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, onerror=_make_writable_and_retry)
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(folder / LOCK_NAME)
    os.rmdir(folder)


def _make_writable_and_retry(function: Any, path: str, exc_info: Any) -> None:
    # A handler may leave read-only folders behind (tempfile.TemporaryDirectory does the same).
    exc = exc_info[1]
    if isinstance(exc, FileNotFoundError):
        return
    if not isinstance(exc, PermissionError):
        raise exc
    os.chmod(os.path.dirname(path), 0o700)
    if os.path.isdir(path) and not os.path.islink(path):
        os.chmod(path, 0o700)
        shutil.rmtree(path)
    else:
        os.unlink(path)


def remove_stale(root: Path | None = None) -> list[Path]:
    """Remove the group folders under ``root`` (default ``TMPDIR``) of dead bridge processes.

    Returns those removed. Live owners' folders, and anything not a group folder of this
    user, are left alone.
    """
    removed = []
    directory = root or temp_root()
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return []
    uid = os.geteuid()
    for entry in entries:
        if not _FOLDER_NAME.fullmatch(entry.name):
            continue
        try:
            if not entry.is_dir(follow_symlinks=False):
                continue
            if entry.stat(follow_symlinks=False).st_uid != uid:
                continue
        except OSError:
            continue
        if _remove_if_dead(Path(entry.path)):
            removed.append(Path(entry.path))
    return removed


def _remove_if_dead(path: Path) -> bool:
    try:
        descriptor = os.open(path / LOCK_NAME, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:  # no lock file: not a folder we can judge
        return False
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held: its owner is alive
            return False
        with contextlib.suppress(OSError):
            _remove(path)
        return not path.exists()
    finally:
        os.close(descriptor)
