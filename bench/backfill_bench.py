"""P9 (docs/design.md §13): backfill of 10,000 existing objects onto a queue.

Bridge side: ``s3-event-bridge backfill --bucket B --prefix P --queue-url URL`` in a fresh
process of the bridge's clean venv (``bench/backfill_side.py``: the console command, with a
botocore hook counting its SendMessageBatch calls). Baseline: ``aws s3api list-objects-v2``
of the same prefix, the listing alone, also a fresh process; when no aws CLI could be had, a
boto3 paginator listing the prefix in a fresh process instead (the row says so). After every
bridge run the queue must hold exactly one message per object and the calls must be
``ceil(N / 10)``; every run sends to a new, empty queue. Row P9s, for contrast, times the
endpoint alone taking the same SendMessageBatch calls from a plain boto3 pool.

P9 runs on a moto server of its own, ``bench/moto_sqs.py``: moto walks the whole queue for
every message it is sent, so plain moto makes N notifications cost O(N²) (its docstring
explains the patch, which leaves every answer as moto gives it).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import boto3
from environments import Environments
from harness import BENCH, Row, interleaved
from local_aws import MotoServer

from bridge.backfill import SEND_CONCURRENCY, ExistingObject, notification_body

BUCKET, PREFIX = "bench-p9", "existing/"
BOTO3_LIST = (
    "import sys, boto3; s3 = boto3.client('s3'); n = 0\n"
    "for page in s3.get_paginator('list_objects_v2').paginate(Bucket=sys.argv[1], "
    "Prefix=sys.argv[2]):\n    n += len(page.get('Contents', []))\nprint(n)"
)


class BenchmarkError(RuntimeError):
    """A side did not do the work it is timed for."""


def p9_backfill(objects: int, runs: int, sides: Environments) -> list[Row]:
    """``objects`` existing objects backfilled onto a queue vs the listing of their prefix."""
    with MotoServer(server=(str(BENCH / "moto_sqs.py"),)) as server:
        return _p9(server.endpoint, objects, runs, sides)


def _p9(endpoint: str, objects: int, runs: int, sides: Environments) -> list[Row]:
    python = str(sides.bridge.python or sys.executable)
    environment = dict(os.environ, AWS_ENDPOINT_URL=endpoint)
    s3 = boto3.client("s3", endpoint_url=endpoint)
    s3.create_bucket(Bucket=BUCKET)
    keys = [f"{PREFIX}{index // 100:03d}/object {index:05d}.bin" for index in range(objects)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda key: s3.put_object(Bucket=BUCKET, Key=key, Body=b"x" * 100), keys))
    sqs = boto3.client("sqs", endpoint_url=endpoint)
    numbers = iter(range(1_000_000))
    calls: list[int] = []
    expected_calls = math.ceil(objects / 10)

    def bridge() -> float:
        url = sqs.create_queue(QueueName=f"bench-p9-{next(numbers)}")["QueueUrl"]  # empty
        command = [python, str(BENCH / "backfill_side.py"), "--bucket", BUCKET]
        command += ["--prefix", PREFIX, "--queue-url", url]
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, check=False, env=environment)
        elapsed = time.perf_counter() - started
        result = json.loads(done.stdout.strip().splitlines()[-1]) if done.stdout else {}
        if result.get("status") != 0:
            raise BenchmarkError(f"P9: backfill failed: {done.stderr[-2000:]}")
        calls.append(int(result["calls"]))
        queued = _queued(sqs, url)
        if queued != objects:
            raise BenchmarkError(f"P9: {queued} messages on the queue, not {objects}")
        sqs.delete_queue(QueueUrl=url)  # untimed
        return elapsed

    aws = sides.aws_cli.command
    if aws is not None:
        baseline_command = [str(aws), "s3api", "list-objects-v2", "--bucket", BUCKET]
        baseline_command += ["--prefix", PREFIX, "--endpoint-url", endpoint]
        what_baseline = "aws s3api list-objects-v2"
        note = ""
    else:
        baseline_command = [python, "-c", BOTO3_LIST, BUCKET, PREFIX]
        what_baseline = "a boto3 listing (process)"
        note = f"aws CLI not available ({sides.aws_cli.problem}): the baseline is a boto3 listing"
    _check_listing(baseline_command, aws is not None, objects, environment)

    def baseline() -> float:
        started = time.perf_counter()
        subprocess.run(baseline_command, check=True, stdout=subprocess.DEVNULL, env=environment)
        return time.perf_counter() - started

    # The endpoint's own cost of the sends, for contrast: the same number of SendMessageBatch
    # calls of the same bodies from a plain boto3 pool as wide as the bridge's, no listing.
    bodies = [notification_body(_sample(BUCKET, key), "us-east-1") for key in keys]
    batches = [bodies[start : start + 10] for start in range(0, objects, 10)]

    def sends_alone() -> float:
        url = sqs.create_queue(QueueName=f"bench-p9-{next(numbers)}")["QueueUrl"]
        started = time.perf_counter()
        with ThreadPoolExecutor(SEND_CONCURRENCY) as pool:
            list(pool.map(lambda batch: _send(sqs, url, batch), batches))
        elapsed = time.perf_counter() - started
        sqs.delete_queue(QueueUrl=url)
        return elapsed

    # No warm-up: the timed sides are fresh processes, and moto keeps no connections to warm.
    bridges, baselines, sends = interleaved([bridge, baseline, sends_alone], runs, warmup=False)
    counted = (
        f"SendMessageBatch calls every run: {sorted(set(calls))} (ceil(N/10) = {expected_calls})"
    )
    wrong = any(n != expected_calls for n in calls)
    what = f"backfill: {objects:,} existing objects -> queue vs {what_baseline}"
    note = "; ".join(part for part in (counted, note) if part)
    rows = [Row("P9", what, "s", bridges, baselines, "<= 1.50x", 1.50, note=note, crashed=wrong)]
    contrast = f"the sends alone: {len(batches):,} SendMessageBatch (boto3) vs the listing"
    rows.append(Row("P9s", contrast, "s", sends, baselines, "(contrast)", 0.0, info=True))
    return rows


def _sample(bucket: str, key: str) -> ExistingObject:
    return ExistingObject(bucket, key, 100, "0" * 32, datetime.now(UTC))


def _send(sqs: object, url: str, bodies: list[str]) -> None:
    entries = [{"Id": str(index), "MessageBody": body} for index, body in enumerate(bodies)]
    response = sqs.send_message_batch(QueueUrl=url, Entries=entries)  # type: ignore[attr-defined]
    if response.get("Failed"):
        raise BenchmarkError(f"P9s: entries failed: {response['Failed']}")


def _queued(sqs: object, url: str) -> int:
    attributes = sqs.get_queue_attributes(  # type: ignore[attr-defined]
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(value) for value in attributes.values())


def _check_listing(
    command: list[str], aws_cli: bool, objects: int, environment: dict[str, str]
) -> None:
    """One untimed run of the baseline: it must see every object."""
    done = subprocess.run(command, check=True, capture_output=True, text=True, env=environment)
    found = len(json.loads(done.stdout).get("Contents", [])) if aws_cli else int(done.stdout)
    if found != objects:
        raise BenchmarkError(f"P9: the baseline listed {found} objects, not {objects}")


if __name__ == "__main__":  # pragma: no cover - run through bench/run.py
    raise SystemExit(f"run it with: python {Path(__file__).parent / 'run.py'} --only P9")
