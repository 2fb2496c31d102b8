"""Obviously fake identifiers for sample payloads (pure): the account ``123456789012``, a
TEST-NET address, random request ids and signatures, plausible ETags and timestamps."""

from __future__ import annotations

import base64
import hashlib
import secrets
from datetime import datetime

ACCOUNT = "123456789012"
SOURCE_IP = "203.0.113.10"  # TEST-NET-3


def etag(bucket: str, key: str, size: int) -> str:
    """A stable, plausible single-part ETag (an MD5 hex digest, no quotes)."""
    return hashlib.md5(f"{bucket}/{key}/{size}".encode()).hexdigest()


def request_id() -> str:
    """An S3-style request id: 16 upper-case hex digits."""
    return secrets.token_hex(8).upper()


def seconds_hex(when: datetime) -> str:
    """Unix seconds as 8 hex digits: S3 sequencers start with them."""
    return f"{int(when.timestamp()) & 0xFFFFFFFF:08x}"


def iso_millis(when: datetime) -> str:
    """``2024-05-01T12:34:56.789Z``: S3 ``eventTime`` and SNS ``Timestamp`` format."""
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def b64(data: bytes) -> str:
    """Base64 text of ``data``."""
    return base64.b64encode(data).decode("ascii")


def random_b64(size: int) -> str:
    """Base64 text of ``size`` random bytes (signatures, receipt handles, host ids)."""
    return b64(secrets.token_bytes(size))
