"""Backfill (docs/design.md §15.2): the records and manifest rows it builds (pure), the selection
it shares with the event path, and the command end to end against the moto server."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import unquote, unquote_plus

import pytest

from bridge import backfill
from bridge.backfill import ExistingObject, Scope, keep, manifest_row, notification_body
from bridge.cli import main
from bridge.clients import s3_client
from bridge.events import parse_sqs_body
from tests.conftest import MotoServer, bridge_command, subprocess_env
from tests.helpers import handler, put, versioned_bucket
from tests.pipeline_files import pipeline, step

BUCKET = "backfill-bucket"
WHEN = datetime(2024, 5, 1, 12, 34, 56, 789000, tzinfo=UTC)


def existing(key: str, size: int = 5, etag: str = "5d41402abc4b2a76b9719d911017c592") -> Any:
    return ExistingObject(BUCKET, key, size, etag, WHEN)


# --- records (pure) ----------------------------------------------------------------------


def test_a_record_is_the_notification_s3_sends_with_the_key_url_encoded() -> None:
    body = notification_body(existing("in/red flower+1.txt", 1234), "eu-west-1")
    [record] = json.loads(body)["Records"]
    assert record["eventVersion"] == "2.1"
    assert record["eventSource"] == "aws:s3"
    assert record["eventName"] == "ObjectCreated:Put"
    assert record["awsRegion"] == "eu-west-1"
    assert record["eventTime"] == "2024-05-01T12:34:56.789Z"  # the object's LastModified
    assert record["s3"]["bucket"]["name"] == BUCKET
    assert record["s3"]["bucket"]["arn"] == f"arn:aws:s3:::{BUCKET}"
    assert record["s3"]["bucket"]["ownerIdentity"]["principalId"]
    obj = record["s3"]["object"]
    assert obj["key"] == "in/red+flower%2B1.txt"
    assert obj["size"] == 1234
    assert obj["eTag"] == "5d41402abc4b2a76b9719d911017c592"
    assert "versionId" not in obj
    # S3's sequencers are hex and start with the change's time: same-key events order.
    assert re.fullmatch(r"00[0-9A-F]{16}", obj["sequencer"])
    assert obj["sequencer"].startswith(f"00{int(WHEN.timestamp()):08X}")
    assert record["s3"]["configurationId"] == "s3-event-bridge-backfill"


def test_a_record_parses_back_to_the_same_object() -> None:
    obj = existing("jobs/7/ünïcode & spaces+plus.txt", 42, "abc123")
    message = parse_sqs_body("m-1", notification_body(obj, "us-east-1"))
    assert message.error is None
    [event] = message.events
    assert (event.bucket, event.key, event.size, event.etag) == (BUCKET, obj.key, 42, "abc123")
    assert event.event_name == "ObjectCreated:Put"
    assert event.message_id == "m-1"


def test_a_listed_version_rides_along_as_version_id() -> None:
    entry = {"Key": "a.txt", "Size": 3, "ETag": '"e1"', "LastModified": WHEN, "VersionId": "v7"}
    obj = ExistingObject.from_listing(BUCKET, entry)
    assert obj.etag == "e1"  # the listing's quotes are not part of the ETag
    [record] = json.loads(notification_body(obj, "us-east-1"))["Records"]
    assert record["s3"]["object"]["versionId"] == "v7"


# --- selection (pure) ---------------------------------------------------------------------


def test_selection_drops_folders_the_filter_and_what_match_key_or_match_events_refuse() -> None:
    listed = [
        existing("in/"),  # a console folder marker
        existing("in/a.txt"),
        existing("in/b.csv"),  # suffix
        existing("in/seeded.txt"),  # excluded
        existing("in/skip-me.txt"),  # MATCH_KEY
        existing("out/c.txt"),  # prefix
    ]
    scope = Scope(
        BUCKET,
        "in/",
        ".txt",
        match_key=re.compile(r"^in/(?!skip)"),
        exclude=frozenset({"in/seeded.txt"}),
    )
    tally = backfill.Tally()
    assert [o.key for o in keep(listed, scope, tally)] == ["in/a.txt"]
    assert (tally.folders, tally.filtered, tally.unmatched) == (1, 3, 1)


def test_match_events_is_applied_to_object_created_put() -> None:
    listed = [existing("a.txt")]
    creations = Scope(BUCKET, match_events=re.compile(r"^ObjectCreated:(Put|Post)$"))
    removals = Scope(BUCKET, match_events=re.compile(r"^ObjectRemoved:"))
    assert [o.key for o in keep(listed, creations)] == ["a.txt"]
    assert creations.acts_on_creations
    assert keep(listed, removals) == [] and not removals.acts_on_creations


# --- manifest (pure) ----------------------------------------------------------------------


def test_manifest_rows_url_encode_keys_so_either_decoder_reads_them_back() -> None:
    for key in ("red flower+1.txt", 'a,b/c"d.txt', "dossier/été 2024.csv", "100%.txt"):
        row = manifest_row(existing(key), version_ids=False)
        assert row[0] == BUCKET and len(row) == 2
        assert unquote(row[1]) == key == unquote_plus(row[1])
        assert not set(row[1]) & set(',"\n +')  # nothing a CSV reader could misread
    assert manifest_row(existing("red flower+1.txt"), False)[1] == "red%20flower%2B1.txt"


def test_a_manifest_is_bucket_key_and_the_version_column_when_asked() -> None:
    objects = [
        ExistingObject(BUCKET, "a b.txt", 1, "e", WHEN, "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY"),
        ExistingObject(BUCKET, "c.txt", 1, "e", WHEN, "null"),
    ]
    stream = io.StringIO()
    summary = backfill.write_manifest(objects, stream, destination="m.csv", version_ids=True)
    assert stream.getvalue() == (
        f"{BUCKET},a%20b.txt,3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY\n{BUCKET},c.txt,null\n"
    )
    assert (summary.objects, summary.messages, summary.ok) == (2, 2, True)
    plain = io.StringIO()
    backfill.write_manifest(objects, plain, destination="m.csv")
    assert list(csv.reader(io.StringIO(plain.getvalue()))) == [
        [BUCKET, "a%20b.txt"],
        [BUCKET, "c.txt"],
    ]


# --- batches (dry runs count what would be sent) --------------------------------------------


def test_ten_records_a_batch_even_with_the_longest_keys() -> None:
    # 1,024 bytes of key, each character percent-encoded in the record: still ten a batch.
    longest = [existing(f"{index}" + "é" * 511) for index in range(25)]
    assert all(len(o.key.encode()) <= 1024 for o in longest)
    summary = backfill.send_to_queue(longest, None, "q", region="us-east-1", dry_run=True)  # type: ignore[arg-type]
    assert (summary.objects, summary.messages, summary.calls) == (25, 25, 3)


def test_a_batch_never_exceeds_the_byte_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    objects = [existing(f"k{index:02d}") for index in range(10)]
    size = len(notification_body(objects[0], "us-east-1").encode())
    monkeypatch.setattr(backfill, "MAX_BATCH_BYTES", 3 * size + 10)
    summary = backfill.send_to_queue(objects, None, "q", region="us-east-1", dry_run=True)  # type: ignore[arg-type]
    assert summary.calls == 4  # 3 + 3 + 3 + 1


# --- against the moto server ---------------------------------------------------------------


@pytest.fixture
def bucket(s3: Any) -> Any:
    s3.create_bucket(Bucket=BUCKET)
    return s3


@pytest.fixture
def queue(sqs: Any) -> str:
    return str(sqs.create_queue(QueueName="backfill-q")["QueueUrl"])


def drain(sqs: Any, url: str) -> list[str]:
    """Every message body on the queue (received and deleted)."""
    bodies: list[str] = []
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not got:
            return bodies
        for message in got:
            bodies.append(message["Body"])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def keys_of(bodies: list[str]) -> list[str]:
    keys = []
    for body in bodies:
        message = parse_sqs_body(None, body)
        assert len(message.events) == 1, body  # one record a message
        keys.append(message.events[0].key)
    return sorted(keys)


class CallCounter:
    """SendMessageBatch calls, counted as they leave the client."""

    def __init__(self, client: Any) -> None:
        self.calls = 0
        client.meta.events.register("before-call.sqs.SendMessageBatch", self.count)

    def count(self, **_: Any) -> None:
        self.calls += 1


class FailingEntries:
    """Makes SQS fail the entries whose body holds one of ``keys``: removed from the request
    before it is sent (so SQS never gets them) and reported in the response's ``Failed``
    list, as SQS reports a throttled or internal-error entry. ``times`` failures per key
    (``None``: always). Batches go out from several threads: each call's own state is
    thread-local."""

    def __init__(
        self, client: Any, keys: set[str], times: int | None, sender_fault: bool = False
    ) -> None:
        self.keys, self.times, self.sender_fault = keys, times, sender_fault
        self.failures: dict[str, int] = {}
        self.lock = threading.Lock()
        self.call = threading.local()
        client.meta.events.register("provide-client-params.sqs.SendMessageBatch", self.drop)
        client.meta.events.register("before-call.sqs.SendMessageBatch", self.answer)
        client.meta.events.register("after-call.sqs.SendMessageBatch", self.report)

    def drop(self, params: dict[str, Any], **_: Any) -> None:
        kept, self.call.dropped = [], []
        self.call.size = len(params["Entries"])
        for entry in params["Entries"]:
            key = parse_sqs_body(None, entry["MessageBody"]).events[0].key
            with self.lock:
                failing = key in self.keys and (
                    self.times is None or self.failures.get(key, 0) < self.times
                )
                if failing:
                    self.failures[key] = self.failures.get(key, 0) + 1
            if failing:
                self.call.dropped.append(entry["Id"])
            else:
                kept.append(entry)
        params["Entries"] = kept

    def answer(self, **_: Any) -> Any:
        """Every entry failed: SQS answers without a request (an empty batch is invalid)."""
        if self.call.dropped and len(self.call.dropped) == self.call.size:
            return SimpleNamespace(status_code=200, headers={}), {"Successful": [], "Failed": []}
        return None

    def report(self, parsed: dict[str, Any], **_: Any) -> None:
        parsed.setdefault("Failed", []).extend(
            {
                "Id": id,
                "SenderFault": self.sender_fault,
                "Code": "InvalidMessageContents" if self.sender_fault else "InternalError",
                "Message": "refused" if self.sender_fault else "try again",
            }
            for id in self.call.dropped
        )


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backfill, "RETRY_BASE_SECONDS", 0.001)


def test_send_to_queue_sends_one_notification_per_kept_object_ten_a_call(
    bucket: Any, sqs: Any, queue: str
) -> None:
    keys = [f"in/{index:02d} file+{index}.txt" for index in range(25)]
    for key in [*keys, "in/", "in/other.bin"]:
        put(bucket, BUCKET, key, "x")
    counter = CallCounter(sqs)
    scope = Scope(BUCKET, "in/", match_key=re.compile(r"\.txt$"))
    summary = backfill.send_to_queue(
        backfill.objects_to_backfill(bucket, scope), sqs, queue, region="us-east-1"
    )
    assert summary.ok
    assert (summary.listed, summary.objects, summary.messages) == (27, 25, 25)
    assert summary.calls == counter.calls == 3  # ⌈25 / 10⌉
    assert summary.resume_after == max(keys)
    assert keys_of(drain(sqs, queue)) == sorted(keys)


def test_failed_entries_are_retried_until_sent(
    bucket: Any, sqs: Any, queue: str, fast_retries: None
) -> None:
    keys = [f"k{index:02d}" for index in range(12)]
    for key in keys:
        put(bucket, BUCKET, key)
    faults = FailingEntries(sqs, {"k03", "k11"}, times=2)
    summary = backfill.send_to_queue(
        backfill.objects_to_backfill(bucket, Scope(BUCKET)), sqs, queue, region="us-east-1"
    )
    assert summary.ok and summary.messages == 12
    assert faults.failures == {"k03": 2, "k11": 2}
    assert summary.calls == 6  # each of the two batches: the call and two retries
    assert keys_of(drain(sqs, queue)) == keys  # each exactly once


def test_an_entry_sqs_blames_on_the_sender_is_not_retried(
    bucket: Any, sqs: Any, queue: str, fast_retries: None
) -> None:
    for key in ("a", "b", "c"):
        put(bucket, BUCKET, key)
    faults = FailingEntries(sqs, {"b"}, times=None, sender_fault=True)
    summary = backfill.send_to_queue(
        backfill.objects_to_backfill(bucket, Scope(BUCKET)), sqs, queue, region="us-east-1"
    )
    assert faults.failures == {"b": 1} and summary.calls == 1
    assert summary.failed == (backfill.FailedEntry("b", "InvalidMessageContents", "refused"),)
    assert (summary.messages, summary.resume_after, summary.ok) == (2, "a", False)
    assert keys_of(drain(sqs, queue)) == ["a", "c"]


def test_a_queue_that_cannot_be_used_stops_the_backfill(
    bucket: Any, sqs: Any, queue: str, fast_retries: None
) -> None:
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda index: put(bucket, BUCKET, f"k{index:03d}"), range(250)))
    sqs.delete_queue(QueueUrl=queue)  # gone after the command checked it
    listing = backfill.objects_to_backfill(bucket, Scope(BUCKET))
    summary = backfill.send_to_queue(listing, sqs, queue, region="us-east-1")
    assert summary.error is not None and "does not exist" in summary.error
    assert summary.messages == 0 and summary.resume_after is None
    assert summary.objects < 250  # stopped, not every batch tried in vain
    assert len(summary.failed) == summary.objects  # each named, none silently dropped
    lines = summary.lines()
    assert lines[-2].startswith("stopped early: ")
    assert lines[-1].endswith("run again with the same command (nothing was sent)")


def run_cli(monkeypatch: pytest.MonkeyPatch, sqs: Any, *arguments: str) -> int:
    """``main`` in this process, its SQS client being ``sqs`` (with the test's hooks)."""
    monkeypatch.setattr("bridge.storage.sqs_client", lambda: sqs)
    return main(["backfill", *arguments])


def test_an_entry_that_keeps_failing_fails_the_command_which_says_where_to_resume(
    bucket: Any,
    sqs: Any,
    queue: str,
    fast_retries: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    keys = [f"k{index:02d}" for index in range(15)]
    for key in keys:
        put(bucket, BUCKET, key)
    faults = FailingEntries(sqs, {"k07"}, times=None)
    assert run_cli(monkeypatch, sqs, "--bucket", BUCKET, "--queue-url", queue) == 1
    err = capsys.readouterr().err
    assert faults.failures["k07"] == backfill.ATTEMPTS  # retried, then given up
    assert f"15 objects, 14 messages to {queue}" in err
    assert "could not send k07: InternalError: try again" in err
    assert "last key sent: k06" in err
    assert "1 object could not be sent; to resume without a gap, run again with " in err
    assert "--start-after k06" in err
    assert keys_of(drain(sqs, queue)) == [k for k in keys if k != "k07"]
    # The resume it suggests, once SQS takes the entry, fills the gap.
    faults.keys = set()
    assert (
        run_cli(monkeypatch, sqs, "--bucket", BUCKET, "--queue-url", queue, "--start-after", "k06")
        == 0
    )
    assert keys_of(drain(sqs, queue)) == keys[7:]


def test_backfill_then_consume_processes_the_existing_objects(
    bucket: Any, s3: Any, sqs: Any, queue: str, tmp_path: Path
) -> None:
    for key in ("in/a.txt", "in/red flower+1.txt", "in/sub/c.txt", "in/", "in/x.bin"):
        put(bucket, BUCKET, key, f"body of {key}")
    env = subprocess_env(MATCH_KEY=r"\.txt$", PULL_SCOPE="events", TARGET_BUCKET="backfill-out")
    s3.create_bucket(Bucket="backfill-out")
    command = [*bridge_command(), "backfill", "--bucket", BUCKET, "--prefix", "in/"]
    sent = subprocess.run(
        [*command, "--queue-url", queue], env=env, capture_output=True, text=True, check=False
    )
    assert sent.returncode == 0, sent.stderr
    assert "3 objects, 3 messages to" in sent.stderr
    assert "last key sent: in/sub/c.txt" in sent.stderr
    consume = [*bridge_command(), "consume", "--queue-url", queue, "--once", "--wait-time", "1"]
    consumed = subprocess.run(
        [*consume, "--", *handler("copier")],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert consumed.returncode == 0, consumed.stderr
    outputs = s3.list_objects_v2(Bucket="backfill-out").get("Contents", [])
    assert sorted(o["Key"] for o in outputs) == [
        "in/out/a.txt",
        "in/out/red flower+1.txt",
        "in/sub/out/c.txt",
    ]
    body = s3.get_object(Bucket="backfill-out", Key="in/out/red flower+1.txt")["Body"].read()
    assert body == b"body of in/red flower+1.txt"
    assert drain(sqs, queue) == []  # consumed and deleted


def test_start_after_resumes_after_that_key(
    bucket: Any, sqs: Any, queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for index in range(10):
        put(bucket, BUCKET, f"k{index}")
    arguments = ["--bucket", BUCKET, "--queue-url", queue, "--start-after", "k4"]
    assert run_cli(monkeypatch, sqs, *arguments) == 0
    assert keys_of(drain(sqs, queue)) == ["k5", "k6", "k7", "k8", "k9"]


def test_dry_run_counts_and_sends_nothing(
    bucket: Any,
    sqs: Any,
    queue: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for index in range(13):
        put(bucket, BUCKET, f"k{index:02d}")
    counter = CallCounter(sqs)
    assert run_cli(monkeypatch, sqs, "--bucket", BUCKET, "--queue-url", queue, "--dry-run") == 0
    err = capsys.readouterr().err
    assert f"13 objects, 13 messages would go to {queue} (dry run: 2 SendMessageBatch calls)" in err
    assert counter.calls == 0 and drain(sqs, queue) == []
    manifest = tmp_path / "manifest.csv"
    assert (
        run_cli(monkeypatch, sqs, "--bucket", BUCKET, "--manifest", str(manifest), "--dry-run") == 0
    )
    assert "13 objects, 13 manifest rows would go to" in capsys.readouterr().err
    assert not manifest.exists() and list(tmp_path.iterdir()) == []


def test_manifest_lists_latest_versions_of_a_versioned_bucket(
    s3: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    versioned_bucket(s3, BUCKET)
    put(s3, BUCKET, "data/a b.txt", "1")
    latest = s3.put_object(Bucket=BUCKET, Key="data/a b.txt", Body=b"2")["VersionId"]
    gone = s3.put_object(Bucket=BUCKET, Key="data/gone.txt", Body=b"x")["VersionId"]
    s3.delete_object(Bucket=BUCKET, Key="data/gone.txt")  # its latest is a delete marker
    other = s3.put_object(Bucket=BUCKET, Key="data/z+1.txt", Body=b"z")["VersionId"]
    assert gone
    manifest = tmp_path / "manifest.csv"
    command = ["--bucket", BUCKET, "--prefix", "data/", "--manifest", str(manifest)]
    assert main(["backfill", *command, "--version-ids"]) == 0
    assert manifest.read_text() == (
        f"{BUCKET},data/a%20b.txt,{latest}\n{BUCKET},data/z%2B1.txt,{other}\n"
    )
    assert "2 objects, 2 manifest rows to " in capsys.readouterr().err
    assert main(["backfill", *command]) == 0
    assert manifest.read_text() == f"{BUCKET},data/a%20b.txt\n{BUCKET},data/z%2B1.txt\n"


def test_a_pipeline_step_selects_by_its_notification_filter_and_match_key(
    bucket: Any, sqs: Any, queue: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pipeline.yaml").write_text(
        f"pipeline: refill\nbuckets: [{BUCKET}]\nsteps:\n"
        "  - name: map\n    run: python map.py\n"
        f"    on: {{bucket: {BUCKET}, prefix: jobs/, suffix: .txt, key: '/input/'}}\n"
        "    to: backfill-out\n"
    )
    for key in ("jobs/1/input/a.txt", "jobs/1/input/b.csv", "jobs/1/counts/a.txt", "other/a.txt"):
        put(bucket, BUCKET, key)
    monkeypatch.setenv("MATCH_KEY", "never-matches")  # the step's own selection applies
    arguments = ["--pipeline", str(tmp_path / "pipeline.yaml"), "--step", "map"]
    assert run_cli(monkeypatch, sqs, *arguments, "--queue-url", queue) == 0
    assert keys_of(drain(sqs, queue)) == ["jobs/1/input/a.txt"]


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        (["--queue-url", "q"], "--bucket is required"),
        (["--bucket", BUCKET], "one of the arguments --queue-url --manifest is required"),
        (["--bucket", BUCKET, "--queue-url", "q", "--manifest", "m"], "not allowed with"),
        (["--bucket", BUCKET, "--queue-url", "q", "--step", "map"], "--step needs --pipeline"),
    ],
)
def test_usage_errors_exit_2(
    arguments: list[str], problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["backfill", *arguments]) == 2
    assert problem in capsys.readouterr().err


def test_a_missing_queue_is_reported_before_anything_is_listed(
    bucket: Any, queue: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["backfill", "--bucket", BUCKET, "--queue-url", queue + "-nope"]) == 2
    assert f"queue {queue}-nope does not exist" in capsys.readouterr().err


def test_a_listing_that_fails_stops_with_the_reason(
    aws: MotoServer, queue: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["backfill", "--bucket", "no-such-bucket", "--queue-url", queue]) == 1
    err = capsys.readouterr().err
    assert "0 objects, 0 messages" in err
    assert "stopped early: ListObjectsV2 failed: NoSuchBucket" in err


def test_match_events_without_creations_warns_and_backfills_nothing(
    bucket: Any,
    sqs: Any,
    queue: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    put(bucket, BUCKET, "a.txt")
    monkeypatch.setenv("MATCH_EVENTS", "^ObjectRemoved:")
    assert run_cli(monkeypatch, sqs, "--bucket", BUCKET, "--queue-url", queue) == 0
    err = capsys.readouterr().err
    assert "MATCH_EVENTS does not match ObjectCreated:Put: no object is backfilled" in err
    assert "0 objects, 0 messages" in err
    assert drain(sqs, queue) == []


def test_progress_lines_name_the_last_key_sent(
    bucket: Any,
    sqs: Any,
    queue: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr("bridge.progress.INTERVAL_SECONDS", 0.0)  # every object is "late"
    for index in range(3):
        put(bucket, BUCKET, f"k{index}")
    assert run_cli(monkeypatch, sqs, "--bucket", BUCKET, "--queue-url", queue) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if "backfill progress" in line]
    assert lines and "last_key=k2" in lines[-1] and "objects_done=3" in lines[-1]


def test_the_bridges_client_lists_the_same_timestamps_as_botocore(bucket: Any) -> None:
    put(bucket, BUCKET, "a.txt")
    plain = bucket.list_objects_v2(Bucket=BUCKET)["Contents"][0]["LastModified"]
    fast = s3_client().list_objects_v2(Bucket=BUCKET)["Contents"][0]
    assert fast["LastModified"] == plain and fast["LastModified"].utcoffset() is not None
    assert fast["LastModified"].tzinfo is UTC  # read by bridge.clients.parse_timestamp
    head = s3_client().head_object(Bucket=BUCKET, Key="a.txt")
    assert head["LastModified"].tzinfo is UTC
    assert head["LastModified"] == bucket.head_object(Bucket=BUCKET, Key="a.txt")["LastModified"]
    [obj] = backfill.objects_to_backfill(s3_client(), Scope(BUCKET))
    assert obj.last_modified == plain


def test_a_step_scope_narrows_within_its_notification_prefix(tmp_path: Path) -> None:
    [map_step] = pipeline(
        tmp_path, step("map", on_prefix="jobs/", on_suffix=".txt", on_key="/input/")
    ).steps
    scope = backfill.scope_for_step(map_step, "jobs/7/", start_after="jobs/7/a")
    assert (scope.bucket, scope.prefix, scope.suffix) == ("data", "jobs/7/", ".txt")
    assert scope.match_key is not None and scope.match_key.pattern == "/input/"
    assert scope.start_after == "jobs/7/a"
    assert backfill.scope_for_step(map_step, "jo").prefix == "jobs/"  # the filter is narrower
    with pytest.raises(ValueError, match="outside step map's notification prefix 'jobs/'"):
        backfill.scope_for_step(map_step, "other/")
