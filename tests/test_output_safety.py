"""Outputs are read from the root folder only: a file swapped for a symlink after the diff
(what a handler's leftover descendant can do) is never uploaded from where the link points."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

import bridge.push
from bridge.engine import Engine
from bridge.events import ObjectEvent
from bridge.groups import ExecutionGroup
from bridge.outcomes import Status
from bridge.progress import Progress
from bridge.settings import load_settings
from bridge.storage import PushResult, Storage, Upload, s3_client
from tests.conftest import MotoServer
from tests.helpers import handler, objects, put
from tests.test_storage import LARGE, pattern


class SwappingStorage(Storage):
    """Replaces outputs by symlinks (to a file, or a folder on their path) just before the
    push: the race between diff and push, made deterministic."""

    def __init__(self, secret: Path) -> None:
        super().__init__(s3_client(4), 4)
        self.secret = secret

    def push(
        self,
        bucket: str,
        root: Path,
        uploads: Sequence[Upload],
        progress: Progress | None = None,
    ) -> PushResult:
        (root / "out" / "a.txt").unlink()
        (root / "out" / "a.txt").symlink_to(self.secret)
        nested = root / "out" / "deep"
        for file in nested.iterdir():
            file.unlink()
        nested.rmdir()
        nested.symlink_to(self.secret.parent)  # out/deep/b.txt now resolves outside the root
        return super().push(bucket, root, uploads, progress)


def test_an_output_swapped_for_a_symlink_after_the_diff_is_not_uploaded(
    aws: MotoServer, s3: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "b.txt"
    secret.write_bytes(b"root:x:0:0:secret\n")
    s3.create_bucket(Bucket="src")
    for key in ("job/a.txt", "job/deep/b.txt", "job/c.txt"):
        put(s3, "src", key, f"content of {key}")
    engine = Engine(load_settings(), [*handler("copier")], SwappingStorage(secret))
    events = tuple(
        ObjectEvent("src", key, "ObjectCreated:Put", None, None, None)
        for key in ("job/a.txt", "job/deep/b.txt", "job/c.txt")
    )
    caplog.set_level(logging.INFO)

    outcome = engine.run_group(ExecutionGroup("src", "job/", events))

    assert outcome.status is Status.SUCCEEDED
    assert outcome.uploaded == ("job/out/c.txt",)
    stored = objects(s3, "src", "job/out/")
    assert stored == {"job/out/c.txt": b"content of job/c.txt"}
    assert all(b"secret" not in body for body in objects(s3, "src").values())
    [summary] = [r for r in caplog.records if r.getMessage() == "group summary"]
    assert set(getattr(summary, "fields", {})["not_uploaded"]) == {"out/a.txt", "out/deep/b.txt"}


@pytest.mark.parametrize("size", [100, LARGE], ids=["single-part", "multipart"])
def test_an_output_swapped_once_opened_is_uploaded_from_the_opened_file(
    aws: MotoServer,
    s3: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    size: int,
) -> None:
    """The file is hashed and uploaded from the descriptor opened first (s3transfer reopens
    a multipart upload's file per part: through /proc/self/fd, never by its name)."""
    root = tmp_path / "root"
    root.mkdir()
    (root / "out.bin").write_bytes(pattern(size, seed=1))
    secret = tmp_path / "secret"
    secret.write_bytes(pattern(size, seed=2))  # same size: nothing but the content differs
    opened = bridge.push.open_beneath

    def open_then_swap(folder: Path, relative: str) -> int:
        fd = opened(folder, relative)
        (folder / relative).unlink()
        (folder / relative).symlink_to(secret)
        return fd

    monkeypatch.setattr(bridge.push, "open_beneath", open_then_swap)
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws.endpoint)
    s3.create_bucket(Bucket="bkt")

    result = Storage(s3_client(4), 4).push("bkt", root, [Upload("out.bin", "out.bin", "x/y", {})])

    assert result.uploaded == ("out.bin",)
    assert s3.get_object(Bucket="bkt", Key="out.bin")["Body"].read() == pattern(size, seed=1)
