"""Payloads in, responses out: groups of a batch, bodies of every shape, direct invocations,
FIFO batches, and how failures are reported (docs/design.md §2, §7).

End to end over real HTTP (the moto server in its own process); payloads go through
``App.handle_payload`` as the Lambda runtime hands them over. Fixtures: ``conftest.py``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from bridge.samples import sample_payload
from tests.engine.conftest import (
    BUCKET,
    group_summaries,
    sqs_run,
)
from tests.helpers import (
    TEST_EVENT_BODY,
    eventbridge_body,
    failed_ids,
    handler,
    make_app,
    objects,
    put,
    read_lines,
    s3_notification,
    sns_envelope,
)


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
