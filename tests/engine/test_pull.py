"""What a group pulls: keys as they arrive, PULL_PARENT_DIRS, PULL_MATCH_KEYS, the
execution filter, and unsafe keys that are never pulled (docs/design.md §2, §11).

End to end over real HTTP (the moto server in its own process); payloads go through
``App.handle_payload`` as the Lambda runtime hands them over. Fixtures: ``conftest.py``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from bridge.outcomes import Status
from bridge.samples import sample_payload
from tests.engine.conftest import (
    BUCKET,
    all_versions,
    group,
    group_summaries,
    sqs_run,
)
from tests.helpers import (
    failed_ids,
    handler,
    make_app,
    make_engine,
    objects,
    put,
    read_lines,
    s3_notification,
    versions,
)

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
