"""Realistic sample Lambda payloads, as AWS sends them (pure: no I/O).

Backs the ``event`` mode (docs/design.md §5) and the tests. ``sample_payload`` builds one
payload of a given shape for one object:

- ``s3``: S3 -> Lambda, ``{"Records": [<S3 notification record>]}``;
- ``sqs``: SQS -> Lambda, one SQS record whose ``body`` is an S3 notification (JSON
  string, with the real ``md5OfBody``);
- ``sns``: SNS -> Lambda, one SNS record whose ``Sns.Message`` is an S3 notification;
- ``eventbridge``: an EventBridge S3 event (``detail-type`` ``Object Created``...).

Keys are URL-encoded exactly where AWS encodes them: in S3 notification records
(``quote_plus(key, safe="/")``: spaces become ``+``, ``+`` becomes ``%2B``, non-ASCII
is UTF-8 percent-encoded), never in EventBridge's ``detail.object.key``. Object
removals (``ObjectRemoved:*``, ``LifecycleExpiration:*``) carry no size (and, in S3
notifications, no eTag), as with AWS.

Identifiers (message ids, request ids, receipt handles, signatures) are random and
obviously fake; the account is ``123456789012``. Parsing a sample with
``bridge.events.parse_invocation`` yields exactly one event for the given bucket and
(decoded) key.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from urllib.parse import quote_plus

from bridge.events import eventbridge_detail

SHAPES: tuple[str, ...] = ("s3", "sqs", "sns", "eventbridge")

_ACCOUNT = "123456789012"
_SOURCE_IP = "203.0.113.10"  # TEST-NET-3
_PRINCIPAL = "AWS:AIDAJDPLRKLG7UEXAMPLE"
_OWNER = "A3NL1KOZZKEXAMPLE"
_QUEUE = "s3-event-bridge-queue"
_TOPIC = "s3-event-bridge-topic"
# S3 notifications use version 2.3 for these families, 2.1 for the others.
_V23_PREFIXES = (
    "LifecycleExpiration:",
    "LifecycleTransition",
    "IntelligentTiering",
    "ObjectTagging:",
    "ObjectAcl:",
    "ObjectRestore:Delete",
)


def sample_payload(
    shape: str,
    bucket: str,
    key: str,
    event_name: str = "ObjectCreated:Put",
    size: int = 1024,
    *,
    region: str = "us-east-1",
    now: datetime | None = None,
) -> dict[str, object]:
    """A realistic Lambda payload of ``shape`` (one of ``SHAPES``) for one object.

    ``key`` is the plain (decoded) key; ``event_name`` is the S3 name without ``s3:``
    (a leading ``s3:`` is tolerated); for ``eventbridge`` its ``detail-type``,
    ``reason`` and ``deletion-type`` follow from it. ``size`` is left out for object
    removals. ``now`` fixes the timestamps (default: the current time, UTC).

    Raises ``ValueError`` for an unknown shape, an empty bucket or key, a negative
    size, or an event name that has no EventBridge equivalent (``eventbridge`` only).
    """
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}: expected one of {', '.join(SHAPES)}")
    if not bucket:
        raise ValueError("bucket must not be empty")
    if not key:
        raise ValueError("key must not be empty")
    if size < 0:
        raise ValueError(f"size must not be negative, got {size}")
    name = event_name.removeprefix("s3:")
    if not name:
        raise ValueError("event name must not be empty")
    when = (now or datetime.now(UTC)).astimezone(UTC)
    if shape == "eventbridge":
        return _eventbridge_event(bucket, key, name, size, region, when)
    notification = _s3_notification(bucket, key, name, size, region, when)
    if shape == "s3":
        return notification
    text = json.dumps(notification, separators=(",", ":"))
    if shape == "sqs":
        return {"Records": [_sqs_record(text, region, when)]}
    return {"Records": [_sns_record(text, region, when)]}


def sample_batch(
    shape: str,
    bucket: str,
    keys: Sequence[str],
    event_name: str = "ObjectCreated:Put",
    size: int = 1024,
    *,
    one_message: bool = False,
    region: str = "us-east-1",
    now: datetime | None = None,
) -> dict[str, object]:
    """A payload of ``shape`` for several objects: one message per key, as a batch.

    ``one_message`` puts every key in one message instead (one SQS message or SNS
    notification whose S3 notification holds one record per key). A direct S3 payload is
    one ``Records`` list either way; an EventBridge event carries exactly one object.
    Raises ``ValueError`` as ``sample_payload`` does, and for several keys in ``eventbridge``.
    """
    if not keys:
        raise ValueError("give at least one key")
    when = (now or datetime.now(UTC)).astimezone(UTC)

    def records(of_shape: str) -> list[object]:
        found: list[object] = []
        for key in keys:
            payload = sample_payload(
                of_shape, bucket, key, event_name, size, region=region, now=when
            )
            found += payload["Records"]  # type: ignore[arg-type]
        return found

    if len(keys) == 1:
        return sample_payload(shape, bucket, keys[0], event_name, size, region=region, now=when)
    if shape == "eventbridge":
        raise ValueError("an EventBridge event carries one object: give a single --key")
    if not one_message or shape == "s3":
        return {"Records": records(shape)}
    text = json.dumps({"Records": records("s3")}, separators=(",", ":"))
    wrap = _sqs_record if shape == "sqs" else _sns_record
    return {"Records": [wrap(text, region, when)]}


# --------------------------------------------------------------------------- S3


def _s3_notification(
    bucket: str, key: str, name: str, size: int, region: str, when: datetime
) -> dict[str, object]:
    """``{"Records": [record]}`` as S3 sends to Lambda, SQS and SNS."""
    obj: dict[str, object] = {"key": quote_plus(key, safe="/")}
    if not _is_removal(name):
        obj["size"] = size
        obj["eTag"] = _etag(bucket, key, size)
    obj["sequencer"] = f"00{_seconds_hex(when).upper()}{secrets.token_hex(4).upper()}"
    record: dict[str, object] = {
        "eventVersion": "2.3" if name.startswith(_V23_PREFIXES) else "2.1",
        "eventSource": "aws:s3",
        "awsRegion": region,
        "eventTime": _iso_millis(when),
        "eventName": name,
        "userIdentity": {"principalId": _PRINCIPAL},
        "requestParameters": {"sourceIPAddress": _SOURCE_IP},
        "responseElements": {
            "x-amz-request-id": _request_id(),
            "x-amz-id-2": _b64(secrets.token_bytes(57)),
        },
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "s3-event-bridge",
            "bucket": {
                "name": bucket,
                "ownerIdentity": {"principalId": _OWNER},
                "arn": f"arn:aws:s3:::{bucket}",
            },
            "object": obj,
        },
    }
    return {"Records": [record]}


# --------------------------------------------------------------------------- SQS, SNS


def _sqs_record(body: str, region: str, when: datetime) -> dict[str, object]:
    """One SQS -> Lambda record carrying ``body`` (S3's own SQS delivery)."""
    millis = str(int(when.timestamp() * 1000))
    return {
        "messageId": str(uuid.uuid4()),
        "receiptHandle": "AQEB" + _b64(secrets.token_bytes(150)),
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": millis,
            "SenderId": "AIDAJHIPRHEMV73VRJEBU",
            "ApproximateFirstReceiveTimestamp": millis,
        },
        "messageAttributes": {},
        "md5OfBody": hashlib.md5(body.encode("utf-8")).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:{region}:{_ACCOUNT}:{_QUEUE}",
        "awsRegion": region,
    }


def _sns_record(message: str, region: str, when: datetime) -> dict[str, object]:
    """One SNS -> Lambda record carrying ``message`` (S3's own SNS delivery)."""
    topic_arn = f"arn:aws:sns:{region}:{_ACCOUNT}:{_TOPIC}"
    subscription_arn = f"{topic_arn}:{uuid.uuid4()}"
    endpoint = f"https://sns.{region}.amazonaws.com"
    return {
        "EventSource": "aws:sns",
        "EventVersion": "1.0",
        "EventSubscriptionArn": subscription_arn,
        "Sns": {
            "Type": "Notification",
            "MessageId": str(uuid.uuid4()),
            "TopicArn": topic_arn,
            "Subject": "Amazon S3 Notification",
            "Message": message,
            "Timestamp": _iso_millis(when),
            "SignatureVersion": "1",
            "Signature": _b64(secrets.token_bytes(256)),
            "SigningCertUrl": (f"{endpoint}/SimpleNotificationService-{secrets.token_hex(16)}.pem"),
            "UnsubscribeUrl": (
                f"{endpoint}/?Action=Unsubscribe&SubscriptionArn={subscription_arn}"
            ),
            "MessageAttributes": {},
        },
    }


# --------------------------------------------------------------------------- EventBridge


def _eventbridge_event(
    bucket: str, key: str, name: str, size: int, region: str, when: datetime
) -> dict[str, object]:
    """An EventBridge S3 event; the key is not encoded."""
    detail_type, reason, deletion_type = eventbridge_detail(name)
    obj: dict[str, object] = {"key": key}
    if not _is_removal(name):
        obj["size"] = size
    # Deletes do carry an etag on EventBridge (that of the removed version or marker).
    obj["etag"] = _etag(bucket, key, size)
    obj["sequencer"] = f"{_seconds_hex(when)}{secrets.token_hex(4)}"
    detail: dict[str, object] = {
        "version": "0",
        "bucket": {"name": bucket},
        "object": obj,
        "request-id": _request_id(),
        "requester": _ACCOUNT,
        "source-ip-address": _SOURCE_IP,
    }
    if reason is not None:
        detail["reason"] = reason
    if deletion_type is not None:
        detail["deletion-type"] = deletion_type
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": "aws.s3",
        "account": _ACCOUNT,
        "time": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": detail,
    }


# --------------------------------------------------------------------------- helpers


def _is_removal(name: str) -> bool:
    """Object removals carry no size in S3 events."""
    return name.startswith(("ObjectRemoved:", "LifecycleExpiration:"))


def _etag(bucket: str, key: str, size: int) -> str:
    """A stable, plausible single-part ETag (an MD5 hex digest, no quotes)."""
    return hashlib.md5(f"{bucket}/{key}/{size}".encode()).hexdigest()


def _request_id() -> str:
    """An S3-style request id: 16 upper-case hex digits."""
    return secrets.token_hex(8).upper()


def _seconds_hex(when: datetime) -> str:
    """Unix seconds as 8 hex digits: S3 sequencers start with them."""
    return f"{int(when.timestamp()) & 0xFFFFFFFF:08x}"


def _iso_millis(when: datetime) -> str:
    """``2024-05-01T12:34:56.789Z``: S3 ``eventTime`` and SNS ``Timestamp`` format."""
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
