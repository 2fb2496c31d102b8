"""S3 listing, pulls and pushes (docs/design.md §2 steps 4, 6, 10; §6; §9).

Objects below ``MULTIPART_THRESHOLD`` (sizes come from the listing) move with one plain
GetObject / PutObject each, from a pool of ``concurrency`` threads sharing one client;
larger ones go through s3transfer (``bridge.multipart``, imported on first use). Every
pulled object is verified end to end (``bridge.integrity``); every pushed file is opened
once, without following symlinks, and hashed and uploaded from that descriptor.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import logging
import os
import stat
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    FlexibleChecksumError,
    IncompleteReadError,
    ReadTimeoutError,
    ResponseStreamingError,
)
from botocore.httpchecksum import StreamingChecksumBody

from bridge import integrity
from bridge.logs import log
from bridge.paths import ListedObject, PullItem
from bridge.progress import Progress

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

    from bridge.multipart import LargeTransfers

logger = logging.getLogger(__name__)

DEPTH_METADATA = "bridge-depth"
MULTIPART_THRESHOLD = 8 * 1024 * 1024
_CHUNK = 256 * 1024
# Errors while a response body streams in, which botocore does not retry (it has already
# returned the response): the same list s3transfer retries its downloads on, as often.
RETRYABLE_STREAMING_ERRORS: tuple[type[Exception], ...] = (
    TimeoutError,
    ConnectionError,
    ReadTimeoutError,
    IncompleteReadError,
    ResponseStreamingError,
    ConnectionClosedError,
)
STREAMING_ATTEMPTS = 5
UPLOAD_ATTEMPTS = 3

T = TypeVar("T")


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


class IntegrityError(Exception):
    """Downloaded bytes do not match what S3 says the object holds (the group fails)."""


@dataclass(frozen=True)
class Upload:
    """One output to push: its path relative to the root, target key and headers.

    ``known_etag``: the ETag (unquoted) of the object now at the key, if any; when it is a
    plain MD5 equal to the file's, the upload is skipped as unchanged.
    """

    path: str
    key: str
    content_type: str
    metadata: dict[str, str]
    known_etag: str | None = None


@dataclass(frozen=True)
class PullResult:
    """What a pull learnt: the ``bridge-depth`` of each pulled object, by key; the objects
    that could not be verified (no checksum this process can compute, no MD5 ETag); and,
    for ``fetch``, the objects gone since their event (404)."""

    depths: dict[str, int]
    unverified: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()


_MISSING = frozenset({"404", "NoSuchKey", "NotFound"})
_STALE = frozenset({"412", "PreconditionFailed"})
_DENIED = frozenset({"403", "AccessDenied", "Forbidden"})


def error_code(exc: ClientError) -> str:
    """The error code of an S3 error response (``NoSuchKey``, ``403``...)."""
    return str(exc.response.get("Error", {}).get("Code", ""))


@dataclass(frozen=True)
class PushResult:
    """What a push did: keys uploaded, outputs unchanged (skipped), bytes sent, and outputs
    not uploaded because they were no longer regular files under the root (path -> why)."""

    uploaded: tuple[str, ...] = ()
    unchanged: int = 0
    bytes_out: int = 0
    refused: dict[str, str] = field(default_factory=dict)


@dataclass
class _ResponseRecorder:
    """Keeps what GetObject responses say of each object, so pulls need no HeadObject:
    ``bridge-depth``, LastModified (an events-scope pull learns it only there), and the
    ETag and encryption that tell whether the ETag is an MD5.

    A hook on the client sees the ranged GETs s3transfer makes as well as the bridge's own.
    """

    depths: dict[tuple[str, str], int] = field(default_factory=dict)
    modified: dict[tuple[str, str], int] = field(default_factory=dict)
    fields: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def before(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["bridge_object"] = (params.get("Bucket"), params.get("Key"))

    def after(self, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        target = context.get("bridge_object")
        if target is None or "Error" in parsed:
            return
        depth = parse_depth(parsed.get("Metadata", {}))
        modified = parsed.get("LastModified")
        kept = {name: parsed[name] for name in _DIGEST_FIELDS if name in parsed}
        with self.lock:
            self.depths[target] = depth
            self.fields[target] = kept
            if modified is not None:
                self.modified[target] = _epoch_ns(modified)

    def take(self, bucket: str, keys: Iterable[str]) -> tuple[dict[str, int], dict[str, int]]:
        """The depths and LastModified (ns) recorded for ``keys``, forgetting them."""
        keys = list(keys)
        with self.lock:
            for key in keys:
                self.fields.pop((bucket, key), None)
            depths = {k: self.depths.pop((bucket, k)) for k in keys if (bucket, k) in self.depths}
            modified = {
                k: self.modified.pop((bucket, k)) for k in keys if (bucket, k) in self.modified
            }
        return depths, modified

    def fields_of(self, bucket: str, key: str) -> dict[str, Any]:
        with self.lock:
            return dict(self.fields.get((bucket, key), {}))


_DIGEST_FIELDS = ("ETag", "ServerSideEncryption", "SSECustomerAlgorithm")


def parse_depth(metadata: dict[str, str]) -> int:
    """The chain depth stored in user metadata; 0 when absent or not a number."""
    try:
        return max(0, int(metadata.get(DEPTH_METADATA, "0")))
    except ValueError:
        return 0


class Storage:
    """The S3 operations of one engine. Thread-safe; each pull or push runs ``concurrency``
    transfers wide (large objects share one s3transfer manager)."""

    def __init__(self, client: S3Client, concurrency: int) -> None:
        self.client = client
        self._concurrency = concurrency
        self._large: LargeTransfers | None = None
        self._large_lock = threading.Lock()
        self._responses = _ResponseRecorder()
        events = client.meta.events
        events.register("before-parameter-build.s3.GetObject", self._responses.before)
        events.register("after-call.s3.GetObject", self._responses.after)

    def list_objects(self, bucket: str, prefix: str) -> list[ListedObject]:
        """Every object under ``prefix`` (all pages of ListObjectsV2)."""
        paginator = self.client.get_paginator("list_objects_v2")
        listed = []
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for entry in page.get("Contents", []):
                listed.append(_listed_object(dict(entry)))
        return listed

    # --- pull ------------------------------------------------------------------------------

    def pull(
        self,
        bucket: str,
        items: Sequence[PullItem],
        root: Path,
        progress: Progress | None = None,
    ) -> PullResult:
        """Download listed ``items`` under ``root`` in parallel, streaming to disk, verified.

        Sizes and ETags come from the listing: no HeadObject. Each file's mtime is set to its
        object's listed LastModified (the snapshot relies on it). Raises ``IntegrityError``
        when bytes do not match the object's checksum or ETag.
        """
        return self._pull(bucket, items, root, events=False, progress=progress)

    def fetch(
        self,
        bucket: str,
        items: Sequence[PullItem],
        root: Path,
        progress: Progress | None = None,
    ) -> PullResult:
        """Download the triggering objects ``items`` (``PULL_SCOPE=events``) under ``root``.

        Sized from their events: one GetObject each (ranged GETs for large ones), no
        HeadObject. An object gone since its event (404) is reported in ``missing``, not
        raised; one replaced since its event is pulled as it is now. Each file's mtime is set
        to the LastModified of the GetObject response.
        """
        return self._pull(bucket, items, root, events=True, progress=progress)

    def _pull(
        self,
        bucket: str,
        items: Sequence[PullItem],
        root: Path,
        events: bool,
        progress: Progress | None,
    ) -> PullResult:
        for folder in {(root / item.path).parent for item in items}:
            folder.mkdir(parents=True, exist_ok=True)

        def pull_one(item: PullItem) -> bool | None:
            outcome = self._pull_one(bucket, item, root / item.path, events)
            if progress is not None:
                progress.object_done(item.obj.size if outcome is not None else 0)
            return outcome

        outcomes = self._run_all([functools.partial(pull_one, item) for item in items])
        keys = [item.obj.key for item in items]
        missing = {key for key, outcome in zip(keys, outcomes, strict=True) if outcome is None}
        pulled = [item for item in items if item.obj.key not in missing]
        depths, modified = self._responses.take(bucket, keys)
        for item in pulled:
            stamp = modified.get(item.obj.key) if events else item.obj.last_modified_ns
            if stamp is not None:
                os.utime(root / item.path, ns=(stamp, stamp), follow_symlinks=False)
        return PullResult(
            depths={key: depth for key, depth in depths.items() if key not in missing},
            unverified=tuple(k for k, ok in zip(keys, outcomes, strict=True) if ok is False),
            missing=tuple(key for key in keys if key in missing),
        )

    def _pull_one(self, bucket: str, item: PullItem, path: Path, events: bool) -> bool | None:
        """Download one object to ``path``: True verified, False not verifiable, None gone
        (events scope only; in prefix scope a 404 is an error)."""
        obj = item.obj
        try:
            if obj.size < MULTIPART_THRESHOLD:  # an event without a size: 0, one plain GET
                return self._get_small(bucket, obj.key, path)
            if events and not obj.etag:
                return self._get_large(bucket, obj, path, pinned=False)
            try:
                return self._get_large(bucket, obj, path, pinned=True)
            except ClientError as exc:
                if not events or error_code(exc) not in _STALE:
                    raise
                # Replaced since its event: let s3transfer learn the new size and ETag.
                return self._get_large(bucket, obj, path, pinned=False)
        except ClientError as exc:
            if events and error_code(exc) in _MISSING:
                path.unlink(missing_ok=True)
                return None
            raise

    def _get_small(self, bucket: str, key: str, path: Path) -> bool:
        """One GetObject streamed to disk, hashed on the way (retried if the body breaks)."""
        for attempt in range(1, STREAMING_ATTEMPTS + 1):
            response = self.client.get_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
            body = response["Body"]
            # botocore checks the checksums it can compute itself, raising at the end of the
            # body: the bridge hashes only what it leaves unchecked (an MD5 ETag, or more).
            by_botocore = isinstance(body, StreamingChecksumBody)
            expected = None if by_botocore else integrity.expected_digest(response)
            digest = expected.new_hash() if expected else None
            try:
                with path.open("wb") as stream:
                    for chunk in body.iter_chunks(_CHUNK):
                        stream.write(chunk)
                        if digest is not None:
                            digest.update(chunk)
            except RETRYABLE_STREAMING_ERRORS:
                if attempt == STREAMING_ATTEMPTS:
                    raise
                continue
            except FlexibleChecksumError as exc:  # botocore checked a checksum it can compute
                raise IntegrityError(f"s3://{bucket}/{key}: {exc}") from exc
            finally:
                body.close()
            if by_botocore:
                return True
            if expected is None or digest is None:
                return False
            _check(bucket, key, expected, digest.digest())
            return True
        raise AssertionError("unreachable")  # pragma: no cover

    def _get_large(self, bucket: str, obj: ListedObject, path: Path, pinned: bool) -> bool:
        """Ranged GETs through s3transfer, hashed as the file fills, checked against S3's digest.

        ``pinned``: size and ETag as listed (``If-Match`` on every range); else s3transfer
        learns them with a HeadObject. Ranged responses carry no checksum: the digest is the
        ETag's when it is an MD5, else it comes from HeadObject (``_expected_from_head``),
        asked before the download when the ETag is known so the bytes are hashed as they land.
        """
        guess: integrity.Expected | None = None
        settled = False
        if pinned and integrity.etag_is_md5({"ETag": obj.etag}):
            # Confirmed after the download, once the responses tell there is no SSE-KMS.
            guess = integrity.Expected("MD5", bytes.fromhex(obj.etag), "ETag")
        elif pinned:
            guess, settled = self._expected_from_head(bucket, obj.key, obj.etag), True
        with path.open("w+b") as stream:
            writer = HashingFile(stream, guess.new_hash() if guess else None)
            try:
                self._large_transfers().download(bucket, obj if pinned else None, obj.key, writer)
            finally:
                writer.close()
            fields = self._responses.fields_of(bucket, obj.key)
            etag = str(fields.get("ETag", "")).strip('"') or obj.etag
            expected = guess
            if not settled:
                expected = integrity.expected_digest({**fields, "ETag": etag})
                if expected is None:
                    expected = self._expected_from_head(bucket, obj.key, etag)
            if expected is None:
                return False
            digest = writer.digest() if expected == guess else None
            if digest is None:  # not hashed on the way (or a range was written twice)
                digest = _hash_back(stream, expected)
            if digest != expected.digest and expected.part_sizes is not None:
                # Parts of equal size were assumed: learn each part's size before concluding.
                exact = self._part_sizes(bucket, obj.key, len(expected.part_sizes))
                if exact != expected.part_sizes:
                    expected = expected.with_parts(exact)
                    digest = _hash_back(stream, expected)
        _check(bucket, obj.key, expected, digest)
        return True

    def _expected_from_head(self, bucket: str, key: str, etag: str) -> integrity.Expected | None:
        """The digest S3 states for ``key`` at ``etag``: a full-object checksum, else (multipart
        objects) a composite checksum or the ETag, over parts sized as part 1 says."""
        head = self.client.head_object(
            Bucket=bucket, Key=key, IfMatch=f'"{etag}"', ChecksumMode="ENABLED"
        )
        fields = dict(head)
        expected = integrity.expected_digest(fields)
        if expected is not None or "-" not in etag:
            return expected
        first = self.client.head_object(Bucket=bucket, Key=key, PartNumber=1)
        size, parts = int(head.get("ContentLength", 0)), int(first.get("PartsCount", 0))
        sizes = integrity.equal_parts(size, int(first.get("ContentLength", 0)), parts)
        if sizes is None:  # not cut in equal parts: ask each part's size
            sizes = self._part_sizes(bucket, key, parts)
        return integrity.expected_for_parts(fields, sizes) if sum(sizes) == size else None

    def _part_sizes(self, bucket: str, key: str, parts: int) -> tuple[int, ...]:
        return tuple(
            int(self.client.head_object(Bucket=bucket, Key=key, PartNumber=n)["ContentLength"])
            for n in range(1, parts + 1)
        )

    def _large_transfers(self) -> LargeTransfers:
        with self._large_lock:
            if self._large is None:
                from bridge.multipart import LargeTransfers  # s3transfer: only when needed

                self._large = LargeTransfers(self.client, self._concurrency, MULTIPART_THRESHOLD)
            return self._large

    # --- push ------------------------------------------------------------------------------

    def push(
        self,
        bucket: str,
        root: Path,
        uploads: Sequence[Upload],
        progress: Progress | None = None,
    ) -> PushResult:
        """Upload ``uploads`` (files under ``root``) to ``bucket`` in parallel.

        Each file is opened once without following symlinks (at any level under ``root``)
        and must be a regular file; it is hashed and uploaded from that descriptor, so a
        file swapped after the diff is never read from elsewhere. Single-part uploads carry
        ``Content-MD5``. Returns what was uploaded, skipped as unchanged, or refused.
        """

        def push_one(upload: Upload) -> int | str | None:
            outcome = self._push_one(bucket, root, upload)
            if progress is not None:
                progress.object_done(outcome if isinstance(outcome, int) else 0)
            return outcome

        outcomes = self._run_all([functools.partial(push_one, upload) for upload in uploads])
        uploaded, unchanged, sent, refused = [], 0, 0, {}
        for upload, outcome in zip(uploads, outcomes, strict=True):
            if isinstance(outcome, str):
                refused[upload.path] = outcome
            elif outcome is None:
                unchanged += 1
            else:
                uploaded.append(upload.key)
                sent += outcome
        return PushResult(tuple(uploaded), unchanged, sent, refused)

    def _push_one(self, bucket: str, root: Path, upload: Upload) -> int | str | None:
        """Bytes uploaded; None if unchanged; a reason (str) if the file was refused."""
        try:
            fd = open_beneath(root, upload.path)
        except (OSError, ValueError) as exc:
            _log_refused(upload, str(exc))
            return str(exc)
        with os.fdopen(fd, "rb") as stream:
            size = os.fstat(fd).st_size
            single_part = size < MULTIPART_THRESHOLD
            comparable = upload.known_etag is not None and "-" not in upload.known_etag
            md5 = _md5_of(stream) if single_part or comparable else None
            if md5 is not None and comparable and md5.hex() == upload.known_etag:
                return None
            extra: dict[str, Any] = {
                "ContentType": upload.content_type,
                "Metadata": upload.metadata,
            }
            if single_part:
                assert md5 is not None
                self._put_verified(bucket, upload.key, stream, md5, extra)
            else:
                self._large_transfers().upload(_reopenable(stream), bucket, upload.key, extra)
        return size

    def _put_verified(
        self, bucket: str, key: str, stream: IO[bytes], md5: bytes, extra: dict[str, Any]
    ) -> None:
        """PutObject with ``Content-MD5``, then the stored ETag checked against the MD5.

        S3 refuses a body that does not match ``Content-MD5``; a store that does not check it
        (moto, some S3-compatible servers) answers with the ETag of what it kept: a mismatch
        is uploaded again, and fails the push if it persists.
        """
        for attempt in range(1, UPLOAD_ATTEMPTS + 1):
            stream.seek(0)
            response = self.client.put_object(
                Bucket=bucket,
                Key=key,
                Body=stream,
                ContentMD5=base64.b64encode(md5).decode("ascii"),
                **extra,
            )
            stored = str(response.get("ETag", "")).strip('"')
            fields = {**response, "ETag": stored}
            if not integrity.etag_is_md5(fields) or stored == md5.hex():
                return
            if attempt == UPLOAD_ATTEMPTS:
                raise IntegrityError(
                    f"s3://{bucket}/{key}: the stored object's ETag is {stored}, the MD5 of "
                    f"the file uploaded {md5.hex()}"
                )

    # --- other -----------------------------------------------------------------------------

    def stored_etags(self, bucket: str, keys: Sequence[str]) -> dict[str, str]:
        """ETag (without quotes) of each of ``keys`` stored in ``bucket``: one HeadObject each,
        in parallel.

        404 and 403 both mean "not known to exist" (without ``s3:ListBucket``, S3 answers 403
        for a missing key): such keys are absent from the result.
        """
        found = self._run_all([functools.partial(self._stored_etag, bucket, key) for key in keys])
        return {key: etag for key, etag in zip(keys, found, strict=True) if etag is not None}

    def _stored_etag(self, bucket: str, key: str) -> str | None:
        try:
            response = self.client.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if error_code(exc) in _MISSING | _DENIED:
                return None
            raise
        return str(response.get("ETag", "")).strip('"')

    def bucket_exists(self, bucket: str) -> bool | None:
        """HeadBucket: True, False when it does not exist, None when access is denied."""
        try:
            self.client.head_bucket(Bucket=bucket)
        except ClientError as exc:
            code = error_code(exc)
            if code in ("404", "NoSuchBucket", "NotFound"):
                return False
            if code in _DENIED:
                return None
            raise
        return True

    def depth_of(self, bucket: str, key: str) -> int:
        """The chain depth of an object that was not pulled (HeadObject); 0 if it is gone."""
        try:
            response = self.client.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if error_code(exc) in _MISSING:
                return 0
            raise
        return parse_depth(response.get("Metadata", {}))

    def etags(self, bucket: str, prefix: str) -> dict[str, str]:
        """ETag (without quotes) of every object under ``prefix``, by key."""
        return {o.key: o.etag for o in self.list_objects(bucket, prefix)}

    def _run_all(self, tasks: Sequence[Callable[[], T]]) -> list[T]:
        """Run ``tasks`` ``concurrency`` wide; on the first failure cancel what has not
        started, wait for what has (nothing may still write into the root folder), raise it.

        A pool per call: groups running side by side each get their own width, and a thread
        costs far less to start than one request takes.
        """
        if len(tasks) <= 1:
            return [task() for task in tasks]
        width = min(self._concurrency, len(tasks))
        with ThreadPoolExecutor(width, thread_name_prefix="bridge-transfer") as pool:
            futures: list[Future[T]] = [pool.submit(task) for task in tasks]
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
        return [future.result() for future in futures]


class HashingFile:
    """The file s3transfer writes ranges into (seek, write), hashed in order by a thread of
    its own as the written prefix grows: the download's threads never wait for the hash,
    which reads the bytes back (from the page cache) behind the writes.

    A range written again over bytes already hashed (s3transfer retries a broken range from
    its start) may differ from what was hashed: then ``digest`` is None and the caller reads
    the file back.
    """

    def __init__(self, stream: IO[bytes], digest: integrity.Hash | None) -> None:
        self._stream = stream
        self._hash = digest
        self._ahead: dict[int, int] = {}  # offset -> length, written beyond the prefix
        self._written = 0  # the written prefix
        self._claimed = 0  # bytes the hashing thread has taken
        self._finished = False
        self._spoilt = False
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        if digest is not None:
            self._thread = threading.Thread(target=self._follow, name="bridge-hash", daemon=True)
            self._thread.start()

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self._stream.seek(offset, whence)

    def tell(self) -> int:
        return self._stream.tell()

    def write(self, data: bytes) -> int:
        offset = self._stream.tell()
        written = self._stream.write(data)
        if self._hash is None:
            return written
        self._stream.flush()  # the hashing thread reads through the descriptor
        with self._changed:
            if offset < self._claimed:
                self._spoilt = True
            elif offset <= self._written:
                self._written = max(self._written, offset + written)
                while self._written in self._ahead:
                    self._written += self._ahead.pop(self._written)
            else:
                self._ahead[offset] = max(written, self._ahead.get(offset, 0))
            self._changed.notify()
        return written

    def _follow(self) -> None:
        assert self._hash is not None
        try:
            while True:
                with self._changed:
                    while self._claimed == self._written and not self._finished:
                        self._changed.wait()
                    if self._spoilt or self._claimed == self._written:
                        return
                    start, end = self._claimed, self._written
                    self._claimed = end
                for position in range(start, end, 1024 * 1024):
                    length = min(1024 * 1024, end - position)
                    self._hash.update(os.pread(self._stream.fileno(), length, position))
        except (OSError, ValueError):
            with self._changed:
                self._spoilt = True

    def close(self) -> None:
        """Stop the hashing thread (after the download, whether it succeeded or not)."""
        with self._changed:
            self._finished = True
            self._changed.notify()
        if self._thread is not None:
            self._thread.join()

    def digest(self) -> bytes | None:
        """The hash of the whole file if it was hashed in order as written, else None."""
        self.close()
        size = os.fstat(self._stream.fileno()).st_size
        with self._changed:
            whole = self._claimed == size and not self._ahead and not self._spoilt
        return self._hash.digest() if self._hash is not None and whole else None


def open_beneath(root: Path, relative: str) -> int:
    """A read-only descriptor of the regular file at ``relative`` under ``root``.

    Every component is opened with ``O_NOFOLLOW`` from its parent's descriptor, so neither
    the file nor a folder on its way may be a symlink; FIFOs do not block the open.
    Raises OSError (ELOOP, ENOTDIR, ENOENT...) or ValueError (not a regular file).
    """
    nofollow = os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    folder = os.open(root, os.O_RDONLY | os.O_DIRECTORY | nofollow)
    try:
        *parents, name = relative.split("/")
        for part in parents:
            inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | nofollow, dir_fd=folder)
            os.close(folder)
            folder = inner
        fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | nofollow, dir_fd=folder)
    finally:
        os.close(folder)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ValueError("no longer a regular file")
    os.set_blocking(fd, True)
    return fd


def _log_refused(upload: Upload, why: str) -> None:
    """An output the diff found that can no longer be uploaded safely."""
    log(logger, logging.WARNING, "output not uploaded", path=upload.path, why=why)


def _reopenable(stream: IO[bytes]) -> str:
    # s3transfer opens a file once per part, by name: /proc/self/fd/N names the very file
    # this descriptor holds (whatever is at the original path now). Elsewhere than Linux,
    # the name cannot be pinned: the push fails rather than upload whatever the name holds.
    name = f"/proc/self/fd/{stream.fileno()}"
    if not os.path.exists(name):
        raise OSError(f"{name} is not available: multipart uploads need Linux's /proc")
    return name


def _md5_of(stream: IO[bytes]) -> bytes:
    digest = hashlib.md5(usedforsecurity=False)
    while chunk := stream.read(1024 * 1024):
        digest.update(chunk)
    return digest.digest()


def _hash_back(stream: IO[bytes], expected: integrity.Expected) -> bytes:
    """The digest of the whole file, read from its start."""
    hashed = expected.new_hash()
    stream.seek(0)
    while chunk := stream.read(1024 * 1024):
        hashed.update(chunk)
    return hashed.digest()


def _check(bucket: str, key: str, expected: integrity.Expected, digest: bytes) -> None:
    if digest != expected.digest:
        raise IntegrityError(f"s3://{bucket}/{key}: {expected.describe(digest)}")


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
