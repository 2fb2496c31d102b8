"""``PULL_SCOPE=events`` over the moto server: only the triggering objects, nothing listed.

Every S3 request the engine makes is counted with a botocore event hook on its own client,
so "no ListObjectsV2" and "no HeadObject before the GET" are checked, not assumed.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from bridge.engine import CHAIN_DEPTH_REASON, GONE_REASON, Engine
from bridge.events import ObjectEvent
from bridge.groups import ExecutionGroup
from bridge.outcomes import Status
from bridge.storage import Storage
from tests.conftest import MotoServer
from tests.helpers import handler, make_app, make_engine, objects, put, s3_notification, sqs_payload

BUCKET = "src"
TARGET = "tgt"


@pytest.fixture
def src(aws: MotoServer, s3: Any) -> Any:
    s3.create_bucket(Bucket=BUCKET)
    s3.create_bucket(Bucket=TARGET)
    return s3


def count_requests(engine: Engine) -> Counter[str]:
    """Every S3 operation the engine's client sends from now on, by name."""
    calls: Counter[str] = Counter()

    def record(model: Any, **_: Any) -> None:
        calls[model.name] += 1

    engine.storage.client.meta.events.register("before-call.s3", record)
    return calls


def created(s3: Any, key: str, bucket: str = BUCKET) -> ObjectEvent:
    """The event S3 sends for the object now at ``key``: its size and ETag."""
    head = s3.head_object(Bucket=bucket, Key=key)
    etag = head["ETag"].strip('"')
    return ObjectEvent(bucket, key, "ObjectCreated:Put", head["ContentLength"], etag, None)


def removed(key: str) -> ObjectEvent:
    return ObjectEvent(BUCKET, key, "ObjectRemoved:Delete", None, None, None)


def summaries(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [
        dict(getattr(r, "fields", {})) for r in caplog.records if r.getMessage() == "group summary"
    ]


def test_events_scope_pulls_only_the_trigger_and_lists_nothing(
    src: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    for index in range(30):
        put(src, BUCKET, f"in/neighbour-{index}.txt", f"n{index}")
    put(src, BUCKET, "in/new.txt", "new text")
    dump = tmp_path / "dump.json"
    monkeypatch.setenv("DUMP_FILE", str(dump))
    engine = make_engine(handler("envdump"), pull_scope="events", target_bucket=TARGET)
    calls = count_requests(engine)

    outcome = engine.run_group(ExecutionGroup(BUCKET, "in/", (created(src, "in/new.txt"),)))

    assert outcome.status is Status.SUCCEEDED, outcome.reason
    assert outcome.uploaded == ("in/env.json",)
    # One GET for the trigger, one HEAD for the one candidate output, one PUT: nothing listed.
    assert calls == Counter({"GetObject": 1, "HeadObject": 1, "PutObject": 1})
    document = json.loads(dump.read_text())
    root = Path(document["env"]["ROOT_FOLDER"])
    assert [e["path"] for e in document["events"]] == ["new.txt"]
    assert document["events"][0]["key"] == "in/new.txt"
    [summary] = summaries(caplog)
    assert summary["scope"] == "events"
    assert (summary["listed"], summary["pulled"], summary["gone"]) == (0, 1, 0)
    assert summary["bytes_in"] == len("new text")
    assert not root.exists()


def test_top_of_bucket_key_to_a_classic_layout(src: Any) -> None:
    """``photo.jpg`` at the top of an uploads bucket -> ``out/photo.jpg`` in the target."""
    for index in range(5):
        put(src, BUCKET, f"other-{index}.jpg", "o")
    put(src, BUCKET, "photo.jpg", "jpeg bytes")
    engine = make_engine(handler("copier"), pull_scope="events", target_bucket=TARGET)
    calls = count_requests(engine)

    outcome = engine.run_group(ExecutionGroup(BUCKET, "", (created(src, "photo.jpg"),)))

    assert outcome.status is Status.SUCCEEDED, outcome.reason
    assert objects(src, TARGET) == {"out/photo.jpg": b"jpeg bytes"}
    assert "ListObjectsV2" not in calls


def test_events_scope_rules_removals_duplicates_match_keys_and_unsafe_keys(
    src: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    for key in ["in/a.txt", "in/b.csv", "in/../x.txt"]:
        put(src, BUCKET, key, key)
    dump = tmp_path / "dump.json"
    monkeypatch.setenv("DUMP_FILE", str(dump))
    engine = make_engine(handler("envdump"), pull_scope="events", pull_match_keys=r"\.txt$")
    calls = count_requests(engine)
    events = (
        created(src, "in/a.txt"),
        created(src, "in/a.txt"),  # a redelivered duplicate: pulled once
        created(src, "in/b.csv"),  # PULL_MATCH_KEYS still applies
        created(src, "in/../x.txt"),  # unsafe: never a path
        removed("in/gone.txt"),  # a removal: nothing to pull
    )

    outcome = engine.run_group(ExecutionGroup(BUCKET, "in/", events))

    assert outcome.status is Status.SUCCEEDED, outcome.reason
    assert calls["GetObject"] == 1 and "ListObjectsV2" not in calls
    paths = {(e["key"], e["path"]) for e in json.loads(dump.read_text())["events"]}
    assert paths == {
        ("in/a.txt", "a.txt"),
        ("in/b.csv", None),
        ("in/../x.txt", None),
        ("in/gone.txt", None),
    }
    [summary] = summaries(caplog)
    assert summary["pulled"] == 1
    assert summary["skipped"]["in/b.csv"] == "does not match PULL_MATCH_KEYS"
    assert summary["skipped"]["in/../x.txt"].startswith("unsafe key")
    assert summary["skipped"]["in/gone.txt"].startswith("removed")
    warned = [r for r in caplog.records if r.getMessage() == "object skipped"]
    assert [getattr(r, "fields", {})["key"] for r in warned] == ["in/../x.txt"]


def test_an_object_gone_since_its_event_is_a_counted_skip_not_a_failure(
    src: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    put(src, BUCKET, "in/kept.txt", "kept")
    put(src, BUCKET, "in/deleted.txt", "soon gone")
    events = (created(src, "in/kept.txt"), created(src, "in/deleted.txt"))
    src.delete_object(Bucket=BUCKET, Key="in/deleted.txt")
    dump = tmp_path / "dump.json"
    monkeypatch.setenv("DUMP_FILE", str(dump))

    outcome = make_engine(handler("envdump"), pull_scope="events").run_group(
        ExecutionGroup(BUCKET, "in/", events)
    )

    assert outcome.status is Status.SUCCEEDED, outcome.reason
    paths = {e["key"]: e["path"] for e in json.loads(dump.read_text())["events"]}
    assert paths == {"in/kept.txt": "kept.txt", "in/deleted.txt": None}
    [summary] = summaries(caplog)
    assert (summary["pulled"], summary["gone"]) == (1, 1)
    assert summary["skipped"] == {"in/deleted.txt": GONE_REASON}
    warnings = [
        getattr(r, "fields", {})
        for r in caplog.records
        if r.getMessage() == "object skipped" and r.levelno == logging.WARNING
    ]
    assert warnings == [{"key": "in/deleted.txt", "why": GONE_REASON}]


def test_an_object_replaced_since_its_event_is_pulled_as_it_is_now(src: Any) -> None:
    put(src, BUCKET, "in/a.txt", "old")
    event = created(src, "in/a.txt")  # size 3, the old ETag
    put(src, BUCKET, "in/a.txt", "the new, longer content")

    outcome = make_engine(handler("copier"), pull_scope="events").run_group(
        ExecutionGroup(BUCKET, "in/", (event,))
    )

    assert outcome.status is Status.SUCCEEDED, outcome.reason
    assert objects(src, BUCKET)["in/out/a.txt"] == b"the new, longer content"


def test_a_large_object_replaced_since_its_event_is_pulled_again_whole(src: Any) -> None:
    """Past the multipart threshold the ranged GETs carry If-Match: a stale ETag is retried."""
    put(src, BUCKET, "in/big.bin", b"a" * (9 * 1024 * 1024))
    event = created(src, "in/big.bin")
    new = b"b" * (10 * 1024 * 1024 + 7)
    put(src, BUCKET, "in/big.bin", new)

    outcome = make_engine(handler("copier"), pull_scope="events").run_group(
        ExecutionGroup(BUCKET, "in/", (event,))
    )

    assert outcome.status is Status.SUCCEEDED, outcome.reason
    stored = src.get_object(Bucket=BUCKET, Key="in/out/big.bin")["Body"].read()
    assert stored == new


def test_filter_in_events_scope_sees_the_listing_but_only_the_trigger_is_pulled(
    src: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in ["in/a.txt", "in/b.txt", "in/c.txt"]:
        put(src, BUCKET, key, key)
    dump = tmp_path / "dump.json"
    monkeypatch.setenv("DUMP_FILE", str(dump))
    event = (created(src, "in/b.txt"),)

    skipping = make_engine(
        handler("envdump"), pull_scope="events", execution_filter_expr="length > 3"
    )
    assert skipping.run_group(ExecutionGroup(BUCKET, "in/", event)).status is Status.SKIPPED

    engine = make_engine(handler("envdump"), pull_scope="events", execution_filter_expr="length==3")
    calls = count_requests(engine)
    outcome = engine.run_group(ExecutionGroup(BUCKET, "in/", event))

    assert outcome.status is Status.SUCCEEDED, outcome.reason
    assert calls["ListObjectsV2"] == 1 and calls["GetObject"] == 1
    root = Path(json.loads(dump.read_text())["env"]["ROOT_FOLDER"])
    assert [e["path"] for e in json.loads(dump.read_text())["events"]] == ["b.txt"]
    assert root.name == "root"


def test_skip_unchanged_in_events_scope_heads_each_candidate(src: Any) -> None:
    put(src, BUCKET, "in/a.txt", "a")
    put(src, BUCKET, "in/b.txt", "b")
    events = (created(src, "in/a.txt"), created(src, "in/b.txt"))
    first = make_engine(handler("copier"), pull_scope="events", target_bucket=TARGET)
    assert first.run_group(ExecutionGroup(BUCKET, "in/", events)).uploaded == (
        "in/out/a.txt",
        "in/out/b.txt",
    )

    # Redelivered: both outputs are identical, learnt from one HeadObject each.
    again = make_engine(handler("copier"), pull_scope="events", target_bucket=TARGET)
    calls = count_requests(again)
    outcome = again.run_group(ExecutionGroup(BUCKET, "in/", events))

    assert outcome.status is Status.SUCCEEDED and outcome.uploaded == ()
    assert calls == Counter({"GetObject": 2, "HeadObject": 2})


def test_stored_etags_treat_403_and_404_as_absent() -> None:
    """Without s3:ListBucket, S3 answers 403 for a missing key: both mean "upload"."""
    client = boto3.client("s3", region_name="us-east-1")
    stubber = Stubber(client)
    stubber.add_client_error("head_object", "403", http_status_code=403)
    stubber.add_client_error("head_object", "404", http_status_code=404)
    stubber.add_response("head_object", {"ETag": '"abc"'})
    stubber.add_client_error("head_object", "SlowDown", http_status_code=503)
    storage = Storage(client, 1)
    with stubber:
        assert storage.stored_etags(TARGET, ["a"]) == {}
        assert storage.stored_etags(TARGET, ["b"]) == {}
        assert storage.stored_etags(TARGET, ["c"]) == {"c": "abc"}
        with pytest.raises(Exception, match="SlowDown"):
            storage.stored_etags(TARGET, ["d"])


def test_chain_depth_comes_from_the_get_object_response(src: Any) -> None:
    put(src, BUCKET, "in/a.txt", "a", Metadata={"bridge-depth": "4"})
    event = (created(src, "in/a.txt"),)

    engine = make_engine(handler("copier"), pull_scope="events")
    calls = count_requests(engine)
    assert engine.run_group(ExecutionGroup(BUCKET, "in/", event)).status is Status.SUCCEEDED
    assert src.head_object(Bucket=BUCKET, Key="in/out/a.txt")["Metadata"] == {"bridge-depth": "5"}
    assert calls["GetObject"] == 1 and calls["HeadObject"] == 1  # the HEAD is SKIP_UNCHANGED's

    limited = make_engine(handler("copier"), pull_scope="events", max_chain_depth=4)
    calls = count_requests(limited)
    outcome = limited.run_group(ExecutionGroup(BUCKET, "in/", event))
    assert outcome.status is Status.FAILED
    assert outcome.reason is not None and CHAIN_DEPTH_REASON in outcome.reason
    assert calls == Counter({"GetObject": 1})


def test_events_scope_through_an_sqs_batch(src: Any) -> None:
    """Notifications as S3 sends them (size and eTag in the record) through the app."""
    put(src, BUCKET, "in/x.txt", "x")
    put(src, BUCKET, "in/y.txt", "y")
    app = make_app(handler("copier"), pull_scope="events")
    payload, _ = sqs_payload([s3_notification(BUCKET, ["in/x.txt"])])

    answer = app.handle_payload(payload)

    assert answer.body == {"batchItemFailures": []}
    assert set(objects(src, BUCKET, "in/out/")) == {"in/out/x.txt"}


@pytest.mark.parametrize("scope", ["prefix", "events"])
def test_plan_and_run_take_the_same_decision(
    src: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scope: str
) -> None:
    """``plan_group`` and ``run_group`` share ``Engine.decide``: what plan shows is what runs."""
    for key in ["in/a.txt", "in/b.csv", "in/sub/c.txt", "in/sub/", "in/../x.txt"]:
        put(src, BUCKET, key, key)
    report = tmp_path / "report.json"
    monkeypatch.setenv("REPORT_FILE", str(report))
    # The handler walks TMPDIR too: a private one, not the machine's shared /tmp.
    private = tmp_path / "tmp"
    private.mkdir()
    monkeypatch.setenv("TMPDIR", str(private))
    monkeypatch.setattr(tempfile, "tempdir", str(private))
    engine = make_engine(handler("inventory"), pull_scope=scope, pull_match_keys=r"\.txt$")
    group = ExecutionGroup(BUCKET, "in/", (created(src, "in/a.txt"), created(src, "in/b.csv")))

    plan = engine.plan_group(group)
    outcome = engine.run_group(group)

    assert outcome.status is Status.SUCCEEDED, outcome.reason
    pulled_files = [p for p in json.loads(report.read_text())["root"] if p.endswith(".txt")]
    assert sorted(item.path for item in plan.pull.pull) == pulled_files
    expected = ["a.txt", "sub/c.txt"] if scope == "prefix" else ["a.txt"]
    assert pulled_files == expected
    assert plan.listed == (None if scope == "events" else 5)
