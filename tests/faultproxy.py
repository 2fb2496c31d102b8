"""A fault-injecting HTTP proxy for tests: a faulty network between the bridge and S3.

``FaultProxy`` listens on 127.0.0.1 (a free port) and forwards plain HTTP/1.1 to an
upstream endpoint (the moto server). Requests pass through as they arrive (``Expect:
100-continue`` works), untouched unless ``flip_requests`` is set. Each response is read
whole from upstream, then, by a seeded draw, delivered intact or damaged:

- ``reset``: the client connection is aborted with a TCP RST (before or part way into the
  response);
- ``truncate``: the headers and only part of the body are sent, then the connection closes;
- ``stall``: the response pauses ``stall_seconds`` half way through, then completes;
- ``flip``: one byte of the body is inverted (headers and length unchanged).

``flip_requests`` inverts one byte of request bodies (uploads) instead, counted as
``counts["flip_request"]``.

Draws are deterministic by position: the n-th response with a body, and separately the
n-th response without one, get the same fault for a given seed whatever the thread
interleaving, so a seed gives the same number of faults of each kind in its first
responses. ``counts`` says what was injected. Only responses to requests that ``eligible``
accepts are damaged (default: all); the others are counted in ``passed``.
"""

from __future__ import annotations

import collections
import contextlib
import random
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO
from urllib.parse import urlsplit

FAULTS = ("reset", "truncate", "stall", "flip")


@dataclass(frozen=True)
class Faults:
    """Probabilities (per response) of each fault, the stall length and the seed."""

    reset: float = 0.0
    truncate: float = 0.0
    stall: float = 0.0
    flip: float = 0.0
    stall_seconds: float = 0.3
    seed: int = 0
    flip_requests: float = 0.0  # one byte of a request body (an upload) inverted

    def draw_request(self, index: int) -> float | None:
        """Where (0..1) the ``index``-th request with a body gets a byte flipped, if it does."""
        rng = random.Random(f"{self.seed}:request:{index}")
        roll, where = rng.random(), rng.random()
        return where if roll < self.flip_requests else None

    def draw(self, stream: str, index: int, body_length: int) -> tuple[str | None, float]:
        """The fault for the ``index``-th response of ``stream``, and where (0..1) it strikes.

        Truncation and flips need a body: a response without one can only be reset or stalled.
        """
        rng = random.Random(f"{self.seed}:{stream}:{index}")
        roll, where = rng.random(), rng.random()
        kinds = FAULTS if body_length else ("reset", "stall")
        bound = 0.0
        for kind in kinds:
            bound += getattr(self, kind)
            if roll < bound:
                return kind, where
        return None, where


@dataclass(frozen=True)
class Request:
    """What the proxy knows of a request when its response comes back."""

    method: str
    target: str


class FaultProxy:
    """A threaded TCP proxy in front of ``upstream`` (``http://host:port``) injecting faults."""

    def __init__(
        self,
        upstream: str,
        faults: Faults,
        eligible: Callable[[Request], bool] | None = None,
    ) -> None:
        parts = urlsplit(upstream)
        assert parts.hostname and parts.port, upstream
        self._upstream = (parts.hostname, parts.port)
        self.faults = faults
        self._eligible = eligible or (lambda request: True)
        self.counts: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()
        self._indices: collections.Counter[str] = collections.Counter()
        self._sockets: set[socket.socket] = set()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)  # accept() wakes up to notice stop()
        self.port: int = self._listener.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="faultproxy", daemon=True)
        self._thread.start()

    def injected(self) -> dict[str, int]:
        """How many faults of each kind were injected so far."""
        with self._lock:
            return {kind: self.counts[kind] for kind in FAULTS}

    def stop(self) -> None:
        """Stop listening and abort every open connection."""
        self._stopped.set()
        self._listener.close()
        with self._lock:
            open_sockets = list(self._sockets)
        for sock in open_sockets:
            _shutdown(sock, socket.SHUT_RDWR)  # wakes the threads blocked reading it
        self._thread.join(timeout=10)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- connections -----------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self._upstream, timeout=60)
        except OSError:
            _abort(client)
            return
        for sock in (client, upstream):
            sock.settimeout(60)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            self._sockets.update((client, upstream))
            self.counts["connections"] += 1
        pending: collections.deque[Request] = collections.deque()
        forwarding = threading.Thread(
            target=self._forward_requests, args=(client, upstream, pending), daemon=True
        )
        forwarding.start()
        aborted = False
        try:
            aborted = self._relay_responses(client, upstream, pending)
        except (OSError, ValueError):
            pass
        finally:
            if aborted:  # SO_LINGER 0: the close below sends a RST instead of a FIN
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            # Wake the request thread (blocked reading the client), then close for real.
            _shutdown(client, socket.SHUT_RD if aborted else socket.SHUT_RDWR)
            forwarding.join(timeout=10)
            _close(client)
            _close(upstream)
            with self._lock:
                self._sockets.difference_update((client, upstream))

    def _forward_requests(
        self, client: socket.socket, upstream: socket.socket, pending: collections.deque[Request]
    ) -> None:
        reader = client.makefile("rb")
        try:
            while True:
                head = _read_head(reader)
                if head is None:
                    break
                start_line, headers = _parse_head(head)
                method, target = ([*start_line.split(" "), "", ""])[:2]
                request = Request(method.upper(), target)
                pending.append(request)  # before upstream can answer
                upstream.sendall(head)  # (an Expect: 100-continue body follows the answer)
                body = b"".join(_body_pieces(reader, headers, until_close=False))
                if body and self.faults.flip_requests and self._eligible(request):
                    body = self._flip_request(body)
                upstream.sendall(_chunk(body) if _chunked(headers) else body)
        except (OSError, ValueError):
            pass
        finally:
            reader.close()
            _shutdown(upstream, socket.SHUT_WR)

    def _relay_responses(
        self, client: socket.socket, upstream: socket.socket, pending: collections.deque[Request]
    ) -> bool:
        """Relay responses until the connection ends; True when it ended with an abort."""
        with upstream.makefile("rb") as reader:
            return self._relay(reader, client, pending)

    def _relay(
        self, reader: BinaryIO, client: socket.socket, pending: collections.deque[Request]
    ) -> bool:
        while True:
            head = _read_head(reader)
            if head is None:
                return False
            start_line, headers = _parse_head(head)
            status = int(start_line.split(" ")[1])
            if 100 <= status < 200:  # 100 Continue and friends: no body, the request goes on
                client.sendall(head)
                continue
            request = pending.popleft() if pending else Request("", "")
            if request.method == "HEAD" or status in (204, 304):
                body = b""
                until_close = False
            else:
                until_close = "content-length" not in headers and not _chunked(headers)
                body = b"".join(_body_pieces(reader, headers, until_close=until_close))
            if _chunked(headers):  # re-framed as one chunk, so a flip lands in the data
                head, framed = head, _chunk(body)
            else:
                framed = body
            outcome = self._deliver(client, request, head, body, framed)
            if outcome != "delivered":
                return outcome == "aborted"
            if until_close or headers.get("connection", "").lower() == "close":
                return False

    # --- faults ----------------------------------------------------------------------------

    def _flip_request(self, body: bytes) -> bytes:
        with self._lock:
            index = self._indices["request"]
            self._indices["request"] += 1
            where = self.faults.draw_request(index)
            if where is None:
                return body
            self.counts["flip_request"] += 1
        damaged = bytearray(body)
        damaged[min(int(len(body) * where), len(body) - 1)] ^= 0xFF
        return bytes(damaged)

    def _deliver(
        self, client: socket.socket, request: Request, head: bytes, body: bytes, framed: bytes
    ) -> str:
        """Send one response, maybe damaged: ``delivered``, ``aborted`` or ``truncated``."""
        eligible = self._eligible(request)
        with self._lock:
            self.counts["responses"] += 1
            if not eligible:
                self.counts["passed"] += 1
                fault, where = None, 0.0
            else:
                stream = "body" if body else "empty"
                index = self._indices[stream]
                self._indices[stream] += 1
                fault, where = self.faults.draw(stream, index, len(body))
                if fault is not None:
                    self.counts[fault] += 1
        if fault is None:
            client.sendall(head + framed)
            return "delivered"
        if fault == "reset":  # half the time before the response, else part way into it
            if where >= 0.5:
                client.sendall(head + framed[: int(len(framed) * where)])
            return "aborted"
        if fault == "truncate":
            client.sendall(head + framed[: int(len(framed) * where)])
            return "truncated"
        if fault == "stall":
            half = len(framed) // 2
            client.sendall(head + framed[:half])
            time.sleep(self.faults.stall_seconds)
            client.sendall(framed[half:])
            return "delivered"
        # flip: one byte of the body inverted, at the same place in the framed bytes
        offset = min(int(len(body) * where), len(body) - 1)
        if framed is not body:
            offset += len(framed) - len(body) - len(b"\r\n0\r\n\r\n")
        damaged = bytearray(framed)
        damaged[offset] ^= 0xFF
        client.sendall(head + bytes(damaged))
        return "delivered"


# --- HTTP/1.1 framing ------------------------------------------------------------------------


def _read_head(reader: BinaryIO) -> bytes | None:
    """The start line and headers, through the blank line; None at a clean end of stream."""
    lines: list[bytes] = []
    while True:
        line = reader.readline(65537)
        if not line:
            if lines:
                raise ValueError("connection closed inside a message head")
            return None
        lines.append(line)
        if line in (b"\r\n", b"\n"):
            if len(lines) == 1:  # stray blank line between messages
                lines.clear()
                continue
            return b"".join(lines)


def _parse_head(head: bytes) -> tuple[str, dict[str, str]]:
    text = head.decode("iso-8859-1").split("\r\n")
    headers = {}
    for line in text[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    return text[0], headers


def _chunked(headers: dict[str, str]) -> bool:
    return "chunked" in headers.get("transfer-encoding", "").lower()


def _body_pieces(reader: BinaryIO, headers: dict[str, str], until_close: bool) -> list[bytes]:
    """The body of one message as raw pieces (chunked bodies: the data, de-chunked)."""
    if _chunked(headers):
        pieces: list[bytes] = []
        while True:
            size_line = reader.readline(65537)
            if not size_line:
                raise ValueError("connection closed inside a chunked body")
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while reader.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass  # trailers are dropped
                return pieces
            pieces.append(_read_exactly(reader, size))
            reader.readline(65537)
    if "content-length" in headers:
        return [_read_exactly(reader, int(headers["content-length"]))]
    if until_close:
        return [reader.read()]
    return []


def _read_exactly(reader: BinaryIO, size: int) -> bytes:
    data = reader.read(size)
    if len(data) != size:
        raise ValueError("connection closed inside a body")
    return data


def _chunk(body: bytes) -> bytes:
    return (f"{len(body):x}\r\n".encode("ascii") + body + b"\r\n" if body else b"") + b"0\r\n\r\n"


def _abort(sock: socket.socket) -> None:
    """Close with a TCP RST instead of a FIN (SO_LINGER on, timeout 0)."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    _close(sock)


def _shutdown(sock: socket.socket, how: int) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(how)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.close()
