"""Uploading outputs (docs/design.md §2 step 10, §11): each file opened once without
following symlinks, hashed and uploaded from that descriptor; single-part uploads carry
``Content-MD5`` and the stored ETag is checked; unchanged outputs are skipped."""

from __future__ import annotations

import base64
import functools
import hashlib
import logging
import os
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from bridge import integrity
from bridge.logs import log
from bridge.progress import Progress
from bridge.transfer import MULTIPART_THRESHOLD, run_all
from bridge.verification import IntegrityError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from bridge.multipart import LargeTransfers

logger = logging.getLogger("bridge.storage")

UPLOAD_ATTEMPTS = 3


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
class PushResult:
    """What a push did: keys uploaded, outputs unchanged (skipped), bytes sent, and outputs
    not uploaded because they were no longer regular files under the root (path -> why)."""

    uploaded: tuple[str, ...] = ()
    unchanged: int = 0
    bytes_out: int = 0
    refused: dict[str, str] = field(default_factory=dict)
    # The ETag (unquoted) now stored at each output's key, uploaded or unchanged: what a
    # lineage record keeps.
    etags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Pushed:
    """One output stored: bytes sent (None when unchanged, nothing sent) and its ETag."""

    sent: int | None
    etag: str


class Pusher:
    """Pushes on one client, ``concurrency`` uploads wide; files at or above
    ``MULTIPART_THRESHOLD`` go through ``large()`` (s3transfer, created on first use)."""

    def __init__(
        self, client: S3Client, concurrency: int, large: Callable[[], LargeTransfers]
    ) -> None:
        self.client = client
        self._concurrency = concurrency
        self._large = large

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

        def push_one(upload: Upload) -> _Pushed | str:
            outcome = self._push_one(bucket, root, upload)
            if progress is not None:
                progress.object_done(outcome.sent or 0 if isinstance(outcome, _Pushed) else 0)
            return outcome

        tasks = [functools.partial(push_one, upload) for upload in uploads]
        outcomes = run_all(tasks, self._concurrency)
        uploaded, unchanged, sent, refused, etags = [], 0, 0, {}, {}
        for upload, outcome in zip(uploads, outcomes, strict=True):
            if isinstance(outcome, str):
                refused[upload.path] = outcome
                continue
            etags[upload.key] = outcome.etag
            if outcome.sent is None:
                unchanged += 1
            else:
                uploaded.append(upload.key)
                sent += outcome.sent
        return PushResult(tuple(uploaded), unchanged, sent, refused, etags)

    def _push_one(self, bucket: str, root: Path, upload: Upload) -> _Pushed | str:
        """What was stored (``sent`` None if unchanged); a reason if the file was refused."""
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
                return _Pushed(None, md5.hex())
            extra: dict[str, Any] = {
                "ContentType": upload.content_type,
                "Metadata": upload.metadata,
            }
            if single_part:
                assert md5 is not None
                etag = self._put_verified(bucket, upload.key, stream, md5, extra)
            else:
                self._large().upload(_reopenable(stream), bucket, upload.key, extra)
                # s3transfer does not hand back CompleteMultipartUpload's answer.
                head = self.client.head_object(Bucket=bucket, Key=upload.key)
                etag = str(head.get("ETag", "")).strip('"')
        return _Pushed(size, etag)

    def _put_verified(
        self, bucket: str, key: str, stream: IO[bytes], md5: bytes, extra: dict[str, Any]
    ) -> str:
        """PutObject with ``Content-MD5``, then the stored ETag checked against the MD5.

        S3 refuses a body that does not match ``Content-MD5``; a store that does not check it
        (moto, some S3-compatible servers) answers with the ETag of what it kept: a mismatch
        is uploaded again, and fails the push if it persists.
        """
        stored = ""
        for _ in range(UPLOAD_ATTEMPTS):
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
                return stored
        raise IntegrityError(
            f"s3://{bucket}/{key}: the stored object's ETag is {stored}, the MD5 of "
            f"the file uploaded {md5.hex()}"
        )


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
