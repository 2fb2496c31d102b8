"""The moto server, with ranged GETs that read only the range asked for.

Run as ``python bench/moto_ranged.py -H 127.0.0.1 -p PORT`` (the arguments of
``python -m moto.server``). Plain moto answers ``GET`` with ``Range: bytes=a-b`` by reading
the *whole* object and slicing it, so a 1 GiB object fetched in 8 MiB parts (what
s3transfer, hence both the bridge and ``boto3.download_file``, does) costs 128 GiB of reads:
the transfer time grows with the square of the size, and the benchmark would measure moto,
not the client. Real S3 serves a range in time proportional to the range. This launcher
patches only that: for a ranged ``GetObject`` the object's value is handed to the range
code as a lazy view that reads just the requested bytes. Every other request is moto's own.
"""

from __future__ import annotations

import threading
from typing import Any

from moto.s3.models import FakeKey
from moto.s3.responses import S3Response
from moto.server import main

_ranged = threading.local()


class LazyValue:
    """A key's value that reads only the slices taken from it."""

    def __init__(self, key: FakeKey) -> None:
        self._key = key
        self._size = int(key.size)

    def __len__(self) -> int:
        return self._size

    def __bool__(self) -> bool:
        return self._size > 0

    def __getitem__(self, item: slice) -> bytes:
        start, stop, step = item.indices(self._size)
        if step != 1:
            raise ValueError("only contiguous slices are supported")
        with self._key.lock:
            buffer = self._key._value_buffer
            buffer.seek(start)
            data: bytes = buffer.read(max(0, stop - start))
        return data


_plain_value = FakeKey.value


def _value(self: FakeKey) -> bytes | LazyValue:
    if getattr(_ranged, "active", False):
        return LazyValue(self)
    value: bytes = _plain_value.fget(self)  # type: ignore[attr-defined]
    return value


_plain_get_object = S3Response.get_object
_plain_key_response = S3Response.key_response


def _get_object(self: S3Response) -> Any:
    _ranged.active = bool(self.headers.get("range"))
    try:
        return _plain_get_object(self)
    finally:
        _ranged.active = False


def _key_response(self: S3Response, *args: Any, **kwargs: Any) -> Any:
    status, headers, body = _plain_key_response(self, *args, **kwargs)
    if isinstance(body, LazyValue):  # a range moto chose not to apply: send it all
        body = body[:]
    return status, headers, body


FakeKey.value = property(_value, _plain_value.fset)  # type: ignore[method-assign, assignment, attr-defined]
S3Response.get_object = _get_object  # type: ignore[method-assign]
S3Response.key_response = _key_response  # type: ignore[method-assign]

if __name__ == "__main__":
    main()
