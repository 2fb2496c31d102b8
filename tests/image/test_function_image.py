"""The documented function image, FROM the base image, run under AWS's RIE on a local S3.

Each test starts the image as Lambda would (under the RIE, as a user that is not root, its
file system read-only but for ``/tmp``), invokes it with a realistic SQS-wrapped S3 event
and checks the answer and what landed in S3.
"""

from __future__ import annotations

import io
import json
from typing import Any

from PIL import Image

from bridge.samples import sample_batch, sample_payload
from tests.image.conftest import RunFunction

UPLOADS = "uploads"
TARGET = "processed-images"  # the documented image's TARGET_BUCKET

# A handler that tells who runs it and where it may write, into its output folder.
PROBE = r"""
import json, os
writable = []
for top, dirs, _ in os.walk("/"):
    dirs[:] = [d for d in dirs if os.path.join(top, d) not in ("/proc", "/sys", "/dev")]
    if os.access(top, os.W_OK):
        writable.append(top)
def write(folder):
    try:
        with open(os.path.join(folder, "probe.tmp"), "w"):
            pass
    except OSError as error:
        return error.strerror
    os.unlink(os.path.join(folder, "probe.tmp"))
    return "written"
with open(os.path.join(os.environ["ROOT_FOLDER"], "probe.json"), "w") as report:
    json.dump({
        "uid": os.getuid(),
        "gid": os.getgid(),
        "writable": writable,
        "writes": {folder: write(folder) for folder in ("/", "/var/task", "/usr/local", "/tmp")},
    }, report)
"""

# The thumbnail handler, except that it fails on anything under bad/.
FAILING_ON_BAD = r"""
import json, os, runpy, sys
events = json.load(open(os.environ["BRIDGE_EVENTS_FILE"]))
bad = [event["key"] for event in events if event["key"].startswith("bad/")]
if bad:
    sys.exit(f"cannot process {bad[0]}")
runpy.run_path("thumbnail.py", run_name="__main__")
"""


def jpeg(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), "teal").save(buffer, "JPEG")
    return buffer.getvalue()


def buckets(s3: Any, *uploads: str) -> None:
    s3.create_bucket(Bucket=UPLOADS)
    s3.create_bucket(Bucket=TARGET)
    for key in uploads:
        s3.put_object(Bucket=UPLOADS, Key=key, Body=jpeg(640, 480))


def keys(s3: Any, bucket: str) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))


def test_an_upload_gets_its_thumbnail(run_function: RunFunction, s3: Any) -> None:
    buckets(s3, "cat.jpg")

    with run_function() as function:
        answer = function.invoke(sample_payload("sqs", UPLOADS, "cat.jpg"))

    assert (answer.status, answer.body) == (200, {"batchItemFailures": []})
    assert keys(s3, TARGET) == ["metadata/cat.jpg.json", "thumbnails/cat.jpg"]
    thumbnail = s3.get_object(Bucket=TARGET, Key="thumbnails/cat.jpg")["Body"].read()
    with Image.open(io.BytesIO(thumbnail)) as image:
        assert (image.format, image.size) == ("JPEG", (200, 150))


def test_the_handler_runs_unprivileged_and_may_write_only_under_tmp(
    run_function: RunFunction, s3: Any
) -> None:
    buckets(s3, "cat.jpg")

    with run_function(["python", "-c", PROBE]) as function:
        answer = function.invoke(sample_payload("sqs", UPLOADS, "cat.jpg"))

    assert answer.body == {"batchItemFailures": []}
    probe = json.loads(s3.get_object(Bucket=TARGET, Key="probe.json")["Body"].read())
    assert probe["uid"] != 0 and probe["gid"] != 0
    assert [top for top in probe["writable"] if not top.startswith("/tmp")] == []
    assert probe["writes"] == {
        "/": "Read-only file system",
        "/var/task": "Read-only file system",
        "/usr/local": "Read-only file system",
        "/tmp": "written",
    }


def test_a_failing_group_reports_its_message_alone(run_function: RunFunction, s3: Any) -> None:
    buckets(s3, "ok/cat.jpg", "bad/dog.jpg")
    batch = sample_batch("sqs", UPLOADS, ["ok/cat.jpg", "bad/dog.jpg"])
    records = batch["Records"]
    assert isinstance(records, list) and len(records) == 2
    bad_message = records[1]["messageId"]

    # One group per folder, so the two uploads are two handler runs.
    with run_function(["python", "-c", FAILING_ON_BAD], PULL_PARENT_DIRS="0") as function:
        answer = function.invoke(batch)
        log = function.log()

    assert answer.body == {"batchItemFailures": [{"itemIdentifier": bad_message}]}
    landed = keys(s3, TARGET)
    assert any(key.endswith("thumbnails/cat.jpg") for key in landed), landed
    assert not any("dog" in key for key in landed), landed
    assert "cannot process bad/dog.jpg" in log


def test_a_bad_configuration_is_the_init_error_the_rie_answers(
    run_function: RunFunction, s3: Any
) -> None:
    buckets(s3, "cat.jpg")

    with run_function(MATCH_KEY="[") as function:
        answer = function.invoke(sample_payload("sqs", UPLOADS, "cat.jpg"))

    assert "MATCH_KEY: invalid regular expression" in answer.body["errorMessage"], answer.raw
    assert answer.body["errorType"] == "Runtime.ConfigurationError"
    assert keys(s3, TARGET) == []


def test_a_handler_past_the_deadline_is_stopped_and_the_batch_answered_in_time(
    run_function: RunFunction, s3: Any
) -> None:
    buckets(s3, "cat.jpg")
    payload = sample_payload("sqs", UPLOADS, "cat.jpg")
    records = payload["Records"]
    assert isinstance(records, list)

    # A 3 s function: the bridge must stop the handler and answer before the RIE's timeout,
    # whose own answer would be an error ("Task timed out"), not a partial batch response.
    sleeper = ["python", "-c", "import time; time.sleep(600)"]
    with run_function(sleeper, AWS_LAMBDA_FUNCTION_TIMEOUT="3") as function:
        answer = function.invoke(payload)
        log = function.log()

    assert answer.body == {"batchItemFailures": [{"itemIdentifier": records[0]["messageId"]}]}
    assert "Task timed out" not in log
    assert keys(s3, TARGET) == []
