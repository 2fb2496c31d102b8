"""Large downloads as ranged GETs, each segment hashed on the thread that writes it
(docs/design.md §2 step 6, §13 P4).

The object is cut into segments (``integrity.segment_lengths``: at most 8 MiB, or one per
part when the digest is per part). ``concurrency`` threads each GET one segment at a time
with ``Range`` and ``If-Match`` on the object's ETag (a replaced object fails with 412
instead of mixing two versions), write its body in place with ``pwrite`` chunk by chunk,
and feed the same chunk to that segment's hash before reading the next: hashlib and zlib
release the GIL, so hashing runs beside the other threads' downloads, and the file is never
read back. Memory in flight is one chunk per thread: no queue of downloaded chunks.
"""

from __future__ import annotations

import functools
import itertools
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from bridge.integrity import Hash
from bridge.transfer import RETRYABLE_STREAMING_ERRORS, STREAMING_ATTEMPTS, run_all

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

SEGMENT = 8 * 1024 * 1024
# Below glibc's mmap threshold (128 KiB), so the blocks each thread reads come back to the
# same malloc arenas and are reused at once: peak RSS stays flat however the threads interleave.
SEGMENT_CHUNK = 64 * 1024


class ShortBody(ConnectionError):
    """A segment's body ended before its length (retried like a broken connection)."""


class RangeIgnored(OSError):
    """The server answered a ranged GET with another length than the range's."""


def download(
    client: S3Client,
    bucket: str,
    key: str,
    etag: str,
    fd: int,
    lengths: Sequence[int],
    concurrency: int,
    new_hash: Callable[[], Hash] | None,
) -> list[bytes]:
    """Fetch the object into ``fd`` (truncated to its size) in segments of ``lengths``, in
    parallel; the digest of each segment by ``new_hash`` (none without it), in order.

    S3 errors (412 when the ETag no longer matches, 404) are raised as ``ClientError``.
    """
    os.ftruncate(fd, sum(lengths))
    offsets = [0, *itertools.accumulate(lengths)][:-1]
    fetch = functools.partial(_segment, client, bucket, key, etag, fd, new_hash)
    tasks = [functools.partial(fetch, o, n) for o, n in zip(offsets, lengths, strict=True)]
    return run_all(tasks, concurrency)


def _segment(
    client: S3Client,
    bucket: str,
    key: str,
    etag: str,
    fd: int,
    new_hash: Callable[[], Hash] | None,
    offset: int,
    length: int,
) -> bytes:
    """One segment GET, written and hashed as it streams; again from its start if broken."""
    for attempt in range(1, STREAMING_ATTEMPTS + 1):
        response = client.get_object(
            Bucket=bucket,
            Key=key,
            Range=f"bytes={offset}-{offset + length - 1}",
            IfMatch=f'"{etag}"',
        )
        body = response["Body"]
        if int(response.get("ContentLength", -1)) != length:
            body.close()
            raise RangeIgnored(
                f"s3://{bucket}/{key}: asked for {length} bytes at {offset}, "
                f"answered {response.get('ContentLength')} ({response.get('ContentRange')})"
            )
        digest = new_hash() if new_hash is not None else None
        position = offset
        try:
            for chunk in body.iter_chunks(SEGMENT_CHUNK):
                view = memoryview(chunk)
                while view:
                    written = os.pwrite(fd, view, position)
                    position += written
                    view = view[written:]
                if digest is not None:
                    digest.update(chunk)
            if position != offset + length:
                raise ShortBody(f"{position - offset} of {length} bytes")
        except RETRYABLE_STREAMING_ERRORS:
            if attempt == STREAMING_ATTEMPTS:
                raise
            continue
        finally:
            body.close()
        return digest.digest() if digest is not None else b""
    raise AssertionError("unreachable")  # pragma: no cover
