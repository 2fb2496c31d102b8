"""SQS messages (pure): SQS -> Lambda records, each message acknowledged on its own.

- Recognised: ``{"Records": [...]}`` whose records have ``eventSource == "aws:sqs"``.
- Parsed: one ``Message`` per record (``messageId``, required); ``fifo`` when
  ``eventSourceARN`` ends with ``.fifo``. A body is read by ``message`` and never raises: it
  may hold an S3 notification, an SNS envelope, an EventBridge event or an ``s3:TestEvent``
  (zero events, success); anything else is a ``Message`` with ``error`` set, so a bad body
  fails only its own message.
- Sample: an SQS record per key (or one for all keys), its body an S3 notification with the
  real ``md5OfBody``.
- Response: the partial batch response, ``{"batchItemFailures": [{"itemIdentifier": id}]}``
  listing the failed messages; never an error document.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence

from bridge.sources import fake, s3
from bridge.sources.base import (
    BodyReader,
    EventSource,
    FailedMessage,
    Invocation,
    Message,
    PayloadError,
    Reply,
    SampleSpec,
    Settled,
    Source,
    is_unicode,
    kind,
    records_of,
)

EVENT_SOURCE = "aws:sqs"
_QUEUE = "s3-event-bridge-queue"


def parse(payload: dict[str, object], read_body: BodyReader) -> Invocation:
    """SQS -> Lambda: one ``Message`` per record; bodies fail individually."""
    messages: list[Message] = []
    fifo = False
    for index, record in enumerate(records_of(payload, "unrecognised payload: ")):
        if not isinstance(record, dict):  # unreachable: the dispatcher found a source
            raise PayloadError(f"SQS record {index} is {kind(record)}, expected a JSON object")
        message_id = record.get("messageId")
        if not isinstance(message_id, str) or not message_id:
            raise PayloadError(f"SQS record {index}: missing messageId")
        if not is_unicode(message_id):
            raise PayloadError(f"SQS record {index}: messageId {message_id!r} is not valid Unicode")
        arn = record.get("eventSourceARN")
        fifo = fifo or (isinstance(arn, str) and arn.endswith(".fifo"))
        body = record.get("body")
        if isinstance(body, str):
            messages.append(message(message_id, body, read_body))
        else:
            error = f"SQS record {index}: body is {kind(body)}, expected a string"
            messages.append(Message(message_id, (), error=error))
    return Invocation(Source.SQS, "sqs", fifo, tuple(messages))


def message(message_id: str | None, body: str, read_body: BodyReader) -> Message:
    """One SQS message body -> ``Message``; never raises (a bad body sets ``error``)."""
    try:
        events = read_body(body, message_id, "body", inside="sqs")
    except PayloadError as exc:
        return Message(message_id, (), error=str(exc))
    return Message(message_id, events)


def respond(
    invocation: Invocation, failures: Sequence[FailedMessage], settled: Sequence[Settled] = ()
) -> Reply:
    """The partial batch response: the failed message ids, so that only they come back."""
    failed = [f.message_id for f in failures if f.message_id is not None]
    return Reply({"batchItemFailures": [{"itemIdentifier": i} for i in failed]}, is_error=False)


# --------------------------------------------------------------------------- samples


def sample(spec: SampleSpec, keys: Sequence[str], one_message: bool) -> dict[str, object]:
    """SQS -> Lambda: an SQS record per key, or one for all keys (``one_message``)."""
    texts = s3.notification_texts(spec, keys, one_message)
    return {"Records": [_record(text, spec) for text in texts]}


def _record(body: str, spec: SampleSpec) -> dict[str, object]:
    """One SQS -> Lambda record carrying ``body`` (S3's own SQS delivery)."""
    millis = str(int(spec.when.timestamp() * 1000))
    return {
        "messageId": str(uuid.uuid4()),
        "receiptHandle": "AQEB" + fake.random_b64(150),
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": millis,
            "SenderId": "AIDAJHIPRHEMV73VRJEBU",
            "ApproximateFirstReceiveTimestamp": millis,
        },
        "messageAttributes": {},
        "md5OfBody": hashlib.md5(body.encode("utf-8")).hexdigest(),
        "eventSource": EVENT_SOURCE,
        "eventSourceARN": f"arn:aws:sqs:{spec.region}:{fake.ACCOUNT}:{_QUEUE}",
        "awsRegion": spec.region,
    }


SOURCE = EventSource(
    shape="sqs",
    parse=parse,
    sample=sample,
    respond=respond,
    record_source=EVENT_SOURCE,
)
