"""Lineage records in S3, and the guarded removal of recorded outputs (docs/design.md §15).

Every operation costs O(outputs of one unit) requests and never lists the target. Outputs
are removed before a record is written or dropped: a failure in between leaves the old
record, and the retry finds the same outputs (those already gone count as ``gone``).

An output is removed only while its ETag is the recorded one (HeadObject, then DeleteObject
with If-Match, so a write between the two wins too): a later write by anyone else wins and
the output is kept (and no longer recorded).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from bridge.clients import DENIED, MISSING, STALE, error_code
from bridge.lineage import LineageRecord, Removal, Unit
from bridge.logs import log

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

logger = logging.getLogger(__name__)

OVERWRITTEN = "overwritten since the bridge wrote it (ETag {current}, recorded {recorded})"


class LineageStore:
    """Reads and writes lineage records and removes recorded outputs, with one S3 client."""

    def __init__(self, client: S3Client) -> None:
        self.client = client

    def read(self, target: str, unit: Unit) -> LineageRecord | None:
        """The unit's record in ``target``; None when there is none."""
        return self.read_key(target, unit.record_key)

    def read_key(self, target: str, key: str) -> LineageRecord | None:
        """The record stored at ``key`` of ``target``; None when there is none."""
        try:
            response = self.client.get_object(Bucket=target, Key=key)
        except ClientError as exc:
            if error_code(exc) in MISSING:
                return None
            raise
        return LineageRecord.from_json(response["Body"].read(), f"s3://{target}/{key}")

    def write(self, record: LineageRecord) -> None:
        """Store ``record`` at its unit's key in its target bucket."""
        self.client.put_object(
            Bucket=record.target,
            Key=record.unit.record_key,
            Body=record.to_json(),
            ContentType="application/json",
        )

    def drop(self, target: str, unit: Unit) -> None:
        """Delete the unit's record (deleting a missing key is a success in S3)."""
        self.client.delete_object(Bucket=target, Key=unit.record_key)

    def exists(self, bucket: str, key: str) -> bool:
        """Whether an object is at ``key`` now (HeadObject): the stale-removal guard."""
        try:
            self.client.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if error_code(exc) in MISSING | DENIED:
                return False
            raise
        return True

    def remove_outputs(self, target: str, outputs: Mapping[str, str]) -> Removal:
        """Delete each output whose current ETag is the recorded one (HeadObject, then
        DeleteObject with If-Match); an output gone already counts as ``gone``, a changed
        one is kept."""
        removed, gone, kept = [], [], {}
        for key, recorded in outputs.items():
            try:
                current = str(self.client.head_object(Bucket=target, Key=key)["ETag"]).strip('"')
            except ClientError as exc:
                if error_code(exc) in MISSING | DENIED:
                    gone.append(key)
                    continue
                raise
            if current == recorded:
                # If-Match too: a write between the HeadObject and the delete wins (S3 answers
                # 412); the HeadObject keeps the guard on stores that ignore If-Match.
                try:
                    self.client.delete_object(Bucket=target, Key=key, IfMatch=f'"{recorded}"')
                except ClientError as exc:
                    code = error_code(exc)
                    if code in MISSING:
                        gone.append(key)
                        continue
                    if code not in STALE:
                        raise
                    current = "changed while it was removed"
                else:
                    removed.append(key)
                    continue
            kept[key] = OVERWRITTEN.format(current=current, recorded=recorded)
            log(logger, logging.INFO, "output kept", key=key, why=kept[key])
        return Removal(tuple(removed), tuple(gone), kept)

    def forget(self, unit: Unit, target: str) -> Removal:
        """The unit's input is gone: remove its recorded outputs and drop its record."""
        previous = self.read(target, unit)
        if previous is None:
            return Removal()
        removal = self.remove_outputs(target, previous.outputs)
        self.drop(target, unit)
        return removal
