"""Lambda / SQS payload shapes -> object events (pure: no I/O).

Interface contract (used by groups, batch and the drivers):

- ``decode_json(text, what)`` decodes a received JSON document; anything unusable is a
  ``PayloadError``.
- ``parse_invocation(payload)`` turns one Lambda event payload into an ``Invocation``.
- ``parse_sqs_body(message_id, body)`` turns one SQS message body into a ``Message``
  (used by the standalone consumer too).

Payload shapes recognised by ``parse_invocation`` (docs/design.md §2 step 1, §7):

- ``Records[*].eventSource == "aws:sqs"``: ``Source.SQS``, shape ``sqs``, one
  ``Message`` per record (``messageId``, body parsed by ``parse_sqs_body``); ``fifo``
  when ``eventSourceARN`` ends with ``.fifo``.
- ``Records[*].eventSource == "aws:s3"`` (S3 -> Lambda): ``Source.DIRECT``, shape
  ``s3``, one ``Message`` (id ``None``) holding all events.
- ``Records[*].EventSource == "aws:sns"`` (SNS -> Lambda, capital E; ``Sns.Message``
  is a JSON string): ``Source.DIRECT``, shape ``sns``, one ``Message`` (id ``None``).
- top-level ``source == "aws.s3"`` with a ``detail-type`` (EventBridge):
  ``Source.DIRECT``, shape ``eventbridge``, one ``Message`` (id ``None``).
- top-level ``{"Event": "s3:TestEvent", ...}``: ``Source.DIRECT``, shape ``s3``, one
  ``Message`` with zero events.

Anything else raises ``PayloadError`` naming what was seen. A malformed record in a
direct invocation raises ``PayloadError`` naming the record and the field, since a
direct invocation fails as a whole anyway.

An SQS message body (``parse_sqs_body``) may hold an S3 notification
(``{"Records": [...]}``), an SNS envelope (``"Type": "Notification"``, SNS -> SQS
without raw delivery) whose ``Message`` is a JSON string of an S3 notification, a test
event or an EventBridge event, an EventBridge S3 event, or an ``s3:TestEvent`` (zero
events, success). A body that cannot be used becomes a ``Message`` with ``error`` set:
it never raises, so a bad body fails only its own message.

Keys: S3 notification records (direct, in SQS bodies, in SNS messages) carry keys in
URL-encoded form (``red flower.jpg`` arrives as ``red+flower.jpg``, ``a+b`` as
``a%2Bb``); they are decoded with ``urllib.parse.unquote_plus`` (strict UTF-8).
EventBridge's ``detail.object.key`` is not encoded and is used as given.

Event names use the S3 notification spelling without ``s3:`` (``ObjectCreated:Put``).
EventBridge events (``detail-type``, ``detail.reason``, ``detail.deletion-type``) are
mapped onto it:

- ``Object Created`` + ``reason``: PutObject -> ``ObjectCreated:Put``,
  POST Object -> ``ObjectCreated:Post``, CopyObject -> ``ObjectCreated:Copy``,
  CompleteMultipartUpload -> ``ObjectCreated:CompleteMultipartUpload``; another reason R
  -> ``ObjectCreated:R`` (spaces removed); no reason -> ``ObjectCreated:Unknown``.
- ``Object Deleted`` + ``deletion-type``: Permanently Deleted (or absent) ->
  ``ObjectRemoved:Delete``, Delete Marker Created -> ``ObjectRemoved:DeleteMarkerCreated``;
  with ``reason`` Lifecycle Expiration the family is ``LifecycleExpiration`` instead
  (``LifecycleExpiration:Delete``, ``LifecycleExpiration:DeleteMarkerCreated``).
- ``Object Restore Initiated`` -> ``ObjectRestore:Post``,
  ``Object Restore Completed`` -> ``ObjectRestore:Completed``,
  ``Object Restore Expired`` -> ``ObjectRestore:Delete``.
- ``Object Tags Added`` -> ``ObjectTagging:Put``,
  ``Object Tags Deleted`` -> ``ObjectTagging:Delete``,
  ``Object ACL Updated`` -> ``ObjectAcl:Put``.
- Anything else (``Object Storage Class Changed``, ``Object Access Tier Changed``...):
  the detail-type with spaces removed (``ObjectStorageClassChanged``).

Lifecycle expirations map to ``LifecycleExpiration:*`` (not ``ObjectRemoved:*``)
because that is how S3 event notifications name them, so one ``MATCH_EVENTS``
behaves the same whichever way the events arrive. ``eventbridge_detail`` is the
inverse of this mapping (used by ``bridge.samples``).

``size`` comes from ``s3.object.size`` / ``detail.object.size`` (``None`` when absent,
as for deletes, and when it is not a plain non-negative integer: a digit string with
non-ASCII digits such as ``"²"``, or of more than 19 digits, is an unknown size, not an
error, since the size is only a hint and S3 itself gives the real one); ``etag`` from
``eTag`` / ``etag`` with surrounding quotes stripped.
"""

from __future__ import annotations

import enum
import json
import re
from dataclasses import dataclass
from urllib.parse import unquote_plus


@dataclass(frozen=True)
class ObjectEvent:
    """One S3 object change, decoded.

    ``event_name`` uses the S3 notification spelling without the ``s3:`` prefix,
    e.g. ``ObjectCreated:Put`` (EventBridge events are mapped onto it).
    ``key`` is the decoded full key. ``etag`` has no surrounding quotes.
    """

    bucket: str
    key: str
    event_name: str
    size: int | None
    etag: str | None
    message_id: str | None

    @property
    def is_removal(self) -> bool:
        """The object is gone: ``ObjectRemoved:*`` or ``LifecycleExpiration:*``."""
        return self.event_name.startswith(_REMOVAL_FAMILIES)


@dataclass(frozen=True)
class Message:
    """One unit of acknowledgement: an SQS message, or a whole direct invocation.

    ``error`` is set (and ``events`` empty) when the body could not be parsed.
    A message that parsed into zero events (``s3:TestEvent``) is a success.
    """

    message_id: str | None
    events: tuple[ObjectEvent, ...]
    error: str | None = None


class Source(enum.Enum):
    """Where an invocation came from; decides the response shape (docs/design.md §7)."""

    SQS = "sqs"
    DIRECT = "direct"


@dataclass(frozen=True)
class Invocation:
    """A parsed Lambda payload."""

    source: Source
    shape: str  # "sqs", "s3", "sns" or "eventbridge", for logs
    fifo: bool
    messages: tuple[Message, ...]


class PayloadError(ValueError):
    """The payload has no usable record; the message names the shape seen."""


_REMOVAL_FAMILIES = ("ObjectRemoved:", "LifecycleExpiration:")
_SQS = "aws:sqs"
_S3 = "aws:s3"
_SNS = "aws:sns"
_TEST_EVENT = "s3:TestEvent"
_PREVIEW = 80

# (event name, EventBridge detail-type, detail.reason, detail.deletion-type)
_EVENTBRIDGE_NAMES: tuple[tuple[str, str, str | None, str | None], ...] = (
    ("ObjectCreated:Put", "Object Created", "PutObject", None),
    ("ObjectCreated:Post", "Object Created", "POST Object", None),
    ("ObjectCreated:Copy", "Object Created", "CopyObject", None),
    ("ObjectCreated:CompleteMultipartUpload", "Object Created", "CompleteMultipartUpload", None),
    ("ObjectRemoved:Delete", "Object Deleted", "DeleteObject", "Permanently Deleted"),
    (
        "ObjectRemoved:DeleteMarkerCreated",
        "Object Deleted",
        "DeleteObject",
        "Delete Marker Created",
    ),
    ("LifecycleExpiration:Delete", "Object Deleted", "Lifecycle Expiration", "Permanently Deleted"),
    (
        "LifecycleExpiration:DeleteMarkerCreated",
        "Object Deleted",
        "Lifecycle Expiration",
        "Delete Marker Created",
    ),
    ("ObjectRestore:Post", "Object Restore Initiated", None, None),
    ("ObjectRestore:Completed", "Object Restore Completed", None, None),
    ("ObjectRestore:Delete", "Object Restore Expired", None, None),
    ("ObjectTagging:Put", "Object Tags Added", None, None),
    ("ObjectTagging:Delete", "Object Tags Deleted", None, None),
    ("ObjectAcl:Put", "Object ACL Updated", None, None),
)
_CREATED_REASONS = {
    reason: name
    for name, detail_type, reason, _ in _EVENTBRIDGE_NAMES
    if detail_type == "Object Created" and reason is not None
}
_SIMPLE_DETAIL_TYPES = {
    detail_type: name for name, detail_type, reason, _ in _EVENTBRIDGE_NAMES if reason is None
}


# --------------------------------------------------------------------------- public API


def parse_invocation(payload: object) -> Invocation:
    """Parse one Lambda event payload into an ``Invocation``.

    Raises ``PayloadError`` when the payload has no usable record (its message names
    the shape seen), or when a record of a direct invocation is malformed (its
    message names the record and the field). SQS bodies never raise: a bad body
    becomes a ``Message`` with ``error`` set.
    """
    if not isinstance(payload, dict):
        raise PayloadError(f"unrecognised payload: expected a JSON object, got {_kind(payload)}")
    if "Records" in payload:
        return _parse_records(payload["Records"])
    if _is_eventbridge(payload):
        events = _eventbridge_events(payload, None, "EventBridge event")
        return Invocation(Source.DIRECT, "eventbridge", False, (Message(None, events),))
    if _is_test_event(payload):
        return Invocation(Source.DIRECT, "s3", False, (Message(None, ()),))
    raise PayloadError(f"unrecognised payload: {_describe(payload)}")


def parse_sqs_body(message_id: str | None, body: str) -> Message:
    """Parse one SQS message body into a ``Message``; never raises.

    The body may be an S3 notification, an SNS notification envelope, an EventBridge
    S3 event or an ``s3:TestEvent`` (zero events, success). Anything else yields a
    ``Message`` with no events and ``error`` saying why, so that only this message
    fails.
    """
    try:
        events = _events_from_text(body, message_id, "body", allow_sns=True)
    except PayloadError as exc:
        return Message(message_id, (), error=str(exc))
    return Message(message_id, events)


def decode_json(text: str | bytes, what: str) -> object:
    """Decode one JSON document received from outside; ``PayloadError`` naming ``what`` if unusable.

    Every payload the bridge receives goes through here, so that hostile input (bytes that
    are not UTF-8, nesting deeper than the parser's recursion limit, an integer of more
    than 4,300 digits) is a clear error, never an exception of another kind.
    """
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise PayloadError(
            f"{what} is not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from None
    except RecursionError:
        raise PayloadError(f"{what} is not usable JSON: nested too deeply") from None
    except ValueError as exc:  # not UTF-8, or an integer too long to convert
        raise PayloadError(f"{what} is not usable JSON: {exc}") from None


def eventbridge_event_name(
    detail_type: str, reason: str | None = None, deletion_type: str | None = None
) -> str:
    """Map an EventBridge S3 ``detail-type`` (+ reason, deletion-type) to an S3 name.

    See the module docstring for the table. Unknown detail-types fall back to the
    detail-type with spaces removed (``Object Storage Class Changed`` ->
    ``ObjectStorageClassChanged``).
    """
    if detail_type == "Object Created":
        if reason is None:
            return "ObjectCreated:Unknown"
        return _CREATED_REASONS.get(reason) or f"ObjectCreated:{_compact(reason)}"
    if detail_type == "Object Deleted":
        family = "LifecycleExpiration" if reason == "Lifecycle Expiration" else "ObjectRemoved"
        kind = "DeleteMarkerCreated" if deletion_type == "Delete Marker Created" else "Delete"
        return f"{family}:{kind}"
    return _SIMPLE_DETAIL_TYPES.get(detail_type) or _compact(detail_type)


def eventbridge_detail(event_name: str) -> tuple[str, str | None, str | None]:
    """Inverse of ``eventbridge_event_name``: ``(detail-type, reason, deletion-type)``.

    ``event_name`` is an S3 event name with or without ``s3:``. A name without ``:``
    is taken as a compacted detail-type (``ObjectStorageClassChanged`` ->
    ``Object Storage Class Changed``). Raises ``ValueError`` for an S3 name that has
    no EventBridge equivalent (e.g. ``ObjectCreated:*`` or ``ReducedRedundancyLostObject``).
    """
    name = event_name.removeprefix("s3:")
    for known, detail_type, reason, deletion_type in _EVENTBRIDGE_NAMES:
        if known == name:
            return detail_type, reason, deletion_type
    if name and ":" not in name and re.fullmatch(r"(?:[A-Z][a-z]+)+", name):
        return " ".join(re.findall(r"[A-Z][a-z]+", name)), None, None
    known_names = ", ".join(row[0] for row in _EVENTBRIDGE_NAMES)
    raise ValueError(f"event name {name!r} has no EventBridge equivalent (known: {known_names})")


# --------------------------------------------------------------------------- Lambda Records


def _parse_records(records: object) -> Invocation:
    """A payload with ``Records``: dispatch on the records' event source."""
    if not isinstance(records, list):
        raise PayloadError(f"unrecognised payload: 'Records' is {_kind(records)}, expected a list")
    if not records:
        raise PayloadError("unrecognised payload: 'Records' is an empty list (no usable record)")
    sources = [_record_source(record) for record in records]
    distinct = set(sources)
    if distinct == {_SQS}:
        return _parse_sqs_records(records)
    if distinct == {_S3}:
        events = _s3_records(records, None, "")
        return Invocation(Source.DIRECT, "s3", False, (Message(None, events),))
    if distinct == {_SNS}:
        events = _sns_records(records)
        return Invocation(Source.DIRECT, "sns", False, (Message(None, events),))
    seen = ", ".join(sorted({repr(s) if s is not None else "none" for s in sources}))
    raise PayloadError(
        f"unrecognised payload: Records with event source {seen}; expected all of them "
        f"{_SQS!r}, {_S3!r} or {_SNS!r}"
    )


def _record_source(record: object) -> str | None:
    """``eventSource`` (SQS, S3) or ``EventSource`` (SNS) of a record, if any."""
    if not isinstance(record, dict):
        return None
    for field in ("eventSource", "EventSource"):
        value = record.get(field)
        if isinstance(value, str):
            return value
    return None


def _parse_sqs_records(records: list[object]) -> Invocation:
    """SQS -> Lambda: one ``Message`` per record; bodies fail individually."""
    messages: list[Message] = []
    fifo = False
    for index, record in enumerate(records):
        if not isinstance(record, dict):  # unreachable: _record_source found a source
            raise PayloadError(f"SQS record {index} is {_kind(record)}, expected a JSON object")
        message_id = record.get("messageId")
        if not isinstance(message_id, str) or not message_id:
            raise PayloadError(f"SQS record {index}: missing messageId")
        if not _is_unicode(message_id):
            raise PayloadError(f"SQS record {index}: messageId {message_id!r} is not valid Unicode")
        arn = record.get("eventSourceARN")
        fifo = fifo or (isinstance(arn, str) and arn.endswith(".fifo"))
        body = record.get("body")
        if isinstance(body, str):
            messages.append(parse_sqs_body(message_id, body))
        else:
            error = f"SQS record {index}: body is {_kind(body)}, expected a string"
            messages.append(Message(message_id, (), error=error))
    return Invocation(Source.SQS, "sqs", fifo, tuple(messages))


def _sns_records(records: list[object]) -> tuple[ObjectEvent, ...]:
    """SNS -> Lambda: each record's ``Sns.Message`` is a JSON string."""
    events: list[ObjectEvent] = []
    for index, record in enumerate(records):
        where = f"SNS record {index}"
        message = _require(record, "Sns.Message", where)
        if not isinstance(message, str):
            raise PayloadError(f"{where}: Sns.Message is {_kind(message)}, expected a string")
        events.extend(_events_from_text(message, None, f"{where}: Sns.Message", allow_sns=False))
    return tuple(events)


# --------------------------------------------------------------------------- bodies


def _events_from_text(
    text: str, message_id: str | None, where: str, *, allow_sns: bool
) -> tuple[ObjectEvent, ...]:
    """Decode a JSON text (SQS body, SNS message) and extract its events."""
    try:
        data = decode_json(text, where)
    except PayloadError as exc:
        raise PayloadError(f"{exc}: {_preview(text)}") from None
    return _events_from_json(data, message_id, where, allow_sns=allow_sns)


def _events_from_json(
    data: object, message_id: str | None, where: str, *, allow_sns: bool
) -> tuple[ObjectEvent, ...]:
    """Events from a decoded body: S3 notification, SNS envelope, EventBridge, TestEvent."""
    if not isinstance(data, dict):
        raise PayloadError(f"{where} is {_kind(data)}, expected a JSON object")
    if "Records" in data:
        records = data["Records"]
        if not isinstance(records, list):
            raise PayloadError(f"{where}: 'Records' is {_kind(records)}, expected a list")
        if not records:
            raise PayloadError(f"{where}: 'Records' is an empty list (no usable record)")
        return _s3_records(records, message_id, f"{where}: ")
    if _is_test_event(data):
        return ()
    if _is_eventbridge(data):
        return _eventbridge_events(data, message_id, where)
    if allow_sns and "Type" in data and "TopicArn" in data:
        return _sns_envelope(data, message_id, where)
    raise PayloadError(f"unrecognised {where}: {_describe(data)}")


def _sns_envelope(
    envelope: dict[str, object], message_id: str | None, where: str
) -> tuple[ObjectEvent, ...]:
    """SNS -> SQS without raw message delivery: the S3 payload is in ``Message``."""
    kind = envelope.get("Type")
    if kind == "SubscriptionConfirmation":
        raise PayloadError(
            f"{where} is an SNS SubscriptionConfirmation for {envelope.get('TopicArn')!r}: "
            "confirm the subscription (visit its SubscribeURL); it holds no S3 event"
        )
    if kind != "Notification":
        raise PayloadError(f"{where} is an SNS message of Type {kind!r}, expected 'Notification'")
    message = envelope.get("Message")
    if not isinstance(message, str):
        raise PayloadError(f"{where}: SNS Message is {_kind(message)}, expected a string")
    return _events_from_text(message, message_id, f"{where}: SNS Message", allow_sns=False)


def _is_test_event(data: dict[str, object]) -> bool:
    return data.get("Event") == _TEST_EVENT


def _is_eventbridge(data: dict[str, object]) -> bool:
    return data.get("source") == "aws.s3" and "detail-type" in data


# --------------------------------------------------------------------------- records


def _s3_records(
    records: list[object], message_id: str | None, where: str
) -> tuple[ObjectEvent, ...]:
    """S3 notification records -> events; ``where`` prefixes error messages."""
    return tuple(
        _s3_record(record, message_id, f"{where}record {index}")
        for index, record in enumerate(records)
    )


def _s3_record(record: object, message_id: str | None, where: str) -> ObjectEvent:
    """One S3 notification record (URL-encoded key) -> ``ObjectEvent``."""
    if not isinstance(record, dict):
        raise PayloadError(f"{where} is {_kind(record)}, expected a JSON object")
    source = record.get("eventSource")
    if source is not None and source != _S3:
        raise PayloadError(f"{where}: eventSource is {source!r}, expected {_S3!r}")
    name = _require_str(record, "eventName", where).removeprefix("s3:")
    if not name:
        raise PayloadError(f"{where}: eventName is empty")
    bucket = _require_str(record, "s3.bucket.name", where)
    raw_key = _require_str(record, "s3.object.key", where)
    try:
        key = unquote_plus(raw_key, errors="strict")
    except UnicodeDecodeError:
        raise PayloadError(f"{where}: s3.object.key {raw_key!r} is not URL-encoded UTF-8") from None
    return _event(
        where,
        bucket=bucket,
        key=key,
        event_name=name,
        size=_optional(record, "s3.object.size"),
        etag=_optional(record, "s3.object.eTag"),
        message_id=message_id,
    )


def _eventbridge_events(
    event: dict[str, object], message_id: str | None, where: str
) -> tuple[ObjectEvent, ...]:
    """An EventBridge S3 event -> one ``ObjectEvent`` (key used as given)."""
    detail_type = _require_str(event, "detail-type", where)
    reason = _optional(event, "detail.reason")
    deletion_type = _optional(event, "detail.deletion-type")
    name = eventbridge_event_name(
        detail_type,
        reason if isinstance(reason, str) else None,
        deletion_type if isinstance(deletion_type, str) else None,
    )
    event_ = _event(
        where,
        bucket=_require_str(event, "detail.bucket.name", where),
        key=_require_str(event, "detail.object.key", where),
        event_name=name,
        size=_optional(event, "detail.object.size"),
        etag=_optional(event, "detail.object.etag"),
        message_id=message_id,
    )
    return (event_,)


def _event(
    where: str,
    *,
    bucket: str,
    key: str,
    event_name: str,
    size: object,
    etag: object,
    message_id: str | None,
) -> ObjectEvent:
    """Validate the common fields and build the ``ObjectEvent``."""
    if not bucket:
        raise PayloadError(f"{where}: bucket name is empty")
    if not key:
        raise PayloadError(f"{where}: object key is empty")
    return ObjectEvent(
        bucket=bucket,
        key=key,
        event_name=event_name,
        size=_size(size),
        etag=_etag(etag),
        message_id=message_id,
    )


_SIZE_DIGITS = re.compile(r"[0-9]{1,19}")  # ASCII only: str.isdigit() accepts "²"


def _size(value: object) -> int | None:
    """An object size: a non-negative integer (also as an ASCII digit string), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, str) and _SIZE_DIGITS.fullmatch(value):
        return int(value)
    return None


def _etag(value: object) -> str | None:
    """An ETag without surrounding quotes; None when absent or empty."""
    if not isinstance(value, str) or not _is_unicode(value):
        return None
    return value.strip('"') or None


# --------------------------------------------------------------------------- field access


def _optional(data: object, path: str) -> object:
    """The value at a dotted ``path`` in nested objects, or None when absent."""
    current = data
    for part in path.split("."):
        if not isinstance(current, dict):
            return None
        current = current.get(part)
    return current


def _require(data: object, path: str, where: str) -> object:
    """The value at a dotted ``path``; PayloadError naming the missing part."""
    current = data
    walked: list[str] = []
    for part in path.split("."):
        if not isinstance(current, dict):
            what = ".".join(walked) or "record"
            raise PayloadError(f"{where}: {what} is {_kind(current)}, expected a JSON object")
        walked.append(part)
        if part not in current or current[part] is None:
            raise PayloadError(f"{where}: missing {'.'.join(walked)}")
        current = current[part]
    return current


def _require_str(data: object, path: str, where: str) -> str:
    """A required string at a dotted ``path``, valid Unicode (no lone surrogate)."""
    value = _require(data, path, where)
    if not isinstance(value, str):
        raise PayloadError(f"{where}: {path} is {_kind(value)}, expected a string")
    if not _is_unicode(value):
        raise PayloadError(f"{where}: {path} {value!r} holds a lone surrogate (not valid Unicode)")
    return value


def _is_unicode(text: str) -> bool:
    """True unless ``text`` holds a lone surrogate (JSON's "\\ud800"): S3 and UTF-8 refuse it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# --------------------------------------------------------------------------- descriptions


def _kind(value: object) -> str:
    """A JSON-ish name for a value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"


def _describe(data: dict[str, object]) -> str:
    """Name the shape of an unrecognised object: its top-level keys, EventBridge source."""
    if not data:
        return "empty JSON object"
    if "detail-type" in data and "source" in data:
        return (
            f"EventBridge event from source {data.get('source')!r} "
            f"(detail-type {data.get('detail-type')!r}), expected source 'aws.s3'"
        )
    keys = sorted(repr(key)[1:-1] for key in data)  # escaped: a key may hold anything
    shown = ", ".join(keys[:12]) + (", ..." if len(keys) > 12 else "")
    return f"JSON object with keys {shown}"


def _preview(text: str) -> str:
    """A short, repr-escaped excerpt of a text for error messages."""
    if len(text) <= _PREVIEW:
        return repr(text)
    return repr(text[:_PREVIEW]) + f"... ({len(text)} characters)"


def _compact(text: str) -> str:
    """``Object Storage Class Changed`` -> ``ObjectStorageClassChanged``."""
    return "".join(text.split())
