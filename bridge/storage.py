"""S3 listing, pulls and pushes through boto3 and s3transfer (docs/design.md §2 steps 4, 6, 10)."""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from s3transfer.exceptions import S3DownloadFailedError
from s3transfer.futures import TransferFuture
from s3transfer.manager import TransferConfig, TransferManager
from s3transfer.subscribers import BaseSubscriber

from bridge.paths import ListedObject, PullItem

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

DEPTH_METADATA = "bridge-depth"
MULTIPART_THRESHOLD = 8 * 1024 * 1024


def s3_client(concurrency: int = 16) -> S3Client:
    """An S3 client on the standard boto3 chain, standard retries, a pool wide enough."""
    config = Config(retries={"mode": "standard"}, max_pool_connections=max(10, concurrency + 4))
    return _session().client("s3", config=config)


def sqs_client() -> SQSClient:
    """An SQS client on the standard boto3 chain with standard retries."""
    config = Config(retries={"mode": "standard"})
    return _session().client("sqs", config=config)


@functools.cache
def _session() -> boto3.session.Session:
    # One session: its clients stay separate, but service models load once per process
    # (several Lambda pollers or consume workers would otherwise each pay for it).
    # botocore reads only AWS_DEFAULT_REGION; Lambda and most tools also set AWS_REGION.
    session = boto3.session.Session()
    if session.region_name is None and os.environ.get("AWS_REGION"):
        session = boto3.session.Session(region_name=os.environ["AWS_REGION"])
    return session


@dataclass(frozen=True)
class Upload:
    """One output to push: local file, target key, and the headers that go with it."""

    path: Path
    key: str
    content_type: str
    metadata: dict[str, str]
    content_md5: str | None = None  # base64, single-part uploads only


class _KnownObject(BaseSubscriber):
    """Tell s3transfer the size and ETag from the listing, sparing a HeadObject per download.

    With the ETag, s3transfer also sends ``If-Match`` on ranged GETs, so a large object that
    is replaced mid-pull fails the group instead of mixing parts of two versions.
    """

    def __init__(self, obj: ListedObject) -> None:
        self._obj = obj

    def on_queued(self, future: Any, **kwargs: Any) -> None:
        future.meta.provide_transfer_size(self._obj.size)
        future.meta.provide_object_etag(f'"{self._obj.etag}"')  # S3 ETags are quoted strings


class _Transfers(TransferManager):
    # s3transfer refuses ContentMD5 because it cannot apply to a multipart upload as a whole;
    # the bridge only passes it for single-part uploads (below MULTIPART_THRESHOLD).
    ALLOWED_UPLOAD_ARGS = [*TransferManager.ALLOWED_UPLOAD_ARGS, "ContentMD5"]  # noqa: RUF012


def _wait_all(futures: Sequence[TransferFuture]) -> None:
    """Wait for every transfer; on the first failure cancel the rest, then raise it.

    Nothing may still be writing into the root folder when the caller removes it.
    """
    failure: BaseException | None = None
    for future in futures:
        try:
            future.result()
        except BaseException as exc:
            if failure is None:
                failure = exc
                for pending in futures:
                    pending.cancel()
    if failure is not None:
        raise failure


@dataclass
class _DepthRecorder:
    """Collects ``bridge-depth`` from GetObject responses, so pulls need no extra HeadObject.

    It keeps each response's LastModified too: an events-scope pull learns it only there.
    """

    depths: dict[tuple[str, str], int] = field(default_factory=dict)
    modified: dict[tuple[str, str], int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def before(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["bridge_object"] = (params.get("Bucket"), params.get("Key"))

    def after(self, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        target = context.get("bridge_object")
        if target is None or "Error" in parsed:
            return
        depth = parse_depth(parsed.get("Metadata", {}))
        modified = parsed.get("LastModified")
        with self.lock:
            self.depths[target] = depth
            if modified is not None:
                self.modified[target] = _epoch_ns(modified)

    def take(self, bucket: str, keys: Iterable[str]) -> dict[str, int]:
        keys = list(keys)
        with self.lock:
            for k in keys:
                self.modified.pop((bucket, k), None)
            return {k: self.depths.pop((bucket, k)) for k in keys if (bucket, k) in self.depths}

    def take_modified(self, bucket: str, keys: Iterable[str]) -> dict[str, int]:
        with self.lock:
            return {k: self.modified.pop((bucket, k)) for k in keys if (bucket, k) in self.modified}


class _EventSized(BaseSubscriber):
    """Tell s3transfer the size and ETag an event reported, so no HeadObject precedes the GET.

    Below the multipart threshold the download is one plain GetObject, which fetches the
    object as it is now; above it, the ranged GETs carry ``If-Match`` with the event's ETag, so
    an object replaced since its event fails them (412) and is pulled again from scratch.
    """

    def __init__(self, obj: ListedObject) -> None:
        self._obj = obj

    def on_queued(self, future: Any, **kwargs: Any) -> None:
        if self._obj.etag:  # without it (an event S3 did not send) s3transfer asks S3
            future.meta.provide_transfer_size(self._obj.size)
            future.meta.provide_object_etag(f'"{self._obj.etag}"')


@dataclass(frozen=True)
class Fetched:
    """What an events-scope pull found: chain depths of the pulled objects, and the gone ones."""

    depths: dict[str, int]
    missing: tuple[str, ...]


_MISSING = frozenset({"404", "NoSuchKey", "NotFound"})
_STALE = frozenset({"412", "PreconditionFailed"})
_DENIED = frozenset({"403", "AccessDenied", "Forbidden"})


def error_code(exc: ClientError) -> str:
    """The error code of an S3 error response (``NoSuchKey``, ``403``...)."""
    return str(exc.response.get("Error", {}).get("Code", ""))


def _wait_each(
    futures: Sequence[tuple[PullItem, TransferFuture]], tolerated: frozenset[str]
) -> dict[str, list[PullItem]]:
    """Wait for every transfer; the ones failing with a ``tolerated`` code, by code.

    Any other failure cancels the rest and is raised once all have stopped, as in
    ``_wait_all``.
    """
    failed: dict[str, list[PullItem]] = {}
    failure: BaseException | None = None
    for item, future in futures:
        try:
            future.result()
        except BaseException as exc:
            code = _failure_code(exc)
            if code in tolerated:
                failed.setdefault(code, []).append(item)
            elif failure is None:
                failure = exc
                for _, pending in futures:
                    pending.cancel()
    if failure is not None:
        raise failure
    return failed


def _failure_code(exc: BaseException) -> str | None:
    """The S3 error code behind a failed transfer, if any.

    s3transfer turns a ranged GET's 412 (``If-Match`` failed) into ``S3DownloadFailedError``
    raised while handling the ``ClientError``: the code is found on that context.
    """
    if isinstance(exc, ClientError):
        return error_code(exc)
    if isinstance(exc, S3DownloadFailedError) and isinstance(exc.__context__, ClientError):
        return error_code(exc.__context__)
    return None


def parse_depth(metadata: dict[str, str]) -> int:
    """The chain depth stored in user metadata; 0 when absent or not a number."""
    try:
        return max(0, int(metadata.get(DEPTH_METADATA, "0")))
    except ValueError:
        return 0


class Storage:
    """The S3 operations of one engine. Thread-safe; transfers run ``concurrency`` wide."""

    def __init__(self, client: S3Client, concurrency: int) -> None:
        self.client = client
        self.concurrency = concurrency
        self._config = TransferConfig(
            max_request_concurrency=concurrency,
            multipart_threshold=MULTIPART_THRESHOLD,
            # Chunks downloaded but not yet written: s3transfer's own default (1,000 x 256 KiB)
            # lets a large pull buffer ~250 MB when the disk lags; boto3 caps it at 100.
            max_io_queue_size=100,
        )
        # One manager for the engine's lifetime: its thread pools are started once, not per
        # group (that costs more than the transfer itself for small objects).
        self._transfers = _Transfers(client, self._config)
        self._depths = _DepthRecorder()
        events = client.meta.events
        events.register("before-parameter-build.s3.GetObject", self._depths.before)
        events.register("after-call.s3.GetObject", self._depths.after)

    def list_objects(self, bucket: str, prefix: str) -> list[ListedObject]:
        """Every object under ``prefix`` (all pages of ListObjectsV2)."""
        paginator = self.client.get_paginator("list_objects_v2")
        listed = []
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for entry in page.get("Contents", []):
                listed.append(_listed_object(dict(entry)))
        return listed

    def pull(self, bucket: str, items: Sequence[PullItem], root: Path) -> dict[str, int]:
        """Download ``items`` under ``root`` in parallel, streaming to disk.

        Each file's mtime is set to its object's LastModified (the snapshot relies on it).
        Returns the ``bridge-depth`` of every pulled object, by key.
        """
        for folder in {(root / item.path).parent for item in items}:
            folder.mkdir(parents=True, exist_ok=True)
        _wait_all(
            [
                self._transfers.download(
                    bucket,
                    item.obj.key,
                    str(root / item.path),
                    subscribers=[_KnownObject(item.obj)],
                )
                for item in items
            ]
        )
        for item in items:
            stamp = item.obj.last_modified_ns
            os.utime(root / item.path, ns=(stamp, stamp), follow_symlinks=False)
        return self._depths.take(bucket, (item.obj.key for item in items))

    def fetch(self, bucket: str, items: Sequence[PullItem], root: Path) -> Fetched:
        """Download the triggering objects ``items`` (``PULL_SCOPE=events``) under ``root``.

        Sized from their events: one GetObject each (ranged GETs for large ones), no
        HeadObject. An object gone since its event (404) is reported in ``missing``, not
        raised; one replaced since its event is pulled as it is now. Each file's mtime is set
        to the LastModified of the GetObject response.
        """
        for folder in {(root / item.path).parent for item in items}:
            folder.mkdir(parents=True, exist_ok=True)

        def download(item: PullItem, sized: bool) -> TransferFuture:
            subscribers = [_EventSized(item.obj)] if sized else []
            return self._transfers.download(
                bucket, item.obj.key, str(root / item.path), subscribers=subscribers
            )

        failed = _wait_each([(item, download(item, True)) for item in items], _MISSING | _STALE)
        stale = [item for code in _STALE for item in failed.get(code, [])]
        if stale:  # replaced since the event: let s3transfer learn the new size and ETag
            again = _wait_each([(item, download(item, False)) for item in stale], _MISSING)
            for code, gone in again.items():
                failed.setdefault(code, []).extend(gone)
        missing = {item.obj.key for code in _MISSING for item in failed.get(code, [])}

        pulled = [item for item in items if item.obj.key not in missing]
        modified = self._depths.take_modified(bucket, [item.obj.key for item in pulled])
        for item in pulled:
            stamp = modified.get(item.obj.key)
            if stamp is not None:
                os.utime(root / item.path, ns=(stamp, stamp), follow_symlinks=False)
        depths = self._depths.take(bucket, [item.obj.key for item in pulled])
        return Fetched(depths, tuple(key for key in (i.obj.key for i in items) if key in missing))

    def stored_etags(self, bucket: str, keys: Sequence[str]) -> dict[str, str]:
        """ETag (without quotes) of each of ``keys`` stored in ``bucket``: one HeadObject each,
        in parallel.

        404 and 403 both mean "not known to exist" (without ``s3:ListBucket``, S3 answers 403
        for a missing key): such keys are absent from the result.
        """
        if len(keys) <= 1:
            found = [self._stored_etag(bucket, key) for key in keys]
        else:
            with ThreadPoolExecutor(max_workers=min(self.concurrency, len(keys))) as pool:
                found = list(pool.map(lambda key: self._stored_etag(bucket, key), keys))
        return {key: etag for key, etag in zip(keys, found, strict=True) if etag is not None}

    def _stored_etag(self, bucket: str, key: str) -> str | None:
        try:
            response = self.client.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if error_code(exc) in _MISSING | _DENIED:
                return None
            raise
        return str(response.get("ETag", "")).strip('"')

    def push(self, bucket: str, uploads: Sequence[Upload]) -> None:
        """Upload ``uploads`` to ``bucket`` in parallel."""
        futures = []
        for upload in uploads:
            extra: dict[str, Any] = {
                "ContentType": upload.content_type,
                "Metadata": upload.metadata,
            }
            if upload.content_md5 is not None:
                extra["ContentMD5"] = upload.content_md5
            futures.append(self._transfers.upload(str(upload.path), bucket, upload.key, extra))
        _wait_all(futures)

    def depth_of(self, bucket: str, key: str) -> int:
        """The chain depth of an object that was not pulled (HeadObject); 0 if it is gone."""
        try:
            response = self.client.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return 0
            raise
        return parse_depth(response.get("Metadata", {}))

    def etags(self, bucket: str, prefix: str) -> dict[str, str]:
        """ETag (without quotes) of every object under ``prefix``, by key."""
        return {o.key: o.etag for o in self.list_objects(bucket, prefix)}


def _epoch_ns(moment: datetime) -> int:
    # Whole microseconds, as the listing's LastModified is turned into an mtime.
    return int(moment.timestamp() * 1_000_000) * 1000


def _listed_object(entry: dict[str, Any]) -> ListedObject:
    modified = entry["LastModified"]
    listing = {k: v for k, v in entry.items() if k != "LastModified"}
    # ISO 8601 as the AWS CLI prints it, so filters written against its output work here.
    listing["LastModified"] = modified.isoformat()
    return ListedObject(
        key=entry["Key"],
        size=int(entry.get("Size", 0)),
        etag=str(entry.get("ETag", "")).strip('"'),
        last_modified_ns=_epoch_ns(modified),
        listing=listing,
    )
