"""Fixtures and helpers of the engine tests: a versioned source bucket, a private TMPDIR, a
run counter, and small builders for groups and SQS batches."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest

from bridge.app import App
from bridge.events import ObjectEvent
from bridge.groups import ExecutionGroup
from tests.conftest import MotoServer
from tests.helpers import sqs_payload, versioned_bucket

BUCKET = "src"
TARGET = "tgt"


@pytest.fixture
def src(aws: MotoServer, s3: Any) -> Any:
    """A fresh versioned source bucket; returns the test's S3 client."""
    versioned_bucket(s3, BUCKET)
    return s3


@pytest.fixture
def tmpdir_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point TMPDIR (this process and the handlers) at an empty folder of the test's own."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.fixture
def counter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """$COUNTER_FILE for the handlers: one line per run (outside every root folder)."""
    path = tmp_path / "runs.jsonl"
    monkeypatch.setenv("COUNTER_FILE", str(path))
    return path


def group_summaries(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [
        dict(getattr(r, "fields", {}), level=r.levelname)
        for r in caplog.records
        if r.getMessage() == "group summary"
    ]


def sqs_run(app: App, bodies: list[str], fifo: bool = False) -> tuple[dict[str, Any], list[str]]:
    """Hand an SQS batch with ``bodies`` to the app; the response and the message ids."""
    payload, ids = sqs_payload(bodies, fifo=fifo)
    answer = app.handle_payload(payload)
    assert not answer.is_error, answer.body
    return answer.body, ids


def group(prefix: str, *keys: str, bucket: str = BUCKET) -> ExecutionGroup:
    events = tuple(ObjectEvent(bucket, k, "ObjectCreated:Put", None, None, None) for k in keys)
    return ExecutionGroup(bucket, prefix, events)


def all_versions(s3: Any, bucket: str) -> list[tuple[str, str]]:
    listed = s3.list_object_versions(Bucket=bucket)
    return sorted((v["Key"], v["VersionId"]) for v in listed.get("Versions", []))


def process_gone(pid: int) -> bool:
    """The process no longer runs (it does not exist, or is a zombie awaiting its reaper)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")
