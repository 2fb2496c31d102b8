"""The baselines' own invocation work (P1', P2): what a minimal boto3 function does.

For each S3 notification in an SQS-wrapped event: list the object's folder, GET every
object into a temporary folder, run the handler command with ``ROOT_FOLDER`` set, PUT every
file the handler added. No verification, no change detection, no loop guard.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import urllib.parse
from pathlib import Path
from typing import Any


def copy_invocation(s3: Any, event: dict[str, Any], handler: list[str]) -> dict[str, Any]:
    """Process ``event`` (SQS records holding S3 notifications); returns the SQS response."""
    for record in event.get("Records", []):
        for s3_record in json.loads(record["body"]).get("Records", []):
            bucket = s3_record["s3"]["bucket"]["name"]
            key = urllib.parse.unquote_plus(s3_record["s3"]["object"]["key"])
            folder_invocation(s3, bucket, key.rpartition("/")[0] + "/", handler)
    return {"batchItemFailures": []}


def folder_invocation(s3: Any, bucket: str, prefix: str, handler: list[str]) -> None:
    """List, get, run the handler, put what is new."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        pulled = set()
        listing = s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
        for entry in listing.get("Contents", []):
            name = entry["Key"][len(prefix) :]
            if "/" in name:
                continue
            body = s3.get_object(Bucket=bucket, Key=entry["Key"])["Body"].read()
            (root / name).write_bytes(body)
            pulled.add(name)
        subprocess.run(handler, env={**os.environ, "ROOT_FOLDER": folder}, check=True)
        for path in root.iterdir():
            if path.name not in pulled:
                s3.put_object(Bucket=bucket, Key=prefix + path.name, Body=path.read_bytes())
