"""Run the performance benchmarks of docs/design.md §13 and print one table.

Every figure is a ratio against a baseline measured in the same run (interleaved, median of
``--runs``), against a local S3 endpoint (the moto server) in its own process. The exit
status is 0 even when a target is missed (this is a report); it is 1 only when a benchmark
crashed.

Usage: ``python bench/run.py [--quick] [--runs N] [--only P2,P5] [--aws-cli PATH]
[--ric-python PATH]`` (BENCHMARKS.md explains the options and the results).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import boto3
from backfill_bench import p9_backfill
from change_detection import p5_change_detection
from environments import prepare
from harness import Report, Row, prepare_environment, render, start_endpoint
from pull_scope import p7_per_object
from runtime_benchmarks import describe, p1_cold_start, p6_throughput
from s3_benchmarks import MiB, p2_invocation, p3_fan_in, p4_big_object, p8_group_concurrency

from bridge.logs import configure_logging

ALL = ("P1", "P2", "P3", "P4", "P5", "P6", "P7", "P8", "P9")


@dataclass(frozen=True)
class Sizes:
    """How big each benchmark is: §13's figures, or a smoke run's (``--quick``)."""

    p3_objects: int
    p3_object_bytes: int
    p4_bytes: int
    p5_files: int
    p5_bytes: int
    p6_invocations: int
    p7_folder: int

    @classmethod
    def full(cls) -> Sizes:
        return cls(2000, 10 * 1024, 1024 * MiB, 5000, 1024 * MiB, 1000, 10_000)

    @classmethod
    def quick(cls) -> Sizes:
        return cls(200, 10 * 1024, 64 * MiB, 500, 100 * MiB, 100, 1000)


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="small sizes and fewer runs: a smoke run (< 1 min)"
    )
    parser.add_argument(
        "--runs", type=int, help="timed runs of each side (default 5; 3 with --quick)"
    )
    parser.add_argument("--p4-runs", type=int, help="runs of P4 (default: --runs; 3 with --quick)")
    parser.add_argument(
        "--only",
        default=",".join(ALL),
        help=f"comma-separated ids to run (default {','.join(ALL)})",
    )
    parser.add_argument(
        "--aws-cli",
        default=os.environ.get("BENCH_AWS_CLI"),
        help="an aws command for P3 (b) (default: $BENCH_AWS_CLI, else awscli installed by "
        "the bench into .bench/awscli-venv)",
    )
    parser.add_argument(
        "--ric-python",
        default=os.environ.get("BENCH_RIC_PYTHON"),
        help="a Python with awslambdaric and boto3 for the baselines (b) of P1 and P6 "
        "(default: $BENCH_RIC_PYTHON, else awslambdaric installed by the bench into "
        ".bench/ric-venv)",
    )
    parser.add_argument(
        "--plain-moto",
        action="store_true",
        help="use moto exactly as shipped (examples/local_aws.py); its ranged GETs read the "
        "whole object, so P4 then grows with the square of the size",
    )
    options = parser.parse_args(argv)
    options.only = {part.strip().upper() for part in options.only.split(",") if part.strip()}
    unknown = options.only - set(ALL)
    if unknown:
        parser.error(f"unknown benchmark ids: {', '.join(sorted(unknown))}")
    if options.runs is None:
        options.runs = 3 if options.quick else 5
    if options.p4_runs is None:
        options.p4_runs = 3 if options.quick else options.runs
    if options.runs < 1 or options.p4_runs < 1:
        parser.error("--runs and --p4-runs must be at least 1")
    return options


def main(argv: list[str] | None = None) -> int:
    options = parse_arguments(argv)
    sizes = Sizes.quick() if options.quick else Sizes.full()
    runs: int = options.runs
    report = Report()
    started = time.monotonic()

    def bench(bench_id: str, target: str, action: Callable[[], list[Row]]) -> None:
        if bench_id not in options.only:
            return
        print(f"{bench_id}: running...", file=sys.stderr, flush=True)
        began = time.monotonic()
        try:
            report.rows.extend(action())
        except Exception as exc:
            traceback.print_exc()
            crash = Row.crash(bench_id, "(crashed)", target, f"{type(exc).__name__}: {exc}")
            report.rows.append(crash)
        print(f"{bench_id}: {time.monotonic() - began:.0f} s", file=sys.stderr, flush=True)

    with (
        tempfile.TemporaryDirectory(prefix="s3-event-bridge-bench-") as work,
        open(os.devnull, "w", encoding="utf-8") as devnull,
    ):
        workdir = Path(work)
        sides = prepare(options.ric_python, options.aws_cli)
        # The bridge's summary lines are formatted and written, as under Lambda, but not shown.
        configure_logging("text", "INFO", devnull)
        endpoint = start_endpoint(options.plain_moto)
        try:
            prepare_environment(endpoint.endpoint)
            s3 = boto3.client("s3")
            bench("P1", "<= 1.00x (a)", lambda: p1_cold_start(s3, runs, sides))
            bench("P2", "<= 1.10x", lambda: p2_invocation(s3, 5 * runs))
            aws = sides.aws_cli
            bench(
                "P3",
                "<= 1.05x",
                lambda: p3_fan_in(
                    s3,
                    sizes.p3_objects,
                    sizes.p3_object_bytes,
                    runs,
                    workdir,
                    str(aws.command) if aws.command else None,
                    aws.problem,
                ),
            )
            bench(
                "P4",
                "<= 1.05x",
                lambda: p4_big_object(
                    s3, sizes.p4_bytes, options.p4_runs, workdir, sides.bridge.python
                ),
            )
            bench(
                "P5",
                "<= 0.05x",
                lambda: p5_change_detection(workdir, sizes.p5_files, sizes.p5_bytes, runs),
            )
            bench("P6", "<= 1.00x", lambda: p6_throughput(sizes.p6_invocations, runs, sides))
            bench("P7", "<= 1.10x", lambda: p7_per_object(s3, sizes.p7_folder, 5 * runs))
            bench("P8", "<= 0.15x", lambda: p8_group_concurrency(s3, runs))
            p9_objects = 1000 if options.quick else 10_000
            bench("P9", "<= 1.50x", lambda: p9_backfill(p9_objects, runs, sides))
        finally:
            endpoint.stop()

    elapsed = time.monotonic() - started
    print(
        f"s3-event-bridge benchmarks (docs/design.md §13){' --quick' if options.quick else ''}: "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{'plain moto' if options.plain_moto else 'moto with ranged reads'} server, "
        f"{elapsed:.0f} s"
    )
    print(
        f"sides: bridge {describe(sides.bridge)}; awslambdaric {describe(sides.ric)}; "
        f"aws CLI {describe(sides.aws_cli)}"
    )
    print(render(report))
    return 1 if report.crashed else 0


if __name__ == "__main__":
    sys.exit(main())
