"""Standalone SQS consumer driver (docs/design.md §10): the engine outside Lambda.

Each worker loop long-polls the queue, turns the received messages into an SQS
``Invocation``, runs it through the same ``App.process`` as Lambda mode, deletes exactly the
messages that succeeded and leaves the failed ones to be redelivered. While a batch runs, a
heartbeat keeps extending the visibility timeout of its messages so a long handler is never
redelivered mid-run.

Shutdown, as a well-behaved server does it: SIGTERM or SIGINT stops receiving; groups
already running may finish within one visibility timeout (their handlers are stopped after
that); groups not yet started are not started, and their messages are made visible again at
once. A repeated SIGTERM (an orchestrator re-sending it) keeps draining; only a second
SIGINT (a person pressing Ctrl-C again) stops the running handlers at once. The previous
signal handlers are restored when the consumer returns.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from bridge.app import App
from bridge.batch import process_invocation, settle
from bridge.events import Invocation, Source, parse_sqs_body
from bridge.groups import ExecutionGroup
from bridge.handler import stop_all_handlers
from bridge.logs import log, request_context
from bridge.outcomes import GroupOutcome, not_run

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import (
        ChangeMessageVisibilityBatchRequestEntryTypeDef,
        DeleteMessageBatchRequestEntryTypeDef,
        MessageTypeDef,
    )

logger = logging.getLogger("bridge.consumer")

BACKOFF_START, BACKOFF_CAP = 1.0, 60.0
_SQS_BATCH = 10  # entries per DeleteMessageBatch / ChangeMessageVisibilityBatch call


@dataclass(frozen=True)
class ConsumerOptions:
    """The ``consume`` mode's options."""

    queue_url: str
    workers: int = 1
    max_messages: int = 10
    visibility_timeout: int | None = None
    wait_time: int = 20
    once: bool = False


class Consumer:
    """Runs ``options.workers`` independent receive/process/acknowledge loops."""

    def __init__(
        self,
        options: ConsumerOptions,
        make_app: Callable[[], App],
        make_sqs: Callable[[], SQSClient],
    ) -> None:
        self.options = options
        self._make_app = make_app
        self._make_sqs = make_sqs
        self.stopping = threading.Event()
        self._forced = threading.Event()
        self._failed = threading.Event()  # a message failed, or SQS could not be read
        self._dead_workers: list[str] = []

    def run(self) -> int:
        """Consume until stopped (or once); returns the exit status.

        0 after a stop request, and with ``--once`` unless a message failed or SQS could not
        be read (1). 1 if a worker thread died, so that a supervisor restarting on failure
        restarts the consumer (the other workers drain first). Start-up problems (no region,
        a queue that does not exist, access denied, an endpoint that does not answer) are
        raised before any worker starts: retrying cannot fix them.
        """
        # One call before anything starts: it proves the queue exists and can be reached.
        queue_visibility = self._queue_visibility_timeout()
        visibility = self.options.visibility_timeout or queue_visibility
        # Clients are created here, one set per worker, not in the threads: creating clients
        # from one boto3 session is not thread-safe.
        workers = [
            threading.Thread(
                target=self._guarded_worker,
                args=(self._make_app(), self._make_sqs(), visibility),
                name=f"worker-{index}",
                daemon=True,
            )
            for index in range(self.options.workers)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            while worker.is_alive():
                worker.join(timeout=0.2)
        if self._dead_workers:
            log(
                logger,
                logging.CRITICAL,
                "exiting with status 1: a worker died",
                workers=sorted(self._dead_workers),
            )
            return 1
        return 1 if self.options.once and self._failed.is_set() else 0

    def request_stop(self, signum: int | None = None, force: bool = False) -> None:
        """Stop receiving and let running groups finish; ``force``: stop their handlers now.

        Safe to call repeatedly, from a signal handler or another thread: a repeated plain
        request keeps draining.
        """
        if not self.stopping.is_set():
            self.stopping.set()
            log(logger, logging.INFO, "stop requested: finishing running groups", signal=signum)
        elif not force:
            log(
                logger,
                logging.INFO,
                "stop requested again: still finishing running groups "
                "(a second SIGINT stops them at once)",
                signal=signum,
            )
        if force and not self._forced.is_set():
            self._forced.set()
            log(logger, logging.WARNING, "forced stop: stopping running handlers", signal=signum)
            stop_all_handlers()

    @contextmanager
    def signal_handlers(self) -> Iterator[None]:
        """Within the block, SIGTERM and SIGINT stop the consumer (main thread only).

        Each drains; a second SIGINT forces. The previous handlers are restored on exit.
        """
        interrupts = 0

        def on_signal(signum: int, frame: FrameType | None) -> None:
            nonlocal interrupts
            if signum == signal.SIGINT:
                interrupts += 1
            self.request_stop(signum, force=interrupts >= 2)

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, signal.SIG_DFL if handler is None else handler)

    def _queue_visibility_timeout(self) -> int:
        attributes = self._make_sqs().get_queue_attributes(
            QueueUrl=self.options.queue_url, AttributeNames=["VisibilityTimeout"]
        )["Attributes"]
        return int(attributes["VisibilityTimeout"])

    def _worker(self, app: App, sqs: SQSClient, visibility: int) -> None:
        backoff = BACKOFF_START
        while not self.stopping.is_set():
            try:
                messages = self._receive(sqs)
                if messages:
                    self._process(app, sqs, messages, visibility)
                backoff = BACKOFF_START
            except (ClientError, BotoCoreError) as exc:
                self._failed.set()
                log(
                    logger, logging.ERROR, "SQS error, backing off", error=str(exc), seconds=backoff
                )
                self.stopping.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_CAP)
            except Exception:
                self._failed.set()
                # A bug met by one batch must not take the worker down: its messages are not
                # deleted, so they come back after the visibility timeout (each time counting
                # a receive, so a message that always does this ends in the DLQ).
                logger.exception(
                    "unexpected error in a batch, its messages are left for redelivery; "
                    "backing off %s s",
                    backoff,
                )
                self.stopping.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_CAP)
            if self.options.once:
                break

    def _guarded_worker(self, app: App, sqs: SQSClient, visibility: int) -> None:
        """``_worker``; if it dies anyway, say so, stop the others and make ``run`` fail."""
        try:
            self._worker(app, sqs, visibility)
        except BaseException:
            name = threading.current_thread().name
            self._dead_workers.append(name)
            logger.critical("worker %s died; stopping the consumer", name, exc_info=True)
            self.stopping.set()

    def _receive(self, sqs: SQSClient) -> list[MessageTypeDef]:
        kwargs: dict[str, Any] = {
            "QueueUrl": self.options.queue_url,
            "MaxNumberOfMessages": self.options.max_messages,
            "WaitTimeSeconds": self.options.wait_time,
            "MessageSystemAttributeNames": ["ApproximateReceiveCount"],
        }
        if self.options.visibility_timeout is not None:
            kwargs["VisibilityTimeout"] = self.options.visibility_timeout
        return list(sqs.receive_message(**kwargs).get("Messages", []))

    def _process(
        self, app: App, sqs: SQSClient, messages: Sequence[MessageTypeDef], visibility: int
    ) -> None:
        receipts = {m["MessageId"]: m["ReceiptHandle"] for m in messages}
        invocation = Invocation(
            source=Source.SQS,
            shape="sqs",
            fifo=self.options.queue_url.endswith(".fifo"),
            messages=tuple(parse_sqs_body(m["MessageId"], m.get("Body", "")) for m in messages),
        )
        heartbeat = _Heartbeat(sqs, self.options.queue_url, receipts, visibility, self)
        with request_context(f"sqs-batch-{next(iter(receipts))[:8]}"), heartbeat:
            result = process_invocation(
                invocation, app.routing, lambda group: self._run_group_or_skip(app, group)
            )

        settlement = settle(receipts, result)
        if settlement.keep:
            self._failed.set()
        _delete(sqs, self.options.queue_url, {m: receipts[m] for m in settlement.delete})
        _change_visibility(
            sqs, self.options.queue_url, {m: receipts[m] for m in settlement.release}, 0
        )
        fields: dict[str, Any] = {
            "received": len(receipts),
            "deleted": len(settlement.delete),
            "failed": len(settlement.keep),
            "released": len(settlement.release),
        }
        if settlement.keep:  # ids to find in the DLQ and in the group lines
            fields["failed_message_ids"] = list(settlement.keep)
        level = logging.WARNING if fields["failed"] else logging.INFO
        log(logger, level, "batch done", **fields)

    def _run_group_or_skip(self, app: App, group: ExecutionGroup) -> GroupOutcome:
        # Groups not started before a shutdown are not started: their messages are released.
        if self.stopping.is_set():
            return not_run(group, "the consumer is shutting down")
        return app.engine.run_group(group)


class _Heartbeat:
    """Extends the visibility timeout of a batch's messages while it is processed."""

    def __init__(
        self,
        sqs: SQSClient,
        queue_url: str,
        receipts: dict[str, str],
        visibility: int,
        consumer: Consumer,
    ) -> None:
        self._sqs, self._queue_url, self._receipts = sqs, queue_url, receipts
        self._visibility = visibility
        self._consumer = consumer
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="heartbeat", daemon=True)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def _beat(self) -> None:
        # Extend well before expiry: at a third of the timeout, so one failed call is harmless.
        interval = max(1.0, self._visibility / 3)
        drain_deadline: float | None = None
        while not self._done.wait(interval):
            if self._consumer.stopping.is_set():
                drain_deadline = drain_deadline or time.monotonic() + self._visibility
                if time.monotonic() >= drain_deadline:
                    log(logger, logging.WARNING, "drain time over: stopping running handlers")
                    stop_all_handlers()
                    return
            try:
                _change_visibility(self._sqs, self._queue_url, self._receipts, self._visibility)
            except (ClientError, BotoCoreError) as exc:
                log(logger, logging.WARNING, "visibility heartbeat failed", error=str(exc))


def _chunks(items: dict[str, str]) -> list[list[tuple[str, str]]]:
    pairs = list(items.items())
    return [pairs[i : i + _SQS_BATCH] for i in range(0, len(pairs), _SQS_BATCH)]


def _delete(sqs: SQSClient, queue_url: str, receipts: dict[str, str]) -> None:
    for chunk in _chunks(receipts):
        entries: list[DeleteMessageBatchRequestEntryTypeDef] = [
            {"Id": str(i), "ReceiptHandle": r} for i, (_, r) in enumerate(chunk)
        ]
        response = sqs.delete_message_batch(QueueUrl=queue_url, Entries=entries)
        for failure in response.get("Failed", []):
            mid = chunk[int(failure["Id"])][0]
            log(
                logger,
                logging.ERROR,
                "could not delete message (it will be redelivered)",
                message_id=mid,
                error=failure.get("Message", failure.get("Code")),
            )


def _change_visibility(
    sqs: SQSClient, queue_url: str, receipts: dict[str, str], timeout: int
) -> None:
    for chunk in _chunks(receipts):
        entries: list[ChangeMessageVisibilityBatchRequestEntryTypeDef] = [
            {"Id": str(i), "ReceiptHandle": r, "VisibilityTimeout": timeout}
            for i, (_, r) in enumerate(chunk)
        ]
        sqs.change_message_visibility_batch(QueueUrl=queue_url, Entries=entries)
