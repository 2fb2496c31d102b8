"""Checking pulled bytes against what S3 states (docs/design.md §2 step 6): the digest
asked of HeadObject when no response carried one, the hash kept as a large file fills, and
the verdict. Which digest applies is decided by the pure ``bridge.integrity``."""

from __future__ import annotations

import os
import threading
from typing import IO, TYPE_CHECKING, Any

from bridge import integrity

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


class IntegrityError(Exception):
    """Downloaded bytes do not match what S3 says the object holds (the group fails)."""


def check(bucket: str, key: str, expected: integrity.Expected, digest: bytes) -> None:
    """Raise ``IntegrityError`` (naming the object) unless ``digest`` is the expected one."""
    if digest != expected.digest:
        raise IntegrityError(f"s3://{bucket}/{key}: {expected.describe(digest)}")


def expected_from_head(
    client: S3Client, bucket: str, key: str, etag: str, head: dict[str, Any] | None = None
) -> integrity.Expected | None:
    """The digest S3 states for ``key`` at ``etag``: a full-object checksum, else (multipart
    objects) a composite checksum or the ETag, over parts sized as part 1 says.

    ``head``: a HeadObject answer (``ChecksumMode=ENABLED``) already at hand for this ETag.
    """
    if head is None:
        head = dict(
            client.head_object(Bucket=bucket, Key=key, IfMatch=f'"{etag}"', ChecksumMode="ENABLED")
        )
    fields = head
    expected = integrity.expected_digest(fields)
    if expected is not None or "-" not in etag:
        return expected
    first = client.head_object(Bucket=bucket, Key=key, PartNumber=1)
    size, parts = int(head.get("ContentLength", 0)), int(first.get("PartsCount", 0))
    sizes = integrity.equal_parts(size, int(first.get("ContentLength", 0)), parts)
    if sizes is None:  # not cut in equal parts: ask each part's size
        sizes = part_sizes(client, bucket, key, parts)
    return integrity.expected_for_parts(fields, sizes) if sum(sizes) == size else None


def part_sizes(client: S3Client, bucket: str, key: str, parts: int) -> tuple[int, ...]:
    """The size of each of the ``parts`` parts of a multipart object (HeadObject each)."""
    return tuple(
        int(client.head_object(Bucket=bucket, Key=key, PartNumber=n)["ContentLength"])
        for n in range(1, parts + 1)
    )


def hash_back(stream: IO[bytes], expected: integrity.Expected) -> bytes:
    """The digest of the whole file, read from its start."""
    hashed = expected.new_hash()
    stream.seek(0)
    while chunk := stream.read(1024 * 1024):
        hashed.update(chunk)
    return hashed.digest()


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
