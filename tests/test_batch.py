"""Unit tests for bridge.batch: groups -> outcomes -> Lambda response (docs/design.md §7)."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import threading
from dataclasses import dataclass, field

import pytest

from bridge.batch import (
    InvocationResult,
    MessageFailure,
    Routing,
    Settlement,
    process_invocation,
    settle,
)
from bridge.events import Invocation, Message, ObjectEvent, Source
from bridge.groups import ExecutionGroup
from bridge.logs import request_context, request_id
from bridge.outcomes import GroupOutcome, Status, not_run

ALL = Routing(match_key=None, match_events=None, pull_parent_dirs=0)


def ev(key: str, message_id: str | None, bucket: str = "bkt") -> ObjectEvent:
    return ObjectEvent(bucket, key, "ObjectCreated:Put", 1, "etag", message_id)


def msg(message_id: str, *keys: str) -> Message:
    return Message(message_id, tuple(ev(k, message_id) for k in keys))


def bad(message_id: str, error: str = "not JSON") -> Message:
    return Message(message_id, (), error=error)


def sqs(*messages: Message, fifo: bool = False) -> Invocation:
    return Invocation(Source.SQS, "sqs", fifo, messages)


def direct(*keys: str) -> Invocation:
    return Invocation(
        Source.DIRECT, "s3", False, (Message(None, tuple(ev(k, None) for k in keys)),)
    )


@dataclass
class FakeEngine:
    """Records the groups it ran; the outcome is chosen by the group's prefix."""

    failing: set[str] = field(default_factory=set)
    skipping: set[str] = field(default_factory=set)
    not_starting: set[str] = field(default_factory=set)
    ran: list[ExecutionGroup] = field(default_factory=list)

    def __call__(self, group: ExecutionGroup) -> GroupOutcome:
        self.ran.append(group)
        if group.prefix in self.not_starting:
            return not_run(group, "shutting down")
        if group.prefix in self.failing:
            return GroupOutcome(group, Status.FAILED, reason=f"handler broke on {group.prefix}")
        if group.prefix in self.skipping:
            return GroupOutcome(group, Status.SKIPPED)
        return GroupOutcome(group, Status.SUCCEEDED, uploaded=(group.prefix + "out",))

    @property
    def prefixes(self) -> list[str]:
        return [g.prefix for g in self.ran]


def item_failures(result: InvocationResult) -> list[str]:
    return [f["itemIdentifier"] for f in result.response()["batchItemFailures"]]


# --------------------------------------------------------------------------- SQS, standard


def test_all_succeed_empty_batch_failures() -> None:
    engine = FakeEngine()
    result = process_invocation(sqs(msg("m1", "a/1"), msg("m2", "b/1")), ALL, engine)
    assert result.succeeded
    assert result.response() == {"batchItemFailures": []}
    assert result.error() is None
    assert engine.prefixes == ["a/", "b/"]
    assert [o.status for o in result.outcomes] == [Status.SUCCEEDED, Status.SUCCEEDED]


def test_partial_batch_response() -> None:
    engine = FakeEngine(failing={"b/"})
    result = process_invocation(
        sqs(msg("m1", "a/1"), msg("m2", "b/1"), msg("m3", "c/1")), ALL, engine
    )
    assert not result.succeeded
    assert result.response() == {"batchItemFailures": [{"itemIdentifier": "m2"}]}
    assert result.failed_message_ids == ["m2"]
    assert result.failures == (MessageFailure("m2", "s3://bkt/b/: handler broke on b/"),)
    assert result.error() is None  # SQS never answers with an error document
    assert engine.prefixes == ["a/", "b/", "c/"]


def test_messages_sharing_a_group_run_it_once_and_fail_together() -> None:
    engine = FakeEngine(failing={"shared/"})
    result = process_invocation(
        sqs(msg("m1", "shared/1"), msg("m2", "shared/2"), msg("m3", "own/3")), ALL, engine
    )
    assert engine.prefixes == ["shared/", "own/"]
    assert engine.ran[0].message_ids == frozenset({"m1", "m2"})
    assert item_failures(result) == ["m1", "m2"]


def test_message_in_two_groups_fails_if_either_fails() -> None:
    engine = FakeEngine(failing={"b/"})
    result = process_invocation(sqs(msg("m1", "a/1", "b/1"), msg("m2", "a/2")), ALL, engine)
    assert engine.prefixes == ["a/", "b/"]
    assert item_failures(result) == ["m1"]


def test_message_in_two_failed_groups_is_reported_once_with_both_reasons() -> None:
    engine = FakeEngine(failing={"a/", "b/"})
    result = process_invocation(sqs(msg("m1", "a/1", "b/1")), ALL, engine)
    assert item_failures(result) == ["m1"]
    (failure,) = result.failures
    assert failure.reason == "s3://bkt/a/: handler broke on a/; s3://bkt/b/: handler broke on b/"


def test_parse_error_fails_only_that_message() -> None:
    engine = FakeEngine()
    result = process_invocation(
        sqs(msg("m1", "a/1"), bad("m2", "body is not JSON"), msg("m3", "c/1")), ALL, engine
    )
    assert engine.prefixes == ["a/", "c/"]
    assert item_failures(result) == ["m2"]
    assert result.failures == (
        MessageFailure("m2", "cannot parse message: body is not JSON", permanent=True),
    )


def test_parse_error_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bridge.batch")
    process_invocation(sqs(bad("m9", "truncated")), ALL, FakeEngine())
    (record,) = [r for r in caplog.records if r.getMessage() == "message cannot be parsed"]
    assert record.levelno == logging.ERROR
    assert record.fields == {"message_id": "m9", "why": "truncated"}  # type: ignore[attr-defined]


def test_test_event_and_ignored_only_messages_succeed() -> None:
    engine = FakeEngine()
    routing = Routing(match_key=re.compile(r"\.jpg$"), match_events=None, pull_parent_dirs=0)
    test_event = Message("m1", ())
    ignored = msg("m2", "a/readme.txt")
    result = process_invocation(sqs(test_event, ignored), routing, engine)
    assert engine.ran == []
    assert result.outcomes == ()
    assert result.succeeded
    assert result.response() == {"batchItemFailures": []}


def test_skipped_counts_as_success() -> None:
    engine = FakeEngine(skipping={"a/"})
    result = process_invocation(sqs(msg("m1", "a/1")), ALL, engine)
    assert [o.status for o in result.outcomes] == [Status.SKIPPED]
    assert result.succeeded
    assert item_failures(result) == []


def test_routing_is_applied() -> None:
    engine = FakeEngine()
    routing = Routing(match_key=re.compile("^job/"), match_events=None, pull_parent_dirs=1)
    process_invocation(
        sqs(msg("m1", "job/x/1", "other/y/2"), msg("m2", "job/z/3")), routing, engine
    )
    assert engine.prefixes == ["job/"]
    assert engine.ran[0].message_ids == frozenset({"m1", "m2"})
    assert [e.key for e in engine.ran[0].events] == ["job/x/1", "job/z/3"]


def test_ignored_events_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bridge.batch")
    routing = Routing(match_key=re.compile("^in/"), match_events=None, pull_parent_dirs=0)
    process_invocation(sqs(msg("m1", "out/x", "in/y")), routing, FakeEngine())
    records = [r for r in caplog.records if r.getMessage() == "event ignored"]
    assert len(records) == 1
    assert records[0].levelno == logging.INFO
    assert records[0].fields == {  # type: ignore[attr-defined]
        "bucket": "bkt",
        "key": "out/x",
        "why": "key does not match MATCH_KEY",
    }


# --------------------------------------------------------------------------- SQS, FIFO


def test_fifo_all_succeed_groups_formed_per_message_in_order() -> None:
    engine = FakeEngine()
    result = process_invocation(
        sqs(msg("m1", "a/1", "b/1"), msg("m2", "a/2"), fifo=True), ALL, engine
    )
    assert result.succeeded
    assert result.response() == {"batchItemFailures": []}
    # a/ runs twice: once per message, in message order (no merging across messages).
    assert engine.prefixes == ["a/", "b/", "a/"]
    assert [g.message_ids for g in engine.ran] == [
        frozenset({"m1"}),
        frozenset({"m1"}),
        frozenset({"m2"}),
    ]


def test_fifo_stops_at_first_failure() -> None:
    engine = FakeEngine(failing={"b/"})
    result = process_invocation(
        sqs(msg("m1", "a/1"), msg("m2", "b/1"), msg("m3", "c/1"), msg("m4", "a/2"), fifo=True),
        ALL,
        engine,
    )
    assert engine.prefixes == ["a/", "b/"]  # later messages' groups never run
    assert item_failures(result) == ["m2", "m3", "m4"]
    assert result.failures == (
        MessageFailure("m2", "s3://bkt/b/: handler broke on b/"),
        MessageFailure("m3", "not processed: an earlier message (m2) failed"),
        MessageFailure("m4", "not processed: an earlier message (m2) failed"),
    )
    assert [o.group.prefix for o in result.outcomes] == ["a/", "b/"]


def test_fifo_stops_within_a_message_too() -> None:
    """A message spanning two groups: after its first group fails, its second never runs."""
    engine = FakeEngine(failing={"a/"})
    result = process_invocation(
        sqs(msg("m1", "a/1", "b/1"), msg("m2", "c/1"), fifo=True), ALL, engine
    )
    assert engine.prefixes == ["a/"]
    assert item_failures(result) == ["m1", "m2"]


def test_fifo_failure_in_last_message() -> None:
    engine = FakeEngine(failing={"c/"})
    result = process_invocation(sqs(msg("m1", "a/1"), msg("m2", "c/1"), fifo=True), ALL, engine)
    assert engine.prefixes == ["a/", "c/"]
    assert item_failures(result) == ["m2"]


def test_fifo_parse_error_also_stops() -> None:
    engine = FakeEngine()
    result = process_invocation(
        sqs(msg("m1", "a/1"), bad("m2"), msg("m3", "c/1"), fifo=True), ALL, engine
    )
    assert engine.prefixes == ["a/"]
    assert item_failures(result) == ["m2", "m3"]
    assert result.failures[0] == MessageFailure(
        "m2", "cannot parse message: not JSON", permanent=True
    )
    assert result.failures[1].reason == "not processed: an earlier message (m2) failed"


def test_fifo_ignored_and_skipped_messages_do_not_stop() -> None:
    engine = FakeEngine(skipping={"a/"})
    routing = Routing(match_key=re.compile("^(a|c)/"), match_events=None, pull_parent_dirs=0)
    result = process_invocation(
        sqs(msg("m1", "a/1"), msg("m2", "b/1"), Message("m3", ()), msg("m4", "c/1"), fifo=True),
        routing,
        engine,
    )
    assert engine.prefixes == ["a/", "c/"]
    assert result.succeeded


# --------------------------------------------------------------------------- direct


def test_direct_success_responds_empty_object() -> None:
    engine = FakeEngine()
    result = process_invocation(direct("a/1", "a/2", "b/1"), ALL, engine)
    assert result.succeeded
    assert result.response() == {}
    assert result.error() is None
    assert engine.prefixes == ["a/", "b/"]


def test_direct_skipped_is_success() -> None:
    result = process_invocation(direct("a/1"), ALL, FakeEngine(skipping={"a/"}))
    assert result.succeeded
    assert result.response() == {}
    assert result.error() is None


def test_direct_failure_is_an_error_document() -> None:
    engine = FakeEngine(failing={"b/"})
    result = process_invocation(direct("a/1", "b/1"), ALL, engine)
    assert not result.succeeded
    assert result.failed_message_ids == []  # a direct invocation has no message id
    assert result.error() == {
        "errorType": "ExecutionGroupFailed",
        "errorMessage": "s3://bkt/b/: handler broke on b/",
        "stackTrace": [],
    }
    assert engine.prefixes == ["a/", "b/"]


def test_direct_failure_message_names_every_failed_group() -> None:
    result = process_invocation(direct("a/1", "b/1"), ALL, FakeEngine(failing={"a/", "b/"}))
    error = result.error()
    assert error is not None
    assert error["errorMessage"] == (
        "s3://bkt/a/: handler broke on a/; s3://bkt/b/: handler broke on b/"
    )


def test_direct_with_nothing_matching_succeeds() -> None:
    engine = FakeEngine()
    routing = Routing(
        match_key=None, match_events=re.compile("^ObjectRemoved:"), pull_parent_dirs=0
    )
    result = process_invocation(direct("a/1"), routing, engine)
    assert engine.ran == []
    assert result.succeeded
    assert result.response() == {}


# --------------------------------------------------------------------------- purity, not run


def test_importing_batch_loads_no_aws_or_jq_library() -> None:
    """``batch`` is pure: importing it must not drag in boto3 (nor botocore, s3transfer, jq)."""
    probe = (
        "import bridge.batch, sys; "
        "print(sorted({m.split('.')[0] for m in sys.modules} "
        "& {'boto3', 'botocore', 's3transfer', 'jq'}))"
    )
    exact = "import bridge.batch, sys; print('boto3' in sys.modules)"
    assert (
        subprocess.run(
            [sys.executable, "-c", exact], capture_output=True, text=True, check=True
        ).stdout
        == "False\n"
    )
    assert (
        subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, check=True
        ).stdout
        == "[]\n"
    )


def test_not_run_group_is_neither_success_nor_a_failure_that_ran() -> None:
    outcome = not_run(ExecutionGroup("bkt", "a/", ()), "shutting down")
    assert outcome.status is Status.NOT_RUN
    assert not outcome.ok
    assert not outcome.ran
    assert outcome.reason == "not run: shutting down"


def test_message_whose_groups_were_not_run_is_reported_as_not_run() -> None:
    engine = FakeEngine(not_starting={"b/"})
    result = process_invocation(sqs(msg("m1", "a/1"), msg("m2", "b/1")), ALL, engine)
    assert item_failures(result) == ["m2"]  # not acknowledged: it must be delivered again
    assert result.not_run_message_ids == ["m2"]
    assert result.failures == (MessageFailure("m2", "s3://bkt/b/: not run: shutting down", True),)


def test_message_with_a_failed_and_a_not_run_group_is_a_real_failure() -> None:
    engine = FakeEngine(failing={"a/"}, not_starting={"b/"})
    result = process_invocation(sqs(msg("m1", "a/1", "b/1")), ALL, engine)
    assert item_failures(result) == ["m1"]
    assert result.not_run_message_ids == []


def test_not_run_is_recognised_by_status_not_by_reason_text() -> None:
    """A handler failure whose reason merely reads like a shutdown is still a failure."""

    def run_group(group: ExecutionGroup) -> GroupOutcome:
        return GroupOutcome(group, Status.FAILED, "not run: the consumer is shutting down")

    result = process_invocation(sqs(msg("m1", "a/1")), ALL, run_group)
    assert item_failures(result) == ["m1"]
    assert result.not_run_message_ids == []


def test_fifo_messages_after_a_not_run_one_are_not_run_too() -> None:
    engine = FakeEngine(not_starting={"b/"})
    result = process_invocation(
        sqs(msg("m1", "a/1"), msg("m2", "b/1"), msg("m3", "c/1"), fifo=True), ALL, engine
    )
    assert engine.prefixes == ["a/", "b/"]
    assert item_failures(result) == ["m2", "m3"]
    assert result.not_run_message_ids == ["m2", "m3"]
    assert result.failures[1].reason == "not processed: an earlier message (m2) was not run"


def test_fifo_messages_after_a_real_failure_are_not_marked_not_run() -> None:
    engine = FakeEngine(failing={"a/"})
    result = process_invocation(sqs(msg("m1", "a/1"), msg("m2", "b/1"), fifo=True), ALL, engine)
    assert item_failures(result) == ["m1", "m2"]
    assert result.not_run_message_ids == []


# --------------------------------------------------------------------------- GROUP_CONCURRENCY

GUARD = 30.0  # a guard against hanging, never a timing assertion
SIDE_BY_SIDE = Routing(match_key=None, match_events=None, pull_parent_dirs=0, group_concurrency=4)


@dataclass
class MeetingEngine(FakeEngine):
    """Each group waits until ``meet`` groups are running at once: only concurrency passes."""

    meet: int = 1
    barrier: threading.Barrier | None = None

    def __call__(self, group: ExecutionGroup) -> GroupOutcome:
        if self.barrier is None:
            self.barrier = threading.Barrier(self.meet)
        self.barrier.wait(GUARD)  # BrokenBarrierError if the groups ran one by one
        return super().__call__(group)


def test_independent_groups_run_side_by_side_with_the_same_outcomes() -> None:
    engine = MeetingEngine(failing={"c/"}, meet=4)
    invocation = sqs(msg("m1", "a/1"), msg("m2", "b/1", "c/1"), msg("m3", "d/1"))

    result = process_invocation(invocation, SIDE_BY_SIDE, engine)

    assert [o.group.prefix for o in result.outcomes] == ["a/", "b/", "c/", "d/"]  # group order
    assert item_failures(result) == ["m2"]
    assert result.failures[0].reason == "s3://bkt/c/: handler broke on c/"


def test_more_groups_than_threads_all_run() -> None:
    engine = FakeEngine()
    keys = [f"g{i}/x" for i in range(10)]
    routing = Routing(None, None, 0, group_concurrency=3)
    result = process_invocation(direct(*keys), routing, engine)
    assert result.succeeded
    assert sorted(engine.prefixes) == sorted(f"g{i}/" for i in range(10))


def test_nested_groups_keep_their_order_under_concurrency() -> None:
    # "a/" lists "a/b/x" too: it may read what "a/b/" writes, so "a/b/" waits for it.
    order: list[str] = []
    lock = threading.Lock()
    a_done, z_started = threading.Event(), threading.Event()

    def run_group(group: ExecutionGroup) -> GroupOutcome:
        if group.prefix == "a/b/":
            assert a_done.is_set(), "a/b/ started before a/ ended"
        with lock:
            order.append(group.prefix)
        if group.prefix == "z/":
            z_started.set()
        if group.prefix == "a/":
            assert z_started.wait(GUARD), "z/ did not run beside a/"  # a/ is still running
            a_done.set()
        return GroupOutcome(group, Status.SUCCEEDED)

    result = process_invocation(direct("a/x", "a/b/x", "z/x"), SIDE_BY_SIDE, run_group)

    assert result.succeeded, result.failures
    assert order.index("a/") < order.index("a/b/")


def test_fifo_stays_sequential_whatever_the_group_concurrency() -> None:
    running, most = 0, 0
    lock = threading.Lock()

    def run_group(group: ExecutionGroup) -> GroupOutcome:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        with lock:
            running -= 1
        status = Status.FAILED if group.prefix == "b/" else Status.SUCCEEDED
        return GroupOutcome(group, status, reason="broke" if status is Status.FAILED else None)

    invocation = sqs(msg("m1", "a/1", "b/1", "c/1"), msg("m2", "d/1"), fifo=True)
    result = process_invocation(invocation, SIDE_BY_SIDE, run_group)

    assert most == 1
    assert [o.group.prefix for o in result.outcomes] == ["a/", "b/"]  # stopped at b/
    assert item_failures(result) == ["m1", "m2"]


def test_groups_run_on_threads_keep_the_request_id() -> None:
    seen: list[str | None] = []

    def run_group(group: ExecutionGroup) -> GroupOutcome:
        seen.append(request_id.get())
        return GroupOutcome(group, Status.SUCCEEDED)

    with request_context("req-42"):
        process_invocation(direct("a/1", "b/1", "c/1"), SIDE_BY_SIDE, run_group)

    assert seen == ["req-42"] * 3


def test_settle_deletes_successes_releases_the_not_run_and_keeps_failures() -> None:
    engine = FakeEngine(failing={"b/"}, not_starting={"c/"})
    result = process_invocation(
        sqs(msg("m1", "a/1"), msg("m2", "b/1"), msg("m3", "c/1"), bad("m4")), ALL, engine
    )
    settlement = settle(["m1", "m2", "m3", "m4"], result)
    assert settlement == Settlement(delete=("m1",), release=("m3",), keep=("m2", "m4"))
