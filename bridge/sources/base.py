"""What every event source shares (pure: no I/O): the event model, the body decoder, field
access with errors that name the record and the field, and ``EventSource``, the one entry a
source module adds to the dispatch table of ``bridge.sources``.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from bridge.errors import EXECUTION_GROUP_FAILED, error_document

REMOVAL_FAMILIES = ("ObjectRemoved:", "LifecycleExpiration:")
TEST_EVENT = "s3:TestEvent"
USER_ARGUMENTS = "userArguments"  # the ``Invocation.details`` entry of the user arguments
_PREVIEW = 80

# --------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class ObjectEvent:
    """One S3 object change, decoded.

    ``event_name`` uses the S3 notification spelling without the ``s3:`` prefix,
    e.g. ``ObjectCreated:Put`` (EventBridge events are mapped onto it).
    ``key`` is the decoded full key. ``etag`` has no surrounding quotes. ``version_id`` is the
    object version a source names (S3 Batch Operations' ``s3VersionId``), when it does.
    """

    bucket: str
    key: str
    event_name: str
    size: int | None
    etag: str | None
    message_id: str | None
    version_id: str | None = None

    @property
    def is_removal(self) -> bool:
        """The object is gone: ``ObjectRemoved:*`` or ``LifecycleExpiration:*``."""
        return self.event_name.startswith(REMOVAL_FAMILIES)


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
    """How an invocation is acknowledged (docs/design.md §7): ``SQS`` message by message,
    ``DIRECT`` as a whole, ``TASKS`` with a result per task (S3 Batch Operations)."""

    SQS = "sqs"
    DIRECT = "direct"
    TASKS = "tasks"


@dataclass(frozen=True)
class Invocation:
    """A parsed Lambda payload.

    ``shape`` names the event source that parsed it (an entry of ``bridge.sources.SOURCES``):
    its response rule answers the invocation. ``details`` holds what that rule must echo
    beyond message ids (an S3 Batch Operations ``invocationId``, say): (name, value) pairs;
    under ``USER_ARGUMENTS`` the JSON object that reaches the handler as
    ``BRIDGE_USER_ARGUMENTS``.
    """

    source: Source
    shape: str  # "sqs", "s3", "sns", "eventbridge" or "batch-ops"
    fifo: bool
    messages: tuple[Message, ...]
    details: tuple[tuple[str, str], ...] = ()

    @property
    def user_arguments(self) -> str:
        """The invocation's user arguments as a JSON object text; ``{}`` when it has none."""
        return dict(self.details).get(USER_ARGUMENTS, "{}")


class PayloadError(ValueError):
    """The payload has no usable record; the message names the shape seen."""


# --------------------------------------------------------------------------- the table entry


class FailedMessage(Protocol):
    """A message that did not succeed (``bridge.batch.MessageFailure``); ``permanent`` when
    processing it again cannot succeed."""

    @property
    def message_id(self) -> str | None: ...

    @property
    def reason(self) -> str: ...

    @property
    def permanent(self) -> bool: ...


@dataclass(frozen=True)
class Settled:
    """What happened to a message that did not fail, for rules that answer per message.

    ``outputs``: objects uploaded by the groups it contributed to; ``groups``: how many ran
    (0: every event of it was ignored, ``ignored`` says why); ``skipped``: groups the
    execution filter skipped; ``unusable``: its keys those groups could not act on, with why
    (the object does not exist, the key is refused by the safety rules).
    """

    message_id: str | None
    outputs: int = 0
    groups: int = 0
    skipped: int = 0
    ignored: str | None = None
    unusable: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Reply:
    """What goes back to Lambda for an invocation: a response, or an error document.

    ``failed_ids``: messages the response reports as failed beyond the failures it was given
    (a Batch Operations task whose object does not exist): the invocation did not all succeed.
    """

    body: dict[str, Any]
    is_error: bool
    failed_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class SampleSpec:
    """What a sample payload is about, except its keys (``bridge.samples``)."""

    bucket: str
    event_name: str  # without ``s3:``
    size: int
    region: str
    when: datetime  # UTC
    schema: str | None = None  # S3 Batch Operations invocationSchemaVersion (default 1.0)
    user_arguments: tuple[tuple[str, str], ...] = ()  # S3 Batch Operations, schema 2.0


class BodyReader(Protocol):
    """Decode a JSON text nested in a payload (an SQS body, an SNS message) into events.

    ``inside`` names the source whose payload holds the text: its own body form is not
    looked for again (an SNS envelope inside an SNS message is not one).
    """

    def __call__(
        self, text: str, message_id: str | None, where: str, *, inside: str
    ) -> tuple[ObjectEvent, ...]: ...


@dataclass(frozen=True)
class BodyForm:
    """How a source looks as a document nested in another source's payload."""

    recognises: Callable[[Mapping[str, object]], bool]
    # (document, message id, where, reader of further nested texts) -> events
    events: Callable[[dict[str, object], str | None, str, BodyReader], tuple[ObjectEvent, ...]]


# (invocation, the messages that failed, what happened to the others) -> the reply
ResponseRule = Callable[[Invocation, Sequence[FailedMessage], Sequence[Settled]], Reply]


def never(payload: Mapping[str, object]) -> bool:
    """A ``recognises`` for sources known only by their ``Records``."""
    return False


@dataclass(frozen=True)
class EventSource:
    """One event source: how to recognise it, parse it, sample it, and answer it.

    A Lambda payload belongs to the source when it is ``{"Records": [...]}`` whose records
    all name ``record_source`` as their event source, or when ``recognises`` says so (the
    first source of the table that does). ``parse`` turns it into an ``Invocation``
    (``read_body`` decodes the texts nested in it). ``body``, when set, is how the source
    looks inside an SQS body or SNS message. ``sample`` builds a realistic payload for some
    keys (``one_message``: all keys in one message, where the shape allows it). ``respond``
    is the response rule: what goes back to Lambda once the messages are processed.
    """

    shape: str
    parse: Callable[[dict[str, object], BodyReader], Invocation]
    sample: Callable[[SampleSpec, Sequence[str], bool], dict[str, object]]
    respond: ResponseRule
    record_source: str | None = None
    recognises: Callable[[Mapping[str, object]], bool] = never
    body: BodyForm | None = None


def respond_as_a_whole(
    invocation: Invocation, failures: Sequence[FailedMessage], settled: Sequence[Settled] = ()
) -> Reply:
    """The response rule of a direct invocation: ``{}``, or an error document naming every
    failure (so Lambda's retries and on-failure destinations apply)."""
    if not failures:
        return Reply({}, is_error=False)
    reasons = "; ".join(failure.reason for failure in failures)
    return Reply(error_document(EXECUTION_GROUP_FAILED, reasons), is_error=True)


# --------------------------------------------------------------------------- decoding


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


def records_of(payload: Mapping[str, object], where: str) -> list[object]:
    """The non-empty ``Records`` list of a payload; ``where`` prefixes the error."""
    records = payload["Records"]
    if not isinstance(records, list):
        raise PayloadError(f"{where}'Records' is {kind(records)}, expected a list")
    if not records:
        raise PayloadError(f"{where}'Records' is an empty list (no usable record)")
    return records


def object_event(
    where: str,
    *,
    bucket: str,
    key: str,
    event_name: str,
    size: object,
    etag: object,
    message_id: str | None,
) -> ObjectEvent:
    """Validate the common fields and build the ``ObjectEvent``.

    ``size``: a non-negative integer (also as an ASCII digit string), else unknown (None):
    it is only a hint, S3 gives the real one. ``etag``: surrounding quotes stripped.
    """
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
    if not isinstance(value, str) or not is_unicode(value):
        return None
    return value.strip('"') or None


# --------------------------------------------------------------------------- field access


def optional(data: object, path: str) -> object:
    """The value at a dotted ``path`` in nested objects, or None when absent."""
    current = data
    for part in path.split("."):
        if not isinstance(current, dict):
            return None
        current = current.get(part)
    return current


def require(data: object, path: str, where: str) -> object:
    """The value at a dotted ``path``; PayloadError naming the missing part."""
    current = data
    walked: list[str] = []
    for part in path.split("."):
        if not isinstance(current, dict):
            what = ".".join(walked) or "record"
            raise PayloadError(f"{where}: {what} is {kind(current)}, expected a JSON object")
        walked.append(part)
        if part not in current or current[part] is None:
            raise PayloadError(f"{where}: missing {'.'.join(walked)}")
        current = current[part]
    return current


def require_str(data: object, path: str, where: str) -> str:
    """A required string at a dotted ``path``, valid Unicode (no lone surrogate)."""
    value = require(data, path, where)
    if not isinstance(value, str):
        raise PayloadError(f"{where}: {path} is {kind(value)}, expected a string")
    if not is_unicode(value):
        raise PayloadError(f"{where}: {path} {value!r} holds a lone surrogate (not valid Unicode)")
    return value


def is_unicode(text: str) -> bool:
    """True unless ``text`` holds a lone surrogate (JSON's "\\ud800"): S3 and UTF-8 refuse it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def is_test_event(data: Mapping[str, object]) -> bool:
    """S3's ``s3:TestEvent``, sent when a notification is configured: zero events."""
    return data.get("Event") == TEST_EVENT


# --------------------------------------------------------------------------- descriptions


def kind(value: object) -> str:
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


def describe(data: Mapping[str, object]) -> str:
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


def preview(text: str) -> str:
    """A short, repr-escaped excerpt of a text for error messages."""
    if len(text) <= _PREVIEW:
        return repr(text)
    return repr(text[:_PREVIEW]) + f"... ({len(text)} characters)"
