"""Unit tests for bridge.signatures: snapshot and diff of the root folder (docs/design.md §6)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from bridge.signatures import FileSignature, changed_files, take_snapshot

# What the engine does after a pull: each file's mtime is the object's LastModified.
PAST_NS = 1_600_000_000_123_456_789


def pull(root: Path, files: dict[str, bytes]) -> list[str]:
    """Write ``files`` like a pull does (mtime set to a fixed past time); their paths."""
    for path, data in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        os.utime(target, ns=(PAST_NS, PAST_NS), follow_symlinks=False)
    return list(files)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "root"
    folder.mkdir()
    return folder


# --------------------------------------------------------------------------- snapshot


def test_snapshot_records_size_mtime_and_inode(root: Path) -> None:
    paths = pull(root, {"a.txt": b"hello", "sub/b.bin": b"\x00" * 10})
    snapshot = take_snapshot(root, paths)
    assert set(snapshot) == {"a.txt", "sub/b.bin"}
    stat = os.stat(root / "a.txt")
    assert snapshot["a.txt"] == FileSignature(5, PAST_NS, stat.st_ino)
    assert snapshot["sub/b.bin"].size == 10
    assert snapshot["sub/b.bin"].mtime_ns == PAST_NS


def test_snapshot_accepts_a_generator(root: Path) -> None:
    pull(root, {"a": b"1"})
    assert set(take_snapshot(root, (p for p in ["a"]))) == {"a"}


# --------------------------------------------------------------------------- diff


def test_untouched_files_are_not_reported(root: Path) -> None:
    paths = pull(root, {"a.txt": b"a", "sub/deep/b.txt": b"b", "c": b""})
    snapshot = take_snapshot(root, paths)
    # Reading does not count as a change.
    assert [(root / path).read_bytes() for path in paths] == [b"a", b"b", b""]
    assert changed_files(root, snapshot) == []


def test_empty_root(root: Path) -> None:
    assert changed_files(root, {}) == []


def test_new_files_are_reported(root: Path) -> None:
    snapshot = take_snapshot(root, pull(root, {"in.txt": b"input"}))
    (root / "out.txt").write_bytes(b"output")
    (root / "new" / "nested" / "deep").mkdir(parents=True)
    (root / "new" / "nested" / "deep" / "x.csv").write_bytes(b"1,2")
    (root / "empty.txt").touch()
    assert changed_files(root, snapshot) == ["empty.txt", "new/nested/deep/x.csv", "out.txt"]


def test_new_file_with_past_mtime_is_reported(root: Path) -> None:
    snapshot = take_snapshot(root, [])
    pull(root, {"looks-old.txt": b"x"})
    assert changed_files(root, snapshot) == ["looks-old.txt"]


def test_in_place_same_size_rewrite_is_reported(root: Path) -> None:
    paths = pull(root, {"data.txt": b"AAAA", "other.txt": b"BBBB"})
    snapshot = take_snapshot(root, paths)
    inode = os.stat(root / "data.txt").st_ino
    with open(root / "data.txt", "r+b") as f:  # same file, same size, new content
        f.write(b"ZZZZ")
    assert os.stat(root / "data.txt").st_ino == inode
    assert os.stat(root / "data.txt").st_size == 4
    assert changed_files(root, snapshot) == ["data.txt"]


def test_truncate_and_rewrite_is_reported(root: Path) -> None:
    snapshot = take_snapshot(root, pull(root, {"a/b.txt": b"12345"}))
    (root / "a" / "b.txt").write_bytes(b"54321")
    assert changed_files(root, snapshot) == ["a/b.txt"]


def test_size_change_is_reported_even_with_mtime_restored(root: Path) -> None:
    snapshot = take_snapshot(root, pull(root, {"a.txt": b"short"}))
    with open(root / "a.txt", "ab") as f:
        f.write(b" and longer")
    os.utime(root / "a.txt", ns=(PAST_NS, PAST_NS))
    assert changed_files(root, snapshot) == ["a.txt"]


def test_replaced_file_is_reported_via_inode(root: Path) -> None:
    snapshot = take_snapshot(root, pull(root, {"sub/a.txt": b"AAAA", "b.txt": b"BBBB"}))
    temp = root / "sub" / "a.txt.tmp"
    temp.write_bytes(b"ZZZZ")  # same size
    os.utime(temp, ns=(PAST_NS, PAST_NS))  # and same mtime as the original
    os.replace(temp, root / "sub" / "a.txt")
    after = os.stat(root / "sub" / "a.txt")
    assert (after.st_size, after.st_mtime_ns) == (4, PAST_NS)  # only the inode differs
    assert changed_files(root, snapshot) == ["sub/a.txt"]


def test_deleted_files_are_not_reported(root: Path) -> None:
    snapshot = take_snapshot(root, pull(root, {"gone.txt": b"x", "kept.txt": b"y"}))
    (root / "gone.txt").unlink()
    assert changed_files(root, snapshot) == []


def test_touch_only_is_reported(root: Path) -> None:
    # mtime moved: the content *may* have changed (the MD5 check decides later).
    snapshot = take_snapshot(root, pull(root, {"a.txt": b"same"}))
    os.utime(root / "a.txt", ns=(PAST_NS + 1_000_000_000, PAST_NS + 1_000_000_000))
    assert changed_files(root, snapshot) == ["a.txt"]


def test_file_replaced_by_directory(root: Path) -> None:
    snapshot = take_snapshot(root, pull(root, {"a": b"file"}))
    (root / "a").unlink()
    (root / "a").mkdir()
    (root / "a" / "inside.txt").write_bytes(b"x")
    assert changed_files(root, snapshot) == ["a/inside.txt"]


def test_unicode_and_space_names(root: Path) -> None:
    snapshot = take_snapshot(root, pull(root, {"日本/ファイル.txt": b"x"}))
    (root / "日本" / "new file é.txt").write_bytes(b"y")
    assert changed_files(root, snapshot) == ["日本/new file é.txt"]


def test_result_is_sorted_posix_paths(root: Path) -> None:
    for name in ["z", "a/z", "a/b", "m"]:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"1")
    assert changed_files(root, {}) == ["a/b", "a/z", "m", "z"]


# --------------------------------------------------------------------------- non-regular files


def test_symlinks_are_not_reported_nor_followed(root: Path, tmp_path: Path) -> None:
    snapshot = take_snapshot(root, pull(root, {"real.txt": b"x", "dir/inner.txt": b"y"}))
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"secret")
    (tmp_path / "outside-file.txt").write_bytes(b"secret")
    (root / "link-to-file").symlink_to(root / "real.txt")
    (root / "link-to-dir").symlink_to(root / "dir", target_is_directory=True)
    (root / "link-outside-dir").symlink_to(outside, target_is_directory=True)
    (root / "link-outside-file").symlink_to(tmp_path / "outside-file.txt")
    (root / "dangling").symlink_to(root / "missing")
    (root / "relative-up").symlink_to("../outside", target_is_directory=True)
    assert changed_files(root, snapshot) == []


def test_pulled_file_replaced_by_symlink_is_not_reported(root: Path, tmp_path: Path) -> None:
    snapshot = take_snapshot(root, pull(root, {"a.txt": b"x"}))
    (tmp_path / "elsewhere").write_bytes(b"secret")
    (root / "a.txt").unlink()
    (root / "a.txt").symlink_to(tmp_path / "elsewhere")
    assert changed_files(root, snapshot) == []


def test_fifo_is_not_reported_nor_opened(root: Path) -> None:
    snapshot = take_snapshot(root, [])
    os.mkfifo(root / "pipe")
    (root / "sub").mkdir()
    os.mkfifo(root / "sub" / "pipe2")
    # Opening a FIFO for reading would block forever; the diff must not even try.
    assert changed_files(root, snapshot) == []


def test_socket_is_not_reported(root: Path) -> None:
    snapshot = take_snapshot(root, [])
    path = root / "s"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
        assert path.is_socket()
        assert changed_files(root, snapshot) == []


def test_empty_directories_are_not_reported(root: Path) -> None:
    (root / "a" / "b").mkdir(parents=True)
    assert changed_files(root, {}) == []


def test_non_utf8_names_are_not_reported(root: Path) -> None:
    name = os.fsdecode(b"bad-\xff.txt")
    (root / name).write_bytes(b"x")
    (root / "good.txt").write_bytes(b"y")
    assert changed_files(root, {}) == ["good.txt"]
