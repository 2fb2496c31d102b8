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
    # A CRC32 stated without its part count ("-N") and without a ChecksumType, as some
    # servers answer HeadObject: it may be the composite or the whole object's CRC32.
    whole_too: bool = False

    def new_hash(self) -> Hash:
        """A fresh hash of this algorithm (of the parts, then of their digests, if any)."""
        if self.part_sizes is not None:
            return PartsHash(HASHES[self.algorithm], self.part_sizes)
        return HASHES[self.algorithm]()

    def new_segment_hash(self) -> Hash:
        """A fresh hash of one segment cut by ``segment_lengths`` (no part bookkeeping)."""
        return HASHES[self.algorithm]()

    def with_parts(self, part_sizes: Sequence[int]) -> Expected:
        """The same expectation over other part boundaries."""
        return Expected(self.algorithm, self.digest, self.source, tuple(part_sizes), self.whole_too)

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
        if not isinstance(value, str) or algorithm not in HASHES:
            continue
        # Without "-N" nor a ChecksumType, only a CRC32 can be checked both ways.
        suffixless = name == "ChecksumCRC32" and "-" not in value and "ChecksumType" not in fields
        if not value.endswith(suffix) and not suffixless:
            continue
        try:
            digest = base64.b64decode(value.removesuffix(suffix), validate=True)
        except ValueError:
            continue
        return Expected(algorithm, digest + suffix.encode("ascii"), name, sizes, suffixless)
    etag = str(fields.get("ETag", "")).strip('"')
    if etag.endswith(suffix) and etag_is_md5({**fields, "ETag": etag.removesuffix(suffix)}):
        digest = bytes.fromhex(etag.removesuffix(suffix)) + suffix.encode("ascii")
        return Expected("MD5", digest, "ETag", sizes)
    return None


def segment_lengths(expected: Expected | None, size: int, largest: int) -> tuple[int, ...] | None:
    """How to cut an object of ``size`` bytes into segments that can each be hashed alone
    (by different threads, in any order) and still give the digest ``expected`` states.

    A CRC32 combines (``crc32_combine``): segments of at most ``largest`` bytes, cut at the
    part boundaries when there are parts. Other part-wise digests: one segment per part.
    None when the digest can only be computed over the whole object in order (an MD5 or
    SHA of the whole object). With no digest to check, plain segments of ``largest``.
    """
    if expected is None or expected.algorithm == "CRC32":
        units = expected.part_sizes if expected is not None and expected.part_sizes else (size,)
        return tuple(
            min(largest, unit - start) for unit in units for start in range(0, unit, largest)
        )
    return expected.part_sizes


def assemble(expected: Expected, lengths: Sequence[int], digests: Sequence[bytes]) -> bytes:
    """The object's digest from its segments' (cut by ``segment_lengths``) digests, in order."""
    if expected.algorithm == "CRC32":
        crcs = [int.from_bytes(digest, "big") for digest in digests]
        if expected.part_sizes is None:
            return _combined(crcs, lengths).to_bytes(4, "big")
        digest = _parts_digest(expected, _crc32_parts(expected.part_sizes, crcs, lengths))
        if expected.whole_too and digest != expected.digest:
            whole = _combined(crcs, lengths).to_bytes(4, "big") + digest[4:]  # same "-N"
            if whole == expected.digest:
                return whole
        return digest
    assert expected.part_sizes is not None and tuple(lengths) == expected.part_sizes
    return _parts_digest(expected, list(digests))


def _parts_digest(expected: Expected, part_digests: Sequence[bytes]) -> bytes:
    whole = HASHES[expected.algorithm]()
    whole.update(b"".join(part_digests))
    return whole.digest() + f"-{len(part_digests)}".encode("ascii")


def _crc32_parts(
    part_sizes: Sequence[int], crcs: Sequence[int], lengths: Sequence[int]
) -> list[bytes]:
    """Each part's CRC32, from the CRC32s of the segments it was cut into."""
    parts: list[bytes] = []
    index = 0
    for size in part_sizes:
        taken: list[int] = []
        covered = 0
        while covered < size:
            taken.append(index)
            covered += lengths[index]
            index += 1
        parts.append(
            _combined([crcs[i] for i in taken], [lengths[i] for i in taken]).to_bytes(4, "big")
        )
    return parts


def _combined(crcs: Sequence[int], lengths: Sequence[int]) -> int:
    total = crcs[0]
    for crc, length in zip(crcs[1:], lengths[1:], strict=True):
        total = crc32_combine(total, crc, length)
    return total


# _ZEROS[k] appends 2**k zero bytes to a CRC32's input, as a 32x32 matrix over GF(2) (the
# image of each bit); built on first use, one squaring per power.
_ZEROS: list[list[int]] = []


def _gf2_times(matrix: Sequence[int], vector: int) -> int:
    result, bit = 0, 0
    while vector:
        if vector & 1:
            result ^= matrix[bit]
        vector >>= 1
        bit += 1
    return result


def _zeros_operator(power: int) -> list[int]:
    if not _ZEROS:
        operator = [0xEDB88320] + [1 << n for n in range(31)]  # one zero bit
        for _ in range(3):  # 2, 4, then 8 bits: one zero byte
            operator = [_gf2_times(operator, column) for column in operator]
        _ZEROS.append(operator)
    while len(_ZEROS) <= power:
        last = _ZEROS[-1]
        _ZEROS.append([_gf2_times(last, column) for column in last])
    return _ZEROS[power]


def crc32_combine(first: int, second: int, second_length: int) -> int:
    """The CRC32 (zlib's) of A followed by B, from ``crc32(A)``, ``crc32(B)`` and ``len(B)``
    (zlib's ``crc32_combine``, which Python does not expose)."""
    power = 0
    while second_length:
        if second_length & 1:
            first = _gf2_times(_zeros_operator(power), first)
        second_length >>= 1
        power += 1
    return first ^ second


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
