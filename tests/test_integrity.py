"""Which digest a pulled object must have, from S3's response fields (bridge.integrity)."""

from __future__ import annotations

import base64
import hashlib
import zlib

import pytest

from bridge.integrity import HASHES, Expected, etag_is_md5, expected_digest

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
