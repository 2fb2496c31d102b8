"""Outputs follow inputs (docs/design.md §15): lineage records, removals and their guards.

End to end over real HTTP (the moto server in its own process), real handler subprocesses;
payloads go through ``App.handle_payload`` as the Lambda runtime hands them over.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from bridge.app import App
from bridge.lineage import LINEAGE_PREFIX, Unit
from tests.engine.conftest import BUCKET, TARGET, group_summaries, sqs_run
from tests.helpers import failed_ids, handler, make_app, objects, put, read_lines, s3_notification

OBJECT_RECORD = LINEAGE_PREFIX + "default/src/objects/in/{}.json"
REMOVED = "ObjectRemoved:Delete"


@contextmanager
def s3_calls(app: App) -> Iterator[list[str]]:
    """The S3 operations the app's own client makes inside the block, in order."""
    calls: list[str] = []

    def record(model: Any, **_: Any) -> None:
        calls.append(model.name)

    events = app.engine.storage.client.meta.events
    events.register("before-call.s3", record)
    try:
        yield calls
    finally:
        events.unregister("before-call.s3", record)


def record_of(s3: Any, bucket: str, key: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    return document


@pytest.fixture(autouse=True)
def info_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)


def reserved_keys(s3: Any, bucket: str) -> list[str]:
    return sorted(objects(s3, bucket, LINEAGE_PREFIX))


def removal(key: str) -> str:
    return s3_notification(BUCKET, [key], event_name=REMOVED)


def events_app(**overrides: Any) -> App:
    return make_app(handler("copier"), pull_scope="events", on_delete="remove-outputs", **overrides)


def test_events_scope_deletion_removes_that_inputs_outputs_in_o1_requests(
    src: Any, counter: Path
) -> None:
    put(src, BUCKET, "in/a.txt", "alpha")
    put(src, BUCKET, "in/b.txt", "beta")
    app = events_app()

    body, _ = sqs_run(app, [s3_notification(BUCKET, ["in/a.txt", "in/b.txt"])])
    assert failed_ids(body) == []
    # One group per object: each output comes from exactly one input.
    assert sorted(map(tuple, read_lines(counter))) == [("in/a.txt",), ("in/b.txt",)]
    record = record_of(src, BUCKET, OBJECT_RECORD.format("a.txt"))
    assert record["inputs"] == {
        "in/a.txt": src.head_object(Bucket=BUCKET, Key="in/a.txt")["ETag"].strip('"')
    }
    assert list(record["outputs"]) == ["in/out/a.txt"]

    src.delete_object(Bucket=BUCKET, Key="in/a.txt")
    with s3_calls(app) as calls:
        body, _ = sqs_run(app, [removal("in/a.txt")])
    assert failed_ids(body) == []
    assert objects(src, BUCKET, "in/") == {"in/b.txt": b"beta", "in/out/b.txt": b"beta"}
    assert reserved_keys(src, BUCKET) == [OBJECT_RECORD.format("b.txt")]
    # The input is checked, its record read, its one output checked and removed, the record
    # dropped: O(outputs of that input), no listing and no handler run.
    assert calls == ["HeadObject", "GetObject", "HeadObject", "DeleteObject", "DeleteObject"]
    assert len(read_lines(counter)) == 2


def test_an_output_overwritten_since_is_kept(src: Any, caplog: pytest.LogCaptureFixture) -> None:
    put(src, BUCKET, "in/a.txt", "alpha")
    app = events_app()
    sqs_run(app, [s3_notification(BUCKET, ["in/a.txt"])])
    put(src, BUCKET, "in/out/a.txt", "someone else's")
    src.delete_object(Bucket=BUCKET, Key="in/a.txt")

    body, _ = sqs_run(app, [removal("in/a.txt")])
    assert failed_ids(body) == []
    assert objects(src, BUCKET, "in/") == {"in/out/a.txt": b"someone else's"}
    assert reserved_keys(src, BUCKET) == []  # the record goes; the output is not ours now
    summary = group_summaries(caplog)[-1]
    assert summary["removed"] == 0
    assert "overwritten since the bridge wrote it" in summary["kept"]["in/out/a.txt"]


def test_a_removal_whose_key_exists_again_removes_nothing(src: Any) -> None:
    put(src, BUCKET, "in/a.txt", "alpha")
    app = events_app()
    sqs_run(app, [s3_notification(BUCKET, ["in/a.txt"])])

    # Deleted and put again before the removal event arrived.
    body, _ = sqs_run(app, [removal("in/a.txt")])
    assert failed_ids(body) == []
    assert objects(src, BUCKET, "in/") == {"in/a.txt": b"alpha", "in/out/a.txt": b"alpha"}
    assert reserved_keys(src, BUCKET) == [OBJECT_RECORD.format("a.txt")]


def test_a_delete_marker_is_a_removal_too(src: Any) -> None:
    put(src, BUCKET, "in/a.txt", "alpha")
    app = events_app()
    sqs_run(app, [s3_notification(BUCKET, ["in/a.txt"])])
    src.delete_object(Bucket=BUCKET, Key="in/a.txt")  # versioned bucket: a delete marker

    marker = s3_notification(BUCKET, ["in/a.txt"], "ObjectRemoved:DeleteMarkerCreated")
    body, _ = sqs_run(app, [marker])
    assert failed_ids(body) == []
    assert objects(src, BUCKET, "in/") == {}


def test_keep_is_the_default_and_writes_no_records(src: Any, counter: Path) -> None:
    put(src, BUCKET, "in/a.txt", "alpha")
    put(src, BUCKET, "in/b.txt", "beta")
    app = make_app(handler("copier"), pull_scope="events")
    sqs_run(app, [s3_notification(BUCKET, ["in/a.txt", "in/b.txt"])])
    assert len(read_lines(counter)) == 1  # one group for the folder, as always
    src.delete_object(Bucket=BUCKET, Key="in/a.txt")

    body, _ = sqs_run(app, [removal("in/a.txt")])
    assert failed_ids(body) == []
    assert "in/out/a.txt" in objects(src, BUCKET, "in/")
    assert reserved_keys(src, BUCKET) == []


def test_lineage_on_with_keep_records_but_removes_nothing(src: Any) -> None:
    put(src, BUCKET, "in/a.txt", "alpha")
    app = make_app(handler("copier"), pull_scope="events", lineage="on")
    sqs_run(app, [s3_notification(BUCKET, ["in/a.txt"])])
    assert reserved_keys(src, BUCKET) == [OBJECT_RECORD.format("a.txt")]
    src.delete_object(Bucket=BUCKET, Key="in/a.txt")

    sqs_run(app, [removal("in/a.txt")])
    assert objects(src, BUCKET, "in/") == {"in/out/a.txt": b"alpha"}


def prefix_app(**overrides: Any) -> App:
    return make_app(
        handler("mirror"), target_bucket=TARGET, on_delete="remove-outputs", **overrides
    )


def test_prefix_scope_rerun_removes_the_outputs_it_no_longer_makes(src: Any, counter: Path) -> None:
    src.create_bucket(Bucket=TARGET)
    put(src, BUCKET, "in/a.txt", "alpha")
    put(src, BUCKET, "in/b.txt", "beta")
    app = prefix_app()
    sqs_run(app, [s3_notification(BUCKET, ["in/a.txt", "in/b.txt"])])
    assert objects(src, TARGET, "in/") == {"in/out/a.txt": b"alpha", "in/out/b.txt": b"beta"}
    group_record = LINEAGE_PREFIX + "default/src/groups/in/.group.json"
    assert sorted(record_of(src, TARGET, group_record)["inputs"]) == ["in/a.txt", "in/b.txt"]

    src.delete_object(Bucket=BUCKET, Key="in/b.txt")
    body, _ = sqs_run(app, [removal("in/b.txt")])
    assert failed_ids(body) == []
    assert read_lines(counter)[-1] == ["a.txt"]  # run again without the removed object
    assert objects(src, TARGET, "in/") == {"in/out/a.txt": b"alpha"}
    assert list(record_of(src, TARGET, group_record)["outputs"]) == ["in/out/a.txt"]


def test_prefix_scope_removal_that_closes_the_filter_removes_the_groups_outputs(
    src: Any, counter: Path, caplog: pytest.LogCaptureFixture
) -> None:
    src.create_bucket(Bucket=TARGET)
    put(src, BUCKET, "in/a.txt", "alpha")
    put(src, BUCKET, "in/b.txt", "beta")
    app = prefix_app(execution_filter_expr="length == 2")
    sqs_run(app, [s3_notification(BUCKET, ["in/b.txt"])])
    assert len(objects(src, TARGET, "in/")) == 2

    src.delete_object(Bucket=BUCKET, Key="in/b.txt")
    body, _ = sqs_run(app, [removal("in/b.txt")])
    assert failed_ids(body) == []
    assert objects(src, TARGET, "in/") == {}
    assert reserved_keys(src, TARGET) == []
    assert len(read_lines(counter)) == 1
    summary = group_summaries(caplog)[-1]
    assert (summary["outcome"], summary["removed"]) == ("skipped", 2)


def test_prefix_scope_group_left_with_nothing_to_pull_is_cleared(src: Any, counter: Path) -> None:
    src.create_bucket(Bucket=TARGET)
    put(src, BUCKET, "in/a.txt", "alpha")
    app = prefix_app()
    sqs_run(app, [s3_notification(BUCKET, ["in/a.txt"])])
    src.delete_object(Bucket=BUCKET, Key="in/a.txt")

    body, _ = sqs_run(app, [removal("in/a.txt")])
    assert failed_ids(body) == []
    assert objects(src, TARGET) == {}
    assert len(read_lines(counter)) == 1  # not run on an empty folder


def test_prefix_scope_a_creation_that_closes_the_filter_keeps_the_outputs(src: Any) -> None:
    src.create_bucket(Bucket=TARGET)
    put(src, BUCKET, "in/a.txt", "alpha")
    app = prefix_app(execution_filter_expr="length == 1")
    sqs_run(app, [s3_notification(BUCKET, ["in/a.txt"])])
    put(src, BUCKET, "in/b.txt", "beta")

    sqs_run(app, [s3_notification(BUCKET, ["in/b.txt"])])
    assert objects(src, TARGET, "in/") == {"in/out/a.txt": b"alpha"}


def test_records_are_never_inputs_and_outputs_never_records(
    src: Any, counter: Path, caplog: pytest.LogCaptureFixture
) -> None:
    put(src, BUCKET, "a.txt", "alpha")
    app = make_app(
        handler("mirror"),
        on_delete="remove-outputs",
        pull_parent_dirs=-1,
        pull_match_keys="^a",
    )
    sqs_run(app, [s3_notification(BUCKET, ["a.txt"])])
    sqs_run(app, [s3_notification(BUCKET, ["a.txt"])])
    summaries = group_summaries(caplog)
    # The whole bucket is the group: its record is in it, never listed nor pulled.
    assert [s["listed"] for s in summaries] == [1, 2]  # a.txt, then out/a.txt too
    assert read_lines(counter) == [["a.txt"], ["a.txt"]]

    # A notification of the record itself is ignored.
    record = LINEAGE_PREFIX + "default/src/groups/.group.json"
    body, _ = sqs_run(app, [s3_notification(BUCKET, [record])])
    assert failed_ids(body) == []
    assert len(read_lines(counter)) == 2


def test_an_output_under_the_reserved_prefix_is_not_uploaded(
    src: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("WRITE_ALSO", ".s3-event-bridge/lineage/default/src/objects/x.json")
    put(src, BUCKET, "a.txt", "alpha")
    app = make_app(handler("mirror"), pull_parent_dirs=-1)
    body, _ = sqs_run(app, [s3_notification(BUCKET, ["a.txt"])])
    assert failed_ids(body) == []
    assert reserved_keys(src, BUCKET) == []
    summary = group_summaries(caplog)[-1]
    assert list(summary["not_uploaded"]) == [".s3-event-bridge/lineage/default/src/objects/x.json"]


def test_step_name_files_records_apart(src: Any) -> None:
    put(src, BUCKET, "in/a.txt", "alpha")
    events_app(step_name="thumbs").handle_payload(
        {"Records": json.loads(s3_notification(BUCKET, ["in/a.txt"]))["Records"]}
    )
    unit = Unit("thumbs", BUCKET, "object", "in/a.txt")
    assert reserved_keys(src, BUCKET) == [unit.record_key]


def test_a_write_between_the_check_and_the_delete_wins(src: Any) -> None:
    """The ETag is checked with HeadObject, and the delete carries If-Match: an output
    overwritten in between is kept (S3 answers 412)."""
    put(src, BUCKET, "in/a.txt", "alpha")
    app = events_app()
    sqs_run(app, [s3_notification(BUCKET, ["in/a.txt"])])
    src.delete_object(Bucket=BUCKET, Key="in/a.txt")

    def overwrite(params: dict[str, Any], **_: Any) -> None:
        if params["Key"] == "in/out/a.txt":
            put(src, BUCKET, "in/out/a.txt", "written meanwhile")

    events = app.engine.storage.client.meta.events
    events.register("before-parameter-build.s3.DeleteObject", overwrite)
    try:
        body, _ = sqs_run(app, [removal("in/a.txt")])
    finally:
        events.unregister("before-parameter-build.s3.DeleteObject", overwrite)
    assert failed_ids(body) == []
    assert objects(src, BUCKET, "in/") == {"in/out/a.txt": b"written meanwhile"}
