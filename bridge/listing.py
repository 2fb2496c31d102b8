"""What S3 says of objects without moving their bytes: listings, ETags, chain depths,
whether a bucket exists (docs/design.md §2 steps 4 and 10, §9)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from bridge.clients import DENIED, MISSING, NO_BUCKET, error_code
from bridge.paths import ListedObject
from bridge.transfer import run_all

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

DEPTH_METADATA = "bridge-depth"


def parse_depth(metadata: dict[str, str]) -> int:
    """The chain depth stored in user metadata; 0 when absent or not a number."""
    try:
        return max(0, int(metadata.get(DEPTH_METADATA, "0")))
    except ValueError:
        return 0


def epoch_ns(moment: datetime) -> int:
    """A LastModified as nanoseconds since the epoch, in whole microseconds (as the
    listing's LastModified is turned into an mtime)."""
    return int(moment.timestamp() * 1_000_000) * 1000


class Lookups:
    """ListObjectsV2, HeadObject and HeadBucket calls on one client."""

    def __init__(self, client: S3Client, concurrency: int) -> None:
        self.client = client
        self._concurrency = concurrency

    def list_objects(self, bucket: str, prefix: str) -> list[ListedObject]:
        """Every object under ``prefix`` (all pages of ListObjectsV2).

        Page by page with the continuation token rather than botocore's paginator, whose
        first use in a process lists every service model installed (tens of ms, paid by the
        first invocation of every Lambda environment: BENCHMARKS.md, F1).
        """
        listed: list[ListedObject] = []
        request: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
        while True:
            page = self.client.list_objects_v2(**request)
            listed.extend(listed_object(dict(entry)) for entry in page.get("Contents", []))
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return listed
            if token == request.get("ContinuationToken"):
                raise RuntimeError(
                    f"s3://{bucket}/{prefix}: ListObjectsV2 answered the same continuation "
                    "token twice"
                )
            request["ContinuationToken"] = token

    def etags(self, bucket: str, prefix: str) -> dict[str, str]:
        """ETag (without quotes) of every object under ``prefix``, by key."""
        return {o.key: o.etag for o in self.list_objects(bucket, prefix)}

    def stored_etags(self, bucket: str, keys: Sequence[str]) -> dict[str, str]:
        """ETag (without quotes) of each of ``keys`` stored in ``bucket``: one HeadObject each,
        in parallel.

        404 and 403 both mean "not known to exist" (without ``s3:ListBucket``, S3 answers 403
        for a missing key): such keys are absent from the result.
        """
        tasks = [functools.partial(self._stored_etag, bucket, key) for key in keys]
        found = run_all(tasks, self._concurrency)
        return {key: etag for key, etag in zip(keys, found, strict=True) if etag is not None}

    def _stored_etag(self, bucket: str, key: str) -> str | None:
        try:
            response = self.client.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if error_code(exc) in MISSING | DENIED:
                return None
            raise
        return str(response.get("ETag", "")).strip('"')

    def bucket_exists(self, bucket: str) -> bool | None:
        """HeadBucket: True, False when it does not exist, None when access is denied."""
        try:
            self.client.head_bucket(Bucket=bucket)
        except ClientError as exc:
            code = error_code(exc)
            if code in NO_BUCKET:
                return False
            if code in DENIED:
                return None
            raise
        return True

    def depth_of(self, bucket: str, key: str) -> int:
        """The chain depth of an object that was not pulled (HeadObject); 0 if it is gone."""
        try:
            response = self.client.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if error_code(exc) in MISSING:
                return 0
            raise
        return parse_depth(response.get("Metadata", {}))


def listed_object(entry: dict[str, Any]) -> ListedObject:
    """A ``Contents`` entry of ListObjectsV2 as the engine sees it (pure)."""
    modified = entry["LastModified"]
    listing = {k: v for k, v in entry.items() if k != "LastModified"}
    # ISO 8601 as the AWS CLI prints it, so filters written against its output work here.
    listing["LastModified"] = modified.isoformat()
    return ListedObject(
        key=entry["Key"],
        size=int(entry.get("Size", 0)),
        etag=str(entry.get("ETag", "")).strip('"'),
        last_modified_ns=epoch_ns(modified),
        listing=listing,
    )
