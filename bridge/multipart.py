"""Large-object transfers through s3transfer: ranged parallel GETs, multipart uploads.

Imported only when an object at or above ``MULTIPART_THRESHOLD`` is transferred, so
s3transfer is not loaded at start-up. s3transfer says its API is not GA: the project pins
its minor version, and tests/test_s3transfer_api.py checks every name used here.
"""

from __future__ import annotations

from typing import IO, TYPE_CHECKING, Any, Protocol, cast

from botocore.exceptions import ClientError
from s3transfer.exceptions import S3DownloadFailedError
from s3transfer.manager import TransferConfig, TransferManager
from s3transfer.subscribers import BaseSubscriber

from bridge.paths import ListedObject

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


class SeekableFile(Protocol):
    """What s3transfer needs of a download target to write each range in place."""

    def seekable(self) -> bool: ...

    def seek(self, offset: int, whence: int = 0, /) -> int: ...

    def tell(self) -> int: ...

    def write(self, data: bytes, /) -> int: ...


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


class LargeTransfers:
    """One s3transfer manager for the storage's lifetime: its threads start once."""

    def __init__(self, client: S3Client, concurrency: int, threshold: int) -> None:
        config = TransferConfig(
            max_request_concurrency=concurrency,
            multipart_threshold=threshold,
            # Chunks downloaded but not yet written: s3transfer's own default (1,000 x 256 KiB)
            # lets a large pull buffer ~250 MB when the disk lags; boto3 caps it at 100. At 16
            # (4 MiB) a 1 GiB pull peaks ~30 MB lower, as fast (BENCHMARKS.md, P4rss).
            max_io_queue_size=16,
        )
        self._manager = TransferManager(client, config)

    def download(
        self, bucket: str, known: ListedObject | None, key: str, stream: SeekableFile
    ) -> None:
        """Fetch ``key`` in ranged parts written into ``stream``: pinned to the size and ETag
        of ``known`` when given, else to what s3transfer's HeadObject finds.

        S3 errors are raised as the ``ClientError`` (s3transfer wraps a ranged GET's 412 in
        ``S3DownloadFailedError`` raised while handling it).
        """
        subscribers = [_KnownObject(known)] if known is not None else []
        target = cast(IO[bytes], stream)  # s3transfer only seeks and writes a seekable target
        future = self._manager.download(bucket, key, target, subscribers=subscribers)
        try:
            future.result()
        except S3DownloadFailedError as exc:
            if isinstance(exc.__context__, ClientError):
                raise exc.__context__ from exc
            raise

    def upload(self, filename: str, bucket: str, key: str, extra_args: dict[str, Any]) -> None:
        """Upload the file at ``filename`` in parts (s3transfer opens it once per part)."""
        self._manager.upload(filename, bucket, key, extra_args).result()
