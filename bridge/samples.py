"""Realistic sample Lambda payloads, as AWS sends them (pure: no I/O).

Backs the ``event`` mode (docs/design.md §5) and the tests. ``sample_payload`` builds one
payload of a given shape for one object:

- ``s3``: S3 -> Lambda, ``{"Records": [<S3 notification record>]}``;
- ``sqs``: SQS -> Lambda, one SQS record whose ``body`` is an S3 notification (JSON
  string, with the real ``md5OfBody``);
- ``sns``: SNS -> Lambda, one SNS record whose ``Sns.Message`` is an S3 notification;
- ``eventbridge``: an EventBridge S3 event (``detail-type`` ``Object Created``...);
- ``batch-ops``: an S3 Batch Operations invocation, a task per key (``invocationSchemaVersion``
  1.0, or 2.0 with ``schema="2.0"``, which may carry ``user_arguments``).

Keys are URL-encoded exactly where AWS encodes them: in S3 notification records
(``quote_plus(key, safe="/")``: spaces become ``+``, ``+`` becomes ``%2B``, non-ASCII
is UTF-8 percent-encoded), never in EventBridge's ``detail.object.key``. Object
removals (``ObjectRemoved:*``, ``LifecycleExpiration:*``) carry no size (and, in S3
notifications, no eTag), as with AWS.

Identifiers (message ids, request ids, receipt handles, signatures) are random and
obviously fake; the account is ``123456789012``. Parsing a sample with
``bridge.events.parse_invocation`` yields exactly one event for the given bucket and
(decoded) key. Each shape is built by its own module of ``bridge.sources``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from bridge.sources import SHAPES, SampleSpec, source_named

__all__ = ["SHAPES", "sample_batch", "sample_payload"]


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
    return sample_batch(shape, bucket, [key], event_name, size, region=region, now=now)


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
    schema: str | None = None,
    user_arguments: Mapping[str, str] | None = None,
) -> dict[str, object]:
    """A payload of ``shape`` for several objects: one message per key, as a batch.

    ``one_message`` puts every key in one message instead (one SQS message or SNS
    notification whose S3 notification holds one record per key). A direct S3 payload is
    one ``Records`` list either way; an EventBridge event carries exactly one object.
    ``schema`` and ``user_arguments`` are for ``batch-ops``: its ``invocationSchemaVersion``
    and ``job.userArguments``; other shapes refuse them.
    Raises ``ValueError`` as ``sample_payload`` does, and for several keys in ``eventbridge``.
    """
    if not keys:
        raise ValueError("give at least one key")
    source = source_named(shape)
    if not bucket:
        raise ValueError("bucket must not be empty")
    if not all(keys):
        raise ValueError("key must not be empty")
    if size < 0:
        raise ValueError(f"size must not be negative, got {size}")
    name = event_name.removeprefix("s3:")
    if not name:
        raise ValueError("event name must not be empty")
    if (schema is not None or user_arguments) and shape != "batch-ops":
        raise ValueError(f"a schema and user arguments are for batch-ops, not {shape}")
    when = (now or datetime.now(UTC)).astimezone(UTC)
    arguments = tuple((user_arguments or {}).items())
    spec = SampleSpec(bucket, name, size, region, when, schema, arguments)
    return source.sample(spec, keys, one_message)
