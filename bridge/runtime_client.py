"""The Lambda Runtime API transport (docs/design.md §8): one keep-alive connection, no loop.

``RuntimeApiClient`` speaks just enough HTTP/1.1 to the Runtime API at
``AWS_LAMBDA_RUNTIME_API`` (``host:port``) over one TCP socket with ``TCP_NODELAY``: each
request is written with a single ``sendall``; an answer's status line and headers are read
line by line, and its body by ``Content-Length``, by chunks (``Transfer-Encoding: chunked``,
as Go's ``net/http`` sends larger payloads, which AWS's Runtime Interface Emulator and the
Lambda service use) or until the server closes the connection when it gives neither. The
connection is kept open unless the answer says ``Connection: close`` (or is HTTP/1.0
without keep-alive). A dropped connection (refused, reset, closed mid-answer, garbled) is
reopened and the request retried a few times with a short backoff; after that
``RuntimeApiError`` is raised.

The poller loop that drives this client lives in ``bridge.runtime``, as awslambdaric keeps its
Runtime API client apart from its bootstrap.
"""

from __future__ import annotations

import json
import logging
import socket
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, Any

from bridge import __version__, errors
from bridge.logs import log

logger = logging.getLogger("bridge.runtime")

API_VERSION = "2018-06-01"

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
# Bounds on what the Runtime API may send, so a garbled answer fails instead of eating memory.
MAX_LINE = 64 * 1024
MAX_HEADERS = 100
USER_AGENT = f"s3-event-bridge/{__version__}"


class RuntimeApiError(Exception):
    """The Runtime API cannot be reached, or answered in a way that ends the runtime."""


class RequestRejected(RuntimeApiError):
    """The Runtime API refused one request (400 unknown request id, 413 too large)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class ProtocolError(OSError):
    """The connection broke the HTTP/1.1 framing (closed mid-answer, garbled line)."""


@dataclass(frozen=True)
class NextInvocation:
    """One invocation handed out by ``GET invocation/next``."""

    request_id: str
    payload: bytes
    deadline_ms: int | None
    trace_id: str | None
    function_arn: str | None


@dataclass(frozen=True)
class RawResponse:
    """One HTTP answer: status, headers (names lower-cased) and the whole body."""

    status: int
    headers: dict[str, str]
    body: bytes
    keep_alive: bool


class RuntimeApiClient:
    """One keep-alive connection to the Runtime API at ``address`` (``host:port``).

    ``GET next`` has no timeout: it blocks until Lambda has an event, and the process may be
    frozen meanwhile. Not thread-safe: each poller has its own client.
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
        self._host, self._port = _split_address(address)
        self._base = f"/{API_VERSION}/runtime"
        self._socket: socket.socket | None = None
        self._reader: IO[bytes] | None = None
        self._next_request = _request_bytes(
            "GET", f"{self._base}/invocation/next", address, None, {}
        )

    def next_invocation(self) -> NextInvocation:
        """Block until the next invocation arrives."""
        answer = self._exchange("GET", "/invocation/next", self._next_request)
        if answer.status != 200:
            raise RuntimeApiError(
                f"GET {self._base}/invocation/next at {self.address}: HTTP {answer.status}: "
                f"{_preview(answer.body)}"
            )
        headers = answer.headers
        request_id = headers.get("lambda-runtime-aws-request-id")
        if not request_id:
            raise RuntimeApiError(
                f"GET {self._base}/invocation/next at {self.address}: "
                f"no {REQUEST_ID_HEADER} header in the answer"
            )
        return NextInvocation(
            request_id=request_id,
            payload=answer.body,
            deadline_ms=_int_or_none(headers.get("lambda-runtime-deadline-ms")),
            trace_id=headers.get("lambda-runtime-trace-id") or None,
            function_arn=headers.get("lambda-runtime-invoked-function-arn") or None,
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
        """Close the connection (the next request opens a new one)."""
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def _post(
        self,
        path: str,
        body: bytes,
        content_type: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        fields = {"Content-Type": content_type, **(headers or {})}
        request = _request_bytes("POST", self._base + path, self.address, body, fields)
        answer = self._exchange("POST", path, request)
        if answer.status == 202:
            return
        where = f"POST {self._base}{path} at {self.address}"
        message = f"{where}: HTTP {answer.status}: {_preview(answer.body)}"
        if answer.status in (400, 413):
            raise RequestRejected(message, answer.status)
        raise RuntimeApiError(message)

    def _exchange(self, method: str, path: str, request: bytes) -> RawResponse:
        """Send ``request`` and read its answer, reconnecting and retrying a dropped one."""
        failure: Exception | None = None
        for attempt in range(self.attempts):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                reader = self._connected()
                assert self._socket is not None
                self._socket.sendall(request)
                answer = _read_response(reader, method)
            except OSError as exc:  # refused, reset, closed mid-answer, garbled
                self.close()
                failure = exc
                log(
                    logger,
                    logging.WARNING if attempt + 1 < self.attempts else logging.ERROR,
                    "Runtime API connection failed",
                    request=f"{method} {self._base}{path}",
                    address=self.address,
                    attempt=attempt + 1,
                    error=f"{type(exc).__name__}: {exc}",
                )
                continue
            if not answer.keep_alive:
                self.close()
            return answer
        raise RuntimeApiError(
            f"{method} {self._base}{path}: the Runtime API at {self.address} cannot be reached "
            f"after {self.attempts} attempts: {type(failure).__name__}: {failure}"
        )

    def _connected(self) -> IO[bytes]:
        if self._reader is None:
            connection = socket.create_connection((self._host, self._port))
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._socket = connection
            self._reader = connection.makefile("rb")
        return self._reader


def _read_response(reader: IO[bytes], method: str) -> RawResponse:
    """Read one HTTP/1.x answer (skipping 1xx interim answers) from ``reader``."""
    while True:
        status_line, header_lines = _head(reader)
        version, status = _status_line(status_line)
        headers = _header_fields(header_lines)
        if not 100 <= status < 200:
            break
    connection = headers.get("connection", "").lower()
    # HTTP/1.1 keeps the connection unless told otherwise; HTTP/1.0 only when told to.
    keep_alive = "keep-alive" in connection if version == "HTTP/1.0" else "close" not in connection
    if method == "HEAD" or status in (204, 304):
        return RawResponse(status, headers, b"", keep_alive)
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = _chunked_body(reader)
    elif "content-length" in headers:
        try:
            length = int(headers["content-length"])
        except ValueError:
            raise ProtocolError(f"bad Content-Length {headers['content-length']!r}") from None
        body = _exactly(reader, length)
    else:  # neither: the body ends when the server closes the connection
        body = reader.read()
        keep_alive = False
    return RawResponse(status, headers, body, keep_alive)


def _status_line(line: bytes) -> tuple[str, int]:
    parts = line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise ProtocolError(f"bad status line {line[:100]!r}")
    return parts[0].decode("ascii"), int(parts[1])


def _head(reader: IO[bytes]) -> tuple[bytes, list[bytes]]:
    """The status line and header lines of one answer.

    An answer's head usually arrives whole in one segment: then it is taken from the buffer
    and split in one pass; otherwise (split across segments, bare LF line ends) it is read
    line by line.
    """
    peek = getattr(reader, "peek", None)
    buffered = peek(MAX_LINE) if peek is not None else b""
    end = buffered.find(b"\r\n\r\n")
    if end >= 0:
        lines = reader.read(end + 4)[:end].split(b"\r\n")
        return lines[0], lines[1:]
    return _line(reader), _lines_to_blank(reader)


def _lines_to_blank(reader: IO[bytes]) -> list[bytes]:
    """Header (or trailer) lines up to the blank line that ends them."""
    lines: list[bytes] = []
    for _ in range(MAX_HEADERS + 1):
        line = _line(reader)
        if line in (b"\r\n", b"\n"):
            return lines
        lines.append(line)
    raise ProtocolError(f"more than {MAX_HEADERS} header lines")


def _header_fields(lines: list[bytes]) -> dict[str, str]:
    if len(lines) > MAX_HEADERS:
        raise ProtocolError(f"more than {MAX_HEADERS} header lines")
    headers: dict[str, str] = {}
    for line in lines:
        name, colon, value = line.partition(b":")
        if not colon:
            raise ProtocolError(f"bad header line {line[:100]!r}")
        key = name.strip().decode("latin-1").lower()
        text = value.strip().decode("latin-1")
        # Repeated headers are joined, as HTTP allows for list-valued ones.
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return headers


def _chunked_body(reader: IO[bytes]) -> bytes:
    parts: list[bytes] = []
    while True:
        size_text = _line(reader).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise ProtocolError(f"bad chunk size {size_text[:20]!r}") from None
        if size == 0:
            _lines_to_blank(reader)  # trailers
            return b"".join(parts)
        parts.append(_exactly(reader, size))
        if _line(reader) not in (b"\r\n", b"\n"):
            raise ProtocolError("chunk not followed by CRLF")


def _line(reader: IO[bytes]) -> bytes:
    line = reader.readline(MAX_LINE + 1)
    if not line:
        raise ProtocolError("the connection was closed by the Runtime API")
    if len(line) > MAX_LINE or not line.endswith(b"\n"):
        raise ProtocolError("the connection was closed mid-line, or the line is too long")
    return line


def _exactly(reader: IO[bytes], length: int) -> bytes:
    data = reader.read(length)
    if len(data) != length:
        raise ProtocolError(f"the connection was closed after {len(data)} of {length} bytes")
    return data


def _request_bytes(
    method: str, path: str, host: str, body: bytes | None, headers: Mapping[str, str]
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", f"User-Agent: {USER_AGENT}"]
    lines.extend(f"{name}: {value}" for name, value in headers.items())
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + body if body else head


def _split_address(address: str) -> tuple[str, int]:
    try:
        parts = urllib.parse.urlsplit(f"//{address}")
        port = parts.port or 80
    except ValueError as exc:
        raise RuntimeApiError(f"bad Runtime API address {address!r}: {exc}") from None
    if not parts.hostname:
        raise RuntimeApiError(f"bad Runtime API address {address!r}: no host")
    return parts.hostname, port


def _quote(request_id: str) -> str:
    return urllib.parse.quote(request_id, safe="")


def _json_bytes(document: Mapping[str, Any]) -> bytes:
    text = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
    # A lone surrogate (from JSON's "\\ud800" in a payload) cannot be UTF-8; written as the
    # same escape, it stays valid JSON holding the same value.
    return text.encode("utf-8", "backslashreplace")


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


def _preview(body: bytes, limit: int = 300) -> str:
    text = body.decode("utf-8", errors="replace").strip()
    return text if len(text) <= limit else text[:limit] + "..."
