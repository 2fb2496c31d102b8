"""What a pulled object's bytes must hash to, and the hashes to check it (docs/design.md §2 step 6).

Pure: no I/O. The expected digest comes from S3's own response fields, in this order:

1. a full-object checksum S3 keeps (``ChecksumCRC32``, ``ChecksumSHA256``, ...) that this
   process can compute: CRC32, SHA-1, SHA-256 and SHA-512 with the standard library,
   CRC32C and CRC64NVME only when awscrt is installed (botocore uses it too). Composite
   checksums (``...-N``, ``ChecksumType: COMPOSITE``) are checksums of part checksums and
   cannot be checked without the part boundaries;
2. else the MD5 of a plain ETag (no ``-``): S3's ETag is the MD5 of the content for an
   object stored in one part without SSE-KMS or SSE-C;
3. else nothing: the object cannot be verified (reported, not failed).
"""

from __future__ import annotations

import base64
import hashlib
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

# S3's full-object checksums, in the order they are preferred (cheapest first).
_CHECKSUM_FIELDS = (
    "ChecksumCRC32",
    "ChecksumCRC64NVME",
    "ChecksumCRC32C",
    "ChecksumSHA256",
    "ChecksumSHA1",
    "ChecksumSHA512",
)
_ETAG_NOT_MD5_ENCRYPTION = ("aws:kms", "aws:kms:dsse")


class Hash(Protocol):
    """An incremental hash: ``update`` with the bytes in order, then ``digest``."""

    def update(self, data: bytes, /) -> None: ...

    def digest(self) -> bytes: ...


class _Crc:
    """A CRC of ``width`` bits over a function ``crc(data, previous) -> int``."""

    def __init__(self, function: Callable[[bytes, int], int], width: int) -> None:
        self._function = function
        self._bytes = width // 8
        self._value = 0

    def update(self, data: bytes, /) -> None:
        self._value = self._function(data, self._value)

    def digest(self) -> bytes:
        return self._value.to_bytes(self._bytes, "big")


def _hash_factories() -> dict[str, Callable[[], Hash]]:
    factories: dict[str, Callable[[], Hash]] = {
        "CRC32": lambda: _Crc(zlib.crc32, 32),
        "SHA1": lambda: hashlib.sha1(usedforsecurity=False),
        "SHA256": hashlib.sha256,
        "SHA512": hashlib.sha512,
        "MD5": lambda: hashlib.md5(usedforsecurity=False),
    }
    try:
        from awscrt import checksums  # type: ignore[import-not-found]  # optional, like botocore
    except ImportError:
        return factories
    factories["CRC32C"] = lambda: _Crc(checksums.crc32c, 32)
    if hasattr(checksums, "crc64nvme"):
        factories["CRC64NVME"] = lambda: _Crc(checksums.crc64nvme, 64)
    return factories


HASHES = _hash_factories()


@dataclass(frozen=True)
class Expected:
    """The digest an object's bytes must have: ``algorithm`` (a key of HASHES) and raw bytes."""

    algorithm: str
    digest: bytes
    source: str  # where it came from, for error messages: "ChecksumCRC32", "ETag"

    def new_hash(self) -> Hash:
        """A fresh hash of this algorithm."""
        return HASHES[self.algorithm]()

    def describe(self, digest: bytes) -> str:
        """Why ``digest`` does not match, in words."""
        return (
            f"{self.algorithm} of the downloaded bytes is {_show(self.algorithm, digest)}, "
            f"the object's {self.source} says {_show(self.algorithm, self.digest)}"
        )


def expected_digest(fields: Mapping[str, Any]) -> Expected | None:
    """What to check the bytes of an object against, from a GetObject or HeadObject response.

    Needs ``ChecksumMode=ENABLED`` on the request for the checksum fields to be present;
    None when neither a computable full-object checksum nor an MD5 ETag is available.
    """
    etag = str(fields.get("ETag", "")).strip('"')
    multipart = "-" in etag
    checksum_type = fields.get("ChecksumType")
    for name in _CHECKSUM_FIELDS:
        value = fields.get(name)
        algorithm = name.removeprefix("Checksum")
        if not isinstance(value, str) or "-" in value or algorithm not in HASHES:
            continue
        if checksum_type == "COMPOSITE" or (multipart and checksum_type != "FULL_OBJECT"):
            continue  # a checksum of part checksums (some servers omit the "-N" on HEAD)
        try:
            return Expected(algorithm, base64.b64decode(value, validate=True), name)
        except ValueError:
            continue
    if etag_is_md5(fields):
        return Expected("MD5", bytes.fromhex(etag), "ETag")
    return None


def etag_is_md5(fields: Mapping[str, Any]) -> bool:
    """True when the ETag of these response fields is the MD5 of the object's content."""
    etag = str(fields.get("ETag", "")).strip('"')
    if len(etag) != 32 or any(c not in "0123456789abcdefABCDEF" for c in etag):
        return False
    encryption = fields.get("ServerSideEncryption")
    return encryption not in _ETAG_NOT_MD5_ENCRYPTION and not fields.get("SSECustomerAlgorithm")


def _show(algorithm: str, digest: bytes) -> str:
    return digest.hex() if algorithm == "MD5" else base64.b64encode(digest).decode("ascii")
