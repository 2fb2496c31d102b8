"""The consumer driver in-process over the moto server: worker robustness and signals.

End-to-end runs of ``consume`` as a subprocess are in test_consume_e2e.py.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

import pytest

from bridge.consumer import Consumer, ConsumerOptions
from bridge.events import Message, parse_sqs_body
from bridge.storage import sqs_client
from tests.conftest import MotoServer
from tests.helpers import make_app, wait_for

TEST_EVENT = json.dumps({"Event": "s3:TestEvent", "Bucket": "b"})
BOOM = "boom: this body trips a bug"


class WorkerKiller(BaseException):
    """Not an ``Exception``: nothing in the worker loop catches it, so the thread dies."""


def queue_with_dlq(
    sqs: Any, name: str, visibility: int = 1, max_receive: int = 2
) -> tuple[str, str]:
    dlq_url = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receive)}
    queue_url = sqs.create_queue(
        QueueName=name,
        Attributes={"VisibilityTimeout": str(visibility), "RedrivePolicy": json.dumps(redrive)},
    )["QueueUrl"]
    return queue_url, dlq_url


def depth(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def make_consumer(queue_url: str, **options: Any) -> Consumer:
    return Consumer(
        ConsumerOptions(queue_url=queue_url, wait_time=1, **options),
        make_app=lambda: make_app([sys.executable, "-c", "pass"]),
        make_sqs=sqs_client,
    )


@pytest.fixture
def buggy_parser(monkeypatch: pytest.MonkeyPatch) -> Callable[[BaseException], None]:
    """Make the body parser raise ``error`` for bodies containing "boom" (a parser bug)."""

    def install(error: BaseException) -> None:
        def parse(message_id: str | None, body: str) -> Message:
            if "boom" in body:
                raise error
            return parse_sqs_body(message_id, body)

        monkeypatch.setattr("bridge.consumer.parse_sqs_body", parse)

    return install


@pytest.fixture
def running() -> Iterator[list[tuple[Consumer, threading.Thread]]]:
    """Consumers started in a thread by a test; stopped (drained) whatever happens."""
    started: list[tuple[Consumer, threading.Thread]] = []
    yield started
    for consumer, thread in started:
        consumer.request_stop()
        thread.join(timeout=60)


def start(consumer: Consumer, running: list[tuple[Consumer, threading.Thread]]) -> list[int]:
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(consumer.run()), daemon=True)
    thread.start()
    running.append((consumer, thread))
    return codes


def test_unexpected_error_in_a_batch_leaves_its_messages_and_the_worker_keeps_going(
    aws: MotoServer,
    sqs: Any,
    buggy_parser: Callable[[BaseException], None],
    running: list[tuple[Consumer, threading.Thread]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A bug met by one message is logged; the message is redelivered, then DLQ'd."""
    caplog.set_level(logging.INFO)
    buggy_parser(ValueError("a parser bug"))
    queue_url, dlq_url = queue_with_dlq(sqs, "unexpected")
    consumer = make_consumer(queue_url, workers=1)
    codes = start(consumer, running)

    sqs.send_message(QueueUrl=queue_url, MessageBody=BOOM)
    wait_for(lambda: depth(sqs, dlq_url) == 1, timeout=60, what="the message in the DLQ")
    (dead,) = sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=1)["Messages"]
    assert dead["Body"] == BOOM  # never deleted: it was received maxReceiveCount times

    # The same worker still consumes: a good message is processed and deleted.
    sqs.send_message(QueueUrl=queue_url, MessageBody=TEST_EVENT)
    wait_for(lambda: depth(sqs, queue_url) == 0, what="the good message deleted")
    wait_for(lambda: any(r.getMessage() == "batch done" for r in caplog.records), what="batch")
    errors = [r for r in caplog.records if r.getMessage().startswith("unexpected error in a batch")]
    assert errors and errors[0].exc_info is not None and "a parser bug" in caplog.text
    assert codes == []  # still running

    consumer.request_stop()
    running[0][1].join(timeout=60)
    assert codes == [0]


def test_a_worker_that_dies_anyway_makes_consume_exit_1_and_stops_the_others(
    aws: MotoServer,
    sqs: Any,
    buggy_parser: Callable[[BaseException], None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    buggy_parser(WorkerKiller("not an Exception"))
    queue_url, _ = queue_with_dlq(sqs, "dying", visibility=30)
    sqs.send_message(QueueUrl=queue_url, MessageBody=BOOM)

    code = make_consumer(queue_url, workers=2).run()  # returns: the other worker drains too

    assert code == 1
    assert "died; stopping the consumer" in caplog.text
    assert "exiting with status 1: a worker died" in caplog.text


# --------------------------------------------------------------------------- signals


@pytest.fixture
def stopped_handlers(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record calls to ``stop_all_handlers`` instead of signalling real process groups."""
    calls: list[str] = []
    monkeypatch.setattr("bridge.consumer.stop_all_handlers", lambda: calls.append("stop"))
    return calls


def signal_self(sig: signal.Signals) -> None:
    os.kill(os.getpid(), sig)
    time.sleep(0)  # Python runs the handler between bytecodes of the main thread


def test_repeated_sigterm_keeps_draining_and_only_a_second_sigint_forces(
    stopped_handlers: list[str],
) -> None:
    consumer = make_consumer("https://queue.invalid/q")
    with consumer.signal_handlers():
        signal_self(signal.SIGTERM)
        wait_for(consumer.stopping.is_set, what="stopping after SIGTERM")
        for _ in range(3):
            signal_self(signal.SIGTERM)
        signal_self(signal.SIGINT)  # the first SIGINT: still a graceful stop
        assert stopped_handlers == []
        signal_self(signal.SIGINT)
        wait_for(lambda: stopped_handlers, what="handlers stopped after a second SIGINT")
        signal_self(signal.SIGINT)  # a third changes nothing more
    assert stopped_handlers == ["stop"]


def test_signal_handlers_are_restored_on_exit() -> None:
    def mine(signum: int, frame: FrameType | None) -> None:
        raise AssertionError("not expected to run")

    previous = signal.signal(signal.SIGTERM, mine)
    interrupt = signal.getsignal(signal.SIGINT)
    try:
        consumer = make_consumer("https://queue.invalid/q")
        with pytest.raises(RuntimeError), consumer.signal_handlers():
            assert signal.getsignal(signal.SIGTERM) is not mine
            raise RuntimeError("the consumer failed")
        assert signal.getsignal(signal.SIGTERM) is mine
        assert signal.getsignal(signal.SIGINT) is interrupt
    finally:
        signal.signal(signal.SIGTERM, previous)
