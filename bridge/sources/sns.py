"""SNS notifications (pure): SNS -> Lambda records, and SNS envelopes in SQS bodies.

- Recognised: ``{"Records": [...]}`` whose records have ``EventSource == "aws:sns"`` (capital
  E); inside an SQS body (SNS -> SQS without raw message delivery): an envelope with ``Type``
  and ``TopicArn``.
- Parsed: ``Sns.Message`` / the envelope's ``Message`` is a JSON string holding an S3
  notification, a test event or an EventBridge event, read by the shared body reader (never
  another SNS envelope). SNS -> Lambda is one ``Message`` (id ``None``) of every record's
  events; an envelope of ``Type`` other than ``Notification`` is an error naming it (a
  ``SubscriptionConfirmation`` says how to confirm).
- Sample: one SNS record per message, its ``Message`` an S3 notification.
- Response: as a whole (``{}``, or an ``ExecutionGroupFailed`` error document).
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Mapping, Sequence

from bridge.sources import fake, s3
from bridge.sources.base import (
    BodyForm,
    BodyReader,
    EventSource,
    Invocation,
    Message,
    ObjectEvent,
    PayloadError,
    SampleSpec,
    Source,
    kind,
    records_of,
    require,
    respond_as_a_whole,
)

EVENT_SOURCE = "aws:sns"
_TOPIC = "s3-event-bridge-topic"


def parse(payload: dict[str, object], read_body: BodyReader) -> Invocation:
    """SNS -> Lambda: each record's ``Sns.Message`` is a JSON string; one message in all."""
    events: list[ObjectEvent] = []
    for index, record in enumerate(records_of(payload, "unrecognised payload: ")):
        where = f"SNS record {index}"
        message = require(record, "Sns.Message", where)
        if not isinstance(message, str):
            raise PayloadError(f"{where}: Sns.Message is {kind(message)}, expected a string")
        events.extend(read_body(message, None, f"{where}: Sns.Message", inside="sns"))
    return Invocation(Source.DIRECT, "sns", False, (Message(None, tuple(events)),))


def _is_envelope(document: Mapping[str, object]) -> bool:
    return "Type" in document and "TopicArn" in document


def _envelope_events(
    envelope: dict[str, object], message_id: str | None, where: str, read_body: BodyReader
) -> tuple[ObjectEvent, ...]:
    """SNS -> SQS without raw message delivery: the S3 payload is in ``Message``."""
    kind_ = envelope.get("Type")
    if kind_ == "SubscriptionConfirmation":
        raise PayloadError(
            f"{where} is an SNS SubscriptionConfirmation for {envelope.get('TopicArn')!r}: "
            "confirm the subscription (visit its SubscribeURL); it holds no S3 event"
        )
    if kind_ != "Notification":
        raise PayloadError(f"{where} is an SNS message of Type {kind_!r}, expected 'Notification'")
    message = envelope.get("Message")
    if not isinstance(message, str):
        raise PayloadError(f"{where}: SNS Message is {kind(message)}, expected a string")
    return read_body(message, message_id, f"{where}: SNS Message", inside="sns")


# --------------------------------------------------------------------------- samples


def sample(spec: SampleSpec, keys: Sequence[str], one_message: bool) -> dict[str, object]:
    """SNS -> Lambda: an SNS record per key, or one for all keys (``one_message``)."""
    return {
        "Records": [_record(text, spec) for text in s3.notification_texts(spec, keys, one_message)]
    }


def _record(message: str, spec: SampleSpec) -> dict[str, object]:
    """One SNS -> Lambda record carrying ``message`` (S3's own SNS delivery)."""
    topic_arn = f"arn:aws:sns:{spec.region}:{fake.ACCOUNT}:{_TOPIC}"
    subscription_arn = f"{topic_arn}:{uuid.uuid4()}"
    endpoint = f"https://sns.{spec.region}.amazonaws.com"
    return {
        "EventSource": EVENT_SOURCE,
        "EventVersion": "1.0",
        "EventSubscriptionArn": subscription_arn,
        "Sns": {
            "Type": "Notification",
            "MessageId": str(uuid.uuid4()),
            "TopicArn": topic_arn,
            "Subject": "Amazon S3 Notification",
            "Message": message,
            "Timestamp": fake.iso_millis(spec.when),
            "SignatureVersion": "1",
            "Signature": fake.random_b64(256),
            "SigningCertUrl": f"{endpoint}/SimpleNotificationService-{secrets.token_hex(16)}.pem",
            "UnsubscribeUrl": f"{endpoint}/?Action=Unsubscribe&SubscriptionArn={subscription_arn}",
            "MessageAttributes": {},
        },
    }


SOURCE = EventSource(
    shape="sns",
    parse=parse,
    sample=sample,
    respond=respond_as_a_whole,
    record_source=EVENT_SOURCE,
    body=BodyForm(_is_envelope, _envelope_events),
)
