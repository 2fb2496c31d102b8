"""Storage over a moto server: the S3 calls a pull and a push make, end-to-end verification
of every pulled object (the fault proxy flips bytes), and pushes that never follow symlinks."""

from __future__ import annotations

import base64
import collections
import hashlib
import io
import logging
import os
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.response import StreamingBody
from botocore.stub import Stubber

import bridge.pull
from bridge import ranged
from bridge.events import ObjectEvent
from bridge.groups import ExecutionGroup
from bridge.outcomes import Status
from bridge.paths import plan_pull
from bridge.storage import (
    MULTIPART_THRESHOLD,
    HashingFile,
    IntegrityError,
    Storage,
    Upload,
    open_beneath,
    s3_client,
)
from tests.conftest import MotoServer
from tests.faultproxy import FaultProxy, Faults, Request
from tests.helpers import handler, make_engine

MiB = 1024 * 1024
LARGE = MULTIPART_THRESHOLD + MiB + 17


def counting_storage(endpoint: str | None = None) -> tuple[Storage, collections.Counter[str]]:
    """A Storage whose client counts the API operations it calls (optionally via a proxy)."""
    if endpoint is not None:
        os.environ["AWS_ENDPOINT_URL"] = endpoint  # restored by the `aws` fixture's monkeypatch
    client = s3_client(4)
    calls: collections.Counter[str] = collections.Counter()

    def count(model: Any, **_: Any) -> None:
        calls[model.name] += 1

    client.meta.events.register("before-call.s3", count)
    return Storage(client, 4), calls


def bare_client(endpoint: str) -> Any:
    """A client that stores no extra checksum: only the ETag (an MD5) can verify its objects."""
    return boto3.client(
        "s3", endpoint_url=endpoint, config=Config(request_checksum_calculation="when_required")
    )


def pattern(size: int, seed: int = 0) -> bytes:
    block = bytes((i * 31 + seed) % 251 for i in range(4096))
    return (block * (size // len(block) + 1))[:size]


@pytest.fixture
def bucket(aws: MotoServer, s3: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws.endpoint)
    s3.create_bucket(Bucket="bkt")
    return s3


@pytest.fixture
def flipping(aws: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Any]]:
    """Start a proxy that damages the first ``count`` GetObject responses with ``faults``."""
    proxies: list[FaultProxy] = []

    def start(faults: Faults, count: int = 1_000_000) -> FaultProxy:
        left = [count]

        def first_gets(request: Request) -> bool:
            if request.method != "GET" or "list-type" in request.target:
                return False
            left[0] -= 1
            return left[0] >= 0

        proxy = FaultProxy(aws.endpoint, faults, eligible=first_gets)
        proxies.append(proxy)
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
        return proxy

    yield start
    for proxy in proxies:
        proxy.stop()


def pull_all(storage: Storage, root: Path, prefix: str = "") -> Any:
    plan = plan_pull(storage.list_objects("bkt", prefix), prefix, ())
    return storage.pull("bkt", plan.pull, root)


# --- the calls a pull makes ------------------------------------------------------------------


def test_pull_makes_one_get_per_small_object_and_no_head(bucket: Any, tmp_path: Path) -> None:
    """Size and ETag come from the listing: no HeadObject per object, one GetObject each."""
    for i in range(20):
        bucket.put_object(Bucket="bkt", Key=f"in/{i}.bin", Body=bytes([i]) * 100)
    storage, calls = counting_storage()

    result = pull_all(storage, tmp_path, "in/")

    assert calls == {"ListObjectsV2": 1, "GetObject": 20}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{i}.bin" for i in range(20))
    assert (tmp_path / "7.bin").read_bytes() == bytes([7]) * 100
    assert result.unverified == ()


def test_small_pull_records_the_chain_depth_from_get_object(bucket: Any, tmp_path: Path) -> None:
    bucket.put_object(Bucket="bkt", Key="a", Body=b"1", Metadata={"bridge-depth": "3"})
    bucket.put_object(Bucket="bkt", Key="b", Body=b"2")
    storage, _ = counting_storage()
    assert pull_all(storage, tmp_path).depths == {"a": 3, "b": 0}


def test_large_pull_uses_ranged_gets_pinned_to_the_listed_etag(bucket: Any, tmp_path: Path) -> None:
    """A multipart-sized object is fetched in ranges, each with If-Match on the listed ETag,
    and verified against the checksum one HeadObject states (its full-object CRC32)."""
    body = pattern(LARGE)
    bucket.put_object(Bucket="bkt", Key="big.bin", Body=body)
    storage, calls = counting_storage()
    conditions: list[str | None] = []
    storage.client.meta.events.register(
        "before-parameter-build.s3.GetObject",
        lambda params, **_: conditions.append(params.get("IfMatch")),
    )
    listing = storage.list_objects("bkt", "")

    result = storage.pull("bkt", plan_pull(listing, "", ()).pull, tmp_path)

    assert (tmp_path / "big.bin").read_bytes() == body
    assert calls["HeadObject"] == 1 and calls["GetObject"] >= 2
    assert set(conditions) == {f'"{listing[0].etag}"'}
    assert result.unverified == ()


@pytest.fixture
def no_reading_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any pull that would hash a file by reading it (afterwards or behind the writes)."""

    def refuse(*_: Any, **__: Any) -> Any:
        raise AssertionError("the pulled file was read back to be hashed")

    monkeypatch.setattr(bridge.pull, "hash_back", refuse)
    monkeypatch.setattr(bridge.pull, "HashingFile", refuse)


def test_a_large_object_with_a_crc32_is_hashed_as_written_never_read_back(
    bucket: Any, tmp_path: Path, no_reading_back: None
) -> None:
    body = pattern(3 * MULTIPART_THRESHOLD + 5, seed=31)
    bucket.put_object(Bucket="bkt", Key="big.bin", Body=body, ChecksumAlgorithm="CRC32")
    storage, calls = counting_storage()

    result = pull_all(storage, tmp_path)

    assert (tmp_path / "big.bin").read_bytes() == body
    assert result.unverified == ()
    assert calls["GetObject"] == 4  # segments of at most 8 MiB


def test_a_multipart_object_is_hashed_part_by_part_as_written_never_read_back(
    bucket: Any, aws: MotoServer, tmp_path: Path, no_reading_back: None
) -> None:
    body = pattern(12 * MiB, seed=32)
    multipart_upload(bare_client(aws.endpoint), "obj", body, [6 * MiB])  # ETag only: MD5s
    storage, _ = counting_storage()

    result = pull_all(storage, tmp_path)

    assert (tmp_path / "obj").read_bytes() == body
    assert result.unverified == ()


# --- every pulled object verified (defect: flipped bytes reported as success) ----------------


@pytest.mark.parametrize("size", [1000, LARGE], ids=["small", "large"])
def test_a_flipped_byte_fails_the_pull_of_an_object_verified_by_its_md5_etag(
    bucket: Any, aws: MotoServer, flipping: Any, tmp_path: Path, size: int
) -> None:
    bare_client(aws.endpoint).put_object(Bucket="bkt", Key="obj", Body=pattern(size))
    proxy = flipping(Faults(flip=1.0), count=1)
    storage, _ = counting_storage(proxy.endpoint)

    with pytest.raises(IntegrityError, match=r"s3://bkt/obj: MD5 of the downloaded bytes"):
        pull_all(storage, tmp_path)
    assert proxy.injected()["flip"] == 1


def test_a_flipped_byte_fails_the_pull_of_a_small_object_with_a_crc32(
    bucket: Any, flipping: Any, tmp_path: Path
) -> None:
    bucket.put_object(Bucket="bkt", Key="obj", Body=pattern(5000), ChecksumAlgorithm="CRC32")
    proxy = flipping(Faults(flip=1.0), count=1)
    storage, _ = counting_storage(proxy.endpoint)

    with pytest.raises(IntegrityError, match=r"s3://bkt/obj: .*checksum"):
        pull_all(storage, tmp_path)
    assert proxy.injected()["flip"] == 1


def test_a_flipped_byte_fails_the_pull_of_a_large_object_with_a_full_object_crc32(
    bucket: Any, aws: MotoServer, flipping: Any, tmp_path: Path
) -> None:
    """Ranged GETs carry no checksum: the full-object CRC32 comes from one HeadObject."""
    body = pattern(LARGE, seed=5)
    full_object_upload(bare_client(aws.endpoint), "obj", body)
    proxy = flipping(Faults(flip=1.0), count=1)
    storage, calls = counting_storage(proxy.endpoint)

    with pytest.raises(IntegrityError, match=r"s3://bkt/obj: CRC32 of the downloaded bytes"):
        pull_all(storage, tmp_path)
    assert calls["HeadObject"] == 1

    result = pull_all(storage, tmp_path)  # the proxy damaged only the first GET
    assert (tmp_path / "obj").read_bytes() == body
    assert result.unverified == ()


def full_object_upload(client: Any, key: str, body: bytes) -> None:
    """A two-part upload with a full-object CRC32 (``ChecksumType=FULL_OBJECT``)."""
    split = 5 * MiB
    upload = client.create_multipart_upload(
        Bucket="bkt", Key=key, ChecksumAlgorithm="CRC32", ChecksumType="FULL_OBJECT"
    )
    parts = []
    for number, chunk in ((1, body[:split]), (2, body[split:])):
        part = client.upload_part(
            Bucket="bkt", Key=key, UploadId=upload["UploadId"], PartNumber=number, Body=chunk,
            ChecksumAlgorithm="CRC32",
        )  # fmt: skip
        crc = part["ChecksumCRC32"]
        parts.append({"PartNumber": number, "ETag": part["ETag"], "ChecksumCRC32": crc})
    client.complete_multipart_upload(
        Bucket="bkt", Key=key, UploadId=upload["UploadId"], ChecksumType="FULL_OBJECT",
        ChecksumCRC32=base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode(),
        MultipartUpload={"Parts": parts},
    )  # fmt: skip


@pytest.mark.parametrize(("size", "gets"), [(50_000, 1), (LARGE, 2)], ids=["small", "large"])
def test_a_truncated_body_is_fetched_again(
    bucket: Any, flipping: Any, tmp_path: Path, size: int, gets: int
) -> None:
    """A large object's broken segment is fetched again from its start, hashed afresh."""
    bucket.put_object(Bucket="bkt", Key="obj", Body=pattern(size), ChecksumAlgorithm="CRC32")
    proxy = flipping(Faults(truncate=1.0), count=1)
    storage, calls = counting_storage(proxy.endpoint)

    result = pull_all(storage, tmp_path)

    assert (tmp_path / "obj").read_bytes() == pattern(size)
    assert result.unverified == ()
    assert proxy.injected()["truncate"] == 1 and calls["GetObject"] == gets + 1


def test_objects_that_cannot_be_verified_are_reported(
    bucket: Any, aws: MotoServer, tmp_path: Path
) -> None:
    """SSE-KMS: the ETag is not an MD5; with no extra checksum nothing can verify it."""
    bare_client(aws.endpoint).put_object(
        Bucket="bkt", Key="kms", Body=b"secret", ServerSideEncryption="aws:kms"
    )
    bare_client(aws.endpoint).put_object(Bucket="bkt", Key="plain", Body=b"open")
    storage, _ = counting_storage()

    result = pull_all(storage, tmp_path)

    assert result.unverified == ("kms",)
    assert (tmp_path / "kms").read_bytes() == b"secret"


# --- push ------------------------------------------------------------------------------------


def test_push_sends_content_md5_and_metadata_on_single_part_uploads(
    bucket: Any, tmp_path: Path
) -> None:
    (tmp_path / "out.txt").write_text("hello", encoding="utf-8")
    storage, calls = counting_storage()
    seen: list[dict[str, Any]] = []
    storage.client.meta.events.register(
        "before-parameter-build.s3.PutObject", lambda params, **_: seen.append(dict(params))
    )
    upload = Upload("out.txt", "p/out.txt", "text/plain", {"bridge-depth": "1"})

    result = storage.push("bkt", tmp_path, [upload])

    assert calls == {"PutObject": 1}
    assert seen[0]["ContentMD5"] == "XUFAKrxLKna5cZ2REBfFkg=="
    head = bucket.head_object(Bucket="bkt", Key="p/out.txt")
    assert head["ContentType"] == "text/plain"
    assert head["Metadata"] == {"bridge-depth": "1"}
    assert (result.uploaded, result.unchanged, result.bytes_out) == (("p/out.txt",), 0, 5)


def test_push_skips_an_output_equal_to_the_known_md5_etag(bucket: Any, tmp_path: Path) -> None:
    (tmp_path / "same").write_bytes(b"hello")
    (tmp_path / "new").write_bytes(b"world")
    storage, calls = counting_storage()
    uploads = [
        Upload("same", "same", "application/octet-stream", {}, "5d41402abc4b2a76b9719d911017c592"),
        Upload("new", "new", "application/octet-stream", {}, "5d41402abc4b2a76b9719d911017c592"),
    ]

    result = storage.push("bkt", tmp_path, uploads)

    assert (result.uploaded, result.unchanged) == (("new",), 1)
    assert calls == {"PutObject": 1}


def test_large_push_is_a_multipart_upload_of_the_opened_file(bucket: Any, tmp_path: Path) -> None:
    body = pattern(LARGE, seed=9)
    (tmp_path / "big.bin").write_bytes(body)
    storage, calls = counting_storage()

    result = storage.push("bkt", tmp_path, [Upload("big.bin", "o/big.bin", "x/y", {"a": "b"})])

    assert calls["CreateMultipartUpload"] == 1 and calls["PutObject"] == 0
    assert bucket.get_object(Bucket="bkt", Key="o/big.bin")["Body"].read() == body
    assert result.bytes_out == LARGE


# --- push never follows a symlink (defect: a swapped output uploaded /etc/passwd) ------------


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder beside the root holding a secret the handler must not be able to publish."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret").write_bytes(b"not for upload")
    (folder / "out.txt").write_bytes(b"not for upload either")
    return folder


def test_push_refuses_a_symlink_or_a_path_through_one(
    bucket: Any, tmp_path: Path, outside: Path
) -> None:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "ok.txt").write_bytes(b"fine")
    (root / "link.txt").symlink_to(outside / "secret")
    (root / "via").symlink_to(outside)
    os.mkfifo(root / "fifo")
    storage, _ = counting_storage()
    uploads = [
        Upload(path, path, "text/plain", {})
        for path in ("ok.txt", "link.txt", "via/out.txt", "fifo", "gone.txt")
    ]

    result = storage.push("bkt", root, uploads)

    assert result.uploaded == ("ok.txt",)
    assert set(result.refused) == {"link.txt", "via/out.txt", "fifo", "gone.txt"}
    stored = [o["Key"] for o in bucket.list_objects_v2(Bucket="bkt").get("Contents", [])]
    assert stored == ["ok.txt"]


def test_open_beneath_reads_the_regular_file_it_opened(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "f").write_bytes(b"data")
    fd = open_beneath(tmp_path, "a/f")
    try:
        (tmp_path / "a" / "f").unlink()  # what happens to the name afterwards does not matter
        (tmp_path / "a" / "f").symlink_to("/etc/hostname")
        assert os.pread(fd, 100, 0) == b"data"
    finally:
        os.close(fd)


@pytest.mark.parametrize("size", [10, LARGE], ids=["small", "large"])
def test_a_name_of_up_to_255_bytes_is_pulled_under_that_very_name(
    bucket: Any, tmp_path: Path, size: int
) -> None:
    """Files are written in place, never under a longer temporary name (which a multibyte
    name near NAME_MAX would overflow: ENAMETOOLONG, the folder failing forever)."""
    name = "é" * 127 + "x"  # 255 bytes of UTF-8
    bucket.put_object(Bucket="bkt", Key=f"in/{name}", Body=pattern(size))
    storage, _ = counting_storage()

    pull_all(storage, tmp_path, "in/")

    assert (tmp_path / name).read_bytes() == pattern(size)


# --- large downloads are hashed while they land ---------------------------------------------


def write_ranges(target: HashingFile, data: bytes, order: list[tuple[int, int]]) -> None:
    for start, end in order:
        target.seek(start)
        target.write(data[start:end])


def test_ranges_written_out_of_order_are_hashed_in_order(tmp_path: Path) -> None:
    data = pattern(10_000, seed=3)
    with (tmp_path / "f").open("w+b") as stream:
        target = HashingFile(stream, hashlib.md5())
        write_ranges(target, data, [(4000, 6000), (0, 1000), (6000, 10_000), (1000, 4000)])
        assert target.digest() == hashlib.md5(data).digest()


def test_a_range_written_twice_never_yields_the_digest_of_other_bytes(tmp_path: Path) -> None:
    """s3transfer retries a broken range from its start, over bytes maybe already hashed:
    the digest is then either that of what the file finally holds, or None (read back)."""
    first, second = pattern(4000, seed=1), pattern(4000, seed=2)
    for attempt in range(50):  # as many chances for the hashing thread to be anywhere
        with (tmp_path / f"f{attempt}").open("w+b") as stream:
            target = HashingFile(stream, hashlib.md5())
            write_ranges(target, first, [(0, 2000), (2000, 4000)])
            write_ranges(target, second, [(0, 2000)])
            digest = target.digest()
            assert digest in (None, hashlib.md5(second[:2000] + first[2000:]).digest())


def test_a_file_not_written_to_its_end_has_no_digest(tmp_path: Path) -> None:
    with (tmp_path / "f").open("w+b") as stream:
        target = HashingFile(stream, hashlib.md5())
        write_ranges(target, pattern(4000), [(2000, 4000)])
        assert target.digest() is None


# --- multipart objects: verified part by part ----------------------------------------------


def multipart_upload(client: Any, key: str, body: bytes, sizes: list[int]) -> None:
    """An upload in parts of ``sizes`` bytes (the last takes the rest), without checksums."""
    upload = client.create_multipart_upload(Bucket="bkt", Key=key)
    parts, start = [], 0
    for number, size in enumerate([*sizes, len(body) - sum(sizes)], start=1):
        chunk = body[start : start + size]
        start += size
        part = client.upload_part(
            Bucket="bkt", Key=key, UploadId=upload["UploadId"], PartNumber=number, Body=chunk
        )
        parts.append({"PartNumber": number, "ETag": part["ETag"]})
    client.complete_multipart_upload(
        Bucket="bkt", Key=key, UploadId=upload["UploadId"], MultipartUpload={"Parts": parts}
    )


@pytest.mark.parametrize(
    ("sizes", "heads"),
    [
        ([6 * MiB], 2),  # equal parts: the object's checksums, then part 1's size
        ([5 * MiB, 6 * MiB], 5),  # they look equal from part 1: then each part's size
        ([5 * MiB], 4),  # a last part larger than part 1: each part's size at once
    ],
    ids=["equal-parts", "unequal-parts", "large-last-part"],
)
def test_a_multipart_object_is_verified_against_its_etag_part_by_part(
    bucket: Any, aws: MotoServer, tmp_path: Path, sizes: list[int], heads: int
) -> None:
    body = pattern(12 * MiB, seed=21)
    multipart_upload(bare_client(aws.endpoint), "obj", body, sizes)
    storage, calls = counting_storage()

    result = pull_all(storage, tmp_path)

    assert (tmp_path / "obj").read_bytes() == body
    assert result.unverified == ()
    assert calls["HeadObject"] == heads


def test_a_flipped_byte_fails_the_pull_of_a_multipart_object(
    bucket: Any, aws: MotoServer, flipping: Any, tmp_path: Path
) -> None:
    multipart_upload(bare_client(aws.endpoint), "obj", pattern(LARGE, seed=22), [5 * MiB])
    proxy = flipping(Faults(flip=1.0), count=1)
    storage, _ = counting_storage(proxy.endpoint)

    with pytest.raises(IntegrityError, match=r"s3://bkt/obj: MD5 .* is [0-9a-f]{32}-2, .*ETag"):
        pull_all(storage, tmp_path)


def test_the_group_summary_counts_what_could_not_be_verified(
    bucket: Any, aws: MotoServer, caplog: pytest.LogCaptureFixture
) -> None:
    bare_client(aws.endpoint).put_object(
        Bucket="bkt", Key="job/kms.bin", Body=b"secret", ServerSideEncryption="aws:kms"
    )
    bucket.put_object(Bucket="bkt", Key="job/plain.bin", Body=b"open")
    caplog.set_level(logging.INFO)
    event = ObjectEvent("bkt", "job/plain.bin", "ObjectCreated:Put", None, None, None)

    outcome = make_engine(handler("copier")).run_group(ExecutionGroup("bkt", "job/", (event,)))

    assert outcome.status is Status.SUCCEEDED
    [summary] = [r for r in caplog.records if r.getMessage() == "group summary"]
    assert getattr(summary, "fields", {})["unverified"] == 1
    [warning] = [r for r in caplog.records if r.getMessage() == "pulled objects not verified"]
    assert getattr(warning, "fields", {})["keys"] == ["job/kms.bin"]


# --- uploads checked against the stored ETag ------------------------------------------------


def first_puts(count: int) -> Callable[[Request], bool]:
    left = [count]

    def eligible(request: Request) -> bool:
        if request.method != "PUT":
            return False
        left[0] -= 1
        return left[0] >= 0

    return eligible


def test_an_upload_damaged_on_the_way_is_sent_again(
    bucket: Any, aws: MotoServer, tmp_path: Path
) -> None:
    """moto keeps a body that does not match its Content-MD5 (S3 refuses it): the ETag it
    answers tells, and the upload is made again."""
    (tmp_path / "out.bin").write_bytes(pattern(3000))
    with FaultProxy(aws.endpoint, Faults(flip_requests=1.0), eligible=first_puts(1)) as proxy:
        storage, calls = counting_storage(proxy.endpoint)
        result = storage.push("bkt", tmp_path, [Upload("out.bin", "out.bin", "x/y", {})])
        assert proxy.counts["flip_request"] == 1
    assert result.uploaded == ("out.bin",) and calls["PutObject"] == 2
    assert bucket.get_object(Bucket="bkt", Key="out.bin")["Body"].read() == pattern(3000)


def test_an_upload_damaged_every_time_fails_the_push(
    bucket: Any, aws: MotoServer, tmp_path: Path
) -> None:
    (tmp_path / "out.bin").write_bytes(pattern(3000))
    with FaultProxy(aws.endpoint, Faults(flip_requests=1.0), eligible=first_puts(99)) as proxy:
        storage, calls = counting_storage(proxy.endpoint)
        with pytest.raises(IntegrityError, match=r"s3://bkt/out.bin: the stored object's ETag"):
            storage.push("bkt", tmp_path, [Upload("out.bin", "out.bin", "x/y", {})])
    assert calls["PutObject"] == 3


def test_a_listing_follows_every_page_and_stops_on_a_repeated_token() -> None:
    """ListObjectsV2 page by page with its continuation token (no paginator)."""
    client = boto3.client("s3", region_name="us-east-1")
    stubber = Stubber(client)
    when = datetime(2026, 1, 1, tzinfo=UTC)

    def page(keys: list[str], token: str | None, sent: str | None) -> None:
        answer: dict[str, Any] = {
            "Contents": [{"Key": k, "Size": 1, "ETag": '"e"', "LastModified": when} for k in keys],
            "IsTruncated": token is not None,
        }
        if token is not None:
            answer["NextContinuationToken"] = token
        expected = {"Bucket": "bkt", "Prefix": "in/"}
        if sent is not None:
            expected["ContinuationToken"] = sent
        stubber.add_response("list_objects_v2", answer, expected)

    page(["in/a", "in/b"], "t1", None)
    page(["in/c"], "t2", "t1")
    page(["in/d"], None, "t2")
    page(["in/e"], "t3", None)
    page(["in/f"], "t3", "t3")
    with stubber:
        listed = Storage(client, 2).list_objects("bkt", "in/")
        assert [o.key for o in listed] == ["in/a", "in/b", "in/c", "in/d"]
        with pytest.raises(RuntimeError, match="same continuation token twice"):
            Storage(client, 2).list_objects("bkt", "in/")
    stubber.assert_no_pending_responses()


def test_a_server_that_ignores_the_range_fails_the_segment(tmp_path: Path) -> None:
    """A ranged GET answered with another length would write over other segments: refused."""
    client = boto3.client("s3", region_name="us-east-1")
    stubber = Stubber(client)
    whole = b"x" * 10
    stubber.add_response(
        "get_object",
        {"Body": StreamingBody(io.BytesIO(whole), len(whole)), "ContentLength": len(whole)},
        {"Bucket": "bkt", "Key": "k", "Range": "bytes=0-4", "IfMatch": '"e"'},
    )
    refused = pytest.raises(ranged.RangeIgnored, match="asked for 5 bytes at 0, answered 10")
    with stubber, (tmp_path / "k").open("w+b") as stream, refused:
        ranged.download(client, "bkt", "k", "e", stream.fileno(), [5], 1, None)
