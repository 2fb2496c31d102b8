"""The examples users copy, run through the real engine over the moto server.

Each example is configured exactly by its shipped env file (read as ``docker run
--env-file`` reads it), with the handler started by the shipped ``HANDLER_COMMAND``
(``python`` being this interpreter), from the example's folder as the image's WORKDIR.
Payloads are realistic SQS-wrapped S3 notifications, one message per object.
"""

from __future__ import annotations

import io
import json
import logging
import sys
from pathlib import Path
from typing import Any

import pytest
from env_file import read_env_file
from PIL import ExifTags, Image

from bridge.app import App
from bridge.batch import InvocationResult
from bridge.events import ObjectEvent, parse_invocation
from bridge.groups import group_events, select_events
from bridge.jqfilter import ExecutionFilter
from bridge.lineage import LINEAGE_PREFIX, is_reserved
from bridge.outcomes import GroupOutcome, Status
from bridge.samples import sample_payload
from bridge.settings import VARIABLES, load_settings
from tests.conftest import EXAMPLES

WORDCOUNT = EXAMPLES / "wordcount"
THUMBNAILS = EXAMPLES / "thumbnails"
ENV_FILES = [
    WORDCOUNT / "map.env",
    WORDCOUNT / "reduce.env",
    THUMBNAILS / "thumbnails.env",
]

# ----------------------------------------------------------------------------- helpers


def example_app(monkeypatch: pytest.MonkeyPatch, env_file: Path, **overrides: str) -> App:
    """The bridge as configured by ``env_file``, run from the example's folder."""
    for name in VARIABLES:  # nothing left over from another example's env file
        monkeypatch.delenv(name, raising=False)
    for name, value in {**read_env_file(env_file), **overrides}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(env_file.parent)  # the image's WORKDIR: relative paths resolve here
    settings = load_settings()
    program, *arguments = settings.handler_command
    assert program == "python", settings.handler_command
    assert Path(arguments[0]).is_file(), f"{env_file.name}: handler {arguments[0]} missing"
    return App.create(settings, [sys.executable, *arguments])


def sqs_batch(bucket: str, *keys: str) -> dict[str, Any]:
    """An SQS -> Lambda payload: one message (an S3 notification) per key."""
    records: list[Any] = []
    for key in keys:
        payload: dict[str, Any] = sample_payload("sqs", bucket, key)
        records += payload["Records"]
    return {"Records": records}


def deliver(app: App, bucket: str, *keys: str) -> InvocationResult:
    """Process one SQS batch for ``keys``; every message must succeed."""
    result = app.process(parse_invocation(sqs_batch(bucket, *keys)))
    assert result.response() == {"batchItemFailures": []}, result.failures
    return result


def only_group(result: InvocationResult) -> GroupOutcome:
    assert len(result.outcomes) == 1, result.outcomes
    return result.outcomes[0]


def versioned_bucket(s3: Any, bucket: str) -> None:
    """A bucket with versioning on: every PutObject leaves a version to count."""
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})


def listing(s3: Any, bucket: str, prefix: str = "") -> dict[str, str]:
    """ETag of every object under ``prefix``, by key (the bridge's lineage records aside)."""
    found: dict[str, str] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for entry in page.get("Contents", []):
            if not is_reserved(entry["Key"]):
                found[entry["Key"]] = entry["ETag"]
    return found


def read(s3: Any, bucket: str, key: str) -> bytes:
    body: bytes = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return body


def version_count(s3: Any, bucket: str, key: str) -> int:
    listed = s3.list_object_versions(Bucket=bucket, Prefix=key)
    return sum(1 for v in listed.get("Versions", []) if v["Key"] == key)


# env file -> (key, event name, the group prefix it runs under, or None if it is ignored)
ROUTES = {
    "map.env": [
        ("jobs/7/input/a.txt", "ObjectCreated:Put", "jobs/7/"),
        ("jobs/7/input/my notes+1.txt", "ObjectCreated:CompleteMultipartUpload", "jobs/7/"),
        # Deletions are followed: the counts made from a removed text are removed.
        ("jobs/7/input/a.txt", "ObjectRemoved:Delete", "jobs/7/"),
        ("jobs/7/input/deeper/a.txt", "ObjectCreated:Put", None),
        ("jobs/7/counts/a.json", "ObjectCreated:Put", None),
        ("jobs/7/result/top.txt", "ObjectCreated:Put", None),
        ("jobs/7/manifest-3.json", "ObjectCreated:Put", None),
    ],
    "reduce.env": [
        ("jobs/7/counts/a.json", "ObjectCreated:Put", "jobs/7/"),
        ("jobs/7/counts/a.json", "ObjectRemoved:Delete", "jobs/7/"),
        ("jobs/7/input/a.txt", "ObjectCreated:Put", None),
        ("jobs/7/manifest-3.json", "ObjectCreated:Put", None),
        ("jobs/7/result/total.json", "ObjectCreated:Put", None),
    ],
    "thumbnails.env": [
        ("photo.jpg", "ObjectCreated:Put", ""),
        ("IMG_0001.JPEG", "ObjectCreated:Put", ""),
        ("2026/11/logo.png", "ObjectCreated:Copy", ""),
        ("uploads/red flower+1.jpeg", "ObjectCreated:CompleteMultipartUpload", ""),
        ("photo.jpg", "ObjectRemoved:Delete", None),
        ("notes.txt", "ObjectCreated:Put", None),
        ("thumbnails/photo.jpg", "ObjectCreated:Put", None),
        ("metadata/photo.jpg.json", "ObjectCreated:Put", None),
    ],
}


@pytest.mark.parametrize("env_file", ENV_FILES, ids=lambda p: p.name)
def test_env_files_route_exactly_the_documented_keys(
    env_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = example_app(monkeypatch, env_file).settings
    for key, event_name, prefix in ROUTES[env_file.name]:
        event = ObjectEvent("b", key, event_name, size=1, etag="e", message_id="m")
        kept = select_events([event], settings.match_key, settings.match_events).kept
        groups = group_events(kept, settings.pull_parent_dirs)
        assert [g.prefix for g in groups] == ([] if prefix is None else [prefix]), key


# --------------------------------------------------------------------------- wordcount

JOBS = "wordcount-jobs"
JOB = "jobs/2026-11-23/"
TEXTS = {
    "a.txt": "The cat sat on the mat.\nThe mat was flat.\n",
    "b.txt": "A cat and a dog. The dog's bowl, the cat's bowl!\n",
    "c.txt": "'Twas the night; the CAT slept.\n",
}
# Counted by hand: lower-cased, apostrophes inside words kept, quotes around words dropped.
COUNTS_A = {"the": 3, "cat": 1, "sat": 1, "on": 1, "mat": 2, "was": 1, "flat": 1}
TOTAL_RANKED = [
    ("the", 7), ("cat", 3), ("a", 2), ("bowl", 2), ("mat", 2), ("and", 1), ("cat's", 1),
    ("dog", 1), ("dog's", 1), ("flat", 1), ("night", 1), ("on", 1), ("sat", 1), ("slept", 1),
    ("twas", 1), ("was", 1),
]  # fmt: skip
RESULT_KEYS = {JOB + "result/total.json", JOB + "result/top.txt"}


@pytest.fixture
def jobs_bucket(s3: Any) -> Any:
    versioned_bucket(s3, JOBS)
    return s3


@pytest.fixture
def mapper(monkeypatch: pytest.MonkeyPatch, aws: Any) -> App:
    return example_app(monkeypatch, WORDCOUNT / "map.env")


@pytest.fixture
def reducer(monkeypatch: pytest.MonkeyPatch, aws: Any) -> App:
    return example_app(monkeypatch, WORDCOUNT / "reduce.env")


def put_manifest(s3: Any, names: list[str], count: int | None = None) -> None:
    key = f"{JOB}manifest-{len(names) if count is None else count}.json"
    s3.put_object(Bucket=JOBS, Key=key, Body=json.dumps({"inputs": names}).encode())


def put_input(s3: Any, name: str) -> str:
    key = f"{JOB}input/{name}"
    s3.put_object(Bucket=JOBS, Key=key, Body=TEXTS[name].encode())
    return key


def counts_key(name: str) -> str:
    return f"{JOB}counts/{Path(name).stem}.json"


def map_inputs(s3: Any, mapper: App, *names: str) -> None:
    """Upload inputs and run the map on their events (one batch): one run per text, since
    the map follows deletions (each output must come from exactly one input)."""
    keys = [put_input(s3, name) for name in names]
    outcomes = deliver(mapper, JOBS, *keys).outcomes
    assert [o.status for o in outcomes] == [Status.SUCCEEDED] * len(names)
    assert {key for o in outcomes for key in o.uploaded} == {counts_key(name) for name in names}


def reduce_on(reducer: App, *names: str) -> GroupOutcome:
    """Deliver the counts events of ``names`` to the reduce step (one batch, one group)."""
    return only_group(deliver(reducer, JOBS, *(counts_key(name) for name in names)))


def assert_no_result(s3: Any) -> None:
    assert not listing(s3, JOBS, JOB + "result/")


def test_wordcount_map_then_reduce_gives_the_exact_total(
    jobs_bucket: Any, mapper: App, reducer: App
) -> None:
    s3 = jobs_bucket
    put_manifest(s3, sorted(TEXTS))  # the producer declares the job first
    for name in ["a.txt", "b.txt"]:
        map_inputs(s3, mapper, name)
        outcome = reduce_on(reducer, name)  # as the reduce queue delivers each counts file
        assert outcome.status is Status.SKIPPED
        assert_no_result(s3)
    assert json.loads(read(s3, JOBS, counts_key("a.txt"))) == COUNTS_A

    map_inputs(s3, mapper, "c.txt")
    result = reducer.process(parse_invocation(sqs_batch(JOBS, counts_key("c.txt"))))
    assert result.response() == {"batchItemFailures": []}, result.outcomes

    assert set(listing(s3, JOBS, JOB + "result/")) == RESULT_KEYS
    total = json.loads(read(s3, JOBS, JOB + "result/total.json"))
    assert total["inputs"] == ["a.txt", "b.txt", "c.txt"]
    assert total["total_words"] == 27
    assert total["distinct_words"] == 16
    assert list(total["counts"].items()) == TOTAL_RANKED  # count desc, then word
    top = read(s3, JOBS, JOB + "result/top.txt").decode()
    assert top.splitlines() == [f"{count}\t{word}" for word, count in TOTAL_RANKED[:10]]
    # the texts themselves are not pulled by the reduce, and nothing else was written
    assert set(listing(s3, JOBS)) == {
        f"{JOB}manifest-3.json",
        *(f"{JOB}input/{name}" for name in TEXTS),
        *(counts_key(name) for name in TEXTS),
        *RESULT_KEYS,
    }
    # ... but for the lineage records of the two steps, which follow deletions.
    listed = s3.list_objects_v2(Bucket=JOBS, Prefix=LINEAGE_PREFIX).get("Contents", [])
    records = {entry["Key"] for entry in listed}
    assert records == {
        *(f"{LINEAGE_PREFIX}map/{JOBS}/objects/{JOB}input/{name}.json" for name in TEXTS),
        f"{LINEAGE_PREFIX}reduce/{JOBS}/groups/{JOB}.group.json",
    }


def test_map_counts_only_the_new_inputs(
    jobs_bucket: Any, monkeypatch: pytest.MonkeyPatch, aws: Any
) -> None:
    # With SKIP_UNCHANGED off every file the handler writes is uploaded: only new counts.
    mapper = example_app(monkeypatch, WORDCOUNT / "map.env", SKIP_UNCHANGED="false")
    s3 = jobs_bucket
    map_inputs(s3, mapper, "a.txt")
    map_inputs(s3, mapper, "b.txt", "c.txt")  # a.txt is not pulled again
    assert version_count(s3, JOBS, counts_key("a.txt")) == 1
    # outputs don't trigger the map again: counts and results are not texts under input/
    result = mapper.process(parse_invocation(sqs_batch(JOBS, counts_key("a.txt"))))
    assert result.outcomes == ()


def test_reduce_gate_stays_closed_while_an_input_has_not_arrived(
    jobs_bucket: Any, mapper: App, reducer: App
) -> None:
    # The race of docs/design.md §10: both inputs present are counted, so "every input has its
    # counts" holds, yet c.txt is still on its way. The manifest's N=3 keeps the gate shut.
    s3 = jobs_bucket
    put_manifest(s3, sorted(TEXTS))
    map_inputs(s3, mapper, "a.txt", "b.txt")
    assert reduce_on(reducer, "a.txt", "b.txt").status is Status.SKIPPED
    assert_no_result(s3)


def test_reduce_gate_stays_closed_while_a_counts_file_is_missing(
    jobs_bucket: Any, mapper: App, reducer: App
) -> None:
    s3 = jobs_bucket
    put_manifest(s3, sorted(TEXTS))
    map_inputs(s3, mapper, "a.txt", "b.txt")
    put_input(s3, "c.txt")  # arrived, not yet counted
    assert reduce_on(reducer, "b.txt").status is Status.SKIPPED
    assert_no_result(s3)

    map_inputs(s3, mapper, "c.txt")
    outcome = reduce_on(reducer, "c.txt")
    assert outcome.status is Status.SUCCEEDED
    assert set(outcome.uploaded) == RESULT_KEYS


def test_reduce_gate_stays_closed_without_the_manifest(
    jobs_bucket: Any, mapper: App, reducer: App
) -> None:
    # Every input has its counts: a gate over the listing alone would open here.
    s3 = jobs_bucket
    map_inputs(s3, mapper, *sorted(TEXTS))
    assert reduce_on(reducer, *sorted(TEXTS)).status is Status.SKIPPED
    assert_no_result(s3)

    # A manifest uploaded late is not a trigger; any counts event (or `run`) opens it.
    put_manifest(s3, sorted(TEXTS))
    assert reduce_on(reducer, "a.txt").status is Status.SUCCEEDED
    assert set(listing(s3, JOBS, JOB + "result/")) == RESULT_KEYS


def test_reduce_rerun_with_the_same_inputs_uploads_nothing(
    jobs_bucket: Any, mapper: App, reducer: App
) -> None:
    s3 = jobs_bucket
    put_manifest(s3, sorted(TEXTS))
    map_inputs(s3, mapper, *sorted(TEXTS))
    first = reduce_on(reducer, *sorted(TEXTS))
    assert (first.status, set(first.uploaded)) == (Status.SUCCEEDED, RESULT_KEYS)
    before = listing(s3, JOBS, JOB + "result/")

    again = reduce_on(reducer, "b.txt")  # e.g. a redelivered message
    assert (again.status, again.uploaded) == (Status.SUCCEEDED, ())
    assert listing(s3, JOBS, JOB + "result/") == before
    assert all(version_count(s3, JOBS, key) == 1 for key in RESULT_KEYS)


def test_reduce_refuses_a_manifest_that_disagrees_with_the_inputs(
    jobs_bucket: Any, mapper: App, reducer: App
) -> None:
    # manifest-2 and two counted inputs open the gate, but the manifest names x.txt, not
    # b.txt: reduce.py fails the run (the message is retried / reaches the DLQ) and
    # writes nothing, rather than a total of the wrong inputs.
    s3 = jobs_bucket
    put_manifest(s3, ["a.txt", "x.txt"])
    map_inputs(s3, mapper, "a.txt", "b.txt")
    result = reducer.process(parse_invocation(sqs_batch(JOBS, counts_key("b.txt"))))
    assert only_group(result).status is Status.FAILED
    assert len(result.response()["batchItemFailures"]) == 1
    assert_no_result(s3)


GATE = ExecutionFilter.compile((WORDCOUNT / "reduce-filter.jq").read_text(encoding="utf-8"))


def job_listing(*paths: str) -> list[dict[str, Any]]:
    return [
        {"Key": JOB + path, "Size": 10, "ETag": '"0"', "LastModified": "2026-11-23T10:00:00+00:00"}
        for path in paths
    ]


COMPLETE = ["manifest-2.json", "input/a.txt", "input/b.txt", "counts/a.json", "counts/b.json"]


@pytest.mark.parametrize(
    ("paths", "opens"),
    [
        (COMPLETE, True),
        ([*COMPLETE, "result/total.json", "result/top.txt"], True),  # a re-run
        ([p for p in COMPLETE if p != "manifest-2.json"], False),
        ([p for p in COMPLETE if p != "counts/b.json"], False),
        ([p for p in COMPLETE if p not in ("input/b.txt", "counts/b.json")], False),
        ([p.replace("manifest-2", "manifest-3") for p in COMPLETE], False),
        ([*COMPLETE, "manifest-3.json"], False),  # two manifests: ambiguous, never opens
        ([*COMPLETE, "input/c.txt"], False),  # more inputs than declared
        (["manifest-2.json"], False),
        ([], False),
    ],
    ids=[
        "complete", "rerun", "no-manifest", "counts-missing", "input-missing",
        "manifest-expects-more", "two-manifests", "extra-input", "manifest-only", "empty",
    ],
)  # fmt: skip
def test_reduce_gate_over_listings(paths: list[str], opens: bool) -> None:
    verdict = GATE.evaluate(job_listing(*paths))
    assert verdict.first_output is opens


# -------------------------------------------------------------------------- thumbnails

UPLOADS = "photo-uploads"
PROCESSED = "processed-images"  # TARGET_BUCKET in thumbnails.env
RED = (200, 40, 40)


def image_bytes(size: tuple[int, int], image_format: str, mode: str = "RGB", **save: Any) -> bytes:
    """A red image (so the white watermark stands out) with a blue square, in ``mode``."""
    alpha = mode in ("RGBA", "LA")
    image = Image.new("RGBA" if alpha else "RGB", size, (*RED, 160) if alpha else RED)
    image.paste((30, 30, 220, 255) if alpha else (30, 30, 220), (10, 10, 40, 40))
    out = io.BytesIO()
    image.convert(mode).save(out, format=image_format, **save)
    return out.getvalue()


def sideways_jpeg() -> bytes:
    """640x480 as stored, with EXIF orientation 6: shown upright as 480x640."""
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    return image_bytes((640, 480), "JPEG", exif=exif.tobytes())


# key -> (content, stored width, height, format, upright thumbnail size)
IMAGES: dict[str, tuple[bytes, int, int, str, tuple[int, int]]] = {
    "photo.jpg": (image_bytes((640, 480), "JPEG"), 640, 480, "JPEG", (200, 150)),
    "tall.png": (image_bytes((300, 900), "PNG", "RGBA"), 300, 900, "PNG", (200, 600)),
    "2026/11/icon.png": (image_bytes((150, 100), "PNG", "P"), 150, 100, "PNG", (150, 100)),
    "red flower+1.JPG": (image_bytes((401, 301), "JPEG"), 401, 301, "JPEG", (200, 150)),
    "uploads/phone.jpeg": (sideways_jpeg(), 640, 480, "JPEG", (200, 267)),
}


def target_keys(key: str) -> set[str]:
    """The classic layout: at the top of the processed bucket, named after the upload."""
    return {f"thumbnails/{key}", f"metadata/{key}.json"}


@pytest.fixture
def image_buckets(s3: Any) -> Any:
    s3.create_bucket(Bucket=UPLOADS)
    versioned_bucket(s3, PROCESSED)
    return s3


@pytest.fixture
def thumbnailer(monkeypatch: pytest.MonkeyPatch, aws: Any) -> App:
    return example_app(monkeypatch, THUMBNAILS / "thumbnails.env")


def upload(s3: Any, *keys: str) -> None:
    for key in keys:
        s3.put_object(Bucket=UPLOADS, Key=key, Body=IMAGES[key][0])


def watermark_pixels(image: Image.Image, box: tuple[int, int, int, int]) -> int:
    """Pixels in ``box`` that are near white (the image itself is red and blue)."""
    data = image.convert("RGB").crop(box).tobytes()
    return sum(1 for i in range(0, len(data), 3) if min(data[i : i + 3]) > 180)


def test_thumbnails_and_metadata_of_new_uploads(image_buckets: Any, thumbnailer: App) -> None:
    s3 = image_buckets
    upload(s3, *IMAGES)
    source_before = listing(s3, UPLOADS)

    outcome = only_group(deliver(thumbnailer, UPLOADS, *IMAGES))  # one batch: one run

    assert outcome.status is Status.SUCCEEDED
    expected = set().union(*(target_keys(key) for key in IMAGES))
    assert set(listing(s3, PROCESSED)) == expected
    assert listing(s3, UPLOADS) == source_before  # the uploads bucket is never written
    for key, (content, width, height, image_format, thumb_size) in IMAGES.items():
        thumb_key = f"thumbnails/{key}"
        thumb = Image.open(io.BytesIO(read(s3, PROCESSED, thumb_key)))
        assert thumb.format == image_format, key
        assert thumb.size == thumb_size, key
        assert thumb.width <= 200
        upright_w, upright_h = (height, width) if "phone" in key else (width, height)
        assert abs(thumb.height - upright_h * thumb.width / upright_w) <= 1, key
        assert watermark_pixels(thumb, (thumb.width // 2, thumb.height - 20, *thumb.size)) > 0
        assert watermark_pixels(thumb, (0, 0, thumb.width // 2, 20)) == 0, "watermark elsewhere"
        content_type = "image/jpeg" if image_format == "JPEG" else "image/png"
        assert s3.head_object(Bucket=PROCESSED, Key=thumb_key)["ContentType"] == content_type

        metadata = json.loads(read(s3, PROCESSED, f"metadata/{key}.json"))
        assert metadata == {
            "width": width,
            "height": height,
            "format": image_format,
            "bytes": len(content),
            "source": key,
            "thumbnail": {"width": thumb_size[0], "height": thumb_size[1]},
        }


def test_only_the_new_images_are_pulled_and_processed(
    image_buckets: Any, monkeypatch: pytest.MonkeyPatch, aws: Any
) -> None:
    # With SKIP_UNCHANGED off every file the handler writes is uploaded: only the new ones.
    app = example_app(monkeypatch, THUMBNAILS / "thumbnails.env", SKIP_UNCHANGED="false")
    s3 = image_buckets
    upload(s3, "photo.jpg")
    deliver(app, UPLOADS, "photo.jpg")
    upload(s3, "tall.png")

    outcome = only_group(deliver(app, UPLOADS, "tall.png"))

    assert set(outcome.uploaded) == target_keys("tall.png")
    assert all(version_count(s3, PROCESSED, k) == 1 for k in target_keys("photo.jpg"))
    plan = app.engine.plan_group(outcome.group)  # events scope: photo.jpg is not even pulled
    assert (plan.listed, [i.obj.key for i in plan.pull.pull]) == (None, ["tall.png"])


def test_reprocessing_the_same_images_uploads_nothing(image_buckets: Any, thumbnailer: App) -> None:
    s3 = image_buckets
    upload(s3, "photo.jpg", "tall.png")
    deliver(thumbnailer, UPLOADS, "photo.jpg", "tall.png")
    before = listing(s3, PROCESSED)

    again = only_group(deliver(thumbnailer, UPLOADS, "photo.jpg", "tall.png"))

    assert (again.status, again.uploaded) == (Status.SUCCEEDED, ())
    assert listing(s3, PROCESSED) == before


def test_files_that_are_not_usable_images_are_skipped_not_failed(
    image_buckets: Any, thumbnailer: App, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bridge")
    s3 = image_buckets
    upload(s3, "photo.jpg")
    fakes = {
        "notes.jpg": b"just some text, not a JPEG\n",  # corrupt / mislabelled
        "truncated.png": IMAGES["tall.png"][0][:200],
        "anim.png": image_bytes((50, 50), "GIF"),  # a GIF under a .png name
        "readme.txt": b"not an image extension: never triggers\n",
    }
    for key, body in fakes.items():
        s3.put_object(Bucket=UPLOADS, Key=key, Body=body)

    result = deliver(thumbnailer, UPLOADS, "photo.jpg", *fakes)  # every message ok

    assert only_group(result).status is Status.SUCCEEDED  # readme.txt matched no MATCH_KEY
    assert set(listing(s3, PROCESSED)) == target_keys("photo.jpg")
    lines = [r.getMessage() for r in caplog.records if r.name == "bridge.handler"]
    for key in ["notes.jpg", "truncated.png", "anim.png"]:
        assert any(line.startswith(f"skipping {key}: not a usable image") for line in lines)


def test_outputs_written_back_to_the_source_bucket_do_not_retrigger(
    image_buckets: Any, monkeypatch: pytest.MonkeyPatch, aws: Any
) -> None:
    # Without TARGET_BUCKET the outputs land in the uploads bucket under thumbnails/ and
    # metadata/: MATCH_KEY leaves thumbnails/ out (metadata is JSON), so no loop.
    app = example_app(monkeypatch, THUMBNAILS / "thumbnails.env", TARGET_BUCKET="")
    s3 = image_buckets
    upload(s3, "photo.jpg")
    only_group(deliver(app, UPLOADS, "photo.jpg"))
    outputs = target_keys("photo.jpg")
    assert set(listing(s3, UPLOADS)) == {"photo.jpg", *outputs}

    result = app.process(parse_invocation(sqs_batch(UPLOADS, *sorted(outputs))))
    assert result.outcomes == ()  # ignored: not matched by MATCH_KEY


def test_one_upload_into_a_busy_bucket_costs_one_get(
    image_buckets: Any, thumbnailer: App, caplog: pytest.LogCaptureFixture
) -> None:
    """Events scope: nothing listed, only the new image fetched, whatever the bucket holds."""
    caplog.set_level(logging.INFO, logger="bridge")
    s3 = image_buckets
    for index in range(300):
        s3.put_object(Bucket=UPLOADS, Key=f"old-{index}.jpg", Body=b"an older upload")
    upload(s3, "photo.jpg")
    calls: dict[str, int] = {}

    def count(model: Any, **_: Any) -> None:
        calls[model.name] = calls.get(model.name, 0) + 1

    thumbnailer.engine.storage.client.meta.events.register("before-call.s3", count)

    only_group(deliver(thumbnailer, UPLOADS, "photo.jpg"))

    # One GET in; per output one HEAD (SKIP_UNCHANGED) and one PUT.
    assert calls == {"GetObject": 1, "HeadObject": 2, "PutObject": 2}
    assert set(listing(s3, PROCESSED)) == target_keys("photo.jpg")
    [summary] = [
        getattr(r, "fields", {}) for r in caplog.records if r.getMessage() == "group summary"
    ]
    assert (summary["scope"], summary["listed"], summary["pulled"]) == ("events", 0, 1)
