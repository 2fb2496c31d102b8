"""S3 event notifications (pure): S3 -> Lambda, and the document S3 sends to SQS and SNS.

- Recognised: ``{"Records": [...]}`` whose records have ``eventSource == "aws:s3"``, or a
  top-level ``{"Event": "s3:TestEvent", ...}`` (zero events: a success). Inside an SQS body
  or SNS message: any ``{"Records": ...}`` (a record's ``eventSource``, when present, must be
  ``aws:s3``) or an ``s3:TestEvent``.
- Parsed: one ``Message`` (id ``None``) holding every record's event. Keys arrive URL-encoded
  (``red flower.jpg`` as ``red+flower.jpg``, ``a+b`` as ``a%2Bb``) and are decoded with
  ``unquote_plus`` (strict UTF-8). A malformed record raises ``PayloadError`` naming the
  record and the field: a direct invocation fails as a whole anyway.
- Sample: ``quote_plus(key, safe="/")``; removals carry no size and no eTag, as with AWS.
  ``record`` builds one record from an object's real facts (backfill sends those).
- Response: as a whole (``{}``, or an ``ExecutionGroupFailed`` error document).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote_plus, unquote_plus

from bridge.sources import fake
from bridge.sources.base import (
    REMOVAL_FAMILIES,
    BodyForm,
    BodyReader,
    EventSource,
    Invocation,
    Message,
    ObjectEvent,
    PayloadError,
    SampleSpec,
    Source,
    is_test_event,
    kind,
    object_event,
    optional,
    records_of,
    require_str,
    respond_as_a_whole,
)

EVENT_SOURCE = "aws:s3"
# S3 notifications use version 2.3 for these families, 2.1 for the others.
_V23_PREFIXES = (
    "LifecycleExpiration:",
    "LifecycleTransition",
    "IntelligentTiering",
    "ObjectTagging:",
    "ObjectAcl:",
    "ObjectRestore:Delete",
)
_PRINCIPAL = "AWS:AIDAJDPLRKLG7UEXAMPLE"
_OWNER = "A3NL1KOZZKEXAMPLE"


def parse(payload: dict[str, object], read_body: BodyReader) -> Invocation:
    """S3 -> Lambda: all records in one message; a test event is one message of no events."""
    if is_test_event(payload):
        return Invocation(Source.DIRECT, "s3", False, (Message(None, ()),))
    events = record_events(records_of(payload, "unrecognised payload: "), None, "")
    return Invocation(Source.DIRECT, "s3", False, (Message(None, events),))


def _is_notification(document: Mapping[str, object]) -> bool:
    return "Records" in document or is_test_event(document)


def _body_events(
    document: dict[str, object], message_id: str | None, where: str, read_body: BodyReader
) -> tuple[ObjectEvent, ...]:
    if "Records" not in document:
        return ()  # s3:TestEvent
    return record_events(records_of(document, f"{where}: "), message_id, f"{where}: ")


def record_events(
    records: list[object], message_id: str | None, where: str
) -> tuple[ObjectEvent, ...]:
    """S3 notification records -> events; ``where`` prefixes error messages."""
    return tuple(
        _record_event(record, message_id, f"{where}record {index}")
        for index, record in enumerate(records)
    )


def _record_event(record: object, message_id: str | None, where: str) -> ObjectEvent:
    """One S3 notification record (URL-encoded key) -> ``ObjectEvent``."""
    if not isinstance(record, dict):
        raise PayloadError(f"{where} is {kind(record)}, expected a JSON object")
    source = record.get("eventSource")
    if source is not None and source != EVENT_SOURCE:
        raise PayloadError(f"{where}: eventSource is {source!r}, expected {EVENT_SOURCE!r}")
    name = require_str(record, "eventName", where).removeprefix("s3:")
    if not name:
        raise PayloadError(f"{where}: eventName is empty")
    bucket = require_str(record, "s3.bucket.name", where)
    raw_key = require_str(record, "s3.object.key", where)
    try:
        key = unquote_plus(raw_key, errors="strict")
    except UnicodeDecodeError:
        raise PayloadError(f"{where}: s3.object.key {raw_key!r} is not URL-encoded UTF-8") from None
    return object_event(
        where,
        bucket=bucket,
        key=key,
        event_name=name,
        size=optional(record, "s3.object.size"),
        etag=optional(record, "s3.object.eTag"),
        message_id=message_id,
    )


# --------------------------------------------------------------------------- samples


def sample(spec: SampleSpec, keys: Sequence[str], one_message: bool) -> dict[str, object]:
    """S3 -> Lambda: one ``Records`` list, a record per key (``one_message`` changes nothing)."""
    return notification(spec, keys)


def notification(spec: SampleSpec, keys: Sequence[str]) -> dict[str, object]:
    """``{"Records": [record per key]}`` as S3 sends it to Lambda, SQS and SNS."""
    return {"Records": [_record(spec, key) for key in keys]}


def notification_texts(spec: SampleSpec, keys: Sequence[str], one_message: bool) -> list[str]:
    """Compact JSON texts of S3 notifications, as S3 delivers them to SQS and SNS: one per key,
    or one holding a record per key (``one_message``)."""
    batches = [list(keys)] if one_message else [[key] for key in keys]
    return [json.dumps(notification(spec, batch), separators=(",", ":")) for batch in batches]


def _record(spec: SampleSpec, key: str) -> dict[str, object]:
    removal = spec.event_name.startswith(REMOVAL_FAMILIES)
    return record(
        ObjectFacts(
            bucket=spec.bucket,
            key=key,
            size=None if removal else spec.size,
            etag=None if removal else fake.etag(spec.bucket, key, spec.size),
            when=spec.when,
        ),
        spec.event_name,
        spec.region,
    )


@dataclass(frozen=True)
class ObjectFacts:
    """What an S3 notification record says about its object: the decoded key, its size and
    ETag (no quotes; ``None`` for removals) and when the change happened (UTC)."""

    bucket: str
    key: str
    size: int | None
    etag: str | None
    when: datetime
    version_id: str | None = None


_NOISE_BYTES = 8 + 4 + 57  # request id, the sequencer's tail, x-amz-id-2


def record(
    facts: ObjectFacts,
    event_name: str,
    region: str,
    configuration_id: str = "s3-event-bridge",
    *,
    noise: bytes | None = None,
) -> dict[str, object]:
    """One S3 notification record as S3 builds it: the key URL-encoded
    (``quote_plus(key, safe="/")``), eventVersion 2.1 (2.3 for the families that use it), a
    sequencer that starts with the change's Unix time in hex.

    The request ids and the sequencer's tail come from ``noise`` (at least 69 bytes; default
    random): a caller making many records derives them cheaply, without a system call each.
    """
    name, when = event_name, facts.when
    noise = noise if noise is not None else secrets.token_bytes(_NOISE_BYTES)
    if len(noise) < _NOISE_BYTES:
        raise ValueError(f"noise must hold at least {_NOISE_BYTES} bytes")
    obj: dict[str, object] = {"key": quote_plus(facts.key, safe="/")}
    if facts.size is not None:
        obj["size"] = facts.size
    if facts.etag is not None:
        obj["eTag"] = facts.etag
    if facts.version_id is not None:
        obj["versionId"] = facts.version_id
    obj["sequencer"] = f"00{fake.seconds_hex(when).upper()}{noise[8:12].hex().upper()}"
    return {
        "eventVersion": "2.3" if name.startswith(_V23_PREFIXES) else "2.1",
        "eventSource": EVENT_SOURCE,
        "awsRegion": region,
        "eventTime": fake.iso_millis(when),
        "eventName": name,
        "userIdentity": {"principalId": _PRINCIPAL},
        "requestParameters": {"sourceIPAddress": fake.SOURCE_IP},
        "responseElements": {
            "x-amz-request-id": noise[:8].hex().upper(),
            "x-amz-id-2": fake.b64(noise[12:_NOISE_BYTES]),
        },
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": configuration_id,
            "bucket": {
                "name": facts.bucket,
                "ownerIdentity": {"principalId": _OWNER},
                "arn": f"arn:aws:s3:::{facts.bucket}",
            },
            "object": obj,
        },
    }


SOURCE = EventSource(
    shape="s3",
    parse=parse,
    sample=sample,
    respond=respond_as_a_whole,
    record_source=EVENT_SOURCE,
    recognises=is_test_event,
    body=BodyForm(_is_notification, _body_events),
)
