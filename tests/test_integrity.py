"""Which digest a pulled object must have, from S3's response fields (bridge.integrity)."""

from __future__ import annotations

import base64
import hashlib
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.integrity import (
    HASHES,
    Expected,
    assemble,
    crc32_combine,
    equal_parts,
    etag_is_md5,
    expected_digest,
    expected_for_parts,
    segment_lengths,
)

MD5 = hashlib.md5(b"hello").hexdigest()
CRC32 = base64.b64encode(zlib.crc32(b"hello").to_bytes(4, "big")).decode()
SHA256 = base64.b64encode(hashlib.sha256(b"hello").digest()).decode()


def digest_of(expected: Expected, data: bytes) -> bytes:
    hashed = expected.new_hash()
    hashed.update(data[:2])
    hashed.update(data[2:])
    return hashed.digest()


def test_a_full_object_checksum_is_preferred_to_the_etag() -> None:
    expected = expected_digest({"ETag": f'"{MD5}"', "ChecksumCRC32": CRC32})
    assert expected is not None and expected.algorithm == "CRC32"
    assert digest_of(expected, b"hello") == expected.digest
    assert digest_of(expected, b"hellp") != expected.digest


def test_sha256_is_computed_with_the_standard_library() -> None:
    expected = expected_digest(
        {"ETag": '"abc-2"', "ChecksumSHA256": SHA256, "ChecksumType": "FULL_OBJECT"}
    )
    assert expected is not None and expected.algorithm == "SHA256"
    assert digest_of(expected, b"hello") == expected.digest


@pytest.mark.parametrize(
    "fields",
    [
        {"ETag": '"abc-3"', "ChecksumCRC32": f"{CRC32}-3", "ChecksumType": "COMPOSITE"},
        {"ETag": '"abc-3"', "ChecksumCRC32": CRC32},  # multipart, type unknown: maybe composite
        {"ETag": '"abc-3"', "ChecksumCRC32": CRC32, "ChecksumType": "COMPOSITE"},
        {"ETag": f'"{MD5}"', "ServerSideEncryption": "aws:kms"},
        {"ETag": f'"{MD5}"', "ServerSideEncryption": "aws:kms:dsse"},
        {"ETag": f'"{MD5}"', "SSECustomerAlgorithm": "AES256"},
        {"ETag": '"not-an-md5"'},
        {},
    ],
    ids=[
        "composite",
        "multipart-untyped",
        "multipart-composite",
        "kms",
        "dsse",
        "sse-c",
        "odd",
        "none",
    ],
)
def test_nothing_to_verify_against(fields: dict[str, str]) -> None:
    assert expected_digest(fields) is None


def test_the_md5_of_a_plain_etag_when_no_checksum_is_usable() -> None:
    fields = {"ETag": f'"{MD5}"', "ServerSideEncryption": "AES256", "ChecksumCRC32": "!!"}
    expected = expected_digest(fields)
    assert expected == Expected("MD5", bytes.fromhex(MD5), "ETag")
    assert etag_is_md5(fields)
    assert "ETag says 5d41402abc4b2a76b9719d911017c592" in expected.describe(b"\0" * 16)


def test_crc64nvme_needs_awscrt() -> None:
    fields = {"ETag": f'"{MD5}"', "ChecksumCRC64NVME": "AAAAAAAAAAA="}
    expected = expected_digest(fields)
    assert expected is not None
    assert expected.algorithm == ("CRC64NVME" if "CRC64NVME" in HASHES else "MD5")


def crc32_of(data: bytes) -> bytes:
    return zlib.crc32(data).to_bytes(4, "big")


def test_a_composite_crc32_is_checked_part_by_part() -> None:
    parts = [b"a" * 5, b"b" * 5, b"c" * 2]
    composite = base64.b64encode(crc32_of(b"".join(crc32_of(p) for p in parts))).decode()
    fields = {"ETag": '"0123-3"', "ChecksumCRC32": f"{composite}-3", "ChecksumType": "COMPOSITE"}
    expected = expected_for_parts(fields, equal_parts(12, 5, 3) or ())
    assert expected is not None and expected.algorithm == "CRC32"
    assert digest_of(expected, b"".join(parts)) == expected.digest
    assert digest_of(expected, b"a" * 5 + b"b" * 4 + b"Bc" + b"c") != expected.digest
    assert digest_of(expected, b"".join(parts) + b"!") != expected.digest  # a byte too many


def test_a_multipart_etag_is_the_md5_of_the_part_md5s() -> None:
    parts = [b"x" * 7, b"y" * 3]
    etag = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest()
    expected = expected_for_parts({"ETag": f'"{etag}-2"'}, [7, 3])
    assert expected is not None and expected.algorithm == "MD5"
    assert digest_of(expected, b"x" * 7 + b"y" * 3) == expected.digest
    assert expected.describe(digest_of(expected, b"x" * 10)).endswith(f"ETag says {etag}-2")
    assert (
        expected_for_parts({"ETag": f'"{etag}-2"', "ServerSideEncryption": "aws:kms"}, [7, 3])
        is None
    )
    assert expected_for_parts({"ETag": f'"{etag}-3"'}, [7, 3]) is None  # a part count mismatch


@pytest.mark.parametrize(
    ("size", "first", "parts", "sizes"),
    [
        (12, 5, 3, (5, 5, 2)),
        (10, 5, 2, (5, 5)),
        (12, 5, 2, None),
        (10, 5, 3, None),
        (1, 0, 1, None),
    ],
)
def test_equal_parts(size: int, first: int, parts: int, sizes: tuple[int, ...] | None) -> None:
    assert equal_parts(size, first, parts) == sizes


# --- segments hashed apart, assembled (large downloads, bridge.ranged) -----------------------


@given(st.binary(max_size=300), st.binary(max_size=300))
def test_crc32_combine_is_the_crc32_of_the_concatenation(first: bytes, second: bytes) -> None:
    combined = crc32_combine(zlib.crc32(first), zlib.crc32(second), len(second))
    assert combined == zlib.crc32(first + second)


def segment_digests(expected: Expected, data: bytes, lengths: tuple[int, ...]) -> list[bytes]:
    digests, start = [], 0
    for length in lengths:
        hashed = expected.new_segment_hash()
        hashed.update(data[start : start + length])
        digests.append(hashed.digest())
        start += length
    return digests


def crc(data: bytes) -> bytes:
    return zlib.crc32(data).to_bytes(4, "big")


DATA = bytes(range(256)) * 40  # 10,240 bytes
PARTS = (4000, 4000, 2240)
PIECES = [DATA[0:4000], DATA[4000:8000], DATA[8000:]]
COMPOSITE = crc(b"".join(crc(piece) for piece in PIECES))


def test_a_full_object_crc32_is_assembled_from_segments_cut_anywhere() -> None:
    expected = Expected("CRC32", crc(DATA), "ChecksumCRC32")
    lengths = segment_lengths(expected, len(DATA), 3000)
    assert lengths == (3000, 3000, 3000, 1240)
    assert assemble(expected, lengths, segment_digests(expected, DATA, lengths)) == crc(DATA)


def test_a_composite_crc32_is_assembled_from_segments_cut_at_the_parts() -> None:
    composite = crc(
        b"".join(crc(DATA[s : s + n]) for s, n in ((0, 4000), (4000, 4000), (8000, 2240)))
    )
    fields = {"ChecksumCRC32": base64.b64encode(composite).decode() + "-3", "ETag": '"x-3"'}
    expected = expected_for_parts(fields, PARTS)
    assert expected is not None and expected.algorithm == "CRC32" and not expected.whole_too
    lengths = segment_lengths(expected, len(DATA), 3000)
    assert lengths == (3000, 1000, 3000, 1000, 2240)
    digests = segment_digests(expected, DATA, lengths)
    assert assemble(expected, lengths, digests) == expected.digest
    damaged = DATA[:5000] + b"x" + DATA[5001:]
    assert assemble(expected, lengths, segment_digests(expected, damaged, lengths)) != (
        expected.digest
    )


def test_a_crc32_stated_without_its_part_count_is_accepted_either_way() -> None:
    """Some servers answer HeadObject with a multipart object's CRC32 without "-N" and
    without a ChecksumType: it may be the composite or the whole object's."""
    composite = crc(
        b"".join(crc(DATA[s : s + n]) for s, n in ((0, 4000), (4000, 4000), (8000, 2240)))
    )
    for stated in (composite, crc(DATA)):
        fields = {"ChecksumCRC32": base64.b64encode(stated).decode(), "ETag": '"x-3"'}
        expected = expected_for_parts(fields, PARTS)
        assert expected is not None and expected.whole_too
        lengths = segment_lengths(expected, len(DATA), 3000)
        assert lengths is not None
        assert assemble(expected, lengths, segment_digests(expected, DATA, lengths)) == (
            expected.digest
        )
    wrong = {"ChecksumCRC32": base64.b64encode(crc(b"other")).decode(), "ETag": '"x-3"'}
    expected = expected_for_parts(wrong, PARTS)
    assert expected is not None
    lengths = segment_lengths(expected, len(DATA), 3000)
    assert lengths is not None
    assert assemble(expected, lengths, segment_digests(expected, DATA, lengths)) != expected.digest


def test_an_md5_of_parts_is_assembled_from_one_segment_per_part() -> None:
    etag = hashlib.md5(
        b"".join(
            hashlib.md5(DATA[s : s + n]).digest()
            for s, n in ((0, 4000), (4000, 4000), (8000, 2240))
        )
    ).hexdigest()
    expected = expected_for_parts({"ETag": f'"{etag}-3"'}, PARTS)
    assert expected is not None and expected.algorithm == "MD5"
    lengths = segment_lengths(expected, len(DATA), 3000)
    assert lengths == PARTS
    assert assemble(expected, lengths, segment_digests(expected, DATA, lengths)) == expected.digest


def test_a_whole_object_md5_cannot_be_cut_into_segments() -> None:
    expected = expected_digest({"ETag": f'"{MD5}"'})
    assert segment_lengths(expected, 10_000, 3000) is None
    assert segment_lengths(None, 7000, 3000) == (3000, 3000, 1000)  # nothing to hash
