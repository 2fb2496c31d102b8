"""S3 Batch Operations end to end: ``event batch-ops`` and ``invoke`` as subprocesses, real
handlers, the moto server over HTTP. Every result code comes from a real run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bridge.samples import sample_batch
from tests.conftest import MotoServer
from tests.helpers import handler, objects, put
from tests.test_cli import cli

BUCKET = "archive"


@pytest.fixture
def bucket(aws: MotoServer, s3: Any) -> Any:
    s3.create_bucket(Bucket=BUCKET)
    return s3


def results_by_key(payload: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    """The response's results, by the decoded key of their task (the task ids are random)."""
    tasks: Any = payload["tasks"]
    keys = {task["taskId"]: task["s3Key"] for task in tasks}
    assert [r["taskId"] for r in response["results"]] == list(keys)  # one each, in task order
    return {keys[r["taskId"]]: (r["resultCode"], r["resultString"]) for r in response["results"]}


@pytest.mark.parametrize("scope", ["prefix", "events"])
def test_each_task_gets_the_result_its_run_deserves(bucket: Any, scope: str) -> None:
    put(bucket, BUCKET, "ok/a b.txt", "fine")
    put(bucket, BUCKET, "flaky/x.txt", "will fail")  # FAIL_ON=flaky: the handler exits 3
    put(bucket, BUCKET, "deep/x.txt", "looping", Metadata={"bridge-depth": "16"})
    keys = ["ok/a b.txt", "flaky/x.txt", "gone/x.txt", "deep/x.txt"]
    payload = sample_batch("batch-ops", BUCKET, keys, schema="2.0")

    result = cli(
        "invoke",
        "--",
        *handler("copier"),
        stdin=json.dumps(payload),
        FAIL_ON="flaky",
        PULL_SCOPE=scope,
    )

    assert result.returncode == 1, result.stderr  # not every task succeeded
    response = json.loads(result.stdout)
    assert response["invocationSchemaVersion"] == "2.0"
    assert response["invocationId"] == payload["invocationId"]
    assert response["treatMissingKeysAs"] == "PermanentFailure"
    assert results_by_key(payload, response) == {
        "ok/a+b.txt": ("Succeeded", "1 output"),
        "flaky/x.txt": ("TemporaryFailure", "s3://archive/flaky/: handler exited with status 3"),
        "gone/x.txt": ("PermanentFailure", "the object does not exist"),
        "deep/x.txt": (
            "PermanentFailure",
            "s3://archive/deep/: chain depth limit reached (depth 16, MAX_CHAIN_DEPTH 16)",
        ),
    }
    assert objects(bucket, BUCKET, "ok/out/") == {"ok/out/a b.txt": b"fine"}
    assert set(objects(bucket, BUCKET)) == {
        "ok/a b.txt",
        "ok/out/a b.txt",
        "flaky/x.txt",
        "deep/x.txt",
    }


def test_a_task_matching_nothing_succeeds_and_says_so(bucket: Any) -> None:
    put(bucket, BUCKET, "logs/a.txt")
    payload = sample_batch("batch-ops", BUCKET, ["logs/a.txt"])

    result = cli("invoke", "--", *handler("copier"), stdin=json.dumps(payload), MATCH_KEY=r"\.jpg$")

    assert result.returncode == 0, result.stderr
    assert results_by_key(payload, json.loads(result.stdout)) == {
        "logs/a.txt": ("Succeeded", "matched nothing: key does not match MATCH_KEY")
    }
    assert set(objects(bucket, BUCKET)) == {"logs/a.txt"}


def test_an_unwritable_target_is_a_permanent_failure(bucket: Any) -> None:
    put(bucket, BUCKET, "in/a.txt")
    payload = sample_batch("batch-ops", BUCKET, ["in/a.txt"])

    result = cli(
        "invoke",
        "--",
        *handler("copier"),
        stdin=json.dumps(payload),
        TARGET_BUCKET="no-such-bucket",
    )

    [entry] = json.loads(result.stdout)["results"]
    assert entry["resultCode"] == "PermanentFailure"
    assert "bucket no-such-bucket does not exist" in entry["resultString"]


def test_user_arguments_reach_the_handler_from_the_event_command(
    bucket: Any, tmp_path: Path
) -> None:
    put(bucket, BUCKET, "in/a.txt")
    sample = cli(
        "event",
        "batch-ops",
        "--bucket",
        BUCKET,
        "--key",
        "in/a.txt",
        "--schema",
        "2.0",
        "--user-argument",
        "mode=full",
        "--user-argument",
        "note=a=b c",
    )
    assert sample.returncode == 0, sample.stderr
    dump = tmp_path / "env.json"

    result = cli("invoke", "--", *handler("envdump"), stdin=sample.stdout, DUMP_FILE=str(dump))

    assert result.returncode == 0, result.stderr
    [entry] = json.loads(result.stdout)["results"]
    assert (entry["resultCode"], entry["resultString"]) == ("Succeeded", "1 output")
    seen = json.loads(dump.read_text(encoding="utf-8"))
    assert json.loads(seen["env"]["BRIDGE_USER_ARGUMENTS"]) == {"mode": "full", "note": "a=b c"}
    assert seen["events"][0]["event_name"] == "ObjectCreated:Put"


@pytest.mark.parametrize("shape", ["sqs", "batch-ops"])
def test_user_arguments_are_an_empty_object_otherwise(
    bucket: Any, tmp_path: Path, shape: str
) -> None:
    put(bucket, BUCKET, "in/a.txt")
    dump = tmp_path / "env.json"
    payload = json.dumps(sample_batch(shape, BUCKET, ["in/a.txt"]))

    result = cli(
        "invoke",
        "--",
        *handler("envdump"),
        stdin=payload,
        DUMP_FILE=str(dump),
        BRIDGE_USER_ARGUMENTS='{"leaked": "from the environment"}',
    )

    assert result.returncode == 0, result.stderr
    seen = json.loads(dump.read_text(encoding="utf-8"))
    assert seen["env"]["BRIDGE_USER_ARGUMENTS"] == "{}"
