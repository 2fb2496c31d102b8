"""A local Lambda Runtime API for tests and benchmarks, faithful to AWS's documented protocol.

``FakeRuntimeApi`` is a ``ThreadingHTTPServer`` on 127.0.0.1 (a free port) speaking HTTP/1.1
with keep-alive, under ``/2018-06-01/runtime``:

- ``GET invocation/next`` blocks until an invocation is queued (several may wait at once, as
  under Lambda Managed Instances), then answers 200 with the payload and the headers
  ``Lambda-Runtime-Aws-Request-Id``, ``Lambda-Runtime-Deadline-Ms`` (set when the invocation is
  handed out, like Lambda's timeout clock), ``Lambda-Runtime-Trace-Id`` and
  ``Lambda-Runtime-Invoked-Function-Arn``;
- ``POST invocation/{id}/response`` and ``POST invocation/{id}/error`` answer 202
  ``{"status": "OK"}``, or 400 for a request id that is unknown, not handed out, or already
  answered;
- ``POST init/error`` answers 202;
- anything else is 404.

Every answer (status line, headers and body) goes out in one write on a socket with
``TCP_NODELAY``, as a production HTTP server sends a small answer: headers and body written
apart would make the body wait for the client's delayed ACK (~40 ms) under Nagle's algorithm.
Bodies carry ``Content-Length``; with ``chunk_above=N``, bodies longer than N bytes are sent
with ``Transfer-Encoding: chunked`` instead, as Go's ``net/http`` (AWS's Runtime Interface
Emulator) sends a body it has not measured once it outgrows its 2 KiB buffer.

Tests queue invocations with ``enqueue`` and wait for what the runtime posted with
``wait_answer`` / ``wait_init_error``. Every request is recorded with the client's address, so
a test can tell which connection carried it.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

BASE = "/2018-06-01/runtime"
DEFAULT_ARN = "arn:aws:lambda:us-east-1:123456789012:function:s3-event-bridge-test"


@dataclass
class Posted:
    """What the runtime posted: a response, an invocation error or an init error."""

    kind: str  # "response", "error" or "init_error"
    raw: bytes
    headers: dict[str, str]
    received_at: float  # epoch seconds
    connection: tuple[str, int]

    @property
    def body(self) -> Any:
        """The posted document, parsed as JSON."""
        return json.loads(self.raw)


@dataclass
class Invocation:
    """One queued invocation and what became of it."""

    request_id: str
    payload: bytes
    timeout_s: float
    trace_id: str | None
    function_arn: str
    deadline_ms: int | None = None
    dispatched_at: float | None = None
    dispatched_on: tuple[str, int] | None = None
    answer: Posted | None = None
    answered: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True)
class RequestRecord:
    """One HTTP request the server received."""

    method: str
    path: str
    connection: tuple[str, int]
    at: float  # time.monotonic()


def sample_trace_id() -> str:
    """A well-formed X-Ray tracing header, as Lambda sends it."""
    root = f"1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}"
    return f"Root={root};Parent={uuid.uuid4().hex[:16]};Sampled=1"


class FakeRuntimeApi:
    """The Runtime API of one execution environment, on ``address`` (``127.0.0.1:port``)."""

    def __init__(self, chunk_above: int | None = None) -> None:
        self.chunk_above = chunk_above
        self._lock = threading.Condition()
        self._pending: deque[Invocation] = deque()
        self._invocations: dict[str, Invocation] = {}
        self._in_flight: set[str] = set()
        self._drop_next = 0
        self._stopping = False
        self.max_in_flight = 0
        self.requests: list[RequestRecord] = []
        self.init_errors: list[Posted] = []
        self.waiting_next = 0
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.api = self
        self.address = f"127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    # --- the test's side -------------------------------------------------------------

    def enqueue(
        self,
        payload: Any,
        *,
        timeout_s: float = 60.0,
        trace_id: str | None = None,
        function_arn: str = DEFAULT_ARN,
    ) -> str:
        """Queue an invocation (a JSON-able payload, or raw bytes); returns its request id.

        Its deadline is ``timeout_s`` after it is handed out, as with a function timeout.
        """
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode("utf-8")
        request_id = str(uuid.uuid4())
        if trace_id is None:
            trace_id = sample_trace_id()
        invocation = Invocation(request_id, raw, timeout_s, trace_id or None, function_arn)
        with self._lock:
            self._invocations[request_id] = invocation
            self._pending.append(invocation)
            self._lock.notify_all()
        return request_id

    def invocation(self, request_id: str) -> Invocation:
        """The record of a queued invocation."""
        with self._lock:
            return self._invocations[request_id]

    def wait_answer(self, request_id: str, timeout: float = 60.0) -> Posted:
        """Wait for the response or error posted for ``request_id``."""
        invocation = self.invocation(request_id)
        if not invocation.answered.wait(timeout):
            raise AssertionError(f"no answer for invocation {request_id} within {timeout} s")
        assert invocation.answer is not None
        return invocation.answer

    def wait_init_error(self, timeout: float = 30.0) -> Posted:
        """Wait for the first ``POST init/error``."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while not self.init_errors:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no init error within {timeout} s")
                self._lock.wait(left)
            return self.init_errors[0]

    def wait_waiting(self, count: int = 1, timeout: float = 30.0) -> None:
        """Wait until ``count`` ``GET next`` requests are blocked waiting for work."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self.waiting_next < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"{self.waiting_next} GET next waiting after {timeout} s, not {count}"
                    )
                self._lock.wait(left)

    def drop_next_requests(self, count: int) -> None:
        """Close the connection of the next ``count`` ``GET next`` requests without answering."""
        with self._lock:
            self._drop_next = count

    def next_requests(self) -> list[RequestRecord]:
        """Every ``GET next`` received so far."""
        with self._lock:
            return [r for r in self.requests if r.path == f"{BASE}/invocation/next"]

    def stop(self) -> None:
        """Stop serving; blocked ``GET next`` requests are closed without an answer."""
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeRuntimeApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- the runtime's side (called by the request handler) ------------------------------

    def _record(self, method: str, path: str, connection: tuple[str, int]) -> bool:
        """Record a request; False when its connection must be dropped."""
        with self._lock:
            self.requests.append(RequestRecord(method, path, connection, time.monotonic()))
            if method == "GET" and path == f"{BASE}/invocation/next" and self._drop_next:
                self._drop_next -= 1
                return False
            return True

    def _take(self, connection: tuple[str, int]) -> Invocation | None:
        with self._lock:
            self.waiting_next += 1
            self._lock.notify_all()
            try:
                while not self._pending and not self._stopping:
                    self._lock.wait(0.2)
            finally:
                self.waiting_next -= 1
            if self._stopping:
                return None
            invocation = self._pending.popleft()
            invocation.dispatched_at = time.time()
            invocation.dispatched_on = connection
            invocation.deadline_ms = int((invocation.dispatched_at + invocation.timeout_s) * 1000)
            self._in_flight.add(invocation.request_id)
            self.max_in_flight = max(self.max_in_flight, len(self._in_flight))
            return invocation

    def _answer(self, request_id: str, posted: Posted) -> bool:
        with self._lock:
            if request_id not in self._in_flight:
                return False
            self._in_flight.discard(request_id)
            invocation = self._invocations[request_id]
            invocation.answer = posted
            invocation.answered.set()
            self._lock.notify_all()
            return True

    def _init_error(self, posted: Posted) -> None:
        with self._lock:
            self.init_errors.append(posted)
            self._lock.notify_all()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    api: FakeRuntimeApi

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A runtime stopped between requests resets its keep-alive connection: expected.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as Lambda's Runtime API
    disable_nagle_algorithm = True  # TCP_NODELAY on every connection
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        api = self.server.api
        connection = (self.client_address[0], self.client_address[1])
        if not api._record("GET", self.path, connection):
            self.close_connection = True
            return
        if self.path != f"{BASE}/invocation/next":
            self._reply(404, {"errorType": "NotFound", "errorMessage": f"no route {self.path}"})
            return
        invocation = api._take(connection)
        if invocation is None:
            self.close_connection = True
            return
        headers = {
            "Lambda-Runtime-Aws-Request-Id": invocation.request_id,
            "Lambda-Runtime-Deadline-Ms": str(invocation.deadline_ms),
            "Lambda-Runtime-Invoked-Function-Arn": invocation.function_arn,
        }
        if invocation.trace_id:
            headers["Lambda-Runtime-Trace-Id"] = invocation.trace_id
        self._send(200, invocation.payload, headers)

    def do_POST(self) -> None:
        api = self.server.api
        connection = (self.client_address[0], self.client_address[1])
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not api._record("POST", self.path, connection):
            self.close_connection = True
            return
        headers = {name: value for name, value in self.headers.items()}
        if self.path == f"{BASE}/init/error":
            api._init_error(Posted("init_error", raw, headers, time.time(), connection))
            self._reply(202, {"status": "OK"})
            return
        parts = self.path.removeprefix(f"{BASE}/invocation/").split("/")
        if not self.path.startswith(f"{BASE}/invocation/") or len(parts) != 2:
            self._reply(404, {"errorType": "NotFound", "errorMessage": f"no route {self.path}"})
            return
        request_id, kind = parts
        if kind not in ("response", "error"):
            self._reply(404, {"errorType": "NotFound", "errorMessage": f"no route {self.path}"})
            return
        if api._answer(request_id, Posted(kind, raw, headers, time.time(), connection)):
            self._reply(202, {"status": "OK"})
        else:
            self._reply(
                400,
                {
                    "errorType": "InvalidRequestID",
                    "errorMessage": f"Invalid request ID: {request_id!r}",
                },
            )

    def do_PUT(self) -> None:
        self._reply(405, {"errorType": "MethodNotAllowed", "errorMessage": "use GET or POST"})

    def _reply(self, status: int, document: dict[str, str]) -> None:
        self._send(status, json.dumps(document).encode("utf-8"), {})

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        """Write the whole answer with one ``sendall``."""
        lines = [
            f"{self.protocol_version} {status} {self.responses[status][0]}",
            f"Date: {self.date_time_string()}",
            "Content-Type: application/json",
        ]
        chunk_above = self.server.api.chunk_above
        if chunk_above is not None and len(body) > chunk_above:
            lines.append("Transfer-Encoding: chunked")
            body = _chunked(body, max(1, chunk_above))
        else:
            lines.append(f"Content-Length: {len(body)}")
        lines.extend(f"{name}: {value}" for name, value in headers.items())
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.wfile.write(head + body)


def _chunked(body: bytes, size: int) -> bytes:
    """``body`` in chunks of ``size`` bytes, with the closing zero-length chunk."""
    parts = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in parts) + b"0\r\n\r\n"
