"""S3 Batch Operations (pure): a ``LambdaInvoke`` job's invocations, answered task by task.

- Recognised: a top-level payload with ``invocationSchemaVersion`` (Batch Operations invokes
  the function directly; it never arrives inside an SQS body or SNS message).
- Parsed: ``invocationSchemaVersion`` "1.0" (``tasks[].s3BucketArn``, ``arn:aws:s3:::bucket``)
  or "2.0" (``tasks[].s3Bucket``, and ``job.userArguments``, at most 10 string pairs). Each
  task is its own ``Message`` (id: its ``taskId``) of one event: the task's bucket, its
  ``s3Key`` decoded with ``unquote_plus`` as for notifications, its ``s3VersionId`` (may be
  null), no size or ETag, and the event name ``ObjectCreated:Put``: a task asks for an
  existing object to be processed as if it had just been written, so ``MATCH_EVENTS`` treats
  it as the upload it stands for. A payload without ``invocationId``, usable ``tasks`` or a
  ``taskId`` for every task raises ``PayloadError`` (no task could be answered); any other
  malformed task fails that task only, permanently.
- Response: Batch Operations' own shape, never an error document (Batch Operations reads a
  result per task): ``invocationSchemaVersion`` and ``invocationId`` echoed,
  ``treatMissingKeysAs: "PermanentFailure"``, one ``results[]`` entry per task:
  ``Succeeded`` (``resultString`` "1 output", "3 outputs", or why nothing ran),
  ``TemporaryFailure`` for a failure a retry may cure (handler failed or timed out, a
  transient S3 error, the Lambda deadline), ``PermanentFailure`` for one it cannot (the
  object does not exist, the key is refused by the safety rules, the chain-depth limit, a
  configuration that cannot act on it, a task that cannot be parsed).
- Sample: one task per key, keys URL-encoded (``quote_plus(key, safe="/")``), schema "1.0"
  unless asked for "2.0" (which carries the user arguments given, if any).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import replace
from urllib.parse import quote_plus, unquote_plus

from bridge.sources import fake
from bridge.sources.base import (
    USER_ARGUMENTS,
    BodyReader,
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
    is_unicode,
    kind,
    object_event,
    optional,
    require_str,
)

SHAPE = "batch-ops"
SCHEMAS = ("1.0", "2.0")
EVENT_NAME = "ObjectCreated:Put"  # what a task stands for, for MATCH_EVENTS
SCHEMA, INVOCATION_ID, JOB_ID = "invocationSchemaVersion", "invocationId", "jobId"
SUCCEEDED, TEMPORARY, PERMANENT = "Succeeded", "TemporaryFailure", "PermanentFailure"
RESULT_STRING_LIMIT = 300  # characters: a line of the completion report, not a log
_WHERE = "S3 Batch Operations payload"


def recognises(payload: Mapping[str, object]) -> bool:
    """Only Batch Operations sends ``invocationSchemaVersion``."""
    return SCHEMA in payload


def parse(payload: dict[str, object], read_body: BodyReader) -> Invocation:
    """One ``Message`` per task; ``PayloadError`` when no task could be answered."""
    schema = require_str(payload, SCHEMA, _WHERE)
    if schema not in SCHEMAS:
        raise PayloadError(
            f"{_WHERE}: {SCHEMA} {schema!r} is not supported (expected '1.0' or '2.0')"
        )
    invocation_id = require_str(payload, INVOCATION_ID, _WHERE)
    tasks = payload.get("tasks")
    if not isinstance(tasks, list) or not tasks:
        shown = "an empty list" if tasks == [] else kind(tasks)
        raise PayloadError(f"{_WHERE}: tasks is {shown}, expected a list of tasks")
    details = [(SCHEMA, schema), (INVOCATION_ID, invocation_id), *_job_details(payload)]
    messages: list[Message] = []
    seen: dict[str, int] = {}
    for index, task in enumerate(tasks):
        where = f"{_WHERE}: task {index}"
        task_id = require_str(task, "taskId", where)
        if not task_id:
            raise PayloadError(f"{where}: taskId is empty")
        if task_id in seen:
            raise PayloadError(f"{where}: taskId {task_id!r} repeats that of task {seen[task_id]}")
        seen[task_id] = index
        try:
            messages.append(Message(task_id, (_task_event(task, task_id, schema, where),)))
        except PayloadError as exc:
            messages.append(Message(task_id, (), error=str(exc)))
    return Invocation(Source.TASKS, SHAPE, False, tuple(messages), tuple(details))


def _job_details(payload: Mapping[str, object]) -> list[tuple[str, str]]:
    """``jobId`` and the user arguments (as a JSON object text) of ``job``, when present."""
    job = payload.get("job")
    if job is None:
        return []
    if not isinstance(job, dict):
        raise PayloadError(f"{_WHERE}: job is {kind(job)}, expected a JSON object")
    details: list[tuple[str, str]] = []
    job_id = job.get("id")
    if isinstance(job_id, str) and is_unicode(job_id):
        details.append((JOB_ID, job_id))
    arguments = job.get(USER_ARGUMENTS)
    if arguments is None:
        return details
    if not isinstance(arguments, dict):
        raise PayloadError(f"{_WHERE}: job.userArguments is {kind(arguments)}, expected an object")
    for name, value in arguments.items():
        if not isinstance(value, str) or not is_unicode(value) or not is_unicode(name):
            raise PayloadError(
                f"{_WHERE}: job.userArguments.{name!r} is {kind(value)}, expected a string"
            )
    return [*details, (USER_ARGUMENTS, json.dumps(arguments, ensure_ascii=False))]


def _task_event(task: object, task_id: str, schema: str, where: str) -> ObjectEvent:
    """One task -> its ``ObjectEvent``; ``PayloadError`` naming the field otherwise."""
    raw_key = require_str(task, "s3Key", where)
    try:
        key = unquote_plus(raw_key, errors="strict")
    except UnicodeDecodeError:
        raise PayloadError(f"{where}: s3Key {raw_key!r} is not URL-encoded UTF-8") from None
    version = optional(task, "s3VersionId")
    if version is not None and (not isinstance(version, str) or not is_unicode(version)):
        raise PayloadError(f"{where}: s3VersionId is {kind(version)}, expected a string or null")
    event = object_event(
        where,
        bucket=_bucket(task, schema, where),
        key=key,
        event_name=EVENT_NAME,
        size=None,
        etag=None,
        message_id=task_id,
    )
    return replace(event, version_id=version or None)


def _bucket(task: object, schema: str, where: str) -> str:
    """``s3Bucket`` (2.0) or the bucket named by ``s3BucketArn`` (1.0), whichever the task
    carries (a task of one version with the other version's field is read too)."""
    arn_only = optional(task, "s3Bucket") is None and optional(task, "s3BucketArn") is not None
    if not arn_only and (schema == "2.0" or optional(task, "s3Bucket") is not None):
        return require_str(task, "s3Bucket", where)
    arn = require_str(task, "s3BucketArn", where)
    # arn:PARTITION:s3:REGION:ACCOUNT:BUCKET (region and account are empty for buckets)
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn" or parts[2] != "s3" or "/" in parts[5]:
        raise PayloadError(f"{where}: s3BucketArn {arn!r} is not the ARN of an S3 bucket")
    return parts[5]


# --------------------------------------------------------------------------- the response


def respond(
    invocation: Invocation, failures: Sequence[FailedMessage], settled: Sequence[Settled] = ()
) -> Reply:
    """A result per task, in task order; never an error document."""
    details = dict(invocation.details)
    failed = {f.message_id: f for f in failures}
    done = {s.message_id: s for s in settled}
    results: list[dict[str, str]] = []
    for message in invocation.messages:
        code, text = task_result(failed.get(message.message_id), done.get(message.message_id))
        results.append(
            {"taskId": message.message_id or "", "resultCode": code, "resultString": text}
        )
    body = {
        SCHEMA: details.get(SCHEMA, "1.0"),
        "treatMissingKeysAs": PERMANENT,
        INVOCATION_ID: details.get(INVOCATION_ID, ""),
        "results": results,
    }
    reported = tuple(r["taskId"] for r in results if r["resultCode"] != SUCCEEDED)
    return Reply(body, is_error=False, failed_ids=tuple(i for i in reported if i not in failed))


def task_result(failure: FailedMessage | None, settled: Settled | None) -> tuple[str, str]:
    """``(resultCode, resultString)`` of one task."""
    if failure is not None:
        return (PERMANENT if failure.permanent else TEMPORARY), _short(failure.reason)
    if settled is None:  # not reached: every message either failed or settled
        return TEMPORARY, "not processed"
    if settled.unusable:
        return PERMANENT, _short("; ".join(why for _, why in settled.unusable))
    if not settled.groups:
        return SUCCEEDED, _short(f"matched nothing: {settled.ignored or 'no event'}")
    if settled.skipped == settled.groups:
        return SUCCEEDED, "skipped: the execution filter returned false"
    return SUCCEEDED, f"{settled.outputs} output{'' if settled.outputs == 1 else 's'}"


def _short(text: str) -> str:
    if len(text) <= RESULT_STRING_LIMIT:
        return text
    return text[: RESULT_STRING_LIMIT - 1] + "…"


# --------------------------------------------------------------------------- samples


def sample(spec: SampleSpec, keys: Sequence[str], one_message: bool) -> dict[str, object]:
    """One invocation holding a task per key (``one_message`` changes nothing).

    ``ValueError`` for a schema other than 1.0 / 2.0, user arguments without 2.0, or an
    event name other than ``ObjectCreated:Put`` (tasks carry none).
    """
    schema = spec.schema or "1.0"
    if schema not in SCHEMAS:
        raise ValueError(f"schema must be 1.0 or 2.0, got {schema!r}")
    if spec.user_arguments and schema != "2.0":
        raise ValueError("user arguments need schema 2.0, as in Batch Operations")
    if spec.event_name != EVENT_NAME:
        raise ValueError(f"Batch Operations tasks carry no event name (they run as {EVENT_NAME})")
    job: dict[str, object] = {"id": str(uuid.uuid4())}
    if spec.user_arguments:
        job[USER_ARGUMENTS] = dict(spec.user_arguments)
    return {
        SCHEMA: schema,
        INVOCATION_ID: fake.random_b64(38).rstrip("="),
        "job": job,
        "tasks": [_task(spec, schema, key) for key in keys],
    }


def _task(spec: SampleSpec, schema: str, key: str) -> dict[str, object]:
    task: dict[str, object] = {
        "taskId": fake.random_b64(15),
        "s3Key": quote_plus(key, safe="/"),
        "s3VersionId": None,
    }
    if schema == "2.0":
        task["s3Bucket"] = spec.bucket
    else:
        task["s3BucketArn"] = f"arn:aws:s3:::{spec.bucket}"
    return task


SOURCE = EventSource(
    shape=SHAPE,
    parse=parse,
    sample=sample,
    respond=respond,
    recognises=recognises,
)
