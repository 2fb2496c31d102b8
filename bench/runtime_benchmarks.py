"""P1 and P6 (docs/design.md §13): the Lambda runtime against a local Runtime API.

Both use ``tests/runtime_api.py`` (``FakeRuntimeApi``, in this process) and compare the
bridge's runtime with the baselines §13 names. P1 reuses ``bench/startup.py``'s measurements
for the bridge and baseline (a). Baseline (b) of P1 and P6's baseline run awslambdaric (AWS's
runtime interface client) with ``bench/ric_function.py``; it is not a dependency of the
project, so they need ``--ric-python``: a Python that has ``awslambdaric`` and ``boto3``.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from harness import AWS_ENV, BENCH, BRIDGE_VARIABLES, Row, interleaved

from bridge.samples import sample_payload
from tests.runtime_api import FakeRuntimeApi

BRIDGE_SCRIPT = Path(sys.executable).parent / "s3-event-bridge"
RIC_HANDLER = "ric_function.handler"


def ric_python(given: str | None) -> str | None:
    """The Python to run awslambdaric with: ``given``, else this one if it has it."""
    if given:
        return given
    return sys.executable if importlib.util.find_spec("awslambdaric") else None


def runtime_environment(api: FakeRuntimeApi, **extra: str) -> dict[str, str]:
    """A plain Lambda-like environment: fake credentials, the Runtime API, ``extra``."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in BRIDGE_VARIABLES and not name.startswith("AWS_")
    }
    env.update(AWS_ENV, AWS_LAMBDA_RUNTIME_API=api.address, **extra)
    return env


# --- P1 ------------------------------------------------------------------------------------


def p1_cold_start(runs: int, given_ric_python: str | None) -> list[Row]:
    """Process start -> first ``GET next``: the bridge, (a) boto3 alone, (b) awslambdaric."""
    what_a = "cold start -> first GET next vs python -c 'import boto3; client'"
    what_b = "cold start -> first GET next vs awslambdaric, S3 client at import"
    try:
        sys.path.insert(0, str(BENCH))
        import startup  # bench/startup.py, P1's own script
    except ImportError as exc:
        return [Row.missing("P1a", what_a, "<= 1.15x", f"bench/startup.py unusable: {exc}")]

    python = ric_python(given_ric_python)
    sides: list[Callable[[], float]] = [
        lambda: startup.time_bridge(BRIDGE_SCRIPT),
        startup.time_baseline,
    ]
    if python:
        sides.append(lambda: time_ric_start(python))
    results = interleaved(sides, runs)
    rows = [Row("P1a", what_a, "s", results[0], results[1], "<= 1.15x", 1.15)]
    if python:
        rows.append(Row("P1b", what_b, "s", results[0], results[2], "<= 1.00x", 1.00))
    else:
        rows.append(Row.missing("P1b", what_b, "<= 1.00x", "no awslambdaric (see --ric-python)"))
    return rows


def time_ric_start(python: str) -> float:
    """Seconds from process start to awslambdaric's first ``GET next``."""
    with FakeRuntimeApi() as api:
        started = time.monotonic()
        with running([python, "-m", "awslambdaric", RIC_HANDLER], runtime_environment(api)):
            api.wait_waiting(1, timeout=60)
            return api.next_requests()[0].at - started


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


# --- P6 ------------------------------------------------------------------------------------


def p6_throughput(invocations: int, runs: int, given_ric_python: str | None) -> list[Row]:
    """``invocations`` invocations whose event matches nothing, back to back."""
    what = f"{invocations:,} invocations matching nothing, through a local Runtime API"
    python = ric_python(given_ric_python)
    if not python:
        return [Row.missing("P6", what, "<= 1.00x", "no awslambdaric (see --ric-python)")]
    payload = sample_payload("sqs", "bench-p6", "incoming/nothing-matches.txt")
    with (
        FakeRuntimeApi() as bridge_api,
        FakeRuntimeApi() as ric_api,
        running(
            [str(BRIDGE_SCRIPT), sys.executable, "-c", "pass"],
            runtime_environment(bridge_api, MATCH_KEY="^never/"),
        ),
        running([python, "-m", "awslambdaric", RIC_HANDLER], runtime_environment(ric_api)),
    ):
        bridge_api.wait_waiting(1, timeout=60)
        ric_api.wait_waiting(1, timeout=60)
        bridges, baselines = interleaved(
            [
                lambda: time_batch(bridge_api, payload, invocations),
                lambda: time_batch(ric_api, payload, invocations),
            ],
            runs,
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
            note="time for the whole batch; a ratio <= 1.00x is a throughput >= 1.0x",
        )
    ]


def time_batch(api: FakeRuntimeApi, payload: object, count: int) -> float:
    """Seconds from queueing ``count`` invocations to the last answer; all must succeed."""
    started = time.perf_counter()
    ids = [api.enqueue(payload) for _ in range(count)]
    answers = [api.wait_answer(request_id) for request_id in ids]
    elapsed = time.perf_counter() - started
    failed = [answer for answer in answers if answer.kind != "response"]
    if failed:
        raise RuntimeError(f"P6: {len(failed)} invocations failed, e.g. {failed[0].raw[:200]!r}")
    return elapsed
