"""End-to-end tests of the engine over real HTTP (the moto server runs in its own process).

Payloads are realistic (``bridge.samples``) and go through ``App.handle_payload`` exactly as
the Lambda runtime hands them over; handlers are the small scripts of ``tests/handlers``.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

import bridge.engine
import bridge.handler
from bridge.app import App
from bridge.engine import CHAIN_DEPTH_REASON, Engine
from bridge.events import ObjectEvent
from bridge.groups import ExecutionGroup
from bridge.outcomes import Status
from bridge.samples import sample_payload
from tests.conftest import MotoServer
from tests.helpers import (
    TEST_EVENT_BODY,
    eventbridge_body,
    failed_ids,
    handler,
    make_app,
    make_engine,
    objects,
    put,
    read_lines,
    s3_notification,
    sns_envelope,
    sqs_payload,
    versioned_bucket,
    versions,
)

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


# --- keys -------------------------------------------------------------------------------

SPECIAL_KEYS = [
    "in/red flower+1.txt",
    "in/100% pure & 50%25 off.txt",
    "in/a+b%2Bc=d?e#f.txt",
    "in/ünïcødé 日本語 ✓.txt",
]


@pytest.mark.parametrize("shape", ["sqs", "s3", "sns", "eventbridge"])
def test_keys_with_spaces_plus_percent_and_unicode_arrive_intact(
    src: Any, shape: str, counter: Path
) -> None:
    app = make_app(handler("copier"))
    for index, key in enumerate(SPECIAL_KEYS):
        put(src, BUCKET, key, f"content {index}")
    for key in SPECIAL_KEYS:
        payload = sample_payload(shape, BUCKET, key)
        if shape != "eventbridge":  # S3 notifications carry keys URL-encoded
            assert json.dumps(payload, ensure_ascii=False).count(key) == 0
        answer = app.handle_payload(payload)
        assert not answer.is_error and answer.all_succeeded, answer.body

    assert read_lines(counter) == [[key] for key in SPECIAL_KEYS]
    stored = objects(src, BUCKET)
    for index, key in enumerate(SPECIAL_KEYS):
        assert stored[key.replace("in/", "in/out/", 1)] == f"content {index}".encode()
    assert len(stored) == 2 * len(SPECIAL_KEYS)


# --- grouping and pulling ---------------------------------------------------------------

LAYOUT = ["a/b/c/file.txt", "a/b/c/more.txt", "a/b/other.txt", "a/x.txt", "top.txt", "z/far.txt"]


@pytest.mark.parametrize(
    ("parent_dirs", "prefix", "pulled"),
    [
        (0, "a/b/c/", ["file.txt", "more.txt"]),
        (1, "a/b/", ["c/file.txt", "c/more.txt", "other.txt"]),
        (2, "a/", ["b/c/file.txt", "b/c/more.txt", "b/other.txt", "x.txt"]),
        (3, "", LAYOUT),
        (10, "", LAYOUT),
        (-1, "", LAYOUT),
    ],
)
def test_pull_parent_dirs_decides_what_is_pulled_and_where_outputs_land(
    src: Any, parent_dirs: int, prefix: str, pulled: list[str]
) -> None:
    for key in LAYOUT:
        put(src, BUCKET, key, key)
    app = make_app(handler("manifest"), pull_parent_dirs=parent_dirs)

    body, _ = sqs_run(app, [s3_notification(BUCKET, ["a/b/c/file.txt"])])

    assert failed_ids(body) == []
    stored = objects(src, BUCKET)
    manifests = [key for key in stored if key.endswith("manifest.json")]
    assert manifests == [f"{prefix}manifest.json"]
    assert json.loads(stored[manifests[0]]) == pulled
    for key in LAYOUT:  # pulled files land back where they came from, unchanged
        assert stored[key] == key.encode()
        assert len(versions(src, BUCKET, key)) == 1


def test_pull_match_keys_limits_what_is_pulled(src: Any) -> None:
    for key in ["in/a.txt", "in/b.csv", "in/keep/c.csv", "in/d.bin", "in/keep.bin"]:
        put(src, BUCKET, key)
    app = make_app(handler("manifest"), pull_match_keys=r"\.txt$, ^in/keep/")

    body, _ = sqs_run(app, [s3_notification(BUCKET, ["in/d.bin"])])

    assert failed_ids(body) == []
    # Full keys are matched (``^in/keep/``), not paths relative to the prefix.
    assert json.loads(objects(src, BUCKET)["in/manifest.json"]) == ["a.txt", "keep/c.csv"]


# --- execution filter -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("program", "runs"),
    [
        ("false", False),
        ("true", True),
        ("empty", True),
        ("null", True),
        ("0", True),
        ('"false"', True),
        ("false, true", False),  # only the first output counts
        ("true, false", True),
        ('map(select(.Key | endswith(".done"))) | length > 0', False),
        ('map(select(.Key | endswith(".txt"))) | length > 0', True),
    ],
)
def test_execution_filter_verdicts(src: Any, counter: Path, program: str, runs: bool) -> None:
    put(src, BUCKET, "in/a.txt", "a")
    before = all_versions(src, BUCKET)
    app = make_app(handler("copier"), execution_filter_expr=program)

    body, _ = sqs_run(app, [s3_notification(BUCKET, ["in/a.txt"])])

    assert failed_ids(body) == []  # a skip is a success
    assert bool(read_lines(counter)) is runs
    if runs:
        assert objects(src, BUCKET)["in/out/a.txt"] == b"a"
    else:
        assert all_versions(src, BUCKET) == before


def test_execution_filter_false_skips_the_group(src: Any, counter: Path) -> None:
    put(src, BUCKET, "in/a.txt", "a")
    engine = make_engine(handler("copier"), execution_filter_expr="false")

    outcome = engine.run_group(group("in/", "in/a.txt"))

    assert outcome.status is Status.SKIPPED and outcome.ok
    assert outcome.uploaded == ()
    assert not counter.exists()


def test_execution_filter_runtime_error_fails_the_group(
    src: Any, counter: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    put(src, BUCKET, "in/a.txt", "a")
    app = make_app(handler("copier"), execution_filter_expr='error("boom in the filter")')

    body, ids = sqs_run(app, [s3_notification(BUCKET, ["in/a.txt"])])

    assert failed_ids(body) == ids
    assert not counter.exists()
    [summary] = group_summaries(caplog)
    assert summary["outcome"] == "failed" and "boom in the filter" in summary["reason"]
    assert set(objects(src, BUCKET)) == {"in/a.txt"}


def test_execution_filter_from_file(src: Any, counter: Path, tmp_path: Path) -> None:
    program = tmp_path / "gate.jq"
    program.write_text(
        '# open once the manifest is there\nany(.[]; .Key | endswith("manifest.json"))\n',
        encoding="utf-8",
    )
    put(src, BUCKET, "job/part1.txt", "1")
    app = make_app(handler("copier"), execution_filter_file=program)

    body, _ = sqs_run(app, [s3_notification(BUCKET, ["job/part1.txt"])])
    assert failed_ids(body) == [] and not counter.exists()

    put(src, BUCKET, "job/manifest.json", "[]")
    body, _ = sqs_run(app, [s3_notification(BUCKET, ["job/manifest.json"])])
    assert failed_ids(body) == []
    assert read_lines(counter) == [["job/manifest.json"]]


def test_execution_filter_sees_the_full_listing_before_pull_match_keys(
    src: Any, counter: Path
) -> None:
    put(src, BUCKET, "in/a.txt", "aaa")
    put(src, BUCKET, "in/b.csv", "bb")
    put(src, BUCKET, "in/sub/c.bin", "c")
    program = """
        length == 3
        and (map(.Key) | sort) == ["in/a.txt", "in/b.csv", "in/sub/c.bin"]
        and (map(.Size) | sort) == [1, 2, 3]
        and all(.[]; (.ETag | type) == "string" and (.ETag | length) > 30)
        and all(.[]; .LastModified | type == "string"
                and test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"))
    """
    app = make_app(handler("copier"), execution_filter_expr=program, pull_match_keys=r"\.txt$")

    body, _ = sqs_run(app, [s3_notification(BUCKET, ["in/a.txt"])])

    assert failed_ids(body) == []
    assert read_lines(counter) == [["in/a.txt"]], "the filter did not see the full listing"
    # The same filter with one object fewer in the listing says false: it really decides.
    src.delete_object(Bucket=BUCKET, Key="in/b.csv")
    sqs_run(app, [s3_notification(BUCKET, ["in/a.txt"])])
    assert len(read_lines(counter)) == 1


# --- target bucket and change detection ---------------------------------------------------


def test_target_bucket_receives_outputs_and_skip_unchanged_uses_its_listing(
    src: Any, counter: Path
) -> None:
    versioned_bucket(src, TARGET)
    put(src, BUCKET, "in/a.txt", "alpha")
    source_before = all_versions(src, BUCKET)
    app = make_app(handler("copier"), target_bucket=TARGET)
    notification = s3_notification(BUCKET, ["in/a.txt"])

    body, _ = sqs_run(app, [notification])
    assert failed_ids(body) == []
    assert objects(src, TARGET) == {"in/out/a.txt": b"alpha"}
    assert all_versions(src, BUCKET) == source_before  # source untouched

    # Again: the output is identical to what the target holds (it is not in the source).
    body, _ = sqs_run(app, [notification])
    assert failed_ids(body) == []
    assert len(read_lines(counter)) == 2
    assert len(versions(src, TARGET, "in/out/a.txt")) == 1
    assert all_versions(src, BUCKET) == source_before

    # Without SKIP_UNCHANGED the identical output is uploaded again.
    body, _ = sqs_run(
        make_app(handler("copier"), target_bucket=TARGET, skip_unchanged=False), [notification]
    )
    assert failed_ids(body) == []
    assert len(versions(src, TARGET, "in/out/a.txt")) == 2
    assert all_versions(src, BUCKET) == source_before


def test_changed_output_is_uploaded_to_the_target(src: Any) -> None:
    versioned_bucket(src, TARGET)
    put(src, TARGET, "in/out/a.txt", "stale")
    put(src, BUCKET, "in/a.txt", "fresh")
    engine = make_engine(handler("copier"), target_bucket=TARGET)

    outcome = engine.run_group(group("in/", "in/a.txt"))

    assert outcome.status is Status.SUCCEEDED and outcome.uploaded == ("in/out/a.txt",)
    assert objects(src, TARGET) == {"in/out/a.txt": b"fresh"}


def test_in_place_same_size_rewrite_is_uploaded(src: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    put(src, BUCKET, "in/data.txt", "hello world")
    put(src, BUCKET, "in/other.txt", "untouched")
    monkeypatch.setenv("TARGET_PATH", "data.txt")
    monkeypatch.setenv("MODE", "same-size")

    outcome = make_engine(handler("rewrite")).run_group(group("in/", "in/data.txt"))

    assert outcome.status is Status.SUCCEEDED
    assert outcome.uploaded == ("in/data.txt",)
    assert objects(src, BUCKET) == {"in/data.txt": b"HELLO WORLD", "in/other.txt": b"untouched"}
    assert len(versions(src, BUCKET, "in/data.txt")) == 2
    assert len(versions(src, BUCKET, "in/other.txt")) == 1


def test_identical_rewrite_is_not_uploaded(src: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    put(src, BUCKET, "in/data.txt", "hello world")
    [before] = versions(src, BUCKET, "in/data.txt")
    monkeypatch.setenv("TARGET_PATH", "data.txt")
    monkeypatch.setenv("MODE", "identical")

    outcome = make_engine(handler("rewrite")).run_group(group("in/", "in/data.txt"))

    assert outcome.status is Status.SUCCEEDED and outcome.uploaded == ()
    [after] = versions(src, BUCKET, "in/data.txt")
    assert (after["VersionId"], after["ETag"], after["LastModified"]) == (
        before["VersionId"],
        before["ETag"],
        before["LastModified"],
    )

    # The rewrite was seen (it is a candidate): without SKIP_UNCHANGED it is uploaded.
    outcome = make_engine(handler("rewrite"), skip_unchanged=False).run_group(
        group("in/", "in/data.txt")
    )
    assert outcome.uploaded == ("in/data.txt",)
    assert len(versions(src, BUCKET, "in/data.txt")) == 2


def test_redelivered_event_with_a_deterministic_handler_uploads_nothing_new(
    src: Any, counter: Path
) -> None:
    put(src, BUCKET, "in/a.txt", "alpha")
    put(src, BUCKET, "in/b.txt", "beta")
    app = make_app(handler("copier"))
    notification = s3_notification(BUCKET, ["in/a.txt", "in/b.txt"])

    body, _ = sqs_run(app, [notification])
    assert failed_ids(body) == []
    after_first = all_versions(src, BUCKET)
    assert len(after_first) == 4

    body, _ = sqs_run(app, [notification])  # the same event, delivered again
    assert failed_ids(body) == []
    assert len(read_lines(counter)) == 2  # the handler did run again...
    assert all_versions(src, BUCKET) == after_first  # ...and nothing was uploaded


# --- key and file safety ------------------------------------------------------------------

TRAVERSAL_KEYS = ["in/../x", "in/../../x", "in/../../../x", "in/./x", "in//x", "in/" + "n" * 256]


@pytest.mark.parametrize("parent_dirs", [0, -1])
def test_traversal_keys_markers_and_collisions(
    src: Any,
    tmp_path: Path,
    tmpdir_root: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    parent_dirs: int,
) -> None:
    caplog.set_level(logging.INFO)
    for key in [*TRAVERSAL_KEYS, "in/ok.txt", "in/sub/", "in/a", "in/a/b"]:
        put(src, BUCKET, key, "payload of " + key)
    if parent_dirs < 0:
        put(src, BUCKET, "../y", "up")
        put(src, BUCKET, "/abs", "absolute")
    report = tmp_path / "report.json"
    monkeypatch.setenv("REPORT_FILE", str(report))
    app = make_app(handler("inventory"), pull_parent_dirs=parent_dirs)

    body, _ = sqs_run(app, [s3_notification(BUCKET, ["in/ok.txt"])])

    assert failed_ids(body) == []
    seen = json.loads(report.read_text(encoding="utf-8"))
    base = "in/" if parent_dirs == 0 else ""
    # Only the safe files were pulled; the file ``in/a`` gives way to the folder ``in/a/``.
    expected_root = ["a", "a/b", "ok.txt"]
    if base == "":
        expected_root = ["in", *[f"in/{p}" for p in expected_root]]
    assert seen["root"] == expected_root
    # Nothing but the group's own folder (root + events file + its lock) exists under TMPDIR.
    [workdir] = {entry.split("/")[0] for entry in seen["tmpdir"]}
    assert sorted(seen["tmpdir"]) == sorted(
        [workdir, f"{workdir}/events.json", f"{workdir}/owner.lock", f"{workdir}/root"]
        + [f"{workdir}/root/{p}" for p in expected_root]
    )
    # Afterwards: the temporary folders are gone, nothing escaped next to them.
    assert list(tmpdir_root.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json", "tmp"]
    # Nothing was written back to S3 either.
    assert len(all_versions(src, BUCKET)) == len(TRAVERSAL_KEYS) + 4 + 2 * (parent_dirs < 0)

    [summary] = group_summaries(caplog)
    skipped = summary["skipped"]
    for key in TRAVERSAL_KEYS:
        assert skipped[f"{key}"].startswith("unsafe key"), (key, skipped)
    assert skipped["in/sub/"] == "folder marker"
    assert "collides" in skipped["in/a"]
    assert "in/a/b" not in skipped and "in/ok.txt" not in skipped
    if parent_dirs < 0:
        assert skipped["../y"].startswith("unsafe key")
        assert skipped["/abs"].startswith("unsafe key")
    warned = {
        r.__dict__.get("fields", {}).get("key") for r in caplog.records if r.levelname == "WARNING"
    }
    assert {"in/../x", "in//x", "in/a"} <= warned
    assert "in/sub/" not in warned  # folder markers are skipped silently


def test_symlinks_and_fifos_created_by_the_handler_are_not_uploaded(
    src: Any, tmpdir_root: Path
) -> None:
    put(src, BUCKET, "in/seed.txt", "seed")

    outcome = make_engine(handler("specials")).run_group(group("in/", "in/seed.txt"))

    assert outcome.status is Status.SUCCEEDED, outcome.reason
    assert outcome.uploaded == ("in/real.txt",)
    assert objects(src, BUCKET) == {"in/seed.txt": b"seed", "in/real.txt": b"real"}
    assert list(tmpdir_root.iterdir()) == []


def test_a_root_folder_replaced_by_a_symlink_is_not_followed(
    src: Any, tmp_path: Path, tmpdir_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("do not upload", encoding="utf-8")
    monkeypatch.setenv("OUTSIDE_DIR", str(outside))
    put(src, BUCKET, "in/seed.txt", "seed")

    make_engine(handler("hijack")).run_group(group("in/", "in/seed.txt"))

    assert objects(src, BUCKET) == {"in/seed.txt": b"seed"}
    assert (outside / "secret.txt").read_text(encoding="utf-8") == "do not upload"
    assert list(tmpdir_root.iterdir()) == []


def test_files_deleted_by_the_handler_are_not_deleted_in_s3(src: Any) -> None:
    put(src, BUCKET, "in/a.txt", "a")
    put(src, BUCKET, "in/b.txt", "b")
    command = [sys.executable, "-c", "import os; os.remove(os.environ['ROOT_FOLDER'] + '/a.txt')"]

    outcome = make_engine(command).run_group(group("in/", "in/a.txt"))

    assert outcome.status is Status.SUCCEEDED and outcome.uploaded == ()
    assert objects(src, BUCKET) == {"in/a.txt": b"a", "in/b.txt": b"b"}


def test_several_events_in_one_folder_make_one_handler_run(src: Any, counter: Path) -> None:
    for key in ["in/a.txt", "in/b.txt", "in/c.txt", "other/d.txt"]:
        put(src, BUCKET, key, key)
    app = make_app(handler("copier"))

    body, _ = sqs_run(
        app,
        [
            s3_notification(BUCKET, ["in/a.txt", "in/b.txt"]),
            s3_notification(BUCKET, ["other/d.txt"]),
            s3_notification(BUCKET, ["in/c.txt"]),
        ],
    )

    assert failed_ids(body) == []
    assert read_lines(counter) == [["in/a.txt", "in/b.txt", "in/c.txt"], ["other/d.txt"]]
    assert set(objects(src, BUCKET, "in/out/")) == {"in/out/a.txt", "in/out/b.txt", "in/out/c.txt"}
    assert set(objects(src, BUCKET, "other/out/")) == {"other/out/d.txt"}


# --- payload shapes and outcomes ------------------------------------------------------------


def test_sqs_bodies_of_every_shape_and_a_garbage_body(src: Any, counter: Path) -> None:
    for key in ["s3/a.txt", "sns/b b.txt", "eb/c+c.txt"]:
        put(src, BUCKET, key, key)
    app = make_app(handler("copier"))

    body, ids = sqs_run(
        app,
        [
            s3_notification(BUCKET, ["s3/a.txt"]),
            sns_envelope(BUCKET, "sns/b b.txt"),
            "{not json at all",
            eventbridge_body(BUCKET, "eb/c+c.txt"),
            TEST_EVENT_BODY,
            json.dumps({"unexpected": "shape"}),
        ],
    )

    assert failed_ids(body) == [ids[2], ids[5]]
    assert sorted(read_lines(counter)) == [["eb/c+c.txt"], ["s3/a.txt"], ["sns/b b.txt"]]
    assert set(objects(src, BUCKET)) >= {"s3/out/a.txt", "sns/out/b b.txt", "eb/out/c+c.txt"}


def test_a_key_that_is_not_valid_unicode_fails_only_its_own_message(
    src: Any, counter: Path
) -> None:
    """EventBridge keys are used as given: JSON can smuggle a lone surrogate into one."""
    put(src, BUCKET, "ok/a.txt", "a")
    hostile = eventbridge_body(BUCKET, "bad/KEY.txt").replace("bad/KEY.txt", "bad/\\ud800.txt")
    app = make_app(handler("copier"))

    body, ids = sqs_run(app, [hostile, s3_notification(BUCKET, ["ok/a.txt"])])

    assert failed_ids(body) == [ids[0]]
    assert read_lines(counter) == [["ok/a.txt"]]
    assert objects(src, BUCKET)["ok/out/a.txt"] == b"a"


@pytest.mark.parametrize("shape", ["s3", "sns", "eventbridge"])
def test_direct_invocation_succeeds_with_an_empty_response(
    src: Any, counter: Path, shape: str
) -> None:
    put(src, BUCKET, "in/photo 1.jpg", "jpeg")
    answer = make_app(handler("copier")).handle_payload(
        sample_payload(shape, BUCKET, "in/photo 1.jpg")
    )
    assert (answer.is_error, answer.body, answer.all_succeeded) == (False, {}, True)
    assert objects(src, BUCKET)["in/out/photo 1.jpg"] == b"jpeg"


@pytest.mark.parametrize("shape", ["s3", "sns", "eventbridge"])
def test_direct_invocation_with_a_failed_group_is_an_error(
    src: Any, counter: Path, shape: str
) -> None:
    put(src, BUCKET, "in/a.txt", "a")
    answer = make_app(handler("fail")).handle_payload(sample_payload(shape, BUCKET, "in/a.txt"))
    assert answer.is_error
    assert answer.body["errorType"] == "ExecutionGroupFailed"
    assert "handler exited with status 3" in answer.body["errorMessage"]
    assert "s3://src/in/" in answer.body["errorMessage"]
    assert set(objects(src, BUCKET)) == {"in/a.txt"}


def test_direct_test_event_and_unknown_payload(src: Any, counter: Path) -> None:
    app = make_app(handler("copier"))
    answer = app.handle_payload(json.loads(TEST_EVENT_BODY))
    assert (answer.is_error, answer.body) == (False, {})
    assert not counter.exists()

    answer = app.handle_payload({"hello": "world"})
    assert answer.is_error and answer.body["errorType"] == "UnrecognizedEvent"
    assert "hello" in answer.body["errorMessage"]


def test_handler_failure_uploads_nothing_and_reports_the_message(
    src: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    put(src, BUCKET, "in/a.txt", "a")
    put(src, BUCKET, "ok/b.txt", "b")
    app = make_app(handler("fail"), match_key="^in/")

    body, ids = sqs_run(
        app, [s3_notification(BUCKET, ["in/a.txt"]), s3_notification(BUCKET, ["ok/b.txt"])]
    )

    assert failed_ids(body) == [ids[0]]  # ok/b.txt does not match MATCH_KEY: a success
    assert set(objects(src, BUCKET)) == {"in/a.txt", "ok/b.txt"}
    [summary] = group_summaries(caplog)
    assert summary["outcome"] == "failed" and summary["reason"] == "handler exited with status 3"
    assert summary["level"] == "ERROR"


def test_handler_that_cannot_start_fails_the_group(src: Any) -> None:
    put(src, BUCKET, "in/a.txt", "a")
    outcome = make_engine(["/nonexistent/handler-binary"]).run_group(group("in/", "in/a.txt"))
    assert outcome.status is Status.FAILED
    assert outcome.reason is not None and "could not be started" in outcome.reason


def test_fifo_queue_stops_at_the_first_failure(src: Any, counter: Path, monkeypatch: Any) -> None:
    for key in ["one/a.txt", "two/bad.txt", "three/c.txt", "four/d.txt"]:
        put(src, BUCKET, key, key)
    monkeypatch.setenv("FAIL_ON", "bad")
    bodies = [
        s3_notification(BUCKET, ["one/a.txt"]),
        s3_notification(BUCKET, ["two/bad.txt"]),
        s3_notification(BUCKET, ["three/c.txt"]),
        s3_notification(BUCKET, ["four/d.txt"]),
    ]

    body, ids = sqs_run(make_app(handler("copier")), bodies, fifo=True)

    assert failed_ids(body) == ids[1:]
    assert read_lines(counter) == [["one/a.txt"], ["two/bad.txt"]]  # later ones never ran
    assert set(objects(src, BUCKET, "one/out/")) == {"one/out/a.txt"}
    assert objects(src, BUCKET, "three/out/") == {} and objects(src, BUCKET, "four/out/") == {}

    # The same batch on a standard queue: only the failing message is reported.
    counter.unlink()
    body, ids = sqs_run(make_app(handler("copier")), bodies, fifo=False)
    assert failed_ids(body) == [ids[1]]
    assert len(read_lines(counter)) == 4
    assert set(objects(src, BUCKET, "four/out/")) == {"four/out/d.txt"}


def test_fifo_queue_garbage_body_stops_processing(src: Any, counter: Path) -> None:
    put(src, BUCKET, "one/a.txt", "a")
    put(src, BUCKET, "three/c.txt", "c")
    bodies = [
        s3_notification(BUCKET, ["one/a.txt"]),
        "garbage",
        s3_notification(BUCKET, ["three/c.txt"]),
    ]
    body, ids = sqs_run(make_app(handler("copier")), bodies, fifo=True)
    assert failed_ids(body) == ids[1:]
    assert read_lines(counter) == [["one/a.txt"]]


# --- upload headers and the loop guard -----------------------------------------------------


def test_content_type_from_extension_and_chain_depth_metadata(src: Any) -> None:
    put(src, BUCKET, "in/a.txt", "a", Metadata={"bridge-depth": "3"})
    put(src, BUCKET, "in/b.txt", "b", Metadata={"bridge-depth": "1"})
    put(src, BUCKET, "in/deep.txt", "c", Metadata={"bridge-depth": "9"})  # not a trigger

    outcome = make_engine(handler("typed")).run_group(group("in/", "in/a.txt", "in/b.txt"))

    assert outcome.status is Status.SUCCEEDED
    expected = {
        "in/result.txt": "text/plain",
        "in/result.json": "application/json",
        "in/result.zzqx": "application/octet-stream",
        "in/noextension": "application/octet-stream",
    }
    assert sorted(outcome.uploaded) == sorted(expected)
    for key, content_type in expected.items():
        head = src.head_object(Bucket=BUCKET, Key=key)
        assert head["ContentType"] == content_type, key
        assert head["Metadata"] == {"bridge-depth": "4"}, key


def test_big_files_are_pulled_and_pushed_in_parts(src: Any) -> None:
    """Past the multipart threshold: ranged GETs in, multipart upload out, headers kept."""
    big_input = os.urandom(9 * 1024 * 1024 + 5)
    put(src, BUCKET, "in/input.bin", big_input, Metadata={"bridge-depth": "2"})

    outcome = make_engine(handler("big")).run_group(group("in/", "in/input.bin"))

    assert outcome.status is Status.SUCCEEDED, outcome.reason
    assert outcome.uploaded == ("in/big.bin",)
    head = src.head_object(Bucket=BUCKET, Key="in/big.bin")
    assert head["ContentLength"] == 9 * 1024 * 1024
    assert head["Metadata"] == {"bridge-depth": "3"}
    assert head["ContentType"] == "application/octet-stream"
    stored = objects(src, BUCKET)
    assert stored["in/big.bin"] == (bytes(range(256)) * 4096) * 9
    assert stored["in/input.bin"] == big_input
    assert len(versions(src, BUCKET, "in/input.bin")) == 1


def test_outputs_of_an_untagged_trigger_have_depth_one(src: Any) -> None:
    put(src, BUCKET, "in/a.txt", "a")
    make_engine(handler("copier")).run_group(group("in/", "in/a.txt"))
    head = src.head_object(Bucket=BUCKET, Key="in/out/a.txt")
    assert head["Metadata"] == {"bridge-depth": "1"}
    assert head["ContentType"] == "text/plain"


def test_max_chain_depth_stops_the_group(
    src: Any, counter: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    put(src, BUCKET, "in/a.txt", "a", Metadata={"bridge-depth": "3"})
    app = make_app(handler("copier"), max_chain_depth=3)

    body, ids = sqs_run(app, [s3_notification(BUCKET, ["in/a.txt"])])

    assert failed_ids(body) == ids
    [summary] = group_summaries(caplog)
    assert (
        CHAIN_DEPTH_REASON in summary["reason"] and "chain depth limit reached" in summary["reason"]
    )
    assert not counter.exists()
    assert set(objects(src, BUCKET)) == {"in/a.txt"}

    # One below the limit runs; 0 disables the guard.
    for limit, depth in [(4, "4"), (0, "4")]:
        outcome = make_engine(handler("copier"), max_chain_depth=limit).run_group(
            group("in/", "in/a.txt")
        )
        assert outcome.status is Status.SUCCEEDED, (limit, outcome.reason)
        head = src.head_object(Bucket=BUCKET, Key="in/out/a.txt")
        assert head["Metadata"]["bridge-depth"] == depth


def test_depth_of_a_trigger_that_is_not_pulled_comes_from_head_object(
    src: Any, counter: Path
) -> None:
    put(src, BUCKET, "in/trigger.txt", "t", Metadata={"bridge-depth": "5"})
    put(src, BUCKET, "in/data.csv", "1,2", Metadata={"bridge-depth": "1"})

    outcome = make_engine(handler("manifest"), pull_match_keys=r"\.csv$").run_group(
        group("in/", "in/trigger.txt")
    )
    assert outcome.status is Status.SUCCEEDED
    assert json.loads(objects(src, BUCKET)["in/manifest.json"]) == ["data.csv"]
    assert src.head_object(Bucket=BUCKET, Key="in/manifest.json")["Metadata"] == {
        "bridge-depth": "6"
    }

    outcome = make_engine(
        handler("copier"), pull_match_keys=r"\.csv$", max_chain_depth=5
    ).run_group(group("in/", "in/trigger.txt"))
    assert outcome.status is Status.FAILED
    assert outcome.reason is not None and CHAIN_DEPTH_REASON in outcome.reason
    assert not counter.exists()


# --- the handler's environment, temporary folders, resources ----------------------------------


def test_handler_environment_and_events_file(
    src: Any, tmp_path: Path, tmpdir_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dump = tmp_path / "dump.json"
    monkeypatch.setenv("DUMP_FILE", str(dump))
    monkeypatch.setenv("SOME_BRIDGE_VARIABLE", "inherited")
    put(src, BUCKET, "jobs/7/in put.txt", "x")
    put(src, BUCKET, "jobs/7/skipped.bin", "y")
    app = make_app(handler("envdump"), pull_match_keys=r"\.txt$")
    notification = s3_notification(BUCKET, ["jobs/7/in put.txt", "jobs/7/skipped.bin"])
    sent = json.loads(notification)["Records"]

    body, _ = sqs_run(app, [notification])

    assert failed_ids(body) == []
    seen = json.loads(dump.read_text(encoding="utf-8"))
    env = seen["env"]
    root = Path(env["ROOT_FOLDER"])
    assert root.is_absolute() and root.is_relative_to(tmpdir_root)
    assert env["BUCKET"] == BUCKET and env["KEY_PREFIX"] == "jobs/7/"
    assert env["SOME_BRIDGE_VARIABLE"] == "inherited"
    events_file = Path(env["BRIDGE_EVENTS_FILE"])
    assert events_file.is_relative_to(tmpdir_root) and not events_file.is_relative_to(root)
    assert seen["events"] == [
        {
            "bucket": BUCKET,
            "key": "jobs/7/in put.txt",
            "path": "in put.txt",
            "event_name": "ObjectCreated:Put",
            "size": sent[0]["s3"]["object"]["size"],
            "etag": sent[0]["s3"]["object"]["eTag"],
        },
        {
            "bucket": BUCKET,
            "key": "jobs/7/skipped.bin",
            "path": None,  # not pulled (PULL_MATCH_KEYS)
            "event_name": "ObjectCreated:Put",
            "size": sent[1]["s3"]["object"]["size"],
            "etag": sent[1]["s3"]["object"]["eTag"],
        },
    ]
    # The dump written into the root is an output like any other.
    assert json.loads(objects(src, BUCKET)["jobs/7/env.json"]) == seen
    assert list(tmpdir_root.iterdir()) == []
    assert not root.exists() and not events_file.exists()


def test_handler_variables_can_be_renamed(
    src: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dump = tmp_path / "dump.json"
    monkeypatch.setenv("DUMP_FILE", str(dump))
    monkeypatch.setenv("ROOT_VAR_NAME", "MY_ROOT")
    put(src, BUCKET, "in/a.txt", "a")
    engine = make_engine(
        handler("envdump"), root_folder_var="MY_ROOT", bucket_var="MY_BUCKET",
        key_prefix_var="MY_PREFIX",
    )  # fmt: skip

    outcome = engine.run_group(group("in/", "in/a.txt"))

    assert outcome.status is Status.SUCCEEDED, outcome.reason
    env = json.loads(dump.read_text(encoding="utf-8"))["env"]
    assert Path(env["MY_ROOT"]).is_absolute()
    assert (env["MY_BUCKET"], env["MY_PREFIX"]) == (BUCKET, "in/")
    assert not {"ROOT_FOLDER", "BUCKET", "KEY_PREFIX"} & set(env)
    assert "in/env.json" in objects(src, BUCKET)


@pytest.mark.parametrize("name", ["fail", "copier"])
def test_temporary_folders_are_removed_after_success_and_failure(
    src: Any, tmpdir_root: Path, name: str
) -> None:
    put(src, BUCKET, "in/a.txt", "a")
    outcome = make_engine(handler(name)).run_group(group("in/", "in/a.txt"))
    assert outcome.status is (Status.FAILED if name == "fail" else Status.SUCCEEDED)
    assert list(tmpdir_root.iterdir()) == []


def test_not_enough_free_space_fails_the_group(
    src: Any, counter: Path, tmpdir_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    put(src, BUCKET, "in/big.bin", b"0" * 4096)
    real = shutil.disk_usage

    def tiny(path: Any) -> Any:
        usage = real(path)
        return type(usage)(usage.total, usage.total - 100, 100)

    monkeypatch.setattr("bridge.engine.shutil.disk_usage", tiny)

    outcome = make_engine(handler("copier")).run_group(group("in/", "in/big.bin"))

    assert outcome.status is Status.FAILED
    assert outcome.reason is not None
    assert "not enough space" in outcome.reason and "4096" in outcome.reason
    assert not counter.exists()
    assert list(tmpdir_root.iterdir()) == []
    assert set(objects(src, BUCKET)) == {"in/big.bin"}


def test_handler_timeout_stops_a_sleeping_handler(
    src: Any, counter: Path, tmpdir_root: Path
) -> None:
    put(src, BUCKET, "in/a.txt", "a")
    app = make_app(handler("sleep"), handler_timeout=0.5)

    body, ids = sqs_run(app, [s3_notification(BUCKET, ["in/a.txt"])])

    assert failed_ids(body) == ids
    assert counter.read_text() == "started"
    assert set(objects(src, BUCKET)) == {"in/a.txt"}  # early.txt was not uploaded
    assert list(tmpdir_root.iterdir()) == []


def test_handler_timeout_kills_the_whole_process_group(
    src: Any, tmp_path: Path, tmpdir_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        bridge.engine, "run_handler", functools.partial(bridge.handler.run_handler, kill_grace=0.3)
    )
    pid_file = tmp_path / "child.pid"
    monkeypatch.setenv("PID_FILE", str(pid_file))
    monkeypatch.setenv("IGNORE_TERM", "1")  # the handler itself ignores SIGTERM too
    put(src, BUCKET, "in/a.txt", "a")

    outcome = make_engine(handler("stubborn"), handler_timeout=0.5).run_group(
        group("in/", "in/a.txt")
    )

    assert outcome.status is Status.FAILED
    assert outcome.reason == "handler timed out and was stopped"
    assert process_gone(int(pid_file.read_text()))
    assert set(objects(src, BUCKET)) == {"in/a.txt"}
    assert list(tmpdir_root.iterdir()) == []


def test_children_left_behind_by_a_successful_handler_are_stopped(
    src: Any, tmp_path: Path, tmpdir_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid_file = tmp_path / "child.pid"
    monkeypatch.setenv("PID_FILE", str(pid_file))
    monkeypatch.setenv("EXIT_AT_ONCE", "1")
    put(src, BUCKET, "in/a.txt", "a")

    outcome = make_engine(handler("stubborn")).run_group(group("in/", "in/a.txt"))

    assert outcome.status is Status.SUCCEEDED, outcome.reason
    assert process_gone(int(pid_file.read_text()))
    assert list(tmpdir_root.iterdir()) == []


def test_handler_output_is_forwarded_to_the_logs_tagged_with_the_group(
    src: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    put(src, BUCKET, "in/a.txt", "a")

    outcome = make_engine(handler("echo")).run_group(group("in/", "in/a.txt"))

    assert outcome.status is Status.SUCCEEDED
    forwarded = {
        (r.getMessage(), r.__dict__["fields"].get("stream"), r.__dict__["fields"].get("group"))
        for r in caplog.records
        if r.name == "bridge.handler"
    }
    assert forwarded == {
        ("hello from stdout", "stdout", "s3://src/in/"),
        ("second stdout line", "stdout", "s3://src/in/"),
        ("hello from stderr", "stderr", "s3://src/in/"),
    }


def test_one_summary_line_per_group(src: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    put(src, BUCKET, "in/a.txt", "a")
    put(src, BUCKET, "in/b.csv", "bb")
    put(src, BUCKET, "two/c.txt", "c")
    app = make_app(handler("copier"), pull_match_keys=r"\.txt$")

    body, _ = sqs_run(app, [s3_notification(BUCKET, ["in/a.txt", "two/c.txt"])])

    assert failed_ids(body) == []
    summaries = group_summaries(caplog)
    assert [(s["prefix"], s["outcome"]) for s in summaries] == [
        ("in/", "succeeded"),
        ("two/", "succeeded"),
    ]
    first = summaries[0]
    assert first["bucket"] == BUCKET and first["events"] == ["in/a.txt"]
    assert (first["listed"], first["pulled"], first["uploaded"], first["bytes_in"]) == (2, 1, 1, 1)
    assert first["skipped"] == {"in/b.csv": "does not match PULL_MATCH_KEYS"}
    assert {"list_ms", "pull_ms", "handler_ms", "diff_ms", "push_ms"} <= set(first["timings"])


def test_engine_is_reusable_for_many_groups(src: Any, counter: Path) -> None:
    """One engine (as a driver keeps it) serves groups one after another."""
    engine: Engine = make_engine(handler("copier"))
    for index in range(3):
        put(src, BUCKET, f"g{index}/f.txt", str(index))
        assert engine.run_group(group(f"g{index}/", f"g{index}/f.txt")).ok
    assert {k: v for k, v in objects(src, BUCKET).items() if "/out/" in k} == {
        f"g{i}/out/f.txt": str(i).encode() for i in range(3)
    }
    assert len(read_lines(counter)) == 3
    assert os.environ.get("ROOT_FOLDER") is None  # the bridge's own environment is untouched
