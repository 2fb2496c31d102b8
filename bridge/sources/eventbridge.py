"""EventBridge S3 events (pure): ``source == "aws.s3"`` with a ``detail-type``.

- Recognised: such a top-level payload (EventBridge -> Lambda), or the same document inside
  an SQS body or SNS message.
- Parsed: one ``Message`` (id ``None`` when direct) holding one event. ``detail.object.key``
  is not encoded and is used as given.
- Sample: one object per event (several keys are a ``ValueError``); the ``detail-type``,
  ``reason`` and ``deletion-type`` follow from the S3 event name.
- Response: as a whole (``{}``, or an ``ExecutionGroupFailed`` error document).

Event names use the S3 notification spelling without ``s3:`` (``ObjectCreated:Put``).
EventBridge events (``detail-type``, ``detail.reason``, ``detail.deletion-type``) are
mapped onto it by one table, ``_NAMES``, read both ways:

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

Lifecycle expirations map to ``LifecycleExpiration:*`` (not ``ObjectRemoved:*``) because
that is how S3 event notifications name them, so one ``MATCH_EVENTS`` behaves the same
whichever way the events arrive.
"""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Mapping, Sequence

from bridge.sources import fake
from bridge.sources.base import (
    REMOVAL_FAMILIES,
    BodyForm,
    BodyReader,
    EventSource,
    Invocation,
    Message,
    ObjectEvent,
    SampleSpec,
    Source,
    object_event,
    optional,
    require_str,
    respond_as_a_whole,
)

# (event name, detail-type, detail.reason, detail.deletion-type)
_NAMES: tuple[tuple[str, str, str | None, str | None], ...] = (
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
    for name, detail_type, reason, _ in _NAMES
    if detail_type == "Object Created" and reason is not None
}
_SIMPLE_DETAIL_TYPES = {
    detail_type: name for name, detail_type, reason, _ in _NAMES if reason is None
}


def recognises(document: Mapping[str, object]) -> bool:
    """An EventBridge event from S3 (other sources are not S3 events)."""
    return document.get("source") == "aws.s3" and "detail-type" in document


def parse(payload: dict[str, object], read_body: BodyReader) -> Invocation:
    """EventBridge -> Lambda: one message of one event."""
    events = _events(payload, None, "EventBridge event", read_body)
    return Invocation(Source.DIRECT, "eventbridge", False, (Message(None, events),))


def _events(
    event: dict[str, object], message_id: str | None, where: str, read_body: BodyReader
) -> tuple[ObjectEvent, ...]:
    """An EventBridge S3 event -> one ``ObjectEvent`` (key used as given)."""
    detail_type = require_str(event, "detail-type", where)
    reason = optional(event, "detail.reason")
    deletion_type = optional(event, "detail.deletion-type")
    name = event_name(
        detail_type,
        reason if isinstance(reason, str) else None,
        deletion_type if isinstance(deletion_type, str) else None,
    )
    return (
        object_event(
            where,
            bucket=require_str(event, "detail.bucket.name", where),
            key=require_str(event, "detail.object.key", where),
            event_name=name,
            size=optional(event, "detail.object.size"),
            etag=optional(event, "detail.object.etag"),
            message_id=message_id,
        ),
    )


def event_name(
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


def detail(event_name: str) -> tuple[str, str | None, str | None]:
    """Inverse of ``event_name``: ``(detail-type, reason, deletion-type)``.

    ``event_name`` is an S3 event name with or without ``s3:``. A name without ``:``
    is taken as a compacted detail-type (``ObjectStorageClassChanged`` ->
    ``Object Storage Class Changed``). Raises ``ValueError`` for an S3 name that has
    no EventBridge equivalent (e.g. ``ObjectCreated:*`` or ``ReducedRedundancyLostObject``).
    """
    name = event_name.removeprefix("s3:")
    for known, detail_type, reason, deletion_type in _NAMES:
        if known == name:
            return detail_type, reason, deletion_type
    if name and ":" not in name and re.fullmatch(r"(?:[A-Z][a-z]+)+", name):
        return " ".join(re.findall(r"[A-Z][a-z]+", name)), None, None
    known_names = ", ".join(row[0] for row in _NAMES)
    raise ValueError(f"event name {name!r} has no EventBridge equivalent (known: {known_names})")


def _compact(text: str) -> str:
    """``Object Storage Class Changed`` -> ``ObjectStorageClassChanged``."""
    return "".join(text.split())


# --------------------------------------------------------------------------- samples


def sample(spec: SampleSpec, keys: Sequence[str], one_message: bool) -> dict[str, object]:
    """An EventBridge S3 event; the key is not encoded. It carries exactly one object."""
    if len(keys) != 1:
        raise ValueError("an EventBridge event carries one object: give a single --key")
    key, when = keys[0], spec.when
    detail_type, reason, deletion_type = detail(spec.event_name)
    obj: dict[str, object] = {"key": key}
    if not spec.event_name.startswith(REMOVAL_FAMILIES):
        obj["size"] = spec.size
    # Deletes do carry an etag on EventBridge (that of the removed version or marker).
    obj["etag"] = fake.etag(spec.bucket, key, spec.size)
    obj["sequencer"] = f"{fake.seconds_hex(when)}{secrets.token_hex(4)}"
    details: dict[str, object] = {
        "version": "0",
        "bucket": {"name": spec.bucket},
        "object": obj,
        "request-id": fake.request_id(),
        "requester": fake.ACCOUNT,
        "source-ip-address": fake.SOURCE_IP,
    }
    if reason is not None:
        details["reason"] = reason
    if deletion_type is not None:
        details["deletion-type"] = deletion_type
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": "aws.s3",
        "account": fake.ACCOUNT,
        "time": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": spec.region,
        "resources": [f"arn:aws:s3:::{spec.bucket}"],
        "detail": details,
    }


SOURCE = EventSource(
    shape="eventbridge",
    parse=parse,
    sample=sample,
    respond=respond_as_a_whole,
    recognises=recognises,
    body=BodyForm(recognises, _events),
)
