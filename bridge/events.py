"""Lambda / SQS payloads -> object events (pure: no I/O): the interface the drivers use.

Every event source lives in its own module of ``bridge.sources`` (how it is recognised,
parsed, sampled and answered); this module is the stable entry point:

- ``decode_json(text, what)`` decodes a received JSON document; anything unusable is a
  ``PayloadError``.
- ``parse_invocation(payload)`` turns one Lambda event payload into an ``Invocation``:
  SQS records (``Source.SQS``, one ``Message`` per record, ``fifo`` from the queue ARN), S3
  records or an ``s3:TestEvent``, SNS records, or an EventBridge S3 event (``Source.DIRECT``,
  one ``Message`` with id ``None``). Anything else raises ``PayloadError`` naming what was
  seen; a malformed record of a direct invocation raises it naming the record and the field.
- ``parse_sqs_body(message_id, body)`` turns one SQS message body into a ``Message`` (used by
  the standalone consumer too); it never raises: a bad body fails only its own message.
- ``eventbridge_event_name`` / ``eventbridge_detail`` map EventBridge's ``detail-type``
  (+ ``reason``, ``deletion-type``) to the S3 event name and back
  (``bridge.sources.eventbridge`` holds the table).

Keys: S3 notification records (direct, in SQS bodies, in SNS messages) carry keys in
URL-encoded form and are decoded with ``unquote_plus`` (strict UTF-8); EventBridge's
``detail.object.key`` is used as given. ``size`` is ``None`` when absent or not a plain
non-negative integer (it is only a hint); ``etag`` has its surrounding quotes stripped.
"""

from __future__ import annotations

from bridge.sources import (
    Invocation,
    Message,
    ObjectEvent,
    PayloadError,
    Source,
    decode_json,
    eventbridge,
    parse_invocation,
    parse_sqs_body,
)

__all__ = [
    "Invocation",
    "Message",
    "ObjectEvent",
    "PayloadError",
    "Source",
    "decode_json",
    "eventbridge_detail",
    "eventbridge_event_name",
    "parse_invocation",
    "parse_sqs_body",
]

eventbridge_event_name = eventbridge.event_name
eventbridge_detail = eventbridge.detail
