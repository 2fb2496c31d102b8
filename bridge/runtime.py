"""Lambda custom runtime: the Runtime API driver (docs/design.md §8, §5).

The driver is thin. Each poller holds one keep-alive HTTP/1.1 connection to
``http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime/`` (standard library ``http.client``) and
loops: ``GET invocation/next`` -> ``App.handle_payload`` -> ``POST invocation/{id}/response``
or ``POST invocation/{id}/error``. Everything heavy (configuration with its compiled regexes
and jq program, boto3 clients) is prepared before the first ``next``, so it is paid once per
execution environment, during Lambda's init phase.

Per invocation: the request id is on every log line (``logs.request_context``), the trace
header reaches the handler as ``_X_AMZN_TRACE_ID`` and the deadline as ``BRIDGE_DEADLINE_MS``,
and the handler is stopped when less than max(1 s, 10 % of the time left at the start)
remains, so the failure is reported before Lambda's own timeout kills everything.

``AWS_LAMBDA_MAX_CONCURRENCY`` > 1 (Lambda Managed Instances) runs that many independent
pollers, each with its own ``App`` (S3 client, temporary folders) and its own connection; the
configuration they share is read-only.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import queue
import signal
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any, NoReturn, Protocol

from bridge import errors
from bridge.app import Answer, App, load_configuration, log_configuration_warnings
from bridge.engine import Deadline, InvocationContext
from bridge.events import PayloadError, decode_json
from bridge.handler import stop_all_handlers
from bridge.logs import (
    JsonFormatter,
    configure_logging,
    install_exception_logging,
    log,
    log_format_from_environment,
    request_context,
)
from bridge.settings import ConfigurationError

logger = logging.getLogger("bridge.runtime")

API_VERSION = "2018-06-01"
TRACE_VAR = "_X_AMZN_TRACE_ID"
DEADLINE_VAR = "BRIDGE_DEADLINE_MS"
CONCURRENCY_VAR = "AWS_LAMBDA_MAX_CONCURRENCY"

# Runtime API headers (docs/design.md §8).
REQUEST_ID_HEADER = "Lambda-Runtime-Aws-Request-Id"
DEADLINE_HEADER = "Lambda-Runtime-Deadline-Ms"
TRACE_HEADER = "Lambda-Runtime-Trace-Id"
FUNCTION_ARN_HEADER = "Lambda-Runtime-Invoked-Function-Arn"
ERROR_TYPE_HEADER = "Lambda-Runtime-Function-Error-Type"
# The content type AWS documents for error documents posted to the Runtime API.
ERROR_CONTENT_TYPE = "application/vnd.aws.lambda.error+json"

CONNECT_ATTEMPTS = 5  # a dropped connection is retried with 0.05, 0.1, 0.2, 0.4 s pauses
BACKOFF_SECONDS = 0.05
# On SIGTERM, handlers get this long between SIGTERM and SIGKILL (Lambda allows 300-500 ms).
SHUTDOWN_GRACE_SECONDS = 0.2


class RuntimeApiError(Exception):
    """The Runtime API cannot be reached, or answered in a way that ends the runtime."""


class RequestRejected(RuntimeApiError):
    """The Runtime API refused one request (400 unknown request id, 413 too large)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class StartupError(Exception):
    """The runtime cannot start for a reason other than the configuration."""


@dataclass(frozen=True)
class NextInvocation:
    """One invocation handed out by ``GET invocation/next``."""

    request_id: str
    payload: bytes
    deadline_ms: int | None
    trace_id: str | None
    function_arn: str | None


class RuntimeApiClient:
    """One keep-alive connection to the Runtime API at ``address`` (``host:port``).

    A dropped connection (reset, closed, refused) is reopened and the request retried a few
    times with a short backoff; after that ``RuntimeApiError`` is raised. ``GET next`` has no
    timeout: it blocks until Lambda has an event, and the process may be frozen meanwhile.
    """

    def __init__(
        self,
        address: str,
        attempts: int = CONNECT_ATTEMPTS,
        backoff: float = BACKOFF_SECONDS,
    ) -> None:
        self.address = address
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self._base = f"/{API_VERSION}/runtime"
        self._connection = http.client.HTTPConnection(address, timeout=None)

    def next_invocation(self) -> NextInvocation:
        """Block until the next invocation arrives."""
        status, headers, body = self._request("GET", "/invocation/next")
        if status != 200:
            raise RuntimeApiError(
                f"GET {self._base}/invocation/next at {self.address}: HTTP {status}: "
                f"{_preview(body)}"
            )
        request_id = headers.get(REQUEST_ID_HEADER)
        if not request_id:
            raise RuntimeApiError(
                f"GET {self._base}/invocation/next at {self.address}: "
                f"no {REQUEST_ID_HEADER} header in the answer"
            )
        return NextInvocation(
            request_id=request_id,
            payload=body,
            deadline_ms=_int_or_none(headers.get(DEADLINE_HEADER)),
            trace_id=headers.get(TRACE_HEADER) or None,
            function_arn=headers.get(FUNCTION_ARN_HEADER) or None,
        )

    def post_response(self, request_id: str, document: Mapping[str, Any]) -> None:
        """Answer invocation ``request_id`` with ``document`` (JSON)."""
        self._post(
            f"/invocation/{_quote(request_id)}/response", _json_bytes(document), "application/json"
        )

    def post_error(self, request_id: str, error: Mapping[str, Any]) -> None:
        """Fail invocation ``request_id`` with an error document (errorType, errorMessage...)."""
        self._post(
            f"/invocation/{_quote(request_id)}/error",
            _json_bytes(error),
            ERROR_CONTENT_TYPE,
            {ERROR_TYPE_HEADER: errors.header_for(error)},
        )

    def post_init_error(self, error: Mapping[str, Any]) -> None:
        """Report a start-up failure; the runtime exits afterwards."""
        self._post(
            "/init/error",
            _json_bytes(error),
            ERROR_CONTENT_TYPE,
            {ERROR_TYPE_HEADER: errors.header_for(error)},
        )

    def close(self) -> None:
        """Close the connection."""
        self._connection.close()

    def _post(
        self,
        path: str,
        body: bytes,
        content_type: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        status, _, answer = self._request(
            "POST", path, body, {"Content-Type": content_type, **(headers or {})}
        )
        if status == 202:
            return
        where = f"POST {self._base}{path} at {self.address}"
        if status in (400, 413):
            raise RequestRejected(f"{where}: HTTP {status}: {_preview(answer)}", status)
        raise RuntimeApiError(f"{where}: HTTP {status}: {_preview(answer)}")

    def _request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, http.client.HTTPMessage, bytes]:
        url = self._base + path
        failure: Exception | None = None
        for attempt in range(self.attempts):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                self._connection.request(method, url, body=body, headers=dict(headers or {}))
                response = self._connection.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException) as exc:
                # Reset, refused, closed mid-answer: reopen on the next attempt.
                self._connection.close()
                failure = exc
                log(
                    logger,
                    logging.WARNING if attempt + 1 < self.attempts else logging.ERROR,
                    "Runtime API connection failed",
                    request=f"{method} {url}",
                    address=self.address,
                    attempt=attempt + 1,
                    error=f"{type(exc).__name__}: {exc}",
                )
                continue
            if response.will_close:
                self._connection.close()
            return response.status, response.headers, data
        raise RuntimeApiError(
            f"{method} {url}: the Runtime API at {self.address} cannot be reached "
            f"after {self.attempts} attempts: {type(failure).__name__}: {failure}"
        )


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
            with request_context(invocation.request_id):
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
            fields["failed_messages"] = len(answer.body.get("batchItemFailures", []))
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
    make_app: Callable[..., App] = App.create,
) -> int:
    """Run the custom runtime against the Runtime API at ``address``; returns the exit status.

    Raises ``ConfigurationError`` or ``StartupError`` before the first ``next`` if it cannot
    start; the caller reports them with ``fail_init``. Returns 1 when the Runtime API goes away
    (Lambda then starts a new execution environment), 0 on SIGTERM.
    """
    settings, handler = load_configuration(command)
    configure_logging(settings.log_format, settings.log_level)
    install_exception_logging()
    log_configuration_warnings(settings)
    concurrency = max_concurrency(os.environ)
    try:
        pollers = [
            Poller(make_app(settings, handler), RuntimeApiClient(address), concurrency == 1)
            for _ in range(concurrency)
        ]
    except Exception as exc:
        raise StartupError(f"cannot prepare the engine: {type(exc).__name__}: {exc}") from exc
    signal.signal(signal.SIGTERM, _shutdown)
    log(
        logger,
        logging.INFO,
        "lambda runtime ready",
        runtime_api=address,
        concurrency=concurrency,
        handler=list(handler),
    )
    try:
        _run_pollers(pollers)
    except RuntimeApiError as exc:
        log(logger, logging.ERROR, "stopping: the Runtime API is gone", error=str(exc))
        return 1
    except _Shutdown:
        log(logger, logging.INFO, "stopping: SIGTERM")
        # The handlers run in sessions of their own: stop them, or they outlive the runtime.
        stop_all_handlers(kill_grace=SHUTDOWN_GRACE_SECONDS)
        time.sleep(SHUTDOWN_GRACE_SECONDS + 0.05)  # let the SIGKILL of survivors go out
        return 0


def fail_init(address: str, error_type: errors.ErrorType, lines: Sequence[str]) -> None:
    """Report a start-up failure: ``POST init/error`` and the same ``lines`` on stderr.

    The lines are written as the CLI prints them, or as JSON log lines when the environment
    asks for JSON logs (the configuration itself may be what failed to load).
    """
    message = "\n".join(lines)
    problem: str | None = None
    try:
        RuntimeApiClient(address).post_init_error(errors.error_document(error_type, message))
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


class _Shutdown(BaseException):
    """Raised in the main thread by SIGTERM."""


def _shutdown(signum: int, frame: FrameType | None) -> None:
    raise _Shutdown


def _run_pollers(pollers: Sequence[Poller]) -> NoReturn:
    """Run every poller in a thread of its own; raise what stops one of them.

    The main thread only waits: a signal can be delivered to any thread, and a main thread
    blocked in ``recv`` would never run the SIGTERM handler.
    """
    failures: queue.Queue[BaseException] = queue.Queue()

    def guarded(poller: Poller) -> None:
        try:
            poller.run()
        except BaseException as exc:  # handed to the main thread, which ends the process
            failures.put(exc)

    for index, poller in enumerate(pollers):
        threading.Thread(
            target=guarded, args=(poller,), name=f"poller-{index}", daemon=True
        ).start()
    while True:
        try:
            failure = failures.get(timeout=0.5)  # the timeout keeps signals responsive
        except queue.Empty:
            continue
        raise failure


def _quote(request_id: str) -> str:
    return urllib.parse.quote(request_id, safe="")


def _json_bytes(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


def _preview(body: bytes, limit: int = 300) -> str:
    text = body.decode("utf-8", errors="replace").strip()
    return text if len(text) <= limit else text[:limit] + "..."
