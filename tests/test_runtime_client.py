"""The Runtime API transport (bridge.runtime_client): HTTP/1.1 framing, keep-alive, retries.

Besides the faithful fake Runtime API (``tests/runtime_api.py``), these tests script the raw
bytes of each answer, so every framing an HTTP/1.1 server may use is covered: Content-Length,
chunked bodies with extensions and trailers, a body ended by closing the connection,
``Connection: close``, an interim ``100 Continue``, answers split across many TCP segments, and
connections dropped or garbled mid-answer.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

import pytest

from bridge.runtime_client import (
    NextInvocation,
    RequestRejected,
    RuntimeApiClient,
    RuntimeApiError,
)
from tests.runtime_api import FakeRuntimeApi

NEXT_HEADERS = (
    b"Lambda-Runtime-Aws-Request-Id: req-1\r\n"
    b"Lambda-Runtime-Deadline-Ms: 1700000000000\r\n"
    b"Lambda-Runtime-Trace-Id: Root=1-abc;Sampled=1\r\n"
    b"Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:1:function:f\r\n"
)
EXPECTED = NextInvocation(
    request_id="req-1",
    payload=b'{"hello": "world"}',
    deadline_ms=1700000000000,
    trace_id="Root=1-abc;Sampled=1",
    function_arn="arn:aws:lambda:us-east-1:1:function:f",
)
ACCEPTED = (
    b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n"
    b'{"status":"OK"}\n'
)


@dataclass
class Reply:
    """What the scripted server sends for one request: pieces (sent apart), then maybe close."""

    pieces: list[bytes]
    close: bool = False


@dataclass
class ScriptedServer:
    """A TCP server answering each request with the next scripted ``Reply``."""

    replies: list[Reply]
    requests: list[tuple[int, bytes]] = field(default_factory=list)  # (connection, raw request)
    connections: int = 0

    def __post_init__(self) -> None:
        self._current: socket.socket | None = None
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while self.replies:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            self._current = connection
            with connection, connection.makefile("rb") as reader:
                connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                while self.replies:
                    request = _read_request(reader)
                    if request is None:
                        break
                    self.requests.append((self.connections, request))
                    reply = self.replies.pop(0)
                    for piece in reply.pieces:
                        connection.sendall(piece)
                    if reply.close:
                        break

    def stop(self) -> None:
        self._listener.close()
        if self._current is not None:  # unblock a read on a connection kept alive
            with contextlib.suppress(OSError):
                self._current.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=10)


def _read_request(reader: BinaryIO) -> bytes | None:
    lines = []
    length = 0
    while True:
        line = reader.readline()
        if not line:
            return None
        lines.append(line)
        if line == b"\r\n":
            break
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return b"".join(lines) + (reader.read(length) if length else b"")


@pytest.fixture
def scripted() -> Iterator[list[ScriptedServer]]:
    servers: list[ScriptedServer] = []
    yield servers
    for server in servers:
        server.stop()


def serve(scripted: list[ScriptedServer], *replies: Reply) -> ScriptedServer:
    server = ScriptedServer(list(replies))
    scripted.append(server)
    return server


def test_content_length_body_and_keep_alive(scripted: list[ScriptedServer]) -> None:
    answer = (
        b"HTTP/1.1 200 OK\r\n" + NEXT_HEADERS + b"Content-Length: 18\r\n\r\n" + EXPECTED.payload
    )
    server = serve(scripted, Reply([answer]), Reply([ACCEPTED]))
    client = RuntimeApiClient(server.address)

    assert client.next_invocation() == EXPECTED
    client.post_response("req-1", {"ok": True})

    (first, next_request), (second, post) = server.requests
    assert first == second == 1  # one connection for both
    assert next_request.startswith(b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\n")
    assert f"Host: {server.address}\r\n".encode() in next_request
    assert post.startswith(b"POST /2018-06-01/runtime/invocation/req-1/response HTTP/1.1\r\n")
    assert b"Content-Type: application/json\r\n" in post
    assert post.endswith(b'\r\n\r\n{"ok":true}')
    assert b"Content-Length: 11\r\n" in post


def test_chunked_body_with_extensions_and_trailers_split_across_segments(
    scripted: list[ScriptedServer],
) -> None:
    head = b"HTTP/1.1 200 OK\r\n" + NEXT_HEADERS + b"Transfer-Encoding: chunked\r\n\r\n"
    chunks = b'5;name=value\r\n{"hel\r\nd\r\nlo": "world"}\r\n0\r\nX-Trailer: yes\r\n\r\n'
    pieces = [
        head[:7],
        head[7:40],
        head[40:],
        *(chunks[i : i + 3] for i in range(0, len(chunks), 3)),
    ]
    server = serve(scripted, Reply(pieces), Reply([ACCEPTED]))
    client = RuntimeApiClient(server.address)

    assert client.next_invocation() == EXPECTED
    client.post_response("req-1", {})
    assert server.connections == 1  # the chunked answer left the connection usable


def test_body_ended_by_close_then_a_new_connection(scripted: list[ScriptedServer]) -> None:
    answer = b"HTTP/1.1 200 OK\r\n" + NEXT_HEADERS + b"\r\n" + EXPECTED.payload
    server = serve(scripted, Reply([answer], close=True), Reply([ACCEPTED]))
    client = RuntimeApiClient(server.address)

    assert client.next_invocation() == EXPECTED
    client.post_response("req-1", {})
    assert [connection for connection, _ in server.requests] == [1, 2]


@pytest.mark.parametrize(
    "status_and_headers",
    [b"HTTP/1.1 202 Accepted\r\nConnection: close\r\n", b"HTTP/1.0 202 Accepted\r\n"],
)
def test_connection_close_is_honoured(
    scripted: list[ScriptedServer], status_and_headers: bytes
) -> None:
    answer = status_and_headers + b"Content-Length: 2\r\n\r\n{}"
    server = serve(scripted, Reply([answer], close=True), Reply([ACCEPTED]))
    client = RuntimeApiClient(server.address, attempts=1)

    client.post_response("a", {})
    client.post_response("b", {})  # no retry allowed: it must open a new connection itself
    assert [connection for connection, _ in server.requests] == [1, 2]


def test_interim_100_continue_is_skipped(scripted: list[ScriptedServer]) -> None:
    server = serve(scripted, Reply([b"HTTP/1.1 100 Continue\r\n\r\n", ACCEPTED]))
    RuntimeApiClient(server.address).post_error("req-1", {"errorType": "E", "errorMessage": "m"})
    request = server.requests[0][1]
    assert b"Lambda-Runtime-Function-Error-Type: Runtime.E\r\n" in request  # Category.Reason
    assert b"Content-Type: application/vnd.aws.lambda.error+json\r\n" in request


@pytest.mark.parametrize(
    "broken",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part",  # closed mid-body
        b"HTTP/1.1 200 OK\r\nContent-Le",  # closed mid-headers
        b"garbage\r\n\r\n",  # not HTTP
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",  # bad chunk size
    ],
)
def test_a_dropped_or_garbled_answer_is_retried_on_a_new_connection(
    scripted: list[ScriptedServer], broken: bytes
) -> None:
    answer = (
        b"HTTP/1.1 200 OK\r\n" + NEXT_HEADERS + b"Content-Length: 18\r\n\r\n" + EXPECTED.payload
    )
    server = serve(scripted, Reply([broken], close=True), Reply([answer]))
    client = RuntimeApiClient(server.address, attempts=2, backoff=0.01)

    assert client.next_invocation() == EXPECTED
    assert [connection for connection, _ in server.requests] == [1, 2]


def test_headers_are_matched_whatever_their_case(scripted: list[ScriptedServer]) -> None:
    answer = (
        b"HTTP/1.1 200 OK\r\n" + NEXT_HEADERS.lower() + b"content-length: 18\r\n\r\n"
    ) + EXPECTED.payload
    server = serve(scripted, Reply([answer]))
    invocation = RuntimeApiClient(server.address).next_invocation()
    assert invocation.request_id == "req-1"
    assert invocation.function_arn == "arn:aws:lambda:us-east-1:1:function:f"


def test_next_without_a_request_id_is_an_error(scripted: list[ScriptedServer]) -> None:
    server = serve(scripted, Reply([b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"]))
    with pytest.raises(RuntimeApiError, match="no Lambda-Runtime-Aws-Request-Id header"):
        RuntimeApiClient(server.address).next_invocation()


def test_too_large_response_is_a_rejection_with_its_status(
    scripted: list[ScriptedServer],
) -> None:
    refusal = (
        b'{"errorMessage":"Exceeded maximum allowed payload size",'
        b'"errorType":"RequestEntityTooLarge"}'
    )
    answer = b"HTTP/1.1 413 Request Entity Too Large\r\nContent-Length: %d\r\n\r\n%s" % (
        len(refusal),
        refusal,
    )
    server = serve(scripted, Reply([answer]))
    with pytest.raises(RequestRejected, match=r"HTTP 413: .*RequestEntityTooLarge") as rejected:
        RuntimeApiClient(server.address).post_response("req-1", {"big": "x"})
    assert rejected.value.status == 413


def test_request_ids_are_percent_encoded_in_the_path(scripted: list[ScriptedServer]) -> None:
    server = serve(scripted, Reply([ACCEPTED]))
    RuntimeApiClient(server.address).post_response("a/b c", {})
    assert server.requests[0][1].startswith(b"POST /2018-06-01/runtime/invocation/a%2Fb%20c/")


def test_a_document_holding_a_lone_surrogate_is_posted_as_valid_utf8_json(
    scripted: list[ScriptedServer],
) -> None:
    """A string from a hostile payload ("\\ud800" in JSON) must not crash the answer."""
    server = serve(scripted, Reply([ACCEPTED]))
    document = {"errorType": "E", "errorMessage": "key in/\ud800 é"}
    RuntimeApiClient(server.address).post_error("req-1", document)
    body = server.requests[0][1].split(b"\r\n\r\n", 1)[1]
    assert json.loads(body.decode("utf-8")) == document  # strict UTF-8, same value


def test_large_chunked_payload_from_the_fake_runtime_api() -> None:
    payload = {"records": ["x" * 1000] * 200}  # about 200 KB, sent in 2 KiB chunks
    with FakeRuntimeApi(chunk_above=2048) as api:
        client = RuntimeApiClient(api.address)
        request_id = api.enqueue(payload)
        invocation = client.next_invocation()
        client.post_response(request_id, {"size": len(invocation.payload)})
        small = api.enqueue({"small": True})
        assert client.next_invocation().payload == b'{"small": true}'
        client.post_response(small, {})
        client.close()
    assert json.loads(invocation.payload) == payload
    assert api.wait_answer(request_id).body == {"size": len(invocation.payload)}
    assert len({record.connection for record in api.requests}) == 1


@pytest.mark.parametrize("address", ["host:notaport", "[::1", ":9001"])
def test_a_bad_address_is_reported(address: str) -> None:
    with pytest.raises(RuntimeApiError, match="bad Runtime API address"):
        RuntimeApiClient(address)


@pytest.mark.parametrize("pieces", [1, 3])  # the head whole in the buffer, or split
def test_an_answer_with_too_many_header_lines_is_refused(
    scripted: list[ScriptedServer], pieces: int
) -> None:
    answer = b"HTTP/1.1 202 Accepted\r\n" + b"X-Filler: x\r\n" * 101 + b"Content-Length: 0\r\n\r\n"
    step = len(answer) // pieces + 1
    server = serve(scripted, Reply([answer[i : i + step] for i in range(0, len(answer), step)]))
    client = RuntimeApiClient(server.address, attempts=1)
    with pytest.raises(RuntimeApiError, match="more than 100 header lines"):
        client.post_response("req-1", {})
