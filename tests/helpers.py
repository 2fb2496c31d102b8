"""Helpers shared by the end-to-end tests of the engine and the CLI (moto server over HTTP)."""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from bridge.app import App
from bridge.engine import Engine
from bridge.samples import sample_payload
from bridge.settings import load_settings
from bridge.storage import Storage, s3_client

HANDLERS = Path(__file__).parent / "handlers"
GUARD_SECONDS = 60.0  # a guard against a hang, never a timing assertion


def wait_for(
    predicate: Callable[[], Any],
    what: str = "condition",
    *,
    timeout: float = GUARD_SECONDS,
    interval: float = 0.05,
) -> Any:
    """Poll ``predicate`` until it returns something truthy and return that value.

    Tests wait for what must happen instead of sleeping; ``timeout`` only stops a hang, and
    the failure names ``what`` was awaited.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def handler(name: str) -> list[str]:
    """The command line running test handler ``tests/handlers/<name>.py``."""
    path = HANDLERS / f"{name}.py"
    assert path.exists(), path
    return [sys.executable, str(path)]


def make_engine(command: Sequence[str], **overrides: Any) -> Engine:
    """An engine on the moto server (``AWS_ENDPOINT_URL``), configured by ``overrides``."""
    settings = load_settings(**overrides)
    return Engine(settings, command, Storage(s3_client(4), 4))


def make_app(command: Sequence[str], **overrides: Any) -> App:
    """An app (routing + engine) as the drivers build it, configured by ``overrides``."""
    engine = make_engine(command, **overrides)
    return App(engine.settings, engine)


def put(s3: Any, bucket: str, key: str, body: bytes | str = b"x", **extra: Any) -> None:
    """Put one object."""
    data = body.encode("utf-8") if isinstance(body, str) else body
    s3.put_object(Bucket=bucket, Key=key, Body=data, **extra)


def objects(s3: Any, bucket: str, prefix: str = "") -> dict[str, bytes]:
    """Every object of ``bucket`` under ``prefix``, by key."""
    found = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for entry in page.get("Contents", []):
            key = entry["Key"]
            found[key] = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return found


def versions(s3: Any, bucket: str, key: str) -> list[dict[str, Any]]:
    """Every version of ``key`` (the bucket must be versioned): one per PutObject."""
    listed = s3.list_object_versions(Bucket=bucket, Prefix=key)
    return [v for v in listed.get("Versions", []) if v["Key"] == key]


def versioned_bucket(s3: Any, bucket: str) -> None:
    """Create ``bucket`` with versioning on, so every PutObject leaves a trace."""
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})


def s3_notification(bucket: str, keys: Iterable[str], event_name: str = "ObjectCreated:Put") -> str:
    """An S3 notification body (URL-encoded keys, as S3 sends it) with one record per key."""
    records: list[Any] = []
    for key in keys:
        payload: dict[str, Any] = sample_payload("s3", bucket, key, event_name=event_name)
        records += payload["Records"]
    return json.dumps({"Records": records})


def sqs_payload(bodies: Sequence[str], fifo: bool = False) -> tuple[dict[str, Any], list[str]]:
    """An SQS -> Lambda payload with one record per body; returns it and the message ids."""
    template: dict[str, Any] = sample_payload("sqs", "template", "k")["Records"][0]  # type: ignore[index]
    records, ids = [], []
    for body in bodies:
        message_id = str(uuid.uuid4())
        record = dict(template, messageId=message_id, body=body)
        if fifo:
            record["eventSourceARN"] = "arn:aws:sqs:us-east-1:123456789012:bridge.fifo"
            record["attributes"] = dict(template["attributes"], MessageGroupId="g1")
        records.append(record)
        ids.append(message_id)
    return {"Records": records}, ids


def sns_envelope(bucket: str, key: str) -> str:
    """An SQS body as SNS delivers it without raw delivery: the S3 notification in Message."""
    sns: dict[str, Any] = sample_payload("sns", bucket, key)["Records"][0]["Sns"]  # type: ignore[index]
    return json.dumps(sns)


def eventbridge_body(bucket: str, key: str) -> str:
    """An SQS body holding an EventBridge S3 event (key not encoded)."""
    return json.dumps(sample_payload("eventbridge", bucket, key))


TEST_EVENT_BODY = json.dumps(
    {
        "Service": "Amazon S3",
        "Event": "s3:TestEvent",
        "Time": "2024-05-01T12:00:00.000Z",
        "Bucket": "bucket",
        "RequestId": "5582815E1AEA5ADF",
        "HostId": "8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE",
    }
)


def failed_ids(body: dict[str, Any]) -> list[str]:
    """The ``itemIdentifier``s of a partial batch response."""
    return [item["itemIdentifier"] for item in body["batchItemFailures"]]


def read_lines(path: Path) -> list[Any]:
    """A JSON-lines file as a list (empty when it does not exist)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
