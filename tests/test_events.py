"""Unit tests for bridge.events: payload shapes -> object events (no AWS)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from bridge.events import (
    Invocation,
    Message,
    ObjectEvent,
    PayloadError,
    Source,
    decode_json,
    eventbridge_detail,
    eventbridge_event_name,
    parse_invocation,
    parse_sqs_body,
)

QUEUE_ARN = "arn:aws:sqs:us-east-2:123456789012:my-queue"
FIFO_ARN = "arn:aws:sqs:us-east-2:123456789012:my-queue.fifo"
_ETAG = "0123456789abcdef0123456789abcdef"
TEST_EVENT = {
    "Service": "Amazon S3",
    "Event": "s3:TestEvent",
    "Time": "2014-10-13T15:57:02.089Z",
    "Bucket": "bucketname",
    "RequestId": "5582815E1AEA5ADF",
    "HostId": "8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE",
}


# --------------------------------------------------------------------------- fixtures


def s3_record(
    key: str = "in/photo.jpg",
    bucket: str = "my-bucket",
    event_name: str = "ObjectCreated:Put",
    size: int | None = 1024,
    etag: str | None = _ETAG,
) -> dict[str, Any]:
    """An S3 notification record as documented by AWS (key passed already encoded)."""
    obj: dict[str, Any] = {"key": key, "sequencer": "0A1B2C3D4E5F678901"}
    if size is not None:
        obj["size"] = size
    if etag is not None:
        obj["eTag"] = etag
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "us-east-1",
        "eventTime": "1970-01-01T00:00:00.000Z",
        "eventName": event_name,
        "userIdentity": {"principalId": "EXAMPLE"},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {
            "x-amz-request-id": "EXAMPLE123456789",
            "x-amz-id-2": "EXAMPLE123/5678abcdefghijklambdaisawesome/mnopqrstuvwxyzABCDEFGH",
        },
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "testConfigRule",
            "bucket": {
                "name": bucket,
                "ownerIdentity": {"principalId": "EXAMPLE"},
                "arn": f"arn:aws:s3:::{bucket}",
            },
            "object": obj,
        },
    }


def notification(*records: dict[str, Any]) -> dict[str, Any]:
    return {"Records": list(records)}


def sqs_record(body: object, message_id: str = "msg-1", arn: str = QUEUE_ARN) -> dict[str, Any]:
    """An SQS -> Lambda record; a non-string body is JSON-encoded."""
    return {
        "messageId": message_id,
        "receiptHandle": "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a...",
        "body": body if isinstance(body, str) else json.dumps(body),
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": "1545082649183",
            "SenderId": "AIDAIENQZJOLO23YVJ4VO",
            "ApproximateFirstReceiveTimestamp": "1545082649185",
        },
        "messageAttributes": {},
        "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
        "eventSource": "aws:sqs",
        "eventSourceARN": arn,
        "awsRegion": "us-east-2",
    }


def sns_envelope(message: object) -> dict[str, Any]:
    """What SNS delivers to SQS without raw message delivery (note the URL spelling)."""
    return {
        "Type": "Notification",
        "MessageId": "95df01b4-ee98-5cb9-9903-4c221d41eb5e",
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:uploads",
        "Subject": "Amazon S3 Notification",
        "Message": message if isinstance(message, str) else json.dumps(message),
        "Timestamp": "2019-08-20T18:47:13.322Z",
        "SignatureVersion": "1",
        "Signature": "EXAMPLE",
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/cert.pem",
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
    }


def sns_lambda_record(message: object) -> dict[str, Any]:
    """An SNS -> Lambda record (capital-E EventSource, Url spelling)."""
    return {
        "EventSource": "aws:sns",
        "EventVersion": "1.0",
        "EventSubscriptionArn": "arn:aws:sns:us-east-1:123456789012:uploads:sub-id",
        "Sns": {
            "Type": "Notification",
            "MessageId": "95df01b4-ee98-5cb9-9903-4c221d41eb5e",
            "TopicArn": "arn:aws:sns:us-east-1:123456789012:uploads",
            "Subject": "Amazon S3 Notification",
            "Message": message if isinstance(message, str) else json.dumps(message),
            "Timestamp": "2019-08-20T18:47:13.322Z",
            "SignatureVersion": "1",
            "Signature": "EXAMPLE",
            "SigningCertUrl": "https://sns.us-east-1.amazonaws.com/cert.pem",
            "UnsubscribeUrl": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
            "MessageAttributes": {},
        },
    }


def eventbridge(
    detail_type: str = "Object Created",
    key: str = "in/photo.jpg",
    bucket: str = "my-bucket",
    **detail_extra: Any,
) -> dict[str, Any]:
    """An EventBridge S3 event as documented by AWS."""
    obj: dict[str, Any] = {
        "key": key,
        "size": 5,
        "etag": "b1946ac92492d2347c6235b4d2611184",
        "version-id": "IYV3p45BT0ac8hjHg1houSdS1a.Mro8e",
        "sequencer": "617f08299329d189",
    }
    detail: dict[str, Any] = {
        "version": "0",
        "bucket": {"name": bucket},
        "object": obj,
        "request-id": "N4N7GDK58NMKJ12R",
        "requester": "123456789012",
        "source-ip-address": "1.2.3.4",
        "reason": "PutObject",
    }
    detail.update(detail_extra)
    return {
        "version": "0",
        "id": "17793124-05d4-b198-2fde-7ededc63b103",
        "detail-type": detail_type,
        "source": "aws.s3",
        "account": "111122223333",
        "time": "2021-11-12T00:00:00Z",
        "region": "ca-central-1",
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": detail,
    }


def all_events(invocation: Invocation) -> list[ObjectEvent]:
    return [event for message in invocation.messages for event in message.events]


# --------------------------------------------------------------------------- direct S3


def test_direct_s3_records_make_one_message_with_all_events() -> None:
    payload = notification(s3_record("a.txt"), s3_record("b.txt", size=7))

    invocation = parse_invocation(payload)

    assert invocation.source is Source.DIRECT
    assert invocation.shape == "s3"
    assert invocation.fifo is False
    assert len(invocation.messages) == 1
    (message,) = invocation.messages
    assert message.message_id is None
    assert message.error is None
    assert message.events == (
        ObjectEvent("my-bucket", "a.txt", "ObjectCreated:Put", 1024, _ETAG, None),
        ObjectEvent("my-bucket", "b.txt", "ObjectCreated:Put", 7, _ETAG, None),
    )


def test_direct_delete_has_no_size_and_no_etag() -> None:
    record = s3_record("gone.txt", event_name="ObjectRemoved:Delete", size=None, etag=None)

    (event,) = all_events(parse_invocation(notification(record)))

    assert event.event_name == "ObjectRemoved:Delete"
    assert event.size is None
    assert event.etag is None


def test_event_name_s3_prefix_is_stripped() -> None:
    record = s3_record(event_name="s3:ObjectCreated:Copy")

    (event,) = all_events(parse_invocation(notification(record)))

    assert event.event_name == "ObjectCreated:Copy"


@pytest.mark.parametrize(
    ("raw", "etag"),
    [
        ('"d41d8cd98f00b204e9800998ecf8427e"', "d41d8cd98f00b204e9800998ecf8427e"),
        ("d41d8cd98f00b204e9800998ecf8427e", "d41d8cd98f00b204e9800998ecf8427e"),
        ('"9b2cf535f27731c974343645a3985328-12"', "9b2cf535f27731c974343645a3985328-12"),
        ('""', None),
    ],
)
def test_etag_surrounding_quotes_are_stripped(raw: str, etag: str | None) -> None:
    (event,) = all_events(parse_invocation(notification(s3_record(etag=raw))))

    assert event.etag == etag


@pytest.mark.parametrize(
    ("encoded", "decoded"),
    [
        ("red+flower.jpg", "red flower.jpg"),
        ("a%2Bb", "a+b"),
        ("100%25.txt", "100%.txt"),
        ("in/red+flower%2B1.txt", "in/red flower+1.txt"),
        ("a%252Bb", "a%2Bb"),
        ("%E6%97%A5%E6%9C%AC/%E3%83%95%E3%82%A1%E3%82%A4%E3%83%AB.txt", "日本/ファイル.txt"),
        ("2023-08-08T14%3A03%3A40.zip", "2023-08-08T14:03:40.zip"),
        ("plain/key.txt", "plain/key.txt"),
    ],
)
def test_s3_notification_keys_are_url_decoded(encoded: str, decoded: str) -> None:
    direct = all_events(parse_invocation(notification(s3_record(encoded))))
    in_sqs = parse_sqs_body("m", json.dumps(notification(s3_record(encoded)))).events
    in_sns = all_events(
        parse_invocation(notification(sns_lambda_record(notification(s3_record(encoded)))))
    )

    assert [event.key for event in direct] == [decoded]
    assert [event.key for event in in_sqs] == [decoded]
    assert [event.key for event in in_sns] == [decoded]


def test_invalid_percent_encoding_is_an_error_naming_the_key() -> None:
    with pytest.raises(PayloadError, match=r"record 0: s3\.object\.key '%E6' is not URL"):
        parse_invocation(notification(s3_record("%E6")))


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda r: r["s3"]["bucket"].pop("name"), r"record 1: missing s3\.bucket\.name"),
        (lambda r: r["s3"]["object"].pop("key"), r"record 1: missing s3\.object\.key"),
        (lambda r: r.pop("s3"), r"record 1: missing s3"),
        (lambda r: r.pop("eventName"), r"record 1: missing eventName"),
        (lambda r: r["s3"].update(object="x"), r"record 1: s3\.object is a string"),
        (lambda r: r["s3"]["object"].update(key=7), r"record 1: s3\.object\.key is a number"),
        (lambda r: r["s3"]["object"].update(key=""), r"record 1: object key is empty"),
    ],
)
def test_malformed_direct_record_names_record_and_field(mutate: Any, expected: str) -> None:
    bad = s3_record("b.txt")
    mutate(bad)

    with pytest.raises(PayloadError, match=expected):
        parse_invocation(notification(s3_record("a.txt"), bad))


def test_size_absent_or_not_a_number_is_none() -> None:
    record = s3_record()
    record["s3"]["object"]["size"] = "big"

    (event,) = all_events(parse_invocation(notification(record)))

    assert event.size is None


POISON_SIZE_BODY = (
    '{"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Put",'
    '"s3":{"bucket":{"name":"b"},"object":{"key":"in/a","size":"²"}}}]}'
)


@pytest.mark.parametrize(
    "size",
    ["²", "٣", "9" * 5000, "1" * 20, " 7", "7 ", "-1", "1e3", ""],
    ids=["superscript-two", "arabic-indic-three", "5000-digits", "20-digits", "lead-space",
         "trail-space", "negative", "exponent", "empty"],
)  # fmt: skip
def test_size_digit_strings_int_rejects_are_an_unknown_size_not_an_error(size: str) -> None:
    """``str.isdigit`` accepts "²" and 5,000 digits; ``int()`` does not: never raise on them."""
    record = s3_record("in/a")
    record["s3"]["object"]["size"] = size

    (event,) = all_events(parse_invocation(notification(record)))
    message = parse_sqs_body("m1", json.dumps(notification(record)))

    assert event.size is None
    assert message.error is None and message.events[0].size is None


def test_poison_size_body_from_the_issue_parses_with_unknown_size() -> None:
    message = parse_sqs_body("m1", POISON_SIZE_BODY)
    assert message.error is None
    assert [(e.key, e.size) for e in message.events] == [("in/a", None)]


def test_size_as_ascii_digit_string_is_kept() -> None:
    record = s3_record("in/a")
    record["s3"]["object"]["size"] = "1234567890123456789"  # 19 digits: the longest kept
    (event,) = all_events(parse_invocation(notification(record)))
    assert event.size == 1234567890123456789


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("[" * 1000 + "]" * 1000, "nested too deeply"),
        ('{"Records": ' + "[" * 5000 + "]" * 5000 + "}", "nested too deeply"),
        ('{"n": ' + "9" * 5000 + "}", "digits"),
        (b'{"a": "\xff"}', "not usable JSON"),
        ("{not json", "not JSON (Expecting property name"),
    ],
    ids=["1000-nested-arrays", "5000-nested-records", "5000-digits", "not-utf-8", "broken"],
)
def test_decode_json_turns_every_unusable_document_into_a_payload_error(
    text: str | bytes, why: str
) -> None:
    with pytest.raises(PayloadError, match=re.escape(why)) as raised:
        decode_json(text, "the event")
    assert str(raised.value).startswith("the event is not")


def test_deeply_nested_sqs_body_fails_only_its_message() -> None:
    message = parse_sqs_body("m1", "[" * 1000 + "]" * 1000)
    assert message.events == ()
    assert message.error is not None and "nested too deeply" in message.error


def test_key_with_a_lone_surrogate_is_a_payload_error_naming_it_escaped() -> None:
    """JSON's "\\ud800" decodes to a lone surrogate: no S3 key can hold one."""
    record = s3_record("in/a.txt")
    record["s3"]["object"]["key"] = "in/\ud800.txt"

    with pytest.raises(
        PayloadError, match=r"s3\.object\.key 'in/\\ud800\.txt' holds a lone"
    ) as raised:
        parse_invocation(notification(record))
    str(raised.value).encode("utf-8")  # the message itself is writable as UTF-8

    message = parse_sqs_body("m1", json.dumps(notification(record)))
    assert message.events == () and message.error is not None
    assert "lone surrogate" in message.error


def test_unrecognised_object_keys_are_named_escaped() -> None:
    with pytest.raises(PayloadError, match=r"keys \\ud800, a\\nb") as raised:
        parse_invocation({"\ud800": 1, "a\nb": 2})
    str(raised.value).encode("utf-8")


# --------------------------------------------------------------------------- SQS


def test_sqs_records_make_one_message_each_with_their_ids() -> None:
    payload = notification(
        sqs_record(notification(s3_record("a.txt")), "id-a"),
        sqs_record(notification(s3_record("b.txt"), s3_record("c.txt")), "id-b"),
    )

    invocation = parse_invocation(payload)

    assert invocation.source is Source.SQS
    assert invocation.shape == "sqs"
    assert invocation.fifo is False
    assert [m.message_id for m in invocation.messages] == ["id-a", "id-b"]
    assert [m.error for m in invocation.messages] == [None, None]
    assert [[e.key for e in m.events] for m in invocation.messages] == [
        ["a.txt"],
        ["b.txt", "c.txt"],
    ]
    assert [e.message_id for e in all_events(invocation)] == ["id-a", "id-b", "id-b"]


def test_fifo_flag_follows_event_source_arn() -> None:
    body = notification(s3_record())

    fifo = parse_invocation(notification(sqs_record(body, arn=FIFO_ARN)))
    standard = parse_invocation(notification(sqs_record(body, arn=QUEUE_ARN)))

    assert fifo.fifo is True
    assert standard.fifo is False


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("not json at all", r"body is not JSON \(Expecting value at line 1 column 1\)"),
        ("{}", r"unrecognised body: empty JSON object"),
        ('{"Records": [{}]}', r"body: record 0: missing eventName"),
        ('[{"Records": []}]', r"body is an array, expected a JSON object"),
        ('"just a string"', r"body is a string, expected a JSON object"),
        ('{"Records": []}', r"body: 'Records' is an empty list"),
        ('{"Records": {"a": 1}}', r"body: 'Records' is an object, expected a list"),
        ('{"hello": "world", "n": 1}', r"unrecognised body: JSON object with keys hello, n"),
        ("", r"body is not JSON"),
    ],
)
def test_garbage_sqs_body_fails_only_its_own_message(body: str, reason: str) -> None:
    payload = notification(
        sqs_record(notification(s3_record("before.txt")), "good-1"),
        sqs_record(body, "bad"),
        sqs_record(notification(s3_record("after.txt")), "good-2"),
    )

    invocation = parse_invocation(payload)

    good_1, bad, good_2 = invocation.messages
    assert bad.message_id == "bad"
    assert bad.events == ()
    assert bad.error is not None
    assert re.search(reason, bad.error), bad.error
    assert good_1.error is None and [e.key for e in good_1.events] == ["before.txt"]
    assert good_2.error is None and [e.key for e in good_2.events] == ["after.txt"]


def test_non_string_sqs_body_fails_its_message() -> None:
    record = sqs_record("{}", "odd")
    record["body"] = {"Records": []}

    (message,) = parse_invocation(notification(record)).messages

    assert message.message_id == "odd"
    assert message.error == "SQS record 0: body is an object, expected a string"


def test_sqs_record_without_message_id_is_a_payload_error() -> None:
    record = sqs_record(notification(s3_record()))
    del record["messageId"]

    with pytest.raises(PayloadError, match="SQS record 0: missing messageId"):
        parse_invocation(notification(record))


def test_long_garbage_body_is_previewed_not_dumped() -> None:
    message = parse_sqs_body("m", "x" * 10_000)

    assert message.error is not None
    assert "(10000 characters)" in message.error
    assert len(message.error) < 300


# --------------------------------------------------------------------------- TestEvent


def test_test_event_in_sqs_body_is_zero_events_and_success() -> None:
    (message,) = parse_invocation(notification(sqs_record(TEST_EVENT, "t"))).messages

    assert message == Message("t", (), None)


def test_test_event_in_sns_envelope_in_sqs_is_zero_events_and_success() -> None:
    message = parse_sqs_body("t", json.dumps(sns_envelope(TEST_EVENT)))

    assert message == Message("t", (), None)


def test_test_event_via_sns_to_lambda_is_zero_events_and_success() -> None:
    invocation = parse_invocation(notification(sns_lambda_record(TEST_EVENT)))

    assert invocation.shape == "sns"
    assert invocation.messages == (Message(None, (), None),)


def test_test_event_as_direct_payload_is_zero_events_and_success() -> None:
    invocation = parse_invocation(dict(TEST_EVENT))

    assert invocation.source is Source.DIRECT
    assert invocation.messages == (Message(None, (), None),)


# --------------------------------------------------------------------------- SNS


def test_sns_envelope_in_sqs_body_is_unwrapped() -> None:
    body = json.dumps(sns_envelope(notification(s3_record("red+flower.jpg"))))

    message = parse_sqs_body("m-1", body)

    assert message.error is None
    assert message.events == (
        ObjectEvent("my-bucket", "red flower.jpg", "ObjectCreated:Put", 1024, _ETAG, "m-1"),
    )


def test_sns_envelope_with_garbage_message_fails_the_message() -> None:
    message = parse_sqs_body("m-1", json.dumps(sns_envelope("Hello from SNS!")))

    assert message.events == ()
    assert message.error is not None
    assert message.error.startswith("body: SNS Message is not JSON")


def test_sns_subscription_confirmation_in_sqs_says_what_to_do() -> None:
    envelope = sns_envelope("You have chosen to subscribe...")
    envelope["Type"] = "SubscriptionConfirmation"

    message = parse_sqs_body("m-1", json.dumps(envelope))

    assert message.error is not None
    assert "SubscriptionConfirmation" in message.error
    assert "SubscribeURL" in message.error


def test_sns_to_lambda_is_direct_shape_sns() -> None:
    payload = notification(sns_lambda_record(notification(s3_record("x/y.bin", size=3))))

    invocation = parse_invocation(payload)

    assert invocation.source is Source.DIRECT
    assert invocation.shape == "sns"
    assert invocation.fifo is False
    assert invocation.messages == (
        Message(None, (ObjectEvent("my-bucket", "x/y.bin", "ObjectCreated:Put", 3, _ETAG, None),)),
    )


def test_sns_to_lambda_with_unparseable_message_raises_naming_the_record() -> None:
    payload = notification(sns_lambda_record("Hello from SNS!"))

    with pytest.raises(PayloadError, match=r"SNS record 0: Sns\.Message is not JSON"):
        parse_invocation(payload)


def test_sns_to_lambda_without_message_raises() -> None:
    record = sns_lambda_record(notification(s3_record()))
    del record["Sns"]["Message"]

    with pytest.raises(PayloadError, match=r"SNS record 0: missing Sns\.Message"):
        parse_invocation(notification(record))


# --------------------------------------------------------------------------- EventBridge


def test_eventbridge_direct_event() -> None:
    invocation = parse_invocation(eventbridge(key="raw/a b+c%2B.txt"))

    assert invocation.source is Source.DIRECT
    assert invocation.shape == "eventbridge"
    assert invocation.fifo is False
    assert invocation.messages == (
        Message(
            None,
            (
                ObjectEvent(
                    bucket="my-bucket",
                    key="raw/a b+c%2B.txt",  # used as given: EventBridge does not encode
                    event_name="ObjectCreated:Put",
                    size=5,
                    etag="b1946ac92492d2347c6235b4d2611184",
                    message_id=None,
                ),
            ),
        ),
    )


def test_eventbridge_event_in_sqs_body_carries_the_message_id() -> None:
    message = parse_sqs_body("eb-1", json.dumps(eventbridge(key="日本/ファイル.txt")))

    assert message.error is None
    assert [(e.key, e.message_id) for e in message.events] == [("日本/ファイル.txt", "eb-1")]


def test_eventbridge_delete_has_no_size() -> None:
    event = eventbridge(
        "Object Deleted", reason="DeleteObject", **{"deletion-type": "Delete Marker Created"}
    )
    del event["detail"]["object"]["size"]

    (parsed,) = all_events(parse_invocation(event))

    assert parsed.event_name == "ObjectRemoved:DeleteMarkerCreated"
    assert parsed.size is None
    assert parsed.etag == "b1946ac92492d2347c6235b4d2611184"


def test_eventbridge_missing_key_raises_naming_the_field() -> None:
    event = eventbridge()
    del event["detail"]["object"]["key"]

    with pytest.raises(PayloadError, match=r"EventBridge event: missing detail\.object\.key"):
        parse_invocation(event)


def test_eventbridge_missing_bucket_in_sqs_body_fails_the_message() -> None:
    event = eventbridge()
    del event["detail"]["bucket"]

    message = parse_sqs_body("m", json.dumps(event))

    assert message.events == ()
    assert message.error == "body: missing detail.bucket"


@pytest.mark.parametrize(
    ("detail_type", "detail", "name"),
    [
        ("Object Created", {"reason": "PutObject"}, "ObjectCreated:Put"),
        ("Object Created", {"reason": "POST Object"}, "ObjectCreated:Post"),
        ("Object Created", {"reason": "CopyObject"}, "ObjectCreated:Copy"),
        (
            "Object Created",
            {"reason": "CompleteMultipartUpload"},
            "ObjectCreated:CompleteMultipartUpload",
        ),
        ("Object Created", {"reason": "Some New Api"}, "ObjectCreated:SomeNewApi"),
        ("Object Created", {"reason": None}, "ObjectCreated:Unknown"),
        (
            "Object Deleted",
            {"reason": "DeleteObject", "deletion-type": "Permanently Deleted"},
            "ObjectRemoved:Delete",
        ),
        (
            "Object Deleted",
            {"reason": "DeleteObject", "deletion-type": "Delete Marker Created"},
            "ObjectRemoved:DeleteMarkerCreated",
        ),
        ("Object Deleted", {"reason": "DeleteObject"}, "ObjectRemoved:Delete"),
        (
            "Object Deleted",
            {"reason": "Lifecycle Expiration", "deletion-type": "Permanently Deleted"},
            "LifecycleExpiration:Delete",
        ),
        (
            "Object Deleted",
            {"reason": "Lifecycle Expiration", "deletion-type": "Delete Marker Created"},
            "LifecycleExpiration:DeleteMarkerCreated",
        ),
        ("Object Restore Completed", {"reason": None}, "ObjectRestore:Completed"),
        ("Object Restore Initiated", {"reason": None}, "ObjectRestore:Post"),
        ("Object Restore Expired", {"reason": None}, "ObjectRestore:Delete"),
        ("Object Tags Added", {"reason": None}, "ObjectTagging:Put"),
        ("Object Tags Deleted", {"reason": None}, "ObjectTagging:Delete"),
        ("Object ACL Updated", {"reason": None}, "ObjectAcl:Put"),
        ("Object Storage Class Changed", {"reason": None}, "ObjectStorageClassChanged"),
        ("Object Access Tier Changed", {"reason": None}, "ObjectAccessTierChanged"),
    ],
)
def test_eventbridge_names_map_onto_s3_spelling(
    detail_type: str, detail: dict[str, Any], name: str
) -> None:
    event = eventbridge(detail_type, **detail)

    (parsed,) = all_events(parse_invocation(event))

    assert parsed.event_name == name
    assert (
        eventbridge_event_name(detail_type, detail.get("reason"), detail.get("deletion-type"))
        == name
    )


@pytest.mark.parametrize(
    "name",
    [
        "ObjectCreated:Put",
        "ObjectCreated:Post",
        "ObjectCreated:Copy",
        "ObjectCreated:CompleteMultipartUpload",
        "ObjectRemoved:Delete",
        "ObjectRemoved:DeleteMarkerCreated",
        "LifecycleExpiration:Delete",
        "LifecycleExpiration:DeleteMarkerCreated",
        "ObjectRestore:Post",
        "ObjectRestore:Completed",
        "ObjectRestore:Delete",
        "ObjectTagging:Put",
        "ObjectTagging:Delete",
        "ObjectAcl:Put",
        "ObjectStorageClassChanged",
    ],
)
def test_eventbridge_detail_is_the_inverse_mapping(name: str) -> None:
    detail_type, reason, deletion_type = eventbridge_detail(name)

    assert eventbridge_event_name(detail_type, reason, deletion_type) == name
    assert eventbridge_detail("s3:" + name) == (detail_type, reason, deletion_type)


def test_eventbridge_detail_examples() -> None:
    assert eventbridge_detail("ObjectCreated:Put") == ("Object Created", "PutObject", None)
    assert eventbridge_detail("ObjectRemoved:DeleteMarkerCreated") == (
        "Object Deleted",
        "DeleteObject",
        "Delete Marker Created",
    )
    assert eventbridge_detail("ObjectStorageClassChanged") == (
        "Object Storage Class Changed",
        None,
        None,
    )


@pytest.mark.parametrize("name", ["ObjectCreated:*", "ReducedRedundancyLostObject:", "", "x"])
def test_eventbridge_detail_rejects_names_without_equivalent(name: str) -> None:
    with pytest.raises(ValueError, match="has no EventBridge equivalent"):
        eventbridge_detail(name)


# --------------------------------------------------------------------------- unknown shapes


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ([], r"expected a JSON object, got an array"),
        ("hello", r"expected a JSON object, got a string"),
        (None, r"expected a JSON object, got null"),
        (42, r"expected a JSON object, got a number"),
        ({}, r"empty JSON object"),
        ({"foo": 1, "bar": 2}, r"JSON object with keys bar, foo"),
        ({"Records": []}, r"'Records' is an empty list"),
        ({"Records": "x"}, r"'Records' is a string, expected a list"),
        (
            {"Records": [{"eventSource": "aws:dynamodb"}]},
            r"Records with event source 'aws:dynamodb'",
        ),
        (
            {"Records": [{"eventSource": "aws:kinesis"}, {"eventSource": "aws:kinesis"}]},
            r"Records with event source 'aws:kinesis';",
        ),
        ({"Records": [{}]}, r"Records with event source none"),
        ({"Records": [1, 2]}, r"Records with event source none"),
        (
            {"Records": [{"eventSource": "aws:s3"}, {"eventSource": "aws:sqs"}]},
            r"Records with event source 'aws:s3', 'aws:sqs'",
        ),
        (
            {"source": "aws.ec2", "detail-type": "EC2 Instance State-change Notification"},
            r"EventBridge event from source 'aws.ec2' \(detail-type 'EC2 Instance",
        ),
        ({"Event": "s3:SomethingElse"}, r"JSON object with keys Event"),
    ],
)
def test_unknown_shapes_raise_payload_error_naming_the_shape(
    payload: object, expected: str
) -> None:
    with pytest.raises(PayloadError, match=expected) as info:
        parse_invocation(payload)

    assert str(info.value).startswith("unrecognised payload")


def test_payload_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unrecognised payload"):
        parse_invocation({"Records": []})


def test_many_top_level_keys_are_truncated() -> None:
    payload = {f"k{i:02d}": i for i in range(30)}

    with pytest.raises(PayloadError) as info:
        parse_invocation(payload)

    assert "k00" in str(info.value)
    assert "k29" not in str(info.value)
    assert str(info.value).endswith("...")


def test_parse_sqs_body_never_raises_on_deeply_nested_json() -> None:
    body = "[" * 100_000 + "]" * 100_000

    message = parse_sqs_body("deep", body)

    assert message.events == ()
    assert message.error is not None
