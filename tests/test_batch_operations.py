"""S3 Batch Operations as an event source (bridge.sources.batch_operations): parsing both
invocation schemas, and the per-task response, through the real batch processing (no AWS)."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from bridge.backfill import ExistingObject, manifest_row
from bridge.batch import Routing, process_invocation
from bridge.cli import main
from bridge.engine import Engine
from bridge.events import ObjectEvent, PayloadError, Source, parse_invocation
from bridge.groups import ExecutionGroup
from bridge.outcomes import NO_SUCH_OBJECT, GroupOutcome, Status, unusable_triggers
from bridge.samples import sample_batch
from bridge.settings import load_settings
from bridge.storage import Storage

# The request events of AWS's documentation (schema 1.0 with the bucket ARN of the Lambda
# guide's example; schema 2.0 with user arguments and a null version id).
V1: dict[str, Any] = {
    "invocationSchemaVersion": "1.0",
    "invocationId": "YXNkbGZqYWRmaiBhc2RmdW9hZHNmZGpmaGFzbGtkaGZza2RmaAo",
    "job": {"id": "f3cc4f60-61f6-4a2b-8a21-d07600c373ce"},
    "tasks": [
        {
            "taskId": "dGFza2lkZ29lc2hlcmUK",
            "s3Key": "customerImage1.jpg",
            "s3VersionId": "1",
            "s3BucketArn": "arn:aws:s3:us-east-1:0123456788:awsexamplebucket",
        }
    ],
}
V2: dict[str, Any] = {
    "invocationSchemaVersion": "2.0",
    "invocationId": "YXNkbGZqYWRmaiBhc2RmdW9hZHNmZGpmaGFzbGtkaGZza2RmaAo",
    "job": {
        "id": "f3cc4f60-61f6-4a2b-8a21-d07600c373ce",
        "userArguments": {"k1": "v1", "k2": "v2"},
    },
    "tasks": [
        {
            "taskId": "dGFza2lkZ29lc2hlcmUK",
            "s3Key": "prefix/dataset/dataset.20231222.json.gz",
            "s3VersionId": None,
            "s3Bucket": "powertools-dataset",
        }
    ],
}
ALL = Routing(match_key=None, match_events=None, pull_parent_dirs=0)


def payload_with(base: dict[str, Any], change: Callable[[dict[str, Any]], object]) -> Any:
    payload = copy.deepcopy(base)
    change(payload)
    return payload


def task_payload(*keys: str, schema: str = "2.0") -> dict[str, Any]:
    """A 2.0 (or 1.0) payload with a task per key, task ids t0, t1, ..."""
    payload = sample_batch("batch-ops", "bkt", list(keys), schema=schema)
    tasks: Any = payload["tasks"]
    for index, task in enumerate(tasks):
        task["taskId"] = f"t{index}"
    return payload


# --------------------------------------------------------------------------- parsing


def test_schema_1_names_the_bucket_by_its_arn_and_keeps_the_version() -> None:
    invocation = parse_invocation(V1)

    assert invocation.source is Source.TASKS and invocation.shape == "batch-ops"
    [message] = invocation.messages
    assert message.message_id == "dGFza2lkZ29lc2hlcmUK"
    assert message.events == (
        ObjectEvent(
            "awsexamplebucket",
            "customerImage1.jpg",
            "ObjectCreated:Put",
            None,
            None,
            "dGFza2lkZ29lc2hlcmUK",
            version_id="1",
        ),
    )
    assert dict(invocation.details)["invocationId"] == V1["invocationId"]
    assert invocation.user_arguments == "{}"


def test_schema_1_reads_the_plain_bucket_arn() -> None:
    payload = payload_with(V1, lambda p: p["tasks"][0].update(s3BucketArn="arn:aws:s3:::photos"))

    [message] = parse_invocation(payload).messages
    assert message.events[0].bucket == "photos"


def test_schema_2_names_the_bucket_and_carries_the_user_arguments() -> None:
    invocation = parse_invocation(V2)

    [message] = invocation.messages
    [event] = message.events
    assert (event.bucket, event.key) == ("powertools-dataset", V2["tasks"][0]["s3Key"])
    assert event.version_id is None
    assert json.loads(invocation.user_arguments) == {"k1": "v1", "k2": "v2"}
    assert dict(invocation.details)["invocationSchemaVersion"] == "2.0"


@pytest.mark.parametrize(
    ("encoded", "key"),
    [
        ("in/red+flower%2B1.txt", "in/red flower+1.txt"),
        ("a%252Bb", "a%2Bb"),
        ("%E6%97%A5%E6%9C%AC/%E3%83%95%E3%82%A1%E3%82%A4%E3%83%AB.txt", "日本/ファイル.txt"),
        ("2023-08-08T14%3A03%3A40.zip", "2023-08-08T14:03:40.zip"),
        ("plain%20space.txt", "plain space.txt"),
    ],
)
def test_keys_are_url_decoded_like_every_other_source(encoded: str, key: str) -> None:
    payload = payload_with(V2, lambda p: p["tasks"][0].update(s3Key=encoded))

    [message] = parse_invocation(payload).messages
    assert message.events[0].key == key


def test_sample_keys_round_trip_in_both_schemas() -> None:
    keys = ["in/red flower+1.txt", "日本/ファイル.txt", "a%2Bb"]
    for schema in ("1.0", "2.0"):
        invocation = parse_invocation(sample_batch("batch-ops", "bkt", keys, schema=schema))

        assert [m.events[0].key for m in invocation.messages] == keys
        assert {m.events[0].bucket for m in invocation.messages} == {"bkt"}
        assert len({m.message_id for m in invocation.messages}) == 3


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: p.update(invocationSchemaVersion="3.0"), "'3.0' is not supported"),
        (lambda p: p.update(invocationSchemaVersion=2), "invocationSchemaVersion is a number"),
        (lambda p: p.pop("invocationId"), "missing invocationId"),
        (lambda p: p.pop("tasks"), "tasks is null, expected a list of tasks"),
        (lambda p: p.update(tasks=[]), "tasks is an empty list"),
        (lambda p: p.update(tasks={"taskId": "t"}), "tasks is an object"),
        (lambda p: p["tasks"][0].pop("taskId"), "task 0: missing taskId"),
        (lambda p: p["tasks"][0].update(taskId=""), "task 0: taskId is empty"),
        (lambda p: p["tasks"].append(dict(p["tasks"][0])), "task 1: taskId .* repeats"),
        (lambda p: p.update(job="j"), "job is a string, expected a JSON object"),
        (lambda p: p["job"].update(userArguments=["a"]), "userArguments is an array"),
        (lambda p: p["job"]["userArguments"].update(n=1), r"userArguments\.'n' is a number"),
    ],
)
def test_a_payload_no_task_could_be_answered_for_is_a_clear_error(
    change: Callable[[dict[str, Any]], object], message: str
) -> None:
    with pytest.raises(PayloadError, match="S3 Batch Operations payload: .*" + message):
        parse_invocation(payload_with(V2, change))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.pop("s3Key"), "missing s3Key"),
        (lambda t: t.update(s3Key=""), "object key is empty"),
        (lambda t: t.update(s3Key="caf%E9"), "s3Key 'caf%E9' is not URL-encoded UTF-8"),
        (lambda t: t.pop("s3Bucket"), "missing s3Bucket"),
        (lambda t: t.update(s3VersionId=3), "s3VersionId is a number"),
        (
            lambda t: (t.pop("s3Bucket"), t.update(s3BucketArn="arn:aws:s3:::b/k")),
            "s3BucketArn 'arn:aws:s3:::b/k' is not the ARN of an S3 bucket",
        ),
        (
            lambda t: (t.pop("s3Bucket"), t.update(s3BucketArn="bucket")),
            "is not the ARN of an S3 bucket",
        ),
    ],
)
def test_a_malformed_task_fails_only_itself_permanently(
    change: Callable[[dict[str, Any]], object], message: str
) -> None:
    payload = task_payload("in/a.txt", "in/b.txt")
    change(payload["tasks"][1])

    invocation = parse_invocation(payload)
    good, broken = invocation.messages
    assert [e.key for e in good.events] == ["in/a.txt"]
    assert broken.events == () and broken.error is not None
    assert re.search(message, broken.error), broken.error
    assert broken.error.startswith("S3 Batch Operations payload: task 1: ")

    ran: list[ExecutionGroup] = []

    def run(group: ExecutionGroup) -> GroupOutcome:
        ran.append(group)
        return succeeded(group)

    result = process_invocation(invocation, ALL, run)
    [ok, refused] = result.reply().body["results"]
    assert [g.prefix for g in ran] == ["in/"]
    assert ok == {"taskId": "t0", "resultCode": "Succeeded", "resultString": "0 outputs"}
    assert refused["taskId"] == "t1" and refused["resultCode"] == "PermanentFailure"
    assert refused["resultString"].startswith("cannot parse message: ")


def test_schema_1_without_a_bucket_arn_names_the_field_it_expects() -> None:
    payload = payload_with(V1, lambda p: p["tasks"][0].pop("s3BucketArn"))

    [message] = parse_invocation(payload).messages
    assert message.error is not None and "missing s3BucketArn" in message.error


def test_a_task_of_one_schema_with_the_other_schemas_bucket_field_is_read() -> None:
    arn_in_2 = payload_with(
        V2, lambda p: p["tasks"][0].update(s3Bucket=None, s3BucketArn="arn:aws:s3:::x")
    )
    name_in_1 = payload_with(V1, lambda p: p["tasks"][0].update(s3BucketArn=None, s3Bucket="y"))

    assert parse_invocation(arn_in_2).messages[0].events[0].bucket == "x"
    assert parse_invocation(name_in_1).messages[0].events[0].bucket == "y"


# --------------------------------------------------------------------------- the response


def succeeded(group: ExecutionGroup, *uploaded: str) -> GroupOutcome:
    return GroupOutcome(group, Status.SUCCEEDED, uploaded=uploaded)


def respond(
    payload: dict[str, Any], run: Callable[[ExecutionGroup], GroupOutcome], **routing: Any
) -> Any:
    invocation = parse_invocation(payload)
    chosen = Routing(**{"match_key": None, "match_events": None, "pull_parent_dirs": 0, **routing})
    result = process_invocation(invocation, chosen, run)
    reply = result.reply()
    assert not reply.is_error  # Batch Operations reads a result per task: never an error
    return reply


def by_prefix(outcomes: dict[str, Callable[[ExecutionGroup], GroupOutcome]]) -> Any:
    return lambda group: outcomes[group.prefix](group)


def test_every_result_code_with_its_result_string() -> None:
    payload = task_payload(
        "one/a.txt",  # ran and uploaded one output
        "two/a.txt",  # ran and uploaded two
        "flaky/a.txt",  # handler failed: a retry may help
        "deep/a.txt",  # chain depth: a retry cannot help
        "gone/a.txt",  # the object does not exist
        "skip/a.txt",  # the execution filter said false
        "other/a.txt",  # MATCH_KEY does not match
    )
    reply = respond(
        payload,
        by_prefix(
            {
                "one/": lambda g: succeeded(g, "one/out.txt"),
                "two/": lambda g: succeeded(g, "two/x", "two/y"),
                "flaky/": lambda g: GroupOutcome(g, Status.FAILED, "handler exited with status 3"),
                "deep/": lambda g: GroupOutcome(
                    g, Status.FAILED, "chain depth limit reached (depth 16)", permanent=True
                ),
                "gone/": lambda g: GroupOutcome(
                    g, Status.SUCCEEDED, unusable=(("gone/a.txt", NO_SUCH_OBJECT),)
                ),
                "skip/": lambda g: GroupOutcome(
                    g, Status.SKIPPED, "execution filter returned false"
                ),
            }
        ),
        match_key=re.compile("^(?!other/)"),
    )

    assert reply.body == {
        "invocationSchemaVersion": "2.0",
        "treatMissingKeysAs": "PermanentFailure",
        "invocationId": payload["invocationId"],
        "results": [
            {"taskId": "t0", "resultCode": "Succeeded", "resultString": "1 output"},
            {"taskId": "t1", "resultCode": "Succeeded", "resultString": "2 outputs"},
            {
                "taskId": "t2",
                "resultCode": "TemporaryFailure",
                "resultString": "s3://bkt/flaky/: handler exited with status 3",
            },
            {
                "taskId": "t3",
                "resultCode": "PermanentFailure",
                "resultString": "s3://bkt/deep/: chain depth limit reached (depth 16)",
            },
            {"taskId": "t4", "resultCode": "PermanentFailure", "resultString": NO_SUCH_OBJECT},
            {
                "taskId": "t5",
                "resultCode": "Succeeded",
                "resultString": "skipped: the execution filter returned false",
            },
            {
                "taskId": "t6",
                "resultCode": "Succeeded",
                "resultString": "matched nothing: key does not match MATCH_KEY",
            },
        ],
    }
    # the tasks failed beyond the groups' own failures are named, so invoke exits 1
    assert reply.failed_ids == ("t4",)


def test_schema_1_is_echoed_and_a_long_reason_is_cut_short() -> None:
    payload = task_payload("a/x.txt", schema="1.0")
    reason = "handler exited with status 1: " + "x" * 1000

    reply = respond(payload, lambda g: GroupOutcome(g, Status.FAILED, reason))

    assert reply.body["invocationSchemaVersion"] == "1.0"
    [result] = reply.body["results"]
    assert result["resultCode"] == "TemporaryFailure"
    assert len(result["resultString"]) == 300 and result["resultString"].endswith("…")


def test_tasks_of_one_folder_share_one_group_and_each_get_a_result() -> None:
    ran: list[ExecutionGroup] = []

    def run(group: ExecutionGroup) -> GroupOutcome:
        ran.append(group)
        return succeeded(group, "in/out.txt")

    reply = respond(task_payload("in/a.txt", "in/b.txt"), run)

    assert [sorted(g.message_ids) for g in ran] == [["t0", "t1"]]
    assert [r["resultCode"] for r in reply.body["results"]] == ["Succeeded", "Succeeded"]


def test_a_shared_group_failing_permanently_fails_every_task_of_it() -> None:
    reply = respond(
        task_payload("in/a.txt", "in/b.txt"),
        lambda g: GroupOutcome(g, Status.FAILED, "NoSuchBucket", permanent=True),
    )

    assert [r["resultCode"] for r in reply.body["results"]] == ["PermanentFailure"] * 2


def test_only_the_task_whose_object_is_missing_fails_in_a_shared_group() -> None:
    reply = respond(
        task_payload("in/a.txt", "in/gone.txt"),
        lambda g: GroupOutcome(
            g, Status.SUCCEEDED, uploaded=("in/o",), unusable=(("in/gone.txt", NO_SUCH_OBJECT),)
        ),
    )

    assert [(r["resultCode"], r["resultString"]) for r in reply.body["results"]] == [
        ("Succeeded", "1 output"),
        ("PermanentFailure", NO_SUCH_OBJECT),
    ]


def test_a_task_refused_by_the_safety_rules_fails_permanently_with_why() -> None:
    refused = (("in/x", "key refused: unsafe key: '..' is not a valid path part"),)
    reply = respond(
        task_payload("in/x"), lambda g: GroupOutcome(g, Status.SUCCEEDED, unusable=refused)
    )

    [result] = reply.body["results"]
    assert result["resultCode"] == "PermanentFailure"
    assert result["resultString"] == refused[0][1]


# --------------------------------------------------------------------------- unusable triggers


def event(key: str, name: str = "ObjectCreated:Put") -> ObjectEvent:
    return ObjectEvent("bkt", key, name, None, None, "m")


def test_unusable_triggers_names_gone_and_refused_keys_once() -> None:
    events = [event("p/listed"), event("p/gone"), event("p/bad"), event("p/gone")]

    found = unusable_triggers(events, {"p/bad": "unsafe key: x"}, {"p/listed", "p/bad"})

    assert found == (("p/gone", NO_SUCH_OBJECT), ("p/bad", "key refused: unsafe key: x"))


def test_unusable_triggers_without_a_listing_uses_the_keys_found_gone() -> None:
    events = [event("p/a"), event("p/b")]

    assert unusable_triggers(events, {}, None) == ()
    assert unusable_triggers(events, {}, None, gone={"p/b"}) == (("p/b", NO_SUCH_OBJECT),)


def test_a_removal_is_never_unusable() -> None:
    events = [event("p/a", "ObjectRemoved:Delete")]

    assert unusable_triggers(events, {}, set(), gone={"p/a"}) == ()


# --------------------------------------------------------------------------- samples


def test_schema_2_sample_has_the_fields_aws_sends() -> None:
    payload: Any = sample_batch(
        "batch-ops", "bkt", ["in/a b.txt"], schema="2.0", user_arguments={"mode": "full"}
    )

    assert set(payload) == {"invocationSchemaVersion", "invocationId", "job", "tasks"}
    assert payload["invocationSchemaVersion"] == "2.0"
    assert re.fullmatch(r"[A-Za-z0-9+/]{40,}", payload["invocationId"])
    assert set(payload["job"]) == {"id", "userArguments"}
    assert payload["job"]["userArguments"] == {"mode": "full"}
    [task] = payload["tasks"]
    assert task == {
        "taskId": task["taskId"],
        "s3Key": "in/a+b.txt",
        "s3VersionId": None,
        "s3Bucket": "bkt",
    }


def test_schema_1_sample_names_the_bucket_by_arn_and_has_no_user_arguments() -> None:
    payload: Any = sample_batch("batch-ops", "bkt", ["k"])

    assert payload["invocationSchemaVersion"] == "1.0"
    assert set(payload["job"]) == {"id"}
    assert payload["tasks"][0]["s3BucketArn"] == "arn:aws:s3:::bkt"
    assert "s3Bucket" not in payload["tasks"][0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"schema": "3.0"}, "schema must be 1.0 or 2.0"),
        ({"user_arguments": {"a": "b"}}, "user arguments need schema 2.0"),
        ({"event_name": "ObjectRemoved:Delete"}, "tasks carry no event name"),
    ],
)
def test_sample_refuses_what_batch_operations_does_not_send(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        sample_batch("batch-ops", "bkt", ["k"], **kwargs)


def test_other_shapes_refuse_a_schema() -> None:
    with pytest.raises(ValueError, match="are for batch-ops, not s3"):
        sample_batch("s3", "bkt", ["k"], schema="2.0")


# --------------------------------------------------------------------------- failure classes


def stubbed_engine(**overrides: Any) -> tuple[Engine, Stubber]:
    """An engine whose S3 client answers from a botocore ``Stubber`` (no network)."""
    client = boto3.client("s3", region_name="us-east-1")
    stubber = Stubber(client)
    stubber.activate()
    engine = Engine(load_settings(**overrides), ("true",), Storage(client, 1))
    return engine, stubber


@pytest.mark.parametrize(
    ("code", "status", "permanent"),
    [
        ("SlowDown", 503, False),
        ("InternalError", 500, False),
        ("RequestTimeout", 400, False),
        ("AccessDenied", 403, True),
        ("NoSuchBucket", 404, True),
    ],
)
def test_an_s3_error_is_permanent_only_when_the_configuration_must_change(
    code: str, status: int, permanent: bool
) -> None:
    engine, stubber = stubbed_engine()
    stubber.add_client_error("list_objects_v2", service_error_code=code, http_status_code=status)

    outcome = engine.run_group(ExecutionGroup("bkt", "in/", (event("in/a"),)))

    assert outcome.status is Status.FAILED and code in (outcome.reason or "")
    assert outcome.permanent is permanent


def test_a_filter_failing_at_run_time_is_permanent() -> None:
    engine, stubber = stubbed_engine(execution_filter_expr='error("no manifest")')
    stubber.add_response("list_objects_v2", {"KeyCount": 0, "IsTruncated": False})

    outcome = engine.run_group(ExecutionGroup("bkt", "in/", (event("in/a"),)))

    assert outcome.status is Status.FAILED and "no manifest" in (outcome.reason or "")
    assert outcome.permanent is True


# --------------------------------------------------------------------------- with backfill


@pytest.mark.parametrize(
    "key", ["in/red flower+1.txt", "a%2Bb", "日本/ファイル.txt", "x,y;z=1&q?#.csv", "~é😀"]
)
def test_a_backfill_manifest_row_comes_back_as_the_same_object(key: str) -> None:
    when = datetime(2024, 5, 1, tzinfo=UTC)
    bucket, encoded, version = manifest_row(
        ExistingObject("bkt", key, 1, "e", when, version_id="v1"), version_ids=True
    )
    payload = payload_with(
        V1,
        lambda p: p["tasks"][0].update(
            s3Key=encoded, s3VersionId=version, s3BucketArn=f"arn:aws:s3:::{bucket}"
        ),
    )

    [message] = parse_invocation(payload).messages
    [event] = message.events
    assert (event.bucket, event.key, event.version_id) == ("bkt", key, "v1")


# --------------------------------------------------------------------------- the event command


def test_event_batch_ops_prints_a_task_per_key(capsys: pytest.CaptureFixture[str]) -> None:
    arguments = ["event", "batch-ops", "--bucket", "bkt", "--key", "a b", "--key", "c+d"]

    assert main([*arguments, "--schema", "2.0", "--user-argument", "mode=x=y"]) == 0

    payload = json.loads(capsys.readouterr().out)
    assert [t["s3Key"] for t in payload["tasks"]] == ["a+b", "c%2Bd"]
    assert payload["job"]["userArguments"] == {"mode": "x=y"}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--user-argument", "a=b"], "user arguments need schema 2.0"),
        (["--schema", "2.0", "--user-argument", "novalue"], "'novalue' is not NAME=VALUE"),
        (["--schema", "3.0"], "invalid choice: '3.0'"),
    ],
)
def test_event_batch_ops_usage_errors_exit_2(
    capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    assert main(["event", "batch-ops", "--bucket", "bkt", "--key", "k", *extra]) == 2
    assert message in capsys.readouterr().err


def test_event_of_another_shape_refuses_a_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["event", "sqs", "--bucket", "bkt", "--key", "k", "--schema", "2.0"]) == 2
    assert "are for batch-ops, not sqs" in capsys.readouterr().err
