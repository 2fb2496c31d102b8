"""The event-source table (bridge.sources): one entry per source decides how a payload is
recognised, parsed, sampled and answered; a new source is one more entry."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest

from bridge import sources
from bridge.batch import InvocationResult, MessageFailure
from bridge.events import parse_invocation, parse_sqs_body
from bridge.samples import SHAPES, sample_batch, sample_payload
from bridge.sources import (
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
)
from bridge.sources.base import BodyReader, require_str


def test_shapes_follow_the_table() -> None:
    assert tuple(source.shape for source in sources.SOURCES) == SHAPES
    with pytest.raises(ValueError, match="unknown shape 'kafka': expected one of s3, sqs"):
        sources.source_named("kafka")


@pytest.mark.parametrize("shape", SHAPES)
def test_each_source_parses_its_own_sample_and_answers_by_its_rule(shape: str) -> None:
    invocation = parse_invocation(sample_payload(shape, "b", "in/a b.txt"))
    assert invocation.shape == shape
    [message] = invocation.messages
    assert [(e.bucket, e.key) for e in message.events] == [("b", "in/a b.txt")]

    failure = MessageFailure(message.message_id, "s3://b/in/: handler exited with status 3")
    success = InvocationResult(invocation, (), ()).reply()
    failed = InvocationResult(invocation, (), (failure,)).reply()
    if shape == "sqs":
        assert success == Reply({"batchItemFailures": []}, is_error=False)
        assert failed.body == {"batchItemFailures": [{"itemIdentifier": message.message_id}]}
        assert not failed.is_error
    elif shape == "batch-ops":
        [result] = failed.body["results"]
        assert result == {
            "taskId": message.message_id,
            "resultCode": "TemporaryFailure",
            "resultString": failure.reason,
        }
        assert not failed.is_error and not success.is_error
        assert success.body["results"][0]["resultCode"] == "Succeeded"
    else:
        assert success == Reply({}, is_error=False)
        assert failed.is_error and failed.body["errorType"] == "ExecutionGroupFailed"
        assert failed.body["errorMessage"] == failure.reason


def test_a_document_is_not_looked_for_inside_its_own_source() -> None:
    envelope = '{"Type": "Notification", "TopicArn": "arn:t", "Message": "%s"}'
    inner = envelope % "{}"
    message = parse_sqs_body("m1", envelope % inner.replace('"', '\\"'))
    assert message.error is not None
    assert "unrecognised body: SNS Message: JSON object with keys Message, TopicArn, Type" in (
        message.error
    )


# --- a new source is one entry: an invented task-list source, with its own response shape ---


def _tasks_parse(payload: dict[str, object], read_body: BodyReader) -> Invocation:
    tasks = payload["tasks"]
    assert isinstance(tasks, list)
    messages = []
    for index, task in enumerate(tasks):
        where = f"task {index}"
        task_id = require_str(task, "taskId", where)
        bucket, key = require_str(task, "s3Bucket", where), require_str(task, "s3Key", where)
        event = ObjectEvent(bucket, key, "BatchOperation", None, None, task_id)
        messages.append(Message(task_id, (event,)))
    invocation_id = require_str(payload, "invocationId", "payload")
    details = (("invocationId", invocation_id),)
    return Invocation(Source.DIRECT, "demo-tasks", False, tuple(messages), details)


def _tasks_respond(
    invocation: Invocation, failures: Sequence[FailedMessage], settled: Sequence[Settled]
) -> Reply:
    failed = {f.message_id: f.reason for f in failures}
    results = [
        {
            "taskId": m.message_id,
            "resultCode": "PermanentFailure" if m.message_id in failed else "Succeeded",
            "resultString": failed.get(m.message_id, ""),
        }
        for m in invocation.messages
    ]
    body = {"demoSchema": "2.0", "treatMissingKeysAs": "PermanentFailure"}
    return Reply({**body, **dict(invocation.details), "results": results}, is_error=False)


def _tasks_sample(spec: SampleSpec, keys: Sequence[str], one_message: bool) -> dict[str, object]:
    return {
        "demoSchema": "2.0",
        "invocationId": "inv-1",
        "job": {"id": "job-1"},
        "tasks": [
            {"taskId": f"t{i}", "s3Bucket": spec.bucket, "s3Key": key} for i, key in enumerate(keys)
        ],
    }


def _is_tasks(payload: Mapping[str, object]) -> bool:
    return "demoSchema" in payload and "tasks" in payload


TASKS = EventSource(
    shape="demo-tasks",
    parse=_tasks_parse,
    sample=_tasks_sample,
    respond=_tasks_respond,
    recognises=_is_tasks,
)


def test_a_new_source_needs_only_its_table_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    tasks = {"demoSchema": "2.0", "invocationId": "i", "tasks": []}
    with pytest.raises(PayloadError, match="unrecognised payload"):
        parse_invocation(tasks)
    monkeypatch.setattr(sources, "SOURCES", (*sources.SOURCES, TASKS))

    payload = sample_batch("demo-tasks", "b", ["in/a.txt", "in/b.txt"])
    invocation = parse_invocation(payload)
    failure = MessageFailure("t1", "s3://b/in/: handler exited with status 3")
    answer = InvocationResult(invocation, (), (failure,)).reply()

    assert [m.message_id for m in invocation.messages] == ["t0", "t1"]
    assert answer == Reply(
        {
            "demoSchema": "2.0",
            "treatMissingKeysAs": "PermanentFailure",
            "invocationId": "inv-1",
            "results": [
                {"taskId": "t0", "resultCode": "Succeeded", "resultString": ""},
                {"taskId": "t1", "resultCode": "PermanentFailure", "resultString": failure.reason},
            ],
        },
        is_error=False,
    )
