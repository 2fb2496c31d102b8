"""Lambda custom runtime: the poller loop and its start-up (docs/design.md §8, §5).

The Runtime API transport is ``bridge.runtime_client``; this module is the bootstrap that
drives it. Each poller holds its own client (one keep-alive connection) and loops:
``GET invocation/next`` -> ``App.handle_payload`` -> ``POST invocation/{id}/response`` or
``POST invocation/{id}/error``. Everything heavy (configuration with its compiled regexes
and jq program, boto3 clients) is prepared before the first ``next``, so it is paid once per
execution environment, during Lambda's init phase.

Per invocation: the request id is on every log line (``logs.request_context``), the trace
header reaches the handler as ``_X_AMZN_TRACE_ID`` and the deadline as ``BRIDGE_DEADLINE_MS``,
and the handler is stopped when less than max(1 s, 10 % of the time left at the start)
remains, so the failure is reported before Lambda's own timeout kills everything.

``AWS_LAMBDA_MAX_CONCURRENCY`` > 1 (Lambda Managed Instances) runs that many
independent pollers, each with its own ``App`` (S3 client, temporary folders) and its own
connection; the configuration they share is read-only.

Shutdown: SIGTERM only sets an event; the main thread, waiting on it, stops the running
handlers (SIGTERM, then SIGKILL after a short grace) and returns. The previous signal
handler is restored on the way out.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import FrameType
from typing import Any, Protocol

from bridge import errors, startup
from bridge.app import Answer, App, load_configuration, start_observability
from bridge.engine import Deadline, InvocationContext
from bridge.events import PayloadError, decode_json
from bridge.handler import stop_all_handlers
from bridge.logs import (
    JsonFormatter,
    log,
    log_format_from_environment,
    request_context,
)
from bridge.runtime_client import (
    NextInvocation,
    RequestRejected,
    RuntimeApiClient,
    RuntimeApiError,
)
from bridge.settings import ConfigurationError

logger = logging.getLogger("bridge.runtime")

TRACE_VAR = "_X_AMZN_TRACE_ID"
DEADLINE_VAR = "BRIDGE_DEADLINE_MS"
CONCURRENCY_VAR = "AWS_LAMBDA_MAX_CONCURRENCY"

# On SIGTERM, handlers get this long between SIGTERM and SIGKILL (Lambda allows 300-500 ms).
SHUTDOWN_GRACE_SECONDS = 0.2


class StartupError(Exception):
    """The runtime cannot start for a reason other than the configuration."""


class PayloadHandler(Protocol):
    """What a poller drives: ``App`` (or a stand-in in tests)."""

    def handle_payload(self, payload: Any, context: InvocationContext | None = None) -> Answer:
        """Process one Lambda payload."""
        ...


class Poller:
    """One next -> process -> answer loop, with its own app and its own connection.

    ``export_trace`` also sets ``os.environ["_X_AMZN_TRACE_ID"]`` per invocation, as AWS's
    runtimes do; it is only safe with a single poller (the handler always gets the trace id
    through its own environment anyway).
    """

    def __init__(
        self, app: PayloadHandler, client: RuntimeApiClient, export_trace: bool = True
    ) -> None:
        self.app = app
        self.client = client
        self.export_trace = export_trace

    def run(self, limit: int | None = None) -> None:
        """Serve invocations forever (or ``limit`` of them); raises ``RuntimeApiError``."""
        served = 0
        while limit is None or served < limit:
            invocation = self.client.next_invocation()
            with request_context(invocation.request_id, invocation.trace_id):
                self.serve_one(invocation)
            served += 1

    def serve_one(self, invocation: NextInvocation) -> None:
        """Process one invocation, post its response or error, log one line about it."""
        started = time.monotonic()
        answer = self.answer(invocation)
        outcome = self._deliver(invocation.request_id, answer)
        fields: dict[str, Any] = {"outcome": outcome}
        if answer.is_error:
            fields["error_type"] = answer.body.get("errorType")
            fields["error"] = answer.body.get("errorMessage")
        elif not answer.all_succeeded:
            fields["failed_messages"] = len(answer.failed_ids)
            fields["failed_message_ids"] = list(answer.failed_ids)
        if invocation.function_arn:
            fields["function_arn"] = invocation.function_arn
        fields["seconds"] = round(time.monotonic() - started, 3)
        level = logging.INFO
        if answer.is_error or outcome == "refused":
            level = logging.ERROR
        elif not answer.all_succeeded:
            level = logging.WARNING
        log(logger, level, "invocation answered", **fields)

    def _deliver(self, request_id: str, answer: Answer) -> str:
        """Post ``answer``; a refused answer is logged, not fatal. Returns what was posted."""
        try:
            if answer.is_error:
                self.client.post_error(request_id, answer.body)
                return "error"
            try:
                self.client.post_response(request_id, answer.body)
                return "response"
            except RequestRejected as exc:
                if exc.status != 413:
                    raise
                self.client.post_error(
                    request_id,
                    errors.error_document(
                        errors.RESPONSE_TOO_LARGE, f"the response was refused: {exc}"
                    ),
                )
                return "error"
        except RequestRejected as exc:
            # Lambda no longer expects this answer (e.g. the invocation timed out): go on.
            log(logger, logging.ERROR, "the Runtime API refused the answer", error=str(exc))
            return "refused"

    def answer(self, invocation: NextInvocation) -> Answer:
        """The response or error document for one invocation; never raises."""
        try:
            payload = decode_json(invocation.payload, "the invocation payload")
        except PayloadError as exc:
            return Answer(errors.error_document(errors.INVALID_EVENT, str(exc)), is_error=True)
        env: dict[str, str] = {}
        if invocation.trace_id:
            env[TRACE_VAR] = invocation.trace_id
        if invocation.deadline_ms is not None:
            env[DEADLINE_VAR] = str(invocation.deadline_ms)
        if self.export_trace:
            if invocation.trace_id:
                os.environ[TRACE_VAR] = invocation.trace_id
            else:
                os.environ.pop(TRACE_VAR, None)
        deadline = (
            Deadline.for_invocation(invocation.deadline_ms)
            if invocation.deadline_ms is not None
            else None
        )
        try:
            return self.app.handle_payload(payload, InvocationContext(deadline=deadline, env=env))
        except Exception as exc:
            # A bug of the bridge's own: fail this invocation, keep the environment alive.
            logger.exception("unexpected error while processing the invocation")
            return Answer(
                errors.exception_document(exc, f"unexpected error in s3-event-bridge: {exc}"),
                is_error=True,
            )


def max_concurrency(environ: Mapping[str, str]) -> int:
    """Pollers to run: ``AWS_LAMBDA_MAX_CONCURRENCY`` (Lambda Managed Instances), default 1."""
    raw = environ.get(CONCURRENCY_VAR, "").strip()
    if not raw:
        return 1
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigurationError([f"{CONCURRENCY_VAR}: must be a positive integer, got {raw!r}"])
    return value


def serve(
    address: str,
    command: Sequence[str],
    make_app: Callable[..., PayloadHandler] = App.create,
) -> int:
    """Run the custom runtime against the Runtime API at ``address``; returns the exit status.

    Raises ``ConfigurationError`` or ``StartupError`` before the first ``next`` if it cannot
    start; the caller reports them with ``fail_init``. Returns 1 when the Runtime API goes away
    (Lambda then starts a new execution environment), 0 on SIGTERM.
    """
    settings, handler = load_configuration(command)
    start_observability(settings)
    concurrency = max_concurrency(os.environ)
    try:
        pollers = [
            Poller(make_app(settings, handler), RuntimeApiClient(address), concurrency == 1)
            for _ in range(concurrency)
        ]
    except Exception as exc:
        raise StartupError(f"cannot prepare the engine: {type(exc).__name__}: {exc}") from exc
    startup.started()
    stop = StopSignal()
    with stop.on_signal(signal.SIGTERM):
        log(
            logger,
            logging.INFO,
            "lambda runtime ready",
            runtime_api=address,
            concurrency=concurrency,
            handler=list(handler),
        )
        _start_pollers(pollers, stop)
        stop.wait()
    if isinstance(stop.failure, RuntimeApiError):
        log(logger, logging.ERROR, "stopping: the Runtime API is gone", error=str(stop.failure))
        return 1
    if stop.failure is not None or stop.reason != "SIGTERM":
        log(logger, logging.ERROR, f"stopping: {stop.reason}", error=repr(stop.failure))
        return 1
    log(logger, logging.INFO, f"stopping: {stop.reason}")
    # The handlers run in sessions of their own: stop them, or they outlive the runtime.
    stop_all_handlers(kill_grace=SHUTDOWN_GRACE_SECONDS, wait=True)
    return 0


class StopSignal:
    """Why the runtime stops: a signal, or a poller that cannot go on; the first one wins.

    A signal handler only queues the request (``queue.SimpleQueue.put`` is reentrant, so this
    is safe whatever the main thread was doing); nothing is raised into the main thread.
    """

    def __init__(self) -> None:
        self._requests: queue.SimpleQueue[tuple[str, BaseException | None]] = queue.SimpleQueue()
        self.reason: str | None = None
        self.failure: BaseException | None = None

    def request(self, reason: str, failure: BaseException | None = None) -> None:
        """Ask the runtime to stop, saying why."""
        self._requests.put((reason, failure))

    def wait(self) -> None:
        """Block until a stop is requested; ``reason`` and ``failure`` then say why."""
        self.reason, self.failure = self._requests.get()

    @contextmanager
    def on_signal(self, signum: signal.Signals) -> Iterator[None]:
        """Turn ``signum`` into a stop request while the block runs; restore the old handler."""

        def handle(received: int, frame: FrameType | None) -> None:
            self.request(signal.Signals(received).name)

        previous = signal.signal(signum, handle)
        try:
            yield
        finally:
            signal.signal(signum, previous)


def fail_init(address: str, error_type: errors.ErrorType, lines: Sequence[str]) -> None:
    """Report a start-up failure: ``POST init/error`` and the same ``lines`` on stderr.

    The lines are written as the CLI prints them, or as JSON log lines when the environment
    asks for JSON logs (the configuration itself may be what failed to load).
    """
    message = "\n".join(lines)
    problem: str | None = None
    try:
        client = RuntimeApiClient(address)
        try:
            client.post_init_error(errors.error_document(error_type, message))
        finally:
            client.close()
    except RuntimeApiError as exc:
        problem = f"cannot report the start-up failure to the Runtime API: {exc}"
    if log_format_from_environment(os.environ) == "json":
        formatter = JsonFormatter()
        for line in [*lines, *([problem] if problem else [])]:
            record = logging.LogRecord("bridge.runtime", logging.ERROR, "", 0, line, None, None)
            print(formatter.format(record), file=sys.stderr)
    else:
        for line in [*lines, *([problem] if problem else [])]:
            print(line, file=sys.stderr)
    sys.stderr.flush()


def _start_pollers(pollers: Sequence[Poller], stop: StopSignal) -> None:
    """Run every poller in a daemon thread of its own; the first to end asks ``stop`` to stop.

    The main thread only waits: a main thread blocked in ``recv`` would never run the SIGTERM
    handler.
    """

    def guarded(poller: Poller) -> None:
        try:
            poller.run()
        except BaseException as exc:  # handed to the main thread, which ends the process
            stop.request("a poller stopped", exc)
        else:
            stop.request("a poller stopped")

    for index, poller in enumerate(pollers):
        threading.Thread(
            target=guarded, args=(poller,), name=f"poller-{index}", daemon=True
        ).start()
