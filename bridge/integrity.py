"""What a pulled object's bytes must hash to, and the hashes to check it (docs/design.md §2 step 6).

Pure: no I/O. The expected digest comes from S3's own response fields, in this order:

1. a full-object checksum S3 keeps (``ChecksumCRC32``, ``ChecksumSHA256``, ...) that this
   process can compute: CRC32, SHA-1, SHA-256 and SHA-512 with the standard library,
   CRC32C and CRC64NVME only when awscrt is installed (botocore uses it too). Composite
   checksums (``...-N``, ``ChecksumType: COMPOSITE``) are checksums of part checksums and
   cannot be checked without the part boundaries;
2. else the MD5 of a plain ETag (no ``-``): S3's ETag is the MD5 of the content for an
   object stored in one part without SSE-KMS or SSE-C;
3. for a multipart object, once its part sizes are known (``expected_for_parts``): its
   composite checksum (``X-N``: the checksum of the parts' checksums), else its ETag
   (``X-N``: the MD5 of the parts' MD5s);
4. else nothing: the object cannot be verified (reported, not failed).
"""

from __future__ import annotations

import base64
import hashlib
import zlib
from collections.abc import Callable, Mapping, Sequence
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

    def update(self, data: bytes | memoryview, /) -> None: ...

    def digest(self) -> bytes: ...


class _Crc:
    """A CRC of ``width`` bits over a function ``crc(data, previous) -> int``."""

    def __init__(self, function: Callable[[Any, int], int], width: int) -> None:
        self._function = function
        self._bytes = width // 8
        self._value = 0

    def update(self, data: bytes | memoryview, /) -> None:
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


class PartsHash:
    """The digest of a multipart object: ``algorithm`` over each part (split at
    ``part_sizes``), then over the concatenated part digests, followed by ``-<parts>``."""

    def __init__(self, factory: Callable[[], Hash], part_sizes: Sequence[int]) -> None:
        self._factory = factory
        self._sizes = tuple(part_sizes)
        self._digests: list[bytes] = []
        self._current = factory()
        self._left = self._sizes[0] if self._sizes else 0
        self._overflow = False

    def update(self, data: bytes | memoryview, /) -> None:
        view = memoryview(data)
        while view:
            if len(self._digests) == len(self._sizes):
                self._overflow = True  # more bytes than the parts hold
                return
            take = min(self._left, len(view))
            self._current.update(view[:take])
            view = view[take:]
            self._left -= take
            if self._left == 0:
                self._digests.append(self._current.digest())
                self._current = self._factory()
                if len(self._digests) < len(self._sizes):
                    self._left = self._sizes[len(self._digests)]

    def digest(self) -> bytes:
        whole = self._factory()
        whole.update(b"".join(self._digests))
        count = f"-{len(self._digests)}{'+' if self._overflow else ''}"
        return whole.digest() + count.encode("ascii")


@dataclass(frozen=True)
class Expected:
    """The digest an object's bytes must have: ``algorithm`` (a key of HASHES) and raw bytes.

    With ``part_sizes`` (a multipart object), ``digest`` is that of the part digests followed
    by ``-<parts>``, as ``PartsHash`` computes it.
    """

    algorithm: str
    digest: bytes
    source: str  # where it came from, for error messages: "ChecksumCRC32", "ETag"
    part_sizes: tuple[int, ...] | None = None

    def new_hash(self) -> Hash:
        """A fresh hash of this algorithm (of the parts, then of their digests, if any)."""
        if self.part_sizes is not None:
            return PartsHash(HASHES[self.algorithm], self.part_sizes)
        return HASHES[self.algorithm]()

    def with_parts(self, part_sizes: Sequence[int]) -> Expected:
        """The same expectation over other part boundaries."""
        return Expected(self.algorithm, self.digest, self.source, tuple(part_sizes))

    def describe(self, digest: bytes) -> str:
        """Why ``digest`` does not match, in words."""
        parts = self.part_sizes is not None
        return (
            f"{self.algorithm} of the downloaded bytes is {_show(self.algorithm, digest, parts)}, "
            f"the object's {self.source} says {_show(self.algorithm, self.digest, parts)}"
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


def equal_parts(size: int, first_part: int, parts: int) -> tuple[int, ...] | None:
    """Part sizes if every part but the last is ``first_part`` bytes (how uploaders cut an
    object; S3 tells the size of part 1 and the count); None when that cannot add up."""
    if parts < 1 or first_part < 1 or not (parts - 1) * first_part < size <= parts * first_part:
        return None
    return (*([first_part] * (parts - 1)), size - (parts - 1) * first_part)


def expected_for_parts(fields: Mapping[str, Any], part_sizes: Sequence[int]) -> Expected | None:
    """What a multipart object's bytes must hash to, part by part, given its part sizes.

    ``fields``: a HeadObject response (``ChecksumMode=ENABLED``) for the whole object. Its
    composite checksum (``X-N``) is preferred, else its ``X-N`` ETag (not with SSE-KMS or
    SSE-C); None when neither is usable.
    """
    sizes = tuple(part_sizes)
    suffix = f"-{len(sizes)}"
    for name in _CHECKSUM_FIELDS:
        value = fields.get(name)
        algorithm = name.removeprefix("Checksum")
        if not isinstance(value, str) or not value.endswith(suffix) or algorithm not in HASHES:
            continue
        try:
            digest = base64.b64decode(value.removesuffix(suffix), validate=True)
        except ValueError:
            continue
        return Expected(algorithm, digest + suffix.encode("ascii"), name, sizes)
    etag = str(fields.get("ETag", "")).strip('"')
    if etag.endswith(suffix) and etag_is_md5({**fields, "ETag": etag.removesuffix(suffix)}):
        digest = bytes.fromhex(etag.removesuffix(suffix)) + suffix.encode("ascii")
        return Expected("MD5", digest, "ETag", sizes)
    return None


def etag_is_md5(fields: Mapping[str, Any]) -> bool:
    """True when the ETag of these response fields is the MD5 of the object's content."""
    etag = str(fields.get("ETag", "")).strip('"')
    if len(etag) != 32 or any(c not in "0123456789abcdefABCDEF" for c in etag):
        return False
    encryption = fields.get("ServerSideEncryption")
    return encryption not in _ETAG_NOT_MD5_ENCRYPTION and not fields.get("SSECustomerAlgorithm")


def _show(algorithm: str, digest: bytes, parts: bool = False) -> str:
    raw, dash, count = digest.rpartition(b"-") if parts else (digest, b"", b"")
    shown = raw.hex() if algorithm == "MD5" else base64.b64encode(raw).decode("ascii")
    return shown + (dash + count).decode("ascii")
