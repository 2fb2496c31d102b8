"""P1, P1' and P6 (docs/design.md §13): Lambda runtimes against a local Runtime API.

Every side is a process started from its own clean environment (``bench/environments.py``)
against ``tests/runtime_api.py`` (``FakeRuntimeApi``, in this process):

- **bridge**: ``s3-event-bridge <handler>`` installed from its wheel, as in the image;
- **(a)** ``bench/boto3_runtime.py``: ``import boto3; boto3.client('s3')`` then ``GET next``
  with ``http.client`` and the invocation's work (``bench/naive_work.py``), run by the
  bridge's venv Python (the same interpreter and boto3);
- **(b)** ``python -m awslambdaric ric_function.copy`` (P1, P1') or ``.noop`` (P6):
  AWS's runtime interface client with an S3 client made at import, in its own venv.

One cold run of each side gives both P1 (process start -> first ``GET next``) and P1'
(process start -> first response posted). The invocation is queued before the process
starts: one SQS event for one 1 KB object, whose folder every side lists, pulls, hands to
``bench/copy_handler.py`` (run by the same Python for every side) and pushes back.
"""

from __future__ import annotations

import itertools
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from environments import Environment, Environments
from harness import AWS_ENV, BENCH, BRIDGE_VARIABLES, Row, interleaved

from bridge.samples import sample_payload
from tests.runtime_api import FakeRuntimeApi

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

P1_BUCKET = "bench-p1"


class BenchmarkError(Exception):
    """A side did not do what it was meant to."""


def runtime_environment(api: FakeRuntimeApi, **extra: str) -> dict[str, str]:
    """A plain Lambda-like environment: fake credentials, the Runtime API, ``extra``."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in BRIDGE_VARIABLES and not name.startswith("AWS_")
    }
    env.update(AWS_ENV, AWS_LAMBDA_RUNTIME_API=api.address, **extra)
    if "AWS_ENDPOINT_URL" in os.environ:
        env["AWS_ENDPOINT_URL"] = os.environ["AWS_ENDPOINT_URL"]
    return env


@contextmanager
def running(command: Sequence[str], env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``command`` (from ``bench/``, output discarded) until the block ends; SIGTERM it."""
    process = subprocess.Popen(
        command, cwd=BENCH, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- P1 and P1' ----------------------------------------------------------------------------


def p1_cold_start(s3: S3Client, runs: int, sides: Environments) -> list[Row]:
    """Cold start to the first ``GET next`` (P1) and to the first response posted (P1')."""
    what_a = "cold start -> first GET next vs boto3 + client, same event"
    what_b = "cold start -> first GET next vs awslambdaric, S3 client at import"
    what_c = "cold start -> first response (1 SQS event, 1 KB, copy) vs awslambdaric"
    what_d = "cold start -> first response (1 SQS event, 1 KB, copy) vs boto3 script"
    what_f = "cold start -> first response: the bridge above the floor of its libraries"
    bridge = sides.bridge
    if bridge.python is None or bridge.command is None:
        note = bridge.problem or "no bridge environment"
        return [Row.missing(i, w, "-", note) for i, w in (("P1a", what_a), ("P1'", what_c))]
    s3.create_bucket(Bucket=P1_BUCKET)
    handler = f"{bridge.python} {BENCH / 'copy_handler.py'}"
    numbers = itertools.count()

    def side(name: str, command: list[str]) -> Callable[[], tuple[float, float]]:
        return lambda: cold_invocation(s3, name, next(numbers), command, handler)

    sides_by_name: dict[str, list[str]] = {
        "bridge": [str(bridge.command), *handler.split()],
        "boto3": [str(bridge.python), str(BENCH / "boto3_runtime.py")],
        "floor": [str(bridge.python), str(BENCH / "floor_runtime.py")],
    }
    ric = sides.ric
    if ric.python is not None:
        sides_by_name["ric"] = [str(ric.python), "-m", "awslambdaric", "ric_function.copy"]
    names = list(sides_by_name)
    results = interleaved([side(name, sides_by_name[name]) for name in names], runs)
    firsts = {name: [first for first, _ in results[names.index(name)]] for name in names}
    answers = {name: [answer for _, answer in results[names.index(name)]] for name in names}
    rows = [Row("P1a", what_a, "s", firsts["bridge"], firsts["boto3"], "<= 1.00x", 1.00)]
    if ric.python is not None:
        rows.append(Row("P1b", what_b, "s", firsts["bridge"], firsts["ric"], "<= 1.10x", 1.10))
        rows.append(Row("P1'", what_c, "s", answers["bridge"], answers["ric"], "<= 1.10x", 1.10))
    else:
        missing = ric.problem or "no awslambdaric"
        rows.append(Row.missing("P1b", what_b, "<= 1.10x", missing))
        rows.append(Row.missing("P1'", what_c, "<= 1.10x", missing))
    rows.append(
        Row("P1'a", what_d, "s", answers["bridge"], answers["boto3"], "(info)", 0.0, info=True)
    )
    rows.append(
        Row(
            "F1",
            what_f,
            "s",
            answers["bridge"],
            answers["floor"],
            "<= +15 ms",
            0.015,
            difference=True,
            note="floor: python + import boto3, pydantic_settings + one S3 client, then the "
            "same GET next, work and response (bench/floor_runtime.py); the figure is P1' of "
            "the bridge minus the floor's",
        )
    )
    return rows


def cold_invocation(
    s3: S3Client, side: str, number: int, command: list[str], handler: str
) -> tuple[float, float]:
    """Start ``command`` with one invocation queued; seconds to its first ``GET next`` and to
    its first response. The copied object must be in S3 afterwards."""
    prefix = f"{side}-{number:04d}/"
    body = os.urandom(1024)
    s3.put_object(Bucket=P1_BUCKET, Key=f"{prefix}data.bin", Body=body)
    payload = sample_payload("sqs", P1_BUCKET, f"{prefix}data.bin", size=len(body))
    with FakeRuntimeApi() as api:
        request_id = api.enqueue(payload)
        env = runtime_environment(api, BENCH_HANDLER=handler)
        started = time.monotonic()
        with running(command, env):
            answer = api.wait_answer(request_id, timeout=120)
        records = list(api.requests)
    if answer.kind != "response":
        raise BenchmarkError(f"P1: {side} answered {answer.kind}: {answer.raw[:300]!r}")
    copied = s3.get_object(Bucket=P1_BUCKET, Key=f"{prefix}copy-data.bin")["Body"].read()
    if copied != body:
        raise BenchmarkError(f"P1: {side} left a wrong copy under {prefix}")
    first_next = min(r.at for r in records if r.path.endswith("/invocation/next"))
    posted = min(r.at for r in records if r.method == "POST" and r.path.endswith("/response"))
    return first_next - started, posted - started


# --- P6 ------------------------------------------------------------------------------------


def p6_throughput(invocations: int, runs: int, sides: Environments) -> list[Row]:
    """``invocations`` invocations whose event matches nothing, back to back."""
    what = f"{invocations:,} invocations matching nothing, through a local Runtime API"
    bridge, ric = sides.bridge, sides.ric
    for environment, name in ((bridge, "bridge"), (ric, "awslambdaric")):
        if environment.python is None:
            note = environment.problem or f"no {name} environment"
            return [Row.missing("P6", what, "<= 1.00x", note)]
    assert bridge.command is not None and ric.python is not None
    payload = sample_payload("sqs", "bench-p6", "incoming/nothing-matches.txt")
    cpu: dict[str, list[float]] = {"bridge": [], "awslambdaric": []}
    with (
        FakeRuntimeApi() as bridge_api,
        FakeRuntimeApi() as ric_api,
        running(
            [str(bridge.command), str(bridge.python), "-c", "pass"],
            runtime_environment(bridge_api, MATCH_KEY="^never/"),
        ) as bridge_process,
        running(
            [str(ric.python), "-m", "awslambdaric", "ric_function.noop"],
            runtime_environment(ric_api),
        ) as ric_process,
    ):
        bridge_api.wait_waiting(1, timeout=60)
        ric_api.wait_waiting(1, timeout=60)

        def batch(api: FakeRuntimeApi, pid: int, name: str) -> Callable[[], float]:
            def run() -> float:
                before = cpu_seconds(pid)
                elapsed = time_batch(api, payload, invocations)
                cpu[name].append((cpu_seconds(pid) - before) / invocations)
                return elapsed

            return run

        bridges, baselines = interleaved(
            [
                batch(bridge_api, bridge_process.pid, "bridge"),
                batch(ric_api, ric_process.pid, "awslambdaric"),
            ],
            runs,
        )
    per_call = ", ".join(  # values[0] is the untimed warm-up batch
        f"{name} {statistics.median(values[1:]) * 1e6:.0f} µs" for name, values in cpu.items()
    )
    return [
        Row(
            "P6",
            what,
            "s",
            bridges,
            baselines,
            "<= 1.00x",
            1.00,
            note="time for the whole batch; a ratio <= 1.00x is a throughput >= 1.0x; CPU "
            f"per invocation of each runtime's process (median of the timed batches): {per_call}",
        )
    ]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds process ``pid`` has used (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def time_batch(api: FakeRuntimeApi, payload: object, count: int) -> float:
    """Seconds from queueing ``count`` invocations to the last answer; all must succeed."""
    started = time.perf_counter()
    ids = [api.enqueue(payload) for _ in range(count)]
    answers = [api.wait_answer(request_id) for request_id in ids]
    elapsed = time.perf_counter() - started
    failed = [answer for answer in answers if answer.kind != "response"]
    if failed:
        raise BenchmarkError(f"P6: {len(failed)} invocations failed, e.g. {failed[0].raw[:200]!r}")
    return elapsed


def describe(environment: Environment) -> str:
    """Where a side runs from, for the report's header."""
    if environment.python is None and environment.command is None:
        return f"n/a ({environment.problem})"
    return str(environment.command or environment.python)


if __name__ == "__main__":  # pragma: no cover - run through bench/run.py
    sys.exit("run bench/run.py --only P1,P6")
