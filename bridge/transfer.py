"""What pulls, pushes and lookups share: the size at which an object goes multipart, how
bodies stream (chunk size, which errors are retried), and the pool that runs a set of S3
calls ``concurrency`` wide."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from botocore.exceptions import (
    ConnectionClosedError,
    IncompleteReadError,
    ReadTimeoutError,
    ResponseStreamingError,
)

MULTIPART_THRESHOLD = 8 * 1024 * 1024
CHUNK = 256 * 1024
# Errors while a response body streams in, which botocore does not retry (it has already
# returned the response): the same list s3transfer retries its downloads on, as often.
RETRYABLE_STREAMING_ERRORS: tuple[type[Exception], ...] = (
    TimeoutError,
    ConnectionError,
    ReadTimeoutError,
    IncompleteReadError,
    ResponseStreamingError,
    ConnectionClosedError,
)
STREAMING_ATTEMPTS = 5

T = TypeVar("T")


def run_all(tasks: Sequence[Callable[[], T]], concurrency: int) -> list[T]:
    """Run ``tasks`` ``concurrency`` wide; on the first failure cancel what has not started,
    wait for what has (nothing may still write into the root folder), raise it.

    A pool per call: groups running side by side each get their own width, and a thread
    costs far less to start than one request takes.
    """
    if len(tasks) <= 1:
        return [task() for task in tasks]
    width = min(concurrency, len(tasks))
    with ThreadPoolExecutor(width, thread_name_prefix="bridge-transfer") as pool:
        futures: list[Future[T]] = [pool.submit(task) for task in tasks]
        failure: BaseException | None = None
        for future in futures:
            try:
                future.result()
            except BaseException as exc:
                if failure is None:
                    failure = exc
                    for pending in futures:
                        pending.cancel()
    if failure is not None:
        raise failure
    return [future.result() for future in futures]
