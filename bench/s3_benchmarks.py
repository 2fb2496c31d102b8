"""P2, P3 and P4 (docs/design.md §13): the bridge against plain boto3 over local S3."""

from __future__ import annotations

import filecmp
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from harness import BENCH, Row, interleaved, stopwatch
from naive_work import folder_invocation

from bridge.app import App
from bridge.paths import plan_pull
from bridge.samples import sample_payload
from bridge.settings import load_settings
from bridge.storage import Storage, s3_client

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

COPY_HANDLER = (sys.executable, str(BENCH / "copy_handler.py"))
MiB = 1024 * 1024


class BenchmarkError(Exception):
    """A side did not do what it was meant to (wrong answer, missing output...)."""


def plain_client(width: int = 10) -> S3Client:
    """A boto3 S3 client as a minimal script makes it (a connection pool ``width`` wide)."""
    return boto3.client("s3", config=Config(max_pool_connections=width))


# --- P2 ------------------------------------------------------------------------------------


def p2_invocation(s3: S3Client, runs: int) -> list[Row]:
    """One SQS-wrapped event, one 1 KB object, a handler copying it: a warm invocation."""
    bucket = "bench-p2"
    s3.create_bucket(Bucket=bucket)
    body = os.urandom(1024)
    app = App.create(load_settings(), COPY_HANDLER)  # once, as in a warm Lambda environment
    client = plain_client()
    numbers = itertools.count()

    def fresh_input(side: str) -> str:
        prefix = f"{side}-{next(numbers):04d}/"
        s3.put_object(Bucket=bucket, Key=f"{prefix}data.bin", Body=body)
        return prefix

    def check_output(prefix: str) -> None:
        copied = s3.get_object(Bucket=bucket, Key=f"{prefix}copy-data.bin")["Body"].read()
        if copied != body:
            raise BenchmarkError(f"P2: wrong output under {prefix}")

    def bridge() -> float:
        prefix = fresh_input("bridge")
        payload = sample_payload("sqs", bucket, f"{prefix}data.bin", size=len(body))
        started = time.perf_counter()
        answer = app.handle_payload(payload)
        elapsed = time.perf_counter() - started
        if answer.is_error or answer.body != {"batchItemFailures": []}:
            raise BenchmarkError(f"P2: the bridge answered {answer.body}")
        check_output(prefix)
        return elapsed

    def baseline() -> float:
        prefix = fresh_input("baseline")
        elapsed = stopwatch(lambda: naive_invocation(client, bucket, prefix))
        check_output(prefix)
        return elapsed

    bridges, baselines = interleaved([bridge, baseline], runs)
    return [
        Row(
            "P2",
            "warm invocation: 1 SQS event, 1 KB object, copy handler",
            "s",
            bridges,
            baselines,
            "<= 1.10x",
            1.10,
        )
    ]


def naive_invocation(client: S3Client, bucket: str, prefix: str) -> None:
    """The minimal boto3 script: list, get, run the handler, put what is new."""
    folder_invocation(client, bucket, prefix, list(COPY_HANDLER))


# --- P3 ------------------------------------------------------------------------------------


def p3_fan_in(
    s3: S3Client,
    objects: int,
    size: int,
    runs: int,
    workdir: Path,
    aws_cli: str | None,
    aws_cli_problem: str | None = None,
) -> list[Row]:
    """One group pulling ``objects`` objects of ``size`` bytes."""
    bucket, prefix = "bench-p3", "fan-in/"
    s3.create_bucket(Bucket=bucket)
    body = os.urandom(size)
    keys = [f"{prefix}part-{n:05d}.bin" for n in range(objects)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda key: s3.put_object(Bucket=bucket, Key=key, Body=body), keys))

    width = load_settings().transfer_concurrency
    storage = Storage(s3_client(width), width)
    client = plain_client(width)
    listing_seconds: list[float] = []

    def bridge() -> float:
        started = time.perf_counter()
        plan = plan_pull(storage.list_objects(bucket, prefix), prefix, ())
        listed = time.perf_counter()
        with scratch(workdir, objects) as root:
            storage.pull(bucket, plan.pull, root)
            pulled = time.perf_counter()
        listing_seconds.append(listed - started)
        return pulled - listed

    def baseline() -> float:
        def get(key: str) -> None:
            data = client.get_object(Bucket=bucket, Key=key)["Body"].read()
            with open(root / key[len(prefix) :], "wb") as stream:
                stream.write(data)

        with scratch(workdir, objects) as root:
            started = time.perf_counter()
            with ThreadPoolExecutor(width) as pool:
                list(pool.map(get, keys))
            return time.perf_counter() - started

    def sync() -> float:
        assert aws_cli is not None
        endpoint = os.environ["AWS_ENDPOINT_URL"]
        with scratch(workdir, objects) as root:
            source = f"s3://{bucket}/{prefix}"
            command = [aws_cli, "s3", "sync", source, str(root), "--only-show-errors"]
            command += ["--endpoint-url", endpoint]
            started = time.perf_counter()
            subprocess.run(command, check=True)
            return time.perf_counter() - started

    sides: list[Callable[[], float]] = [bridge, baseline]
    if aws_cli:
        sides.append(sync)
    # No warm-up round: each run is thousands of requests, and moto makes a new connection
    # for every request anyway (werkzeug closes them), so there is nothing to warm.
    results = interleaved(sides, runs, warmup=False)
    what = f"fan-in: {objects:,} objects of {size // 1024} KB"
    rows = [
        Row(
            "P3a",
            f"{what}; Storage.pull vs GET pool",
            "s",
            results[0],
            results[1],
            "<= 1.05x",
            1.05,
        )
    ]
    target_b = "<= 0.80x"
    what_b = f"{what}; list + pull vs aws s3 sync"
    if aws_cli:
        bridge_b = [pull + lst for pull, lst in zip(results[0], listing_seconds, strict=True)]
        rows.append(Row("P3b", what_b, "s", bridge_b, results[2], target_b, 0.80))
    else:
        note = aws_cli_problem or "aws CLI not found (see --aws-cli)"
        rows.append(Row.missing("P3b", what_b, target_b, note))
    return rows


@contextmanager
def scratch(workdir: Path, expected: int) -> Iterator[Path]:
    """A fresh empty folder under ``workdir``, removed (untimed) afterwards.

    Its file count is checked against ``expected`` first, so a side that pulled too little
    fails instead of looking fast.
    """
    root = Path(tempfile.mkdtemp(dir=workdir))
    try:
        yield root
        found = sum(len(files) for _, _, files in os.walk(root))
        if found != expected:
            raise BenchmarkError(f"{found} files pulled, not {expected}")
    finally:
        shutil.rmtree(root)


# --- P4 ------------------------------------------------------------------------------------


def p4_big_object(
    s3: S3Client, size: int, runs: int, workdir: Path, python: Path | None = None
) -> list[Row]:
    """One object of ``size`` bytes pulled, each side in a fresh process (peak RSS) of
    ``python`` (the bridge's clean venv, which has boto3 too; default: this Python)."""
    interpreter = str(python or sys.executable)
    bucket, key = "bench-p4", "big/object.bin"
    s3.create_bucket(Bucket=bucket)
    source = workdir / "p4-source.bin"
    write_file(source, size)
    upload = TransferConfig(multipart_chunksize=64 * MiB, max_concurrency=4)
    s3.upload_file(str(source), bucket, key, Config=upload)
    peaks: dict[str, list[float]] = {"bridge": [], "boto3": []}

    def side(kind: str) -> Callable[[], float]:
        def pull() -> float:
            dest = workdir / f"p4-{kind}.bin"
            command = [interpreter, str(BENCH / "pull_one.py"), kind, bucket, key, str(dest)]
            done = subprocess.run(command, check=True, capture_output=True, text=True)
            result = json.loads(done.stdout)
            try:
                if not peaks[kind] and not filecmp.cmp(source, dest, shallow=False):
                    raise BenchmarkError(f"P4: {kind} pulled different bytes")
                if dest.stat().st_size != size:
                    raise BenchmarkError(f"P4: {kind} pulled {dest.stat().st_size} bytes")
            finally:
                dest.unlink(missing_ok=True)
            peaks[kind].append(float(result["peak_rss_mb"]))
            return float(result["seconds"])

        return pull

    bridges, baselines = interleaved([side("bridge"), side("boto3")], runs, warmup=False)
    source.unlink()
    what = f"one {describe_size(size)} object pulled"
    wall = Row(
        "P4", f"{what}: Storage.pull vs download_file", "s", bridges, baselines, "<= 1.05x", 1.05
    )
    rss = Row(
        "P4rss",
        f"{what}: peak RSS of the process",
        "MB",
        peaks["bridge"],
        peaks["boto3"],
        "< 100 MB",
        100.0,
        absolute=True,
    )
    return [wall, rss]


def write_file(path: Path, size: int) -> None:
    """``size`` bytes of incompressible data, written in 1 MiB blocks."""
    block = os.urandom(MiB)
    with path.open("wb") as stream:
        for start in range(0, size, MiB):
            stream.write(block[: min(MiB, size - start)])


def describe_size(size: int) -> str:
    """``1 GiB``, ``64 MiB``..."""
    if size >= 1024 * MiB and size % (1024 * MiB) == 0:
        return f"{size // (1024 * MiB)} GiB"
    return f"{size / MiB:g} MiB"


# --- P8 ------------------------------------------------------------------------------------


def p8_group_concurrency(s3: S3Client, runs: int, groups: int = 10) -> list[Row]:
    """One batch of ``groups`` messages in as many folders, a handler sleeping 1 s (I/O
    bound): ``GROUP_CONCURRENCY=groups`` against 1, each side an ``App`` built once."""
    bucket = "bench-p8"
    s3.create_bucket(Bucket=bucket)
    sleeper = (sys.executable, "-c", "import time; time.sleep(1)")
    apps = {
        width: App.create(load_settings(group_concurrency=width), sleeper) for width in (groups, 1)
    }
    numbers = itertools.count()

    def side(width: int) -> Callable[[], float]:
        def run() -> float:
            batch = next(numbers)
            keys = [f"batch-{batch:03d}/folder-{n}/input.txt" for n in range(groups)]
            for key in keys:
                s3.put_object(Bucket=bucket, Key=key, Body=b"x")
            bodies = [json.dumps(sample_payload("s3", bucket, key, size=1)) for key in keys]
            payload = sample_batch_of(bodies)
            started = time.perf_counter()
            answer = apps[width].handle_payload(payload)
            elapsed = time.perf_counter() - started
            if answer.is_error or answer.body != {"batchItemFailures": []}:
                raise BenchmarkError(f"P8: GROUP_CONCURRENCY={width} answered {answer.body}")
            return elapsed

        return run

    concurrent, sequential = interleaved([side(groups), side(1)], runs)
    return [
        Row(
            "P8",
            f"{groups} messages in {groups} folders, handler sleeps 1 s: "
            f"GROUP_CONCURRENCY={groups} vs 1",
            "s",
            concurrent,
            sequential,
            "<= 0.15x",
            0.15,
        )
    ]


def sample_batch_of(bodies: list[str]) -> dict[str, object]:
    """An SQS -> Lambda payload with one record per S3 notification ``bodies``."""
    template: Any = sample_payload("sqs", "template", "k")
    record: dict[str, Any] = template["Records"][0]
    records = [
        {**record, "messageId": f"message-{n}", "body": body} for n, body in enumerate(bodies)
    ]
    return {"Records": records}
