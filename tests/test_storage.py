"""Storage over a moto server: which S3 calls a pull and a push make (no timing involved)."""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Any

from bridge.paths import plan_pull
from bridge.storage import MULTIPART_THRESHOLD, Storage, Upload, s3_client
from tests.conftest import MotoServer


def counting_storage() -> tuple[Storage, collections.Counter[str]]:
    """A Storage whose client counts the API operations it calls."""
    client = s3_client(4)
    calls: collections.Counter[str] = collections.Counter()

    def count(model: Any, **_: Any) -> None:
        calls[model.name] += 1

    client.meta.events.register("before-call.s3", count)
    return Storage(client, 4), calls


def test_pull_makes_one_get_per_small_object_and_no_head(
    aws: MotoServer, s3: Any, tmp_path: Path
) -> None:
    """Size and ETag come from the listing: s3transfer must not HEAD every object first."""
    s3.create_bucket(Bucket="bkt")
    for i in range(20):
        s3.put_object(Bucket="bkt", Key=f"in/{i}.bin", Body=bytes([i]) * 100)
    storage, calls = counting_storage()
    plan = plan_pull(storage.list_objects("bkt", "in/"), "in/", ())

    storage.pull("bkt", plan.pull, tmp_path)

    assert calls == {"ListObjectsV2": 1, "GetObject": 20}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{i}.bin" for i in range(20))
    assert (tmp_path / "7.bin").read_bytes() == bytes([7]) * 100


def test_large_pull_uses_ranged_gets_pinned_to_the_listed_etag(
    aws: MotoServer, s3: Any, tmp_path: Path
) -> None:
    """A multipart-sized object is fetched in ranges, each with If-Match on the listed ETag."""
    s3.create_bucket(Bucket="bkt")
    body = bytes(range(256)) * (MULTIPART_THRESHOLD // 256 + 4096)
    s3.put_object(Bucket="bkt", Key="big.bin", Body=body)
    storage, calls = counting_storage()
    conditions: list[str | None] = []
    storage.client.meta.events.register(
        "before-parameter-build.s3.GetObject",
        lambda params, **_: conditions.append(params.get("IfMatch")),
    )
    listing = storage.list_objects("bkt", "")
    plan = plan_pull(listing, "", ())

    storage.pull("bkt", plan.pull, tmp_path)

    assert (tmp_path / "big.bin").read_bytes() == body
    assert calls["HeadObject"] == 0 and calls["GetObject"] >= 2
    assert set(conditions) == {f'"{listing[0].etag}"'}


def test_push_sends_content_md5_and_metadata_on_single_part_uploads(
    aws: MotoServer, s3: Any, tmp_path: Path
) -> None:
    s3.create_bucket(Bucket="bkt")
    (tmp_path / "out.txt").write_text("hello", encoding="utf-8")
    storage, calls = counting_storage()
    seen: list[dict[str, Any]] = []
    storage.client.meta.events.register(
        "before-parameter-build.s3.PutObject", lambda params, **_: seen.append(dict(params))
    )
    upload = Upload(
        tmp_path / "out.txt", "p/out.txt", "text/plain", {"bridge-depth": "1"},
        content_md5="XUFAKrxLKna5cZ2REBfFkg==",
    )  # fmt: skip

    storage.push("bkt", [upload])

    assert calls == {"PutObject": 1}
    assert seen[0]["ContentMD5"] == "XUFAKrxLKna5cZ2REBfFkg=="
    head = s3.head_object(Bucket="bkt", Key="p/out.txt")
    assert head["ContentType"] == "text/plain"
    assert head["Metadata"] == {"bridge-depth": "1"}
