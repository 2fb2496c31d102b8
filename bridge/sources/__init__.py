"""Event sources: one module per source, and the ordered table that dispatches between them.

Each module (``s3``, ``sqs``, ``sns``, ``eventbridge``, ``batch_operations``) owns everything
about its source: how to recognise its payload, how to parse it into an ``Invocation``, how it
looks nested in an SQS body or SNS message, how to build a realistic sample of it, and its
response rule. It
declares all of that in one ``SOURCE = EventSource(...)`` (``base.EventSource``). This
package only dispatches, as Mangum's adapter list does: the first entry of ``SOURCES`` that
recognises a payload parses it, and ``SHAPES`` (``event`` mode, ``bridge.samples``) follows
the same order.

To add a source (as S3 Batch Operations was, whose response lists a result per task): write
``bridge/sources/<name>.py`` with its ``parse``, ``sample`` and ``respond`` functions and its
``SOURCE``, and add that one entry to ``SOURCES`` below. The drivers, ``batch``, ``samples``
and the ``event`` mode's choices follow from the table.

Precedence: a ``Records`` payload goes to the source its records name; any other payload,
and any nested document, to the first source in table order that recognises it.
Shared pieces live in ``base`` (the model, ``decode_json``, field access that names the
record and field in errors) and ``fake`` (identifiers for samples).

Every JSON text nested in a payload (SQS bodies, SNS messages) is decoded by one reader,
``read_body``: ``base.decode_json``, then the first source whose ``body`` form recognises
the document.
"""

from __future__ import annotations

from collections.abc import Sequence

from bridge.sources import batch_operations, eventbridge, s3, sns, sqs
from bridge.sources.base import (
    EventSource,
    FailedMessage,
    Invocation,
    Message,
    ObjectEvent,
    PayloadError,
    Reply,
    SampleSpec,
    Settled,
    Source,
    decode_json,
    describe,
    kind,
    preview,
)

__all__ = [
    "SHAPES",
    "SOURCES",
    "EventSource",
    "FailedMessage",
    "Invocation",
    "Message",
    "ObjectEvent",
    "PayloadError",
    "Reply",
    "SampleSpec",
    "Settled",
    "Source",
    "decode_json",
    "parse_invocation",
    "parse_sqs_body",
    "read_body",
    "reply",
    "source_named",
]

SOURCES: tuple[EventSource, ...] = (
    s3.SOURCE,
    sqs.SOURCE,
    sns.SOURCE,
    eventbridge.SOURCE,
    batch_operations.SOURCE,
)
SHAPES: tuple[str, ...] = tuple(source.shape for source in SOURCES)


def source_named(shape: str) -> EventSource:
    """The source of ``shape``; ``ValueError`` naming the known ones otherwise."""
    for source in SOURCES:
        if source.shape == shape:
            return source
    known = ", ".join(source.shape for source in SOURCES)
    raise ValueError(f"unknown shape {shape!r}: expected one of {known}")


def parse_invocation(payload: object) -> Invocation:
    """Parse one Lambda event payload into an ``Invocation``.

    Raises ``PayloadError`` when the payload has no usable record (its message names
    the shape seen), or when a record of a direct invocation is malformed (its
    message names the record and the field). SQS bodies never raise: a bad body
    becomes a ``Message`` with ``error`` set.
    """
    if not isinstance(payload, dict):
        raise PayloadError(f"unrecognised payload: expected a JSON object, got {kind(payload)}")
    if "Records" in payload:
        return _records_source(payload["Records"]).parse(payload, read_body)
    for source in SOURCES:
        if source.recognises(payload):
            return source.parse(payload, read_body)
    raise PayloadError(f"unrecognised payload: {describe(payload)}")


def _records_source(records: object) -> EventSource:
    """The source of a ``Records`` payload: the one every record names."""
    if not isinstance(records, list):
        raise PayloadError(f"unrecognised payload: 'Records' is {kind(records)}, expected a list")
    if not records:
        raise PayloadError("unrecognised payload: 'Records' is an empty list (no usable record)")
    named = [_record_source(record) for record in records]
    by_record_source = {s.record_source: s for s in SOURCES if s.record_source is not None}
    distinct = set(named)
    if len(distinct) == 1 and (only := distinct.pop()) in by_record_source:
        return by_record_source[only]
    seen = ", ".join(sorted({repr(s) if s is not None else "none" for s in named}))
    expected = [repr(name) for name in by_record_source]
    raise PayloadError(
        f"unrecognised payload: Records with event source {seen}; expected all of them "
        f"{', '.join(expected[:-1])} or {expected[-1]}"
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


def read_body(
    text: str, message_id: str | None, where: str, *, inside: str
) -> tuple[ObjectEvent, ...]:
    """Decode a nested JSON text (SQS body, SNS message) and extract its events.

    The first source (other than ``inside``, the one holding the text) whose body form
    recognises the document reads it. ``PayloadError`` (prefixed by ``where``) otherwise.
    """
    try:
        document = decode_json(text, where)
    except PayloadError as exc:
        raise PayloadError(f"{exc}: {preview(text)}") from None
    if not isinstance(document, dict):
        raise PayloadError(f"{where} is {kind(document)}, expected a JSON object")
    for source in SOURCES:
        if source.body is not None and source.shape != inside and source.body.recognises(document):
            return source.body.events(document, message_id, where, read_body)
    raise PayloadError(f"unrecognised {where}: {describe(document)}")


def parse_sqs_body(message_id: str | None, body: str) -> Message:
    """Parse one SQS message body into a ``Message``; never raises.

    The body may be an S3 notification, an SNS notification envelope, an EventBridge
    S3 event or an ``s3:TestEvent`` (zero events, success). Anything else yields a
    ``Message`` with no events and ``error`` saying why, so that only this message
    fails.
    """
    return sqs.message(message_id, body, read_body)


def reply(
    invocation: Invocation, failures: Sequence[FailedMessage], settled: Sequence[Settled] = ()
) -> Reply:
    """What goes back to Lambda for ``invocation``: its source's response rule applied to the
    messages that failed and to what happened to the others."""
    return source_named(invocation.shape).respond(invocation, failures, settled)
