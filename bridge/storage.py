"""The S3 operations of one engine, in one object (docs/design.md §2 steps 4, 6, 10; §6; §9).

A thin facade over the modules that own each part: ``listing`` (ListObjectsV2, HeadObject,
HeadBucket), ``pull`` (downloads, verified by ``verification``), ``push`` (uploads, safe
opening of outputs). Large objects go through s3transfer (``bridge.multipart``), imported
and started on first use and shared by pulls and pushes. The names other modules import
from here are re-exported.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bridge.clients import error_code, s3_client, sqs_client
from bridge.listing import DEPTH_METADATA, Lookups, parse_depth
from bridge.paths import ListedObject, PullItem
from bridge.progress import Progress
from bridge.pull import Puller, PullResult
from bridge.push import Pusher, PushResult, Upload, open_beneath
from bridge.transfer import MULTIPART_THRESHOLD, RETRYABLE_STREAMING_ERRORS
from bridge.verification import HashingFile, IntegrityError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from bridge.multipart import LargeTransfers

__all__ = [
    "DEPTH_METADATA",
    "MULTIPART_THRESHOLD",
    "RETRYABLE_STREAMING_ERRORS",
    "HashingFile",
    "IntegrityError",
    "PullResult",
    "PushResult",
    "Storage",
    "Upload",
    "error_code",
    "open_beneath",
    "parse_depth",
    "s3_client",
    "sqs_client",
]


class Storage:
    """The S3 operations of one engine. Thread-safe; each pull or push runs ``concurrency``
    transfers wide (large objects share one s3transfer manager)."""

    def __init__(self, client: S3Client, concurrency: int) -> None:
        self.client = client
        self._concurrency = concurrency
        self._large: LargeTransfers | None = None
        self._large_lock = threading.Lock()
        self._lookups = Lookups(client, concurrency)
        self._puller = Puller(client, concurrency, self._large_transfers)
        self._pusher = Pusher(client, concurrency, self._large_transfers)

    def list_objects(self, bucket: str, prefix: str) -> list[ListedObject]:
        """Every object under ``prefix`` (all pages of ListObjectsV2)."""
        return self._lookups.list_objects(bucket, prefix)

    def etags(self, bucket: str, prefix: str) -> dict[str, str]:
        """ETag (without quotes) of every object under ``prefix``, by key."""
        return self._lookups.etags(bucket, prefix)

    def stored_etags(self, bucket: str, keys: Sequence[str]) -> dict[str, str]:
        """ETag of each of ``keys`` known to exist (``Lookups.stored_etags``)."""
        return self._lookups.stored_etags(bucket, keys)

    def bucket_exists(self, bucket: str) -> bool | None:
        """HeadBucket: True, False when it does not exist, None when access is denied."""
        return self._lookups.bucket_exists(bucket)

    def depth_of(self, bucket: str, key: str) -> int:
        """The chain depth of an object that was not pulled (HeadObject); 0 if it is gone."""
        return self._lookups.depth_of(bucket, key)

    def pull(
        self,
        bucket: str,
        items: Sequence[PullItem],
        root: Path,
        progress: Progress | None = None,
    ) -> PullResult:
        """Download listed ``items`` under ``root``, verified (``Puller.pull``)."""
        return self._puller.pull(bucket, items, root, progress)

    def fetch(
        self,
        bucket: str,
        items: Sequence[PullItem],
        root: Path,
        progress: Progress | None = None,
    ) -> PullResult:
        """Download the triggering objects ``items`` under ``root`` (``Puller.fetch``)."""
        return self._puller.fetch(bucket, items, root, progress)

    def push(
        self,
        bucket: str,
        root: Path,
        uploads: Sequence[Upload],
        progress: Progress | None = None,
    ) -> PushResult:
        """Upload ``uploads`` (files under ``root``) to ``bucket`` (``Pusher.push``)."""
        return self._pusher.push(bucket, root, uploads, progress)

    def _large_transfers(self) -> LargeTransfers:
        with self._large_lock:
            if self._large is None:
                from bridge.multipart import LargeTransfers  # s3transfer: only when needed

                self._large = LargeTransfers(self.client, self._concurrency, MULTIPART_THRESHOLD)
            return self._large
