"""P1 (docs/design.md §13): cold start of the Lambda runtime, process start -> first ``GET next``.

Measured side by side in one run, median of N (default 5) interleaved runs, against a local
Runtime API (``tests/runtime_api.py``) in this process:

- bridge: ``s3-event-bridge python handler.py`` with ``AWS_LAMBDA_RUNTIME_API`` set, from
  process start until its first ``GET /2018-06-01/runtime/invocation/next`` arrives (the
  configuration, the compiled regexes and jq program and the S3 client are all ready then);
- baseline (a): ``python -c "import boto3; boto3.client('s3')"``, from process start to exit.

Usage: ``python bench/startup.py [--runs N]`` (from the repository, in its virtual
environment). Prints one table; the ratio is bridge / baseline.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.runtime_api import FakeRuntimeApi  # noqa: E402

BASELINE = "import boto3; boto3.client('s3')"


def environment(**extra: str) -> dict[str, str]:
    """A plain AWS-like environment: fake credentials and a region, nothing of the bridge's."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AWS_", "MATCH_", "PULL_", "EXECUTION_", "LOG_", "HANDLER_"))
    }
    env.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_REGION="us-east-1",
        AWS_DEFAULT_REGION="us-east-1",
        **extra,
    )
    return env


def time_baseline() -> float:
    """Seconds from process start to exit of the boto3 baseline."""
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", BASELINE], env=environment(), check=True)
    return time.monotonic() - started


def time_bridge(script: Path, **extra: str) -> float:
    """Seconds from process start to the runtime's first ``GET next``."""
    with FakeRuntimeApi() as api:
        env = environment(AWS_LAMBDA_RUNTIME_API=api.address, **extra)
        started = time.monotonic()
        process = subprocess.Popen(
            [str(script), "python", "handler.py"], env=env, stderr=subprocess.DEVNULL
        )
        try:
            api.wait_waiting(1, timeout=60)
            first = api.next_requests()[0].at
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
    return first - started


def main() -> int:
    """Run the measurement and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of each (default 5)")
    options = parser.parse_args()
    script = Path(sys.executable).parent / "s3-event-bridge"
    if not script.exists():
        parser.error(f"{script} is missing: install the package in this environment first")

    time_baseline(), time_bridge(script)  # warm the file cache; not counted
    rows: dict[str, list[float]] = {
        "bridge: start -> first GET next": [],
        "bridge, AWS_LAMBDA_MAX_CONCURRENCY=4": [],
        "(a) python -c \"import boto3; boto3.client('s3')\"": [],
    }
    names = list(rows)
    for _ in range(options.runs):
        rows[names[0]].append(time_bridge(script))
        rows[names[1]].append(time_bridge(script, AWS_LAMBDA_MAX_CONCURRENCY="4"))
        rows[names[2]].append(time_baseline())

    baseline = statistics.median(rows[names[2]])
    print(
        f"P1 cold start, median of {options.runs} (Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, {platform.machine()})"
    )
    print(f"| {'what':<50} | median ms | min ms | max ms | ratio to (a) |")
    print(f"| {'-' * 50} | --------: | -----: | -----: | -----------: |")
    for name, values in rows.items():
        median = statistics.median(values)
        print(
            f"| {name:<50} | {median * 1000:9.0f} | {min(values) * 1000:6.0f} "
            f"| {max(values) * 1000:6.0f} | {median / baseline:11.2f}x |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
