"""Backfill: feed a step the objects that already exist (docs/design.md §15.2).

Events only report changes; a step deployed over a bucket that already holds its inputs
sees none of them. ``objects_to_backfill`` lists the bucket under a prefix, page by page
(never the whole listing in memory), and keeps the objects the step's configuration would
act on for ``ObjectCreated:Put``: the same selection (``groups.select_events``) as the
event path, after the notification filter (prefix, suffix) and without console folders
(keys ending in ``/``). Then either:

- ``send_to_queue`` sends, for each object, the S3 notification S3 would have sent
  (``sources.s3.record``: URL-encoded key, size, eTag, sequencer; one record a message),
  ``SendMessageBatch`` of at most 10 entries and 256 KiB; failed entries are retried with
  backoff, and what still fails is counted and named, never dropped; or
- ``write_manifest`` writes the CSV manifest an S3 Batch Operations job reads
  (``bucket,key[,version id]``, the key URL-encoded).

Both return a ``BackfillSummary``: the counts, the entries that could not be sent, and the
last key up to which everything was sent (``--start-after`` resumes from it). Neither
raises for an AWS failure once started: the summary carries it (``error``), so a caller
always learns where to resume.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any, Literal, Protocol
from urllib.parse import quote

from botocore.exceptions import BotoCoreError, ClientError

from bridge.awserrors import ACCESS_CODES, describe, error_code
from bridge.events import ObjectEvent
from bridge.groups import select_events
from bridge.logs import log
from bridge.progress import Progress
from bridge.sources import s3 as s3_source

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

    from bridge.settings import Settings

logger = logging.getLogger("bridge.backfill")

EVENT_NAME = "ObjectCreated:Put"
CONFIGURATION_ID = "s3-event-bridge-backfill"  # tells a backfilled record from S3's own
MAX_BATCH_ENTRIES = 10  # SendMessageBatch's limit
MAX_BATCH_BYTES = 256 * 1024  # SQS's limit on a whole batch (and on one message)
ATTEMPTS = 6  # per batch: the first call and five retries of what failed
RETRY_BASE_SECONDS = 0.2  # doubling between retries ...
RETRY_CAP_SECONDS = 10.0  # ... up to this
SEND_CONCURRENCY = 8  # batches in flight while the listing goes on


@dataclass(frozen=True)
class ExistingObject:
    """One object found by the listing: what its notification record says about it."""

    bucket: str
    key: str
    size: int
    etag: str  # without quotes
    last_modified: datetime
    version_id: str | None = None

    @classmethod
    def from_listing(cls, bucket: str, entry: Any) -> ExistingObject:
        """From a ``Contents`` entry of ListObjectsV2 (or a ``Versions`` entry of
        ListObjectVersions, which adds the version id)."""
        modified = entry.get("LastModified") or datetime.now(UTC)
        return cls(
            bucket=bucket,
            key=entry["Key"],
            size=int(entry.get("Size", 0)),
            etag=str(entry.get("ETag", "")).strip('"'),
            last_modified=modified.astimezone(UTC),
            version_id=entry.get("VersionId"),
        )


@dataclass(frozen=True)
class Scope:
    """What to list and which listed objects to keep.

    ``prefix`` and ``suffix`` are the notification filter (and the listing's prefix);
    ``match_key`` and ``match_events`` the configuration's ``MATCH_KEY`` and
    ``MATCH_EVENTS``. ``start_after`` resumes a listing after that key; ``version_ids``
    lists versions (the latest of each key that is not a delete marker) to know their ids;
    ``exclude`` holds keys to leave out (``pipeline up`` leaves out the keys its seed
    uploads: their uploads notify the step already).
    """

    bucket: str
    prefix: str = ""
    suffix: str = ""
    match_key: re.Pattern[str] | None = None
    match_events: re.Pattern[str] | None = None
    start_after: str | None = None
    version_ids: bool = False
    exclude: frozenset[str] = frozenset()

    @property
    def label(self) -> str:
        """``s3://bucket/prefix``, for logs and the closing line."""
        return f"s3://{self.bucket}/{self.prefix}"

    @property
    def acts_on_creations(self) -> bool:
        """Whether ``MATCH_EVENTS`` keeps ``ObjectCreated:Put`` at all (else nothing is kept)."""
        return self.match_events is None or bool(self.match_events.search(EVENT_NAME))


class _Trigger(Protocol):
    @property
    def bucket(self) -> str: ...
    @property
    def prefix(self) -> str: ...
    @property
    def suffix(self) -> str: ...


class _StepSpec(Protocol):
    @property
    def on(self) -> _Trigger: ...


class PipelineStep(Protocol):
    """What a backfill reads of a pipeline step (``pipeline.model.StepConfig``)."""

    @property
    def name(self) -> str: ...
    @property
    def spec(self) -> _StepSpec: ...
    @property
    def settings(self) -> Settings: ...


def scope_for_step(step: PipelineStep, prefix: str | None = None, **options: Any) -> Scope:
    """The scope of a pipeline step: its trigger's bucket, notification prefix and suffix,
    and its own ``MATCH_KEY`` / ``MATCH_EVENTS``.

    A ``prefix`` narrows the listing within the notification prefix; one outside it (neither
    extends the other) raises ``ValueError``: nothing under it could trigger the step.
    """
    trigger = step.spec.on
    listing = trigger.prefix
    if prefix:
        if prefix.startswith(trigger.prefix):
            listing = prefix
        elif not trigger.prefix.startswith(prefix):
            raise ValueError(
                f"--prefix {prefix!r} is outside step {step.name}'s notification prefix "
                f"{trigger.prefix!r}: nothing under it can trigger the step"
            )
    return Scope(
        bucket=trigger.bucket,
        prefix=listing,
        suffix=trigger.suffix,
        match_key=step.settings.match_key,
        match_events=step.settings.match_events,
        **options,
    )


@dataclass
class Tally:
    """What a listing found and why objects were left out (updated as it goes)."""

    listed: int = 0
    folders: int = 0  # keys ending in "/": the console's folder markers
    filtered: int = 0  # outside the notification filter, or excluded
    unmatched: int = 0  # MATCH_KEY or MATCH_EVENTS said no

    def left_out(self) -> dict[str, int]:
        """Why listed objects were not kept, with how many (reasons with none omitted)."""
        reasons = {
            "folder marker(s)": self.folders,
            "outside the notification filter": self.filtered,
            "not selected by MATCH_KEY/MATCH_EVENTS": self.unmatched,
        }
        return {why: count for why, count in reasons.items() if count}


class Listing:
    """The objects under a scope that its configuration acts on, in key order, listed one
    page at a time as they are iterated (never the whole listing in memory); ``tally``
    counts what was listed and left out so far."""

    def __init__(self, s3: S3Client, scope: Scope) -> None:
        self.s3 = s3
        self.scope = scope
        self.tally = Tally()

    def __iter__(self) -> Iterator[ExistingObject]:
        for page in _pages(self.s3, self.scope):
            self.tally.listed += len(page)
            yield from keep(page, self.scope, self.tally)


def objects_to_backfill(s3: S3Client, scope: Scope) -> Listing:
    """The objects under ``scope`` that its configuration would act on (see ``Listing``)."""
    return Listing(s3, scope)


def keep(
    objects: Iterable[ExistingObject], scope: Scope, tally: Tally | None = None
) -> list[ExistingObject]:
    """The listed objects that ``scope`` keeps (pure): no folder markers, inside the
    notification filter, not excluded, and selected by ``MATCH_KEY`` / ``MATCH_EVENTS``
    exactly as the event path selects an ``ObjectCreated:Put`` event."""
    counts = tally if tally is not None else Tally()
    candidates: dict[str, ExistingObject] = {}
    for obj in objects:
        if obj.key.endswith("/"):
            counts.folders += 1
        elif (
            not obj.key.startswith(scope.prefix)
            or not obj.key.endswith(scope.suffix)
            or obj.key in scope.exclude
        ):
            counts.filtered += 1
        else:
            candidates[obj.key] = obj
    events = [
        ObjectEvent(o.bucket, o.key, EVENT_NAME, o.size, o.etag, None) for o in candidates.values()
    ]
    selection = select_events(events, scope.match_key, scope.match_events)
    counts.unmatched += len(selection.ignored)
    return [candidates[event.key] for event in selection.kept]


def _pages(s3: S3Client, scope: Scope) -> Iterator[list[ExistingObject]]:
    arguments: dict[str, Any] = {"Bucket": scope.bucket, "Prefix": scope.prefix}
    if scope.version_ids:
        if scope.start_after:
            arguments["KeyMarker"] = scope.start_after
        for page in s3.get_paginator("list_object_versions").paginate(**arguments):
            # A key whose latest version is a delete marker has no latest entry here.
            yield [
                ExistingObject.from_listing(scope.bucket, entry)
                for entry in page.get("Versions", [])
                if entry.get("IsLatest")
            ]
        return
    if scope.start_after:
        arguments["StartAfter"] = scope.start_after
    for listed in s3.get_paginator("list_objects_v2").paginate(**arguments):
        contents = listed.get("Contents", [])
        yield [ExistingObject.from_listing(scope.bucket, entry) for entry in contents]


# --------------------------------------------------------------------------- what is sent


def notification_body(obj: ExistingObject, region: str) -> str:
    """The SQS message body S3 would have sent for ``obj``: one ``ObjectCreated:Put``
    record, built by the same code as the samples (``sources.s3.record``)."""
    facts = s3_source.ObjectFacts(
        bucket=obj.bucket,
        key=obj.key,
        size=obj.size,
        etag=obj.etag,
        when=obj.last_modified,
        version_id=obj.version_id,
    )
    # Ids derived from the object: no system call per record, and the same object version
    # always gets the same sequencer.
    identity = f"{obj.bucket}\0{obj.key}\0{obj.etag}\0{obj.version_id}".encode()
    noise = hashlib.shake_128(identity).digest(96)
    record = s3_source.record(facts, EVENT_NAME, region, CONFIGURATION_ID, noise=noise)
    return json.dumps({"Records": [record]}, separators=(",", ":"), ensure_ascii=False)


def manifest_row(obj: ExistingObject, version_ids: bool) -> list[str]:
    """One row of a Batch Operations CSV manifest (pure): ``bucket, key[, version id]``.

    The key is percent-encoded with ``quote`` (a space is ``%20``, ``+`` is ``%2B``, a comma
    ``%2C``), which reads back the same whether the reader decodes with ``unquote`` or with
    ``unquote_plus``, and leaves the CSV no field to quote.
    """
    row = [obj.bucket, quote(obj.key, safe="/")]
    if version_ids:
        row.append(obj.version_id or "null")
    return row


@dataclass(frozen=True)
class FailedEntry:
    """An object whose message could not be sent, and what SQS said last."""

    key: str
    code: str
    message: str


@dataclass(frozen=True)
class BackfillSummary:
    """How a backfill ended.

    ``objects``: objects handled (sent or not; with ``dry_run``, that would be);
    ``messages``: messages sent, or manifest rows written (would be, with ``dry_run``);
    ``calls``: SendMessageBatch requests made (would be made); ``failed``: objects whose
    message could not be sent; ``resume_after``: every object up to this key (in listing
    order) was sent, so ``--start-after`` it resumes without a gap; ``error``: why the
    backfill stopped early (a listing or sending failure that retries did not cure).
    ``listed`` and ``left_out`` describe the listing (when the objects came from one).
    """

    kind: Literal["queue", "manifest"]
    destination: str
    source: str
    listed: int
    objects: int
    messages: int
    calls: int = 0
    failed: tuple[FailedEntry, ...] = ()
    resume_after: str | None = None
    error: str | None = None
    dry_run: bool = False
    left_out: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Everything was sent (or written), and nothing stopped the backfill."""
        return not self.failed and self.error is None

    def lines(self) -> list[str]:
        """The closing lines: the counts first, then what failed and where to resume."""
        to_queue = self.kind == "queue"
        head = (
            f"{self.objects} objects, {self.messages} {'messages' if to_queue else 'manifest rows'}"
        )
        calls = _plural(self.calls, "SendMessageBatch call")
        if self.dry_run:
            head += f" would go to {self.destination} (dry run{f': {calls}' if to_queue else ''})"
        else:
            head += f" to {self.destination}" + (f" ({calls})" if to_queue else "")
        head += f"; listed {self.listed} under {self.source}"
        if self.left_out:
            head += " (left out: " + ", ".join(f"{n} {w}" for w, n in self.left_out.items()) + ")"
        verb = "handled" if self.dry_run else "sent" if to_queue else "written"
        lines = [head + f"; last key {verb}: {self.resume_after or '(none)'}"]
        lines += [f"could not send {e.key}: {e.code}: {e.message}" for e in self.failed[:10]]
        if len(self.failed) > 10:
            lines.append(f"... and {len(self.failed) - 10} more could not be sent")
        if self.error is not None:
            lines.append(f"stopped early: {self.error}")
        if not self.ok:
            what = (
                f"{_plural(len(self.failed), 'object')} could not be sent; " if self.failed else ""
            )
            resume = (
                f"--start-after {self.resume_after}"
                if self.resume_after is not None
                else "the same command (nothing was sent)"
            )
            lines.append(f"{what}to resume without a gap, run again with {resume}")
        return lines


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _origin(objects: Iterable[ExistingObject], handled: int) -> tuple[str, int, dict[str, int]]:
    """The source label, the number listed and what was left out, for a summary."""
    if isinstance(objects, Listing):
        return objects.scope.label, objects.tally.listed, objects.tally.left_out()
    return "the given objects", handled, {}


# --------------------------------------------------------------------------- to a queue


def check_queue(sqs: SQSClient, queue_url: str) -> None:
    """Prove the queue exists and can be reached before anything is listed: a wrong URL
    fails at once (as ``consume`` does), not after the listing."""
    sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])


def send_to_queue(
    objects: Iterable[ExistingObject],
    sqs: SQSClient,
    queue_url: str,
    *,
    region: str,
    dry_run: bool = False,
    concurrency: int = SEND_CONCURRENCY,
    sleep: Callable[[float], None] = time.sleep,
) -> BackfillSummary:
    """Send each object's notification (``notification_body``, in ``region``) to
    ``queue_url``, in batches of at most 10 messages and 256 KiB.

    ``objects`` is usually a ``Listing`` (``objects_to_backfill``), read as it is listed;
    ``concurrency`` batches are in flight while the listing goes on, and their outcomes are
    counted in listing order. With ``dry_run`` nothing is sent: the counts say what would
    be. Entries SQS reports in ``Failed`` are retried with backoff (``sleep``) unless SQS
    blames the sender; what still fails is in ``failed`` and the rest goes on. A listing or
    a call that keeps failing stops the backfill (``error``); ``resume_after`` says where a
    new run may start.
    """
    sent = _Sent(Progress("backfill", None, None, label=queue_url))
    batch = _Batch()
    in_flight: deque[tuple[list[tuple[ExistingObject, str]], Future[BatchResult]]] = deque()
    error: str | None = None

    def submit(pool: ThreadPoolExecutor, items: list[tuple[ExistingObject, str]]) -> None:
        if dry_run:
            future: Future[BatchResult] = Future()
            future.set_result(BatchResult(1, ()))
        else:
            future = pool.submit(send_batch, sqs, queue_url, [body for _, body in items], sleep)
        in_flight.append((items, future))
        # Count what is done, oldest first; wait for the oldest while too much is in flight.
        while in_flight and (in_flight[0][1].done() or len(in_flight) > 2 * concurrency):
            done, result = in_flight.popleft()
            sent.account(done, result.result())

    with ThreadPoolExecutor(concurrency, thread_name_prefix="backfill") as pool:
        try:
            for obj in objects:
                if sent.stopped is not None:
                    break
                body = notification_body(obj, region)
                if not batch.fits(body):
                    submit(pool, batch.take())
                batch.add(obj, body)
            if batch.items and sent.stopped is None:
                submit(pool, batch.take())
        except (BotoCoreError, ClientError) as exc:  # the listing
            error = describe(exc).message
        finally:
            while in_flight:
                done, result = in_flight.popleft()
                sent.account(done, result.result())
    source, listed, left_out = _origin(objects, sent.objects)
    return BackfillSummary(
        kind="queue",
        destination=queue_url,
        source=source,
        listed=listed,
        objects=sent.objects,
        messages=sent.messages,
        calls=sent.calls,
        failed=tuple(sent.failed),
        resume_after=sent.resume_after,
        error=error or sent.stopped,
        dry_run=dry_run,
        left_out=left_out,
    )


@dataclass
class _Batch:
    """Messages waiting to go out together: at most 10 and 256 KiB."""

    items: list[tuple[ExistingObject, str]] = field(default_factory=list)
    size: int = 0

    def fits(self, body: str) -> bool:
        size = len(body.encode("utf-8"))
        if size > MAX_BATCH_BYTES:  # a key is at most 1 KiB: a record is far smaller
            raise ValueError(f"a notification of {size} bytes exceeds SQS's {MAX_BATCH_BYTES}")
        return len(self.items) < MAX_BATCH_ENTRIES and self.size + size <= MAX_BATCH_BYTES

    def add(self, obj: ExistingObject, body: str) -> None:
        self.items.append((obj, body))
        self.size += len(body.encode("utf-8"))

    def take(self) -> list[tuple[ExistingObject, str]]:
        items, self.items, self.size = self.items, [], 0
        return items


@dataclass
class _Sent:
    """What has been sent so far, and the resume point, counted batch by batch in listing
    order; ``stopped`` once a batch found SQS unusable."""

    progress: Progress
    objects: int = 0
    messages: int = 0
    calls: int = 0
    failed: list[FailedEntry] = field(default_factory=list)
    resume_after: str | None = None
    gap: bool = False
    stopped: str | None = None

    def account(self, batch: list[tuple[ExistingObject, str]], result: BatchResult) -> None:
        self.objects += len(batch)
        self.calls += result.calls
        failed_at = {index: (code, message) for index, code, message in result.failed}
        for index, (obj, _) in enumerate(batch):
            if index in failed_at:
                code, message = failed_at[index]
                self.failed.append(FailedEntry(obj.key, code, message))
                log(
                    logger,
                    logging.ERROR,
                    "backfill message not sent",
                    key=obj.key,
                    code=code,
                    reason=message,
                )
                self.gap = True  # the resume point stays before the first failure
                continue
            self.messages += 1
            if not self.gap:
                self.resume_after = obj.key
            self.progress.object_done(obj.size, last_key=obj.key)
        if result.stopped is not None and self.stopped is None:
            self.stopped = result.stopped


@dataclass(frozen=True)
class BatchResult:
    """How one batch went: the calls made; for each message not sent, its index in the
    batch, the last error code and message; ``stopped`` when the last call itself failed
    (SQS could not be used: the backfill stops there)."""

    calls: int
    failed: tuple[tuple[int, str, str], ...]
    stopped: str | None = None


def send_batch(
    sqs: SQSClient,
    queue_url: str,
    bodies: list[str],
    sleep: Callable[[float], None] = time.sleep,
) -> BatchResult:
    """Send ``bodies`` (1 to 10) with SendMessageBatch, retrying what failed.

    Entries in the response's ``Failed`` list are sent again, with backoff, up to
    ``ATTEMPTS`` calls, except those SQS blames on the sender (``SenderFault``: the same
    request would fail again). A call that raises (after botocore's own retries) is
    retried the same way; access denied is not. Never raises for an AWS failure.
    """
    if not 0 < len(bodies) <= MAX_BATCH_ENTRIES:
        raise ValueError(f"a batch holds 1 to {MAX_BATCH_ENTRIES} messages, not {len(bodies)}")
    left = {str(index): body for index, body in enumerate(bodies)}
    last: dict[str, tuple[str, str]] = {}
    final: list[tuple[int, str, str]] = []
    calls = 0
    stopped: str | None = None
    for attempt in range(ATTEMPTS):
        if attempt:
            sleep(min(RETRY_CAP_SECONDS, RETRY_BASE_SECONDS * 2 ** (attempt - 1)))
        entries: Any = [{"Id": key, "MessageBody": body} for key, body in left.items()]
        calls += 1
        try:
            response = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
        except (BotoCoreError, ClientError) as exc:
            stopped = describe(exc).message
            code = error_code(exc) or type(exc).__name__
            last.update((key, (code, stopped)) for key in left)
            log(logger, logging.WARNING, "SendMessageBatch failed", reason=stopped)
            if code in ACCESS_CODES:
                break
            continue
        stopped = None
        retry: dict[str, str] = {}
        for failure in response.get("Failed", []):
            key = failure["Id"]
            code, message = failure.get("Code", ""), failure.get("Message", "")
            if failure.get("SenderFault"):
                final.append((int(key), code, message))
            else:
                retry[key] = left[key]
                last[key] = (code, message)
        left = retry
        if not left:
            break
        log(logger, logging.WARNING, "SendMessageBatch entries failed", entries=len(left))
    final += [(int(key), *last[key]) for key in left]
    return BatchResult(calls, tuple(sorted(final)), stopped)


# --------------------------------------------------------------------------- to a manifest


def write_manifest(
    objects: Iterable[ExistingObject],
    stream: IO[str] | None,
    *,
    destination: str,
    version_ids: bool = False,
) -> BackfillSummary:
    """Write a Batch Operations CSV manifest row per object to ``stream`` (``None``: a dry
    run, nothing written), with a version id column when ``version_ids``."""
    writer = csv.writer(stream, lineterminator="\n") if stream is not None else None
    progress = Progress("backfill", None, None, label=destination)
    rows = 0
    last: str | None = None
    error: str | None = None
    try:
        for obj in objects:
            if writer is not None:
                writer.writerow(manifest_row(obj, version_ids))
            rows += 1
            last = obj.key
            progress.object_done(obj.size, last_key=obj.key)
    except (BotoCoreError, ClientError) as exc:
        error = describe(exc).message
    source, listed, left_out = _origin(objects, rows)
    return BackfillSummary(
        kind="manifest",
        destination=destination,
        source=source,
        listed=listed,
        objects=rows,
        messages=rows,
        resume_after=last,
        error=error,
        dry_run=stream is None,
        left_out=left_out,
    )
