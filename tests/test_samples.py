"""Unit tests for bridge.samples: realistic sample payloads (no AWS)."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from bridge.events import ObjectEvent, Source, parse_invocation
from bridge.samples import SHAPES, sample_payload

KEYS = [
    "in/red flower+1.txt",
    "a%2Bb",
    "日本/ファイル.txt",
    "plain.txt",
    "deep/a/b/c/x y z=1&q?#.csv",
    "~tilde/émoji-😀.bin",
]
NAMES = [
    "ObjectCreated:Put",
    "ObjectCreated:Post",
    "ObjectCreated:Copy",
    "ObjectCreated:CompleteMultipartUpload",
    "ObjectRemoved:Delete",
    "ObjectRemoved:DeleteMarkerCreated",
    "LifecycleExpiration:Delete",
    "ObjectRestore:Completed",
    "ObjectTagging:Put",
]
NOW = datetime(2024, 5, 1, 12, 34, 56, 789_000, tzinfo=UTC)
# Shapes that carry an event name, a size and an ETag (Batch Operations tasks carry none).
NOTIFICATIONS = tuple(shape for shape in SHAPES if shape != "batch-ops")


def record(payload: dict[str, Any]) -> dict[str, Any]:
    records = payload["Records"]
    assert isinstance(records, list) and len(records) == 1
    first = records[0]
    assert isinstance(first, dict)
    return first


def s3_notification_of(payload: dict[str, Any], shape: str) -> dict[str, Any]:
    """The S3 notification inside a payload of shape s3, sqs or sns."""
    if shape == "s3":
        return payload
    if shape == "sqs":
        return dict(json.loads(record(payload)["body"]))
    return dict(json.loads(record(payload)["Sns"]["Message"]))


def events_of(payload: dict[str, Any]) -> list[ObjectEvent]:
    invocation = parse_invocation(payload)
    assert all(message.error is None for message in invocation.messages)
    return [event for message in invocation.messages for event in message.events]


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("shape", NOTIFICATIONS)
@pytest.mark.parametrize("key", KEYS)
def test_round_trip_yields_one_event_with_bucket_and_decoded_key(shape: str, key: str) -> None:
    events = events_of(sample_payload(shape, "my-bucket", key))

    assert len(events) == 1
    (event,) = events
    assert event.bucket == "my-bucket"
    assert event.key == key
    assert event.event_name == "ObjectCreated:Put"
    assert event.size == 1024
    assert event.etag is not None and re.fullmatch(r"[0-9a-f]{32}", event.etag)


@pytest.mark.parametrize("shape", NOTIFICATIONS)
@pytest.mark.parametrize("name", NAMES)
def test_round_trip_keeps_the_event_name(shape: str, name: str) -> None:
    (event,) = events_of(sample_payload(shape, "b", "k.txt", name, size=77))

    assert event.event_name == name
    removal = name.startswith(("ObjectRemoved:", "LifecycleExpiration:"))
    assert event.size == (None if removal else 77)


@pytest.mark.parametrize("shape", SHAPES)
def test_shape_maps_to_source_and_shape(shape: str) -> None:
    invocation = parse_invocation(sample_payload(shape, "b", "k"))

    assert invocation.shape == shape
    expected = {"sqs": Source.SQS, "batch-ops": Source.TASKS}.get(shape, Source.DIRECT)
    assert invocation.source is expected
    assert invocation.fifo is False


def test_sqs_event_carries_the_sqs_message_id() -> None:
    payload = sample_payload("sqs", "b", "k")

    (event,) = events_of(payload)

    assert event.message_id == record(payload)["messageId"]


def test_s3_prefix_on_event_name_is_tolerated() -> None:
    (event,) = events_of(sample_payload("s3", "b", "k", "s3:ObjectCreated:Copy"))

    assert event.event_name == "ObjectCreated:Copy"


# --------------------------------------------------------------------------- key encoding


@pytest.mark.parametrize("shape", ["s3", "sqs", "sns"])
def test_s3_notification_keys_are_url_encoded_like_aws(shape: str) -> None:
    cases = {
        "in/red flower+1.txt": "in/red+flower%2B1.txt",
        "a%2Bb": "a%252Bb",
        "日本/ファイル.txt": "%E6%97%A5%E6%9C%AC/%E3%83%95%E3%82%A1%E3%82%A4%E3%83%AB.txt",
        "2023-08-08T14:03:40.zip": "2023-08-08T14%3A03%3A40.zip",
    }
    for key, encoded in cases.items():
        note = s3_notification_of(sample_payload(shape, "b", key), shape)

        assert record(note)["s3"]["object"]["key"] == encoded


def test_eventbridge_key_is_raw() -> None:
    detail: Any = sample_payload("eventbridge", "b", "in/red flower+1.txt")["detail"]

    assert detail["object"]["key"] == "in/red flower+1.txt"


# --------------------------------------------------------------------------- S3 record fields


@pytest.mark.parametrize("shape", ["s3", "sqs", "sns"])
def test_s3_record_has_every_field_aws_sends(shape: str) -> None:
    payload = sample_payload(shape, "my-bucket", "a.txt", size=5, region="eu-west-3", now=NOW)
    rec = record(s3_notification_of(payload, shape))

    assert rec["eventVersion"] == "2.1"
    assert rec["eventSource"] == "aws:s3"
    assert rec["awsRegion"] == "eu-west-3"
    assert rec["eventTime"] == "2024-05-01T12:34:56.789Z"
    assert rec["eventName"] == "ObjectCreated:Put"
    assert set(rec["userIdentity"]) == {"principalId"}
    assert set(rec["requestParameters"]) == {"sourceIPAddress"}
    assert re.fullmatch(r"[0-9A-F]{16}", rec["responseElements"]["x-amz-request-id"])
    assert rec["responseElements"]["x-amz-id-2"]
    s3 = rec["s3"]
    assert s3["s3SchemaVersion"] == "1.0"
    assert s3["configurationId"]
    assert s3["bucket"]["name"] == "my-bucket"
    assert set(s3["bucket"]["ownerIdentity"]) == {"principalId"}
    assert s3["bucket"]["arn"] == "arn:aws:s3:::my-bucket"
    obj = s3["object"]
    assert obj["key"] == "a.txt"
    assert obj["size"] == 5
    assert re.fullmatch(r"[0-9a-f]{32}", obj["eTag"])
    # sequencer: 18 upper-case hex digits, starting with the event's unix seconds
    assert re.fullmatch(r"00[0-9A-F]{16}", obj["sequencer"])
    assert int(obj["sequencer"][2:10], 16) == int(NOW.timestamp())


def test_s3_removal_has_no_size_and_no_etag() -> None:
    obj = record(sample_payload("s3", "b", "k", "ObjectRemoved:Delete", size=99))["s3"]["object"]

    assert set(obj) == {"key", "sequencer"}


def test_s3_event_version_is_2_3_for_lifecycle_and_tagging() -> None:
    lifecycle = record(sample_payload("s3", "b", "k", "LifecycleExpiration:Delete"))
    tagging = record(sample_payload("s3", "b", "k", "ObjectTagging:Put"))

    assert lifecycle["eventVersion"] == "2.3"
    assert tagging["eventVersion"] == "2.3"


# --------------------------------------------------------------------------- SQS fields


def test_sqs_record_fields_and_real_md5() -> None:
    payload = sample_payload("sqs", "b", "k", region="ap-south-1", now=NOW)
    rec = record(payload)

    assert uuid.UUID(rec["messageId"]).version == 4
    assert rec["receiptHandle"].startswith("AQEB")
    assert rec["md5OfBody"] == hashlib.md5(rec["body"].encode()).hexdigest()
    assert rec["eventSource"] == "aws:sqs"
    assert rec["eventSourceARN"].startswith("arn:aws:sqs:ap-south-1:123456789012:")
    assert not rec["eventSourceARN"].endswith(".fifo")
    assert rec["awsRegion"] == "ap-south-1"
    assert rec["messageAttributes"] == {}
    attributes = rec["attributes"]
    assert attributes["ApproximateReceiveCount"] == "1"
    assert attributes["SentTimestamp"] == str(int(NOW.timestamp() * 1000))
    assert attributes["ApproximateFirstReceiveTimestamp"] == attributes["SentTimestamp"]
    assert attributes["SenderId"]
    body = json.loads(rec["body"])
    assert record(body)["eventSource"] == "aws:s3"


def test_sqs_message_ids_are_unique() -> None:
    ids = {record(sample_payload("sqs", "b", "k"))["messageId"] for _ in range(20)}

    assert len(ids) == 20


# --------------------------------------------------------------------------- SNS fields


def test_sns_record_fields() -> None:
    rec = record(sample_payload("sns", "b", "k", region="us-west-2", now=NOW))

    assert rec["EventSource"] == "aws:sns"
    assert rec["EventVersion"] == "1.0"
    assert rec["EventSubscriptionArn"].startswith(rec["Sns"]["TopicArn"] + ":")
    sns = rec["Sns"]
    assert sns["Type"] == "Notification"
    assert uuid.UUID(sns["MessageId"])
    assert sns["TopicArn"].startswith("arn:aws:sns:us-west-2:123456789012:")
    assert sns["Subject"] == "Amazon S3 Notification"
    assert sns["Timestamp"] == "2024-05-01T12:34:56.789Z"
    assert sns["SignatureVersion"] == "1"
    assert sns["Signature"]
    assert sns["SigningCertUrl"].startswith("https://sns.us-west-2.amazonaws.com/")
    assert sns["SigningCertUrl"].endswith(".pem")
    assert "Action=Unsubscribe" in sns["UnsubscribeUrl"]
    assert sns["MessageAttributes"] == {}
    assert record(json.loads(sns["Message"]))["eventName"] == "ObjectCreated:Put"


# --------------------------------------------------------------------------- EventBridge


def test_eventbridge_fields() -> None:
    payload = sample_payload("eventbridge", "my-bucket", "k.txt", size=5, region="ca-central-1")

    assert payload["version"] == "0"
    assert uuid.UUID(str(payload["id"]))
    assert payload["detail-type"] == "Object Created"
    assert payload["source"] == "aws.s3"
    assert payload["account"] == "123456789012"
    assert payload["region"] == "ca-central-1"
    assert payload["resources"] == ["arn:aws:s3:::my-bucket"]
    detail: Any = payload["detail"]
    assert detail["version"] == "0"
    assert detail["bucket"] == {"name": "my-bucket"}
    assert detail["object"]["key"] == "k.txt"
    assert detail["object"]["size"] == 5
    assert re.fullmatch(r"[0-9a-f]{32}", detail["object"]["etag"])
    assert re.fullmatch(r"[0-9a-f]{16}", detail["object"]["sequencer"])
    assert re.fullmatch(r"[0-9A-Z]{16}", detail["request-id"])
    assert detail["requester"] == "123456789012"
    assert detail["source-ip-address"]
    assert detail["reason"] == "PutObject"
    assert "deletion-type" not in detail


def test_eventbridge_time_has_no_milliseconds() -> None:
    payload = sample_payload("eventbridge", "b", "k", now=NOW)

    assert payload["time"] == "2024-05-01T12:34:56Z"


@pytest.mark.parametrize(
    ("name", "detail_type", "reason", "deletion_type"),
    [
        ("ObjectCreated:Put", "Object Created", "PutObject", None),
        ("ObjectCreated:Post", "Object Created", "POST Object", None),
        ("ObjectCreated:Copy", "Object Created", "CopyObject", None),
        (
            "ObjectCreated:CompleteMultipartUpload",
            "Object Created",
            "CompleteMultipartUpload",
            None,
        ),
        ("ObjectRemoved:Delete", "Object Deleted", "DeleteObject", "Permanently Deleted"),
        (
            "ObjectRemoved:DeleteMarkerCreated",
            "Object Deleted",
            "DeleteObject",
            "Delete Marker Created",
        ),
        ("ObjectRestore:Completed", "Object Restore Completed", None, None),
        ("ObjectRestore:Post", "Object Restore Initiated", None, None),
        ("ObjectTagging:Put", "Object Tags Added", None, None),
        ("ObjectTagging:Delete", "Object Tags Deleted", None, None),
    ],
)
def test_eventbridge_detail_type_follows_the_event_name(
    name: str, detail_type: str, reason: str | None, deletion_type: str | None
) -> None:
    payload = sample_payload("eventbridge", "b", "k", name)
    detail: Any = payload["detail"]

    assert payload["detail-type"] == detail_type
    assert detail.get("reason") == reason
    assert detail.get("deletion-type") == deletion_type


def test_eventbridge_delete_has_no_size_but_an_etag() -> None:
    detail: Any = sample_payload("eventbridge", "b", "k", "ObjectRemoved:Delete")["detail"]

    assert "size" not in detail["object"]
    assert detail["object"]["etag"]


# --------------------------------------------------------------------------- misc


def test_payload_is_json_serialisable_and_survives_a_round_trip() -> None:
    for shape in SHAPES:
        payload = sample_payload(shape, "b", "日本/ファイル.txt")
        text = json.dumps(payload)

        assert [e.key for e in events_of(json.loads(text))] == ["日本/ファイル.txt"]


def test_shapes_constant() -> None:
    assert SHAPES == ("s3", "sqs", "sns", "eventbridge", "batch-ops")


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("kinesis", "b", "k"), {}, "unknown shape 'kinesis'"),
        (("s3", "", "k"), {}, "bucket must not be empty"),
        (("s3", "b", ""), {}, "key must not be empty"),
        (("s3", "b", "k"), {"size": -1}, "size must not be negative"),
        (("s3", "b", "k"), {"event_name": "s3:"}, "event name must not be empty"),
        (("eventbridge", "b", "k"), {"event_name": "ObjectCreated:*"}, "no EventBridge"),
    ],
)
def test_invalid_arguments_raise_value_error(
    args: tuple[str, str, str], kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        sample_payload(*args, **kwargs)
