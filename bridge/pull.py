"""Pulling objects into a root folder (docs/design.md §2 step 6, §6): plain GetObject
streamed to disk below ``MULTIPART_THRESHOLD``, parallel ranged GETs above it
(``bridge.ranged``); every object verified end to end (``bridge.verification``), sizes from
the listing (no HeadObject for a small object)."""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from botocore.exceptions import ClientError, FlexibleChecksumError
from botocore.httpchecksum import StreamingChecksumBody

from bridge import integrity, ranged
from bridge.clients import MISSING, STALE, error_code
from bridge.listing import epoch_ns, parse_depth
from bridge.paths import ListedObject, PullItem
from bridge.progress import Progress
from bridge.transfer import (
    CHUNK,
    MULTIPART_THRESHOLD,
    RETRYABLE_STREAMING_ERRORS,
    STREAMING_ATTEMPTS,
    run_all,
)
from bridge.verification import (
    HashingFile,
    IntegrityError,
    check,
    expected_from_head,
    hash_back,
    part_sizes,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from bridge.multipart import LargeTransfers


@dataclass(frozen=True)
class PullResult:
    """What a pull learnt: the ``bridge-depth`` of each pulled object, by key; the objects
    that could not be verified (no checksum this process can compute, no MD5 ETag); and,
    for ``fetch``, the objects gone since their event (404)."""

    depths: dict[str, int]
    unverified: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    # The ETag (unquoted) each GetObject answered: for ``fetch``, what was really pulled.
    etags: dict[str, str] = field(default_factory=dict)


@dataclass
class ResponseRecorder:
    """Keeps what GetObject responses say of each object, so pulls need no HeadObject:
    ``bridge-depth``, LastModified (an events-scope pull learns it only there) and the ETag.

    A hook on the client sees the ranged GETs s3transfer makes as well as the bridge's own.
    """

    depths: dict[tuple[str, str], int] = field(default_factory=dict)
    modified: dict[tuple[str, str], int] = field(default_factory=dict)
    etags: dict[tuple[str, str], str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def before(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["bridge_object"] = (params.get("Bucket"), params.get("Key"))

    def after(self, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        target = context.get("bridge_object")
        if target is None or "Error" in parsed:
            return
        depth = parse_depth(parsed.get("Metadata", {}))
        modified = parsed.get("LastModified")
        etag = parsed.get("ETag")
        with self.lock:
            self.depths[target] = depth
            if etag is not None:
                self.etags[target] = str(etag).strip('"')
            else:
                self.etags.pop(target, None)
            if modified is not None:
                self.modified[target] = epoch_ns(modified)

    def take(
        self, bucket: str, keys: Iterable[str]
    ) -> tuple[dict[str, int], dict[str, int], dict[str, str]]:
        """The depths, LastModified (ns) and ETags recorded for ``keys``, forgetting them."""
        keys = list(keys)
        with self.lock:
            etags = {k: self.etags.pop((bucket, k)) for k in keys if (bucket, k) in self.etags}
            depths = {k: self.depths.pop((bucket, k)) for k in keys if (bucket, k) in self.depths}
            modified = {
                k: self.modified.pop((bucket, k)) for k in keys if (bucket, k) in self.modified
            }
        return depths, modified, etags


class Puller:
    """Pulls on one client, ``concurrency`` objects wide; objects at or above
    ``MULTIPART_THRESHOLD`` go through ``large()`` (s3transfer, created on first use).

    Registers hooks on the client's GetObject calls (``ResponseRecorder``).
    """

    def __init__(
        self, client: S3Client, concurrency: int, large: Callable[[], LargeTransfers]
    ) -> None:
        self.client = client
        self._concurrency = concurrency
        self._large = large
        self._responses = ResponseRecorder()
        events = client.meta.events
        events.register("before-parameter-build.s3.GetObject", self._responses.before)
        events.register("after-call.s3.GetObject", self._responses.after)

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

        tasks = [functools.partial(pull_one, item) for item in items]
        outcomes = run_all(tasks, self._concurrency)
        keys = [item.obj.key for item in items]
        missing = {key for key, outcome in zip(keys, outcomes, strict=True) if outcome is None}
        pulled = [item for item in items if item.obj.key not in missing]
        depths, modified, etags = self._responses.take(bucket, keys)
        for item in pulled:
            stamp = modified.get(item.obj.key) if events else item.obj.last_modified_ns
            if stamp is not None:
                os.utime(root / item.path, ns=(stamp, stamp), follow_symlinks=False)
        return PullResult(
            depths={key: depth for key, depth in depths.items() if key not in missing},
            unverified=tuple(k for k, ok in zip(keys, outcomes, strict=True) if ok is False),
            missing=tuple(key for key in keys if key in missing),
            etags={key: etag for key, etag in etags.items() if key not in missing},
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
                if not events or error_code(exc) not in STALE:
                    raise
                # Replaced since its event: let s3transfer learn the new size and ETag.
                return self._get_large(bucket, obj, path, pinned=False)
        except ClientError as exc:
            if events and error_code(exc) in MISSING:
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
                    for chunk in body.iter_chunks(CHUNK):
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
            check(bucket, key, expected, digest.digest())
            return True
        raise AssertionError("unreachable")  # pragma: no cover

    def _get_large(self, bucket: str, obj: ListedObject, path: Path, pinned: bool) -> bool:
        """A large object in segments, each hashed as it is written, checked against S3's digest.

        ``pinned``: size and ETag as listed; else one HeadObject learns them. Ranged responses
        carry no checksum: the digest comes from HeadObject before the download
        (``expected_from_head``: a full-object checksum, a composite one or the ETag). A
        digest that can be assembled from segments (a CRC32, or any per-part digest) is
        hashed on the downloading threads (``bridge.ranged``); an MD5 or SHA of the whole
        object, which only one ordered pass can compute, goes through s3transfer and a
        hashing thread following the writes (``HashingFile``). Every range is pinned to the
        ETag with ``If-Match``.
        """
        head: dict[str, Any] | None = None
        if not pinned:
            answer = self.client.head_object(Bucket=bucket, Key=obj.key, ChecksumMode="ENABLED")
            head = dict(answer)
            obj = ListedObject(
                key=obj.key,
                size=answer["ContentLength"],
                etag=answer["ETag"].strip('"'),
                last_modified_ns=obj.last_modified_ns,
                listing=obj.listing,
            )
        expected = expected_from_head(self.client, bucket, obj.key, obj.etag, head)
        lengths = integrity.segment_lengths(expected, obj.size, ranged.SEGMENT)
        if lengths is None:
            assert expected is not None
            return self._get_in_order(bucket, obj, path, expected)
        with path.open("w+b") as stream:
            digests = ranged.download(
                self.client,
                bucket,
                obj.key,
                obj.etag,
                stream.fileno(),
                lengths,
                self._concurrency,
                expected.new_segment_hash if expected is not None else None,
            )
            if expected is None:
                return False
            digest = integrity.assemble(expected, lengths, digests)
            if digest != expected.digest and expected.part_sizes is not None:
                digest, expected = self._with_exact_parts(bucket, obj.key, stream, expected, digest)
        check(bucket, obj.key, expected, digest)
        return True

    def _get_in_order(
        self, bucket: str, obj: ListedObject, path: Path, expected: integrity.Expected
    ) -> bool:
        """s3transfer's ranged GETs, hashed in order by a thread following the writes."""
        with path.open("w+b") as stream:
            writer = HashingFile(stream, expected.new_hash())
            try:
                self._large().download(bucket, obj, obj.key, writer)
            finally:
                writer.close()
            digest = writer.digest()
            if digest is None:  # a range was written twice: hash the file as it is now
                digest = hash_back(stream, expected)
            if digest != expected.digest and expected.part_sizes is not None:
                digest, expected = self._with_exact_parts(bucket, obj.key, stream, expected, digest)
        check(bucket, obj.key, expected, digest)
        return True

    def _with_exact_parts(
        self, bucket: str, key: str, stream: IO[bytes], expected: integrity.Expected, digest: bytes
    ) -> tuple[bytes, integrity.Expected]:
        """Parts of equal size were assumed: learn each part's size, and if they differ,
        hash the file again over the true boundaries (the rare case that reads it back)."""
        assert expected.part_sizes is not None
        exact = part_sizes(self.client, bucket, key, len(expected.part_sizes))
        if exact == expected.part_sizes:
            return digest, expected
        expected = expected.with_parts(exact)
        return hash_back(stream, expected), expected
