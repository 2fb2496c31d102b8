"""P5 (docs/design.md §13): change detection over pulled files, without S3.

The files are made locally as a pull leaves them: each one's mtime set to a past
``LastModified`` with ``os.utime``, all of them in the page cache. The "handler" rewrites one
file in place, to the same size (the hardest case for a stat-based diff), between the two
halves of each side; that rewrite is not timed.
"""

from __future__ import annotations

import hashlib
import itertools
import os
from pathlib import Path
from time import perf_counter_ns

from harness import Row, interleaved

from bridge.signatures import changed_files, take_snapshot

FILES_PER_FOLDER = 100
PULLED_AT_NS = 1_700_000_000_000_000_000  # a LastModified in the past, as the engine sets it


class BenchmarkError(Exception):
    """A side did not find exactly the one rewritten file."""


def make_pulled_files(root: Path, files: int, total_bytes: int) -> list[str]:
    """``files`` files of ``total_bytes`` together, 100 to a folder; their relative paths."""
    size = total_bytes // files
    data = os.urandom(size + files)
    paths = []
    for n in range(files):
        path = f"batch-{n // FILES_PER_FOLDER:03d}/item-{n:05d}.bin"
        local = root / path
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(data[n : n + size])  # every file different
        os.utime(local, ns=(PULLED_AT_NS, PULLED_AT_NS))
        paths.append(path)
    return paths


def rewrite_in_place(path: Path) -> None:
    """What the handler does: change the first bytes, keep the size."""
    with path.open("r+b") as stream:
        head = stream.read(16)
        stream.seek(0)
        stream.write(bytes(b ^ 0xFF for b in head))


def sha1_of_every_file(root: Path) -> dict[str, str]:
    """The naive wrapper's way: SHA-1 of every regular file under ``root``, by relative path."""
    digests = {}
    for folder, _, names in os.walk(root):
        for name in names:
            local = Path(folder, name)
            with local.open("rb") as stream:
                digests[local.relative_to(root).as_posix()] = hashlib.file_digest(
                    stream, "sha1"
                ).hexdigest()
    return digests


def p5_change_detection(workdir: Path, files: int, total_bytes: int, runs: int) -> list[Row]:
    """Snapshot + diff against hashing every input twice, ``files`` files, one rewritten."""
    root = workdir / "p5-root"
    paths = make_pulled_files(root, files, total_bytes)
    targets = itertools.cycle(paths[:: max(1, len(paths) // 7)])

    def expect_one(side: str, changed: list[str], target: str) -> None:
        if changed != [target]:
            raise BenchmarkError(f"P5: {side} found {changed[:5]}..., not [{target}]")

    def bridge() -> float:
        target = next(targets)
        started = perf_counter_ns()
        snapshot = take_snapshot(root, paths)
        snapped = perf_counter_ns()
        rewrite_in_place(root / target)
        resumed = perf_counter_ns()
        changed = changed_files(root, snapshot)
        done = perf_counter_ns()
        expect_one("the bridge", changed, target)
        return ((snapped - started) + (done - resumed)) / 1e9

    def baseline() -> float:
        target = next(targets)
        started = perf_counter_ns()
        before = sha1_of_every_file(root)
        hashed = perf_counter_ns()
        rewrite_in_place(root / target)
        resumed = perf_counter_ns()
        after = sha1_of_every_file(root)
        changed = sorted(path for path, digest in after.items() if before.get(path) != digest)
        done = perf_counter_ns()
        expect_one("the SHA-1 baseline", changed, target)
        return ((hashed - started) + (done - resumed)) / 1e9

    bridges, baselines = interleaved([bridge, baseline], runs)
    what = f"change detection: {files:,} files, {total_bytes / 2**20:,.0f} MiB, 1 rewritten"
    return [
        Row("P5", what, "s", bridges, baselines, "<= 0.05x", 0.05, note=_P5_NOTE),
    ]


_P5_NOTE = (
    "files in the page cache (as right after a pull); exactly 1 changed file asserted on "
    "every run of both sides"
)
