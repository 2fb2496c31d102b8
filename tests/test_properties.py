"""Property-based tests (hypothesis) over every payload parser and the batch accounting.

Parsers: whatever arrives — arbitrary JSON, near-valid S3 / SNS / SQS / EventBridge shapes
with any field missing or of the wrong type, hostile sizes, keys, nesting — the parsers
return a result or raise the documented ``PayloadError``, nothing else; and what they
return can be logged, written and answered without a ``UnicodeEncodeError``.

Batch accounting: every message is either acknowledged or reported, never both, never
lost; the FIFO rule holds; nothing raises.

Runs are derandomized (a fixed sequence of examples), so CI sees the same cases every time.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.batch import Routing, process_invocation, settle
from bridge.events import (
    Invocation,
    Message,
    ObjectEvent,
    PayloadError,
    Source,
    decode_json,
    parse_invocation,
    parse_sqs_body,
)
from bridge.groups import ExecutionGroup, group_events
from bridge.outcomes import GroupOutcome, Status, not_run

STEADY = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --------------------------------------------------------------------------- strategies

# Every code point, lone surrogates included (JSON's "\ud800" decodes to one).
ANY_CHAR = st.characters(exclude_categories=())
any_text = st.text(ANY_CHAR, max_size=40)

hostile_strings = st.sampled_from(
    [
        "",
        "\u00b2",  # a digit to str.isdigit, not to int()
        "\u0663",
        "9" * 5000,  # past int()'s 4,300-digit limit
        "-1",
        "1e3",
        " 7",
        "%",
        "%ZZ",
        "%ED%A0%80",  # a lone surrogate, URL-encoded
        "%FF",
        "a+b%2Bc",
        "\ud800",
        "in/\udcff.txt",
        "\x00",
        "\n\r\t\x1b[31m",
        "\u2028",
        "/",
        "..",
        "a//b",
        "é" * 300,
        "k" * 1100,
        "s3:TestEvent",
        "aws:s3",
        "aws:sqs",
        "aws:sns",
        "aws.s3",
        "Object Created",
        "Notification",
    ]
)
hostile_numbers = st.sampled_from([0, -1, 2**70, 2**200, 1.5, -0.0, 1e308])

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | any_text
    | hostile_strings
    | hostile_numbers
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(any_text | hostile_strings, children, max_size=4)
    ),
    max_leaves=12,
)

MISSING = object()


def mostly(valid: st.SearchStrategy[Any], other: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``valid`` four times in five, else ``other``: near-valid shapes reach deep code."""
    return st.integers(min_value=0, max_value=9).flatmap(lambda n: valid if n < 8 else other)


def maybe(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly the valid value; sometimes missing, hostile or any JSON at all."""
    return mostly(valid, st.one_of(st.just(MISSING), hostile_strings, hostile_numbers, json_values))


def obj(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly a JSON object of ``fields`` (a field drawn as MISSING is left out)."""

    def build(values: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in values.items() if v is not MISSING}

    return mostly(st.fixed_dictionaries(fields).map(build), json_values)


hostile_keys = st.sampled_from(
    [
        *("\ud800", "in/\udcff.txt", "%ED%A0%80", "%FF", "%", "a%2Bb+c", "\x00", ".."),
        *("in/\n.txt", "é" * 300, "k" * 1100, "", "/", "a//b"),
    ]
)
keys = st.one_of(
    st.sampled_from(["in/a.txt", "in/red+flower.jpg", "a%2Bb", "jobs/1/input/x.txt", "top"]),
    hostile_keys,
    any_text,
)
buckets = mostly(st.sampled_from(["src", "b"]), hostile_strings)
hostile_sizes = st.sampled_from(
    ["\u00b2", "\u0663", "9" * 5000, "1" * 20, "-1", "1e3", " 7", "", "12", True, -5, 2**70, 1.5]
)
sizes = st.one_of(st.integers(min_value=0, max_value=2**40), hostile_sizes)
names = mostly(
    st.sampled_from(["ObjectCreated:Put", "s3:ObjectCreated:Copy", "ObjectRemoved:Delete"]),
    hostile_strings,
)

s3_records = obj(
    eventSource=maybe(st.just("aws:s3")),
    eventName=maybe(names),
    s3=maybe(
        obj(
            bucket=maybe(obj(name=maybe(buckets))),
            object=maybe(obj(key=maybe(keys), size=maybe(sizes), eTag=maybe(any_text))),
        )
    ),
)
s3_notifications = obj(Records=maybe(st.lists(s3_records, min_size=0, max_size=3)))
test_events = st.just({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "src"})
eventbridge_events = obj(
    source=maybe(st.just("aws.s3")),
    **{"detail-type": maybe(st.sampled_from(["Object Created", "Object Deleted", "Odd"]))},
    detail=maybe(
        obj(
            bucket=maybe(obj(name=maybe(buckets))),
            object=maybe(obj(key=maybe(keys), size=maybe(sizes), etag=maybe(any_text))),
            reason=maybe(st.sampled_from(["PutObject", "Lifecycle Expiration"])),
            **{"deletion-type": maybe(st.just("Delete Marker Created"))},
        )
    ),
)
inner_documents = st.one_of(s3_notifications, test_events, eventbridge_events, json_values)


def as_text(documents: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A JSON text of a document, or sometimes not a string at all, or not JSON."""
    return st.one_of(
        documents.map(lambda d: json.dumps(d)),
        documents.map(lambda d: json.dumps(d)),
        any_text,
        hostile_strings,
        json_values,
    )


sns_envelopes = obj(
    Type=maybe(st.sampled_from(["Notification", "SubscriptionConfirmation"])),
    TopicArn=maybe(st.just("arn:aws:sns:us-east-1:1:t")),
    Message=maybe(as_text(inner_documents)),
)
sqs_bodies = as_text(st.one_of(inner_documents, sns_envelopes))
sqs_records = obj(
    eventSource=maybe(st.just("aws:sqs")),
    messageId=maybe(st.sampled_from(["m1", "m2", "m3"]) | any_text),
    eventSourceARN=maybe(st.sampled_from(["arn:aws:sqs:us-east-1:1:q", "arn:aws:sqs:::q.fifo"])),
    body=maybe(sqs_bodies),
)
sns_records = obj(
    EventSource=maybe(st.just("aws:sns")), Sns=maybe(obj(Message=maybe(as_text(inner_documents))))
)
payloads = st.one_of(
    s3_notifications,
    obj(Records=maybe(st.lists(sqs_records, max_size=3))),
    obj(Records=maybe(st.lists(sns_records, max_size=3))),
    obj(Records=maybe(st.lists(st.one_of(s3_records, sqs_records, sns_records), max_size=3))),
    eventbridge_events,
    test_events,
    json_values,
)


def nested(depth: int, opener: str = "[", closer: str = "]") -> str:
    return opener * depth + closer * depth


deep_texts = st.one_of(
    st.integers(min_value=1, max_value=5000).map(nested),
    st.integers(min_value=1, max_value=5000).map(lambda n: '{"Records":' + nested(n) + "}"),
    st.integers(min_value=1, max_value=3000).map(lambda n: '{"a":' * n + "1" + "}" * n),
)

# --------------------------------------------------------------------------- parser properties


def utf8_safe(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_event(event: ObjectEvent) -> None:
    assert event.bucket and event.key and event.event_name
    assert event.size is None or (isinstance(event.size, int) and event.size >= 0)
    for text in (event.bucket, event.key, event.event_name, event.etag or ""):
        assert utf8_safe(text), text  # it can reach S3, the events file, logs and answers


def check_message(message: Message) -> None:
    if message.error is not None:
        assert message.events == ()
        assert utf8_safe(message.error)
    for event in message.events:
        check_event(event)
        assert event.message_id == message.message_id


def check_parse(payload: Any) -> None:
    try:
        invocation = parse_invocation(payload)
    except PayloadError as exc:
        assert utf8_safe(str(exc))  # it becomes an error document, posted as UTF-8
        return
    assert invocation.messages
    if invocation.source is Source.SQS:
        assert all(m.message_id for m in invocation.messages)
        assert all(utf8_safe(m.message_id or "") for m in invocation.messages)
    else:
        assert len(invocation.messages) == 1 and invocation.messages[0].message_id is None
    for message in invocation.messages:
        check_message(message)


@STEADY
@given(payloads)
def test_parse_invocation_raises_only_payload_error(payload: Any) -> None:
    check_parse(payload)


@STEADY
@given(json_values)
def test_parse_invocation_of_arbitrary_json_raises_only_payload_error(payload: Any) -> None:
    check_parse(payload)


@STEADY
@given(sqs_bodies.filter(lambda b: isinstance(b, str)) | any_text | deep_texts)
def test_parse_sqs_body_never_raises(body: str) -> None:
    check_message(parse_sqs_body("m1", body))


@STEADY
@given(
    st.one_of(
        payloads.map(json.dumps),
        any_text,
        deep_texts,
        st.binary(max_size=64),
        deep_texts.map(str.encode),
        st.integers(min_value=4200, max_value=6000).map(lambda n: "9" * n),
    )
)
def test_decode_json_raises_only_payload_error(text: str | bytes) -> None:
    try:
        value = decode_json(text, "the payload")
    except PayloadError as exc:
        assert utf8_safe(str(exc))
        return
    check_parse(value)


# --------------------------------------------------------------------------- batch accounting


OUTCOMES = [Status.SUCCEEDED, Status.SKIPPED, Status.FAILED, Status.NOT_RUN]


@dataclass
class ScriptedRun:
    """A fake ``run_group``: each group's outcome is drawn, and every call recorded."""

    choose: Callable[[ExecutionGroup], Status]
    calls: list[ExecutionGroup] = field(default_factory=list)
    outcomes: list[GroupOutcome] = field(default_factory=list)

    def __call__(self, group: ExecutionGroup) -> GroupOutcome:
        self.calls.append(group)
        status = self.choose(group)
        if status is Status.NOT_RUN:
            outcome = not_run(group, "shutting down")
        else:
            outcome = GroupOutcome(group, status, "broke" if status is Status.FAILED else None)
        self.outcomes.append(outcome)
        return outcome


small_keys = st.lists(st.sampled_from(["a/1", "a/2", "b/1", "b/c/1", "top", "x/y/z/2"]), max_size=3)


@st.composite
def sqs_invocations(draw: st.DrawFn) -> Invocation:
    count = draw(st.integers(min_value=0, max_value=6))
    messages = []
    for index in range(count):
        mid = f"m{index}"
        if draw(st.integers(min_value=0, max_value=5)) == 0:
            messages.append(Message(mid, (), error="cannot parse"))
            continue
        events = tuple(
            ObjectEvent(draw(st.sampled_from(["b1", "b2"])), key, "ObjectCreated:Put", 1, None, mid)
            for key in draw(small_keys)
        )
        messages.append(Message(mid, events))
    return Invocation(Source.SQS, "sqs", draw(st.booleans()), tuple(messages))


routings = st.builds(
    Routing,
    match_key=st.sampled_from([None, re.compile("^a/"), re.compile("1$")]),
    match_events=st.just(None),
    pull_parent_dirs=st.integers(min_value=-1, max_value=3),
)


def selected(message: Message, routing: Routing) -> list[ObjectEvent]:
    if routing.match_key is None:
        return list(message.events)
    return [e for e in message.events if routing.match_key.search(e.key)]


@STEADY
@given(sqs_invocations(), routings, st.data())
def test_every_message_is_acknowledged_or_reported_never_both_never_lost(
    invocation: Invocation, routing: Routing, data: st.DataObject
) -> None:
    verdicts: dict[tuple[str, str], Status] = {}

    def choose(group: ExecutionGroup) -> Status:
        key = (group.bucket, group.prefix)
        if key not in verdicts or invocation.fifo:
            verdicts[key] = data.draw(st.sampled_from(OUTCOMES))
        return verdicts[key]

    run = ScriptedRun(choose)
    result = process_invocation(invocation, routing, run)

    ids = [m.message_id for m in invocation.messages if m.message_id is not None]
    reported = result.failed_message_ids
    answer = result.response()
    assert answer == {"batchItemFailures": [{"itemIdentifier": i} for i in reported]}
    assert len(reported) == len(set(reported)), "reported twice"
    assert set(reported) <= set(ids), "reported a message that does not exist"
    assert set(result.not_run_message_ids) <= set(reported)
    # What the consumer does with each: exactly one of delete, release, keep.
    settlement = settle(ids, result)
    assert sorted(settlement.delete + settlement.release + settlement.keep) == sorted(ids)
    assert set(settlement.delete) == set(ids) - set(reported)  # acknowledged: not reported
    assert set(settlement.release) == set(result.not_run_message_ids)
    if invocation.fifo:  # from the first message not done on, all released or none
        first = next((i for i, m in enumerate(invocation.messages) if m.message_id in reported), 0)
        stopped_by = invocation.messages[first] if reported else None
        only_not_run = stopped_by is not None and (
            stopped_by.error is None and all(o.ran is False for o in run.outcomes if not o.ok)
        )
        expected = [m.message_id for m in invocation.messages[first:]] if only_not_run else []
        assert list(settlement.release) == expected
    else:  # released exactly when none of its groups failed for real and it parsed
        for message in invocation.messages:
            mine = [o for o in run.outcomes if message.message_id in o.group.message_ids]
            not_run_only = any(not o.ran for o in mine) and all(o.ok or not o.ran for o in mine)
            released = message.error is None and not_run_only
            assert (message.message_id in settlement.release) == released, message
    # check_* below prove each message is on the right side.
    assert result.outcomes == tuple(run.outcomes)

    if invocation.fifo:
        check_fifo(invocation, routing, run, reported)
    else:
        check_standard(invocation, routing, run, reported)


def check_standard(
    invocation: Invocation, routing: Routing, run: ScriptedRun, reported: list[str]
) -> None:
    # Every selected event of a parsed message ran, in exactly one group, run once.
    ran = [(e.bucket, e.key, e.message_id) for g in run.calls for e in g.events]
    expected = [
        (e.bucket, e.key, e.message_id)
        for m in invocation.messages
        if m.error is None
        for e in selected(m, routing)
    ]
    assert sorted(ran) == sorted(expected), "an event was lost or run twice"
    assert len({(g.bucket, g.prefix) for g in run.calls}) == len(run.calls)
    # A message is reported exactly when it could not be parsed or one of its groups failed.
    for message in invocation.messages:
        failed = message.error is not None or any(
            not o.ok for o in run.outcomes if message.message_id in o.group.message_ids
        )
        assert (message.message_id in reported) == failed, message


def check_fifo(
    invocation: Invocation, routing: Routing, run: ScriptedRun, reported: list[str]
) -> None:
    outcomes = iter(run.outcomes)
    first_failure: int | None = None
    for index, message in enumerate(invocation.messages):
        if message.error is not None:
            first_failure = index
            break
        groups_of_message = {(g.bucket, g.prefix) for g in _groups_of(message, routing)}
        if not groups_of_message:  # nothing selected: a success that runs nothing
            continue
        mine = []
        for outcome in outcomes:  # this message's groups run now, in order, stop at a failure
            assert outcome.group.message_ids == {message.message_id}
            mine.append(outcome)
            if not outcome.ok or len(mine) == len(groups_of_message):
                break
        if any(not o.ok for o in mine):
            first_failure = index
            break
        assert {(o.group.bucket, o.group.prefix) for o in mine} == groups_of_message
    assert next(outcomes, None) is None, "a group ran after the first failure"
    expected = (
        [] if first_failure is None else [m.message_id for m in invocation.messages[first_failure:]]
    )
    assert reported == expected


def _groups_of(message: Message, routing: Routing) -> list[ExecutionGroup]:
    return group_events(selected(message, routing), routing.pull_parent_dirs)


@STEADY
@given(small_keys, routings, st.sampled_from(OUTCOMES))
def test_direct_invocation_is_an_error_exactly_when_a_group_did_not_succeed(
    keys: list[str], routing: Routing, status: Status
) -> None:
    events = tuple(ObjectEvent("b1", k, "ObjectCreated:Put", None, None, None) for k in keys)
    invocation = Invocation(Source.DIRECT, "s3", False, (Message(None, events),))
    run = ScriptedRun(lambda group: status)

    result = process_invocation(invocation, routing, run)

    failed = any(not o.ok for o in run.outcomes)
    assert result.succeeded is not failed
    assert (result.error() is not None) is failed
    assert result.response() == {}
    assert result.failed_message_ids == []
