"""Snapshot and diff of the root folder (docs/design.md §6) without reading file contents.

After the pull every file's mtime equals its object's LastModified, so recording
``(size, mtime_ns, inode)`` is enough: a handler that rewrites a file in place (even to the
same size) moves its mtime, and one that replaces it changes its inode.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from stat import S_ISDIR
from typing import NamedTuple

from bridge.logs import log

logger = logging.getLogger(__name__)


class FileSignature(NamedTuple):
    """What the snapshot remembers of a file: enough to tell it may have changed.

    A named tuple, not a dataclass: thousands are made and compared per group (the
    snapshot and the diff make and compare one per file), and tuples do both in C.
    """

    size: int
    mtime_ns: int
    inode: int

    @classmethod
    def of(cls, stat: os.stat_result) -> FileSignature:
        """The signature of a ``stat`` result."""
        return cls(stat.st_size, stat.st_mtime_ns, stat.st_ino)


Snapshot = dict[str, FileSignature]


def take_snapshot(root: Path, paths: Iterable[str]) -> Snapshot:
    """Signatures of the pulled files at relative POSIX ``paths`` under ``root``."""
    base = f"{root}/"
    snapshot = {}
    for path in paths:
        stat = os.lstat(base + path)
        snapshot[path] = FileSignature(stat.st_size, stat.st_mtime_ns, stat.st_ino)
    return snapshot


def changed_files(root: Path, before: Snapshot) -> list[str]:
    """Relative paths of the regular files under ``root`` that are new or may have changed.

    Symlinks are neither followed nor reported; FIFOs, sockets and devices are ignored.
    Raises ``NotADirectoryError`` when ``root`` itself is no longer a real directory (the
    handler replaced it, e.g. by a symlink pointing out of the root folder).
    """
    if not S_ISDIR(os.lstat(root).st_mode):
        raise NotADirectoryError(f"the root folder {root} was replaced by the handler")
    return sorted(path for path, signature in _regular_files(root) if before.get(path) != signature)


def _regular_files(root: Path, relative: str = "") -> Iterator[tuple[str, FileSignature]]:
    with os.scandir(f"{root}/{relative}" if relative else root) as entries:
        for entry in entries:
            path = f"{relative}{entry.name}"
            if not _is_utf8(entry.name):
                log(logger, logging.WARNING, "output name is not UTF-8: not uploaded", path=path)
            elif entry.is_dir(follow_symlinks=False):
                yield from _regular_files(root, path + "/")
            elif entry.is_file(follow_symlinks=False):
                stat = entry.stat(follow_symlinks=False)
                yield path, FileSignature(stat.st_size, stat.st_mtime_ns, stat.st_ino)


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # os.scandir decodes undecodable bytes as lone surrogates
        return False
    return True
