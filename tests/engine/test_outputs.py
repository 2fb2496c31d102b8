"""What a group pushes: the target bucket, change detection, what is never uploaded, upload
headers, big files in parts, and the loop guard (docs/design.md §2, §6, §9).

End to end over real HTTP (the moto server in its own process); payloads go through
``App.handle_payload`` as the Lambda runtime hands them over. Fixtures: ``conftest.py``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from bridge.engine import CHAIN_DEPTH_REASON
from bridge.outcomes import Status
from tests.engine.conftest import (
    BUCKET,
    TARGET,
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
    versioned_bucket,
    versions,
)


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
