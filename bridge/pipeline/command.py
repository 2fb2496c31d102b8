"""The ``pipeline`` mode: ``check | graph | env | up | status | render`` on a pipeline file
(docs/design.md §14). A thin driver over the pure modules of this package."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from bridge.pipeline.analysis import Level, analyse
from bridge.pipeline.model import Pipeline, PipelineError, load_pipeline

PROG = "s3-event-bridge pipeline"
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The sub-commands and their options."""
    commands = parser.add_subparsers(dest="action", metavar="COMMAND", required=True)
    check = commands.add_parser("check", help="validate; print triggers, edges, loops, overlaps")
    check.add_argument("file", metavar="FILE", help="the pipeline file (YAML)")
    graph = commands.add_parser("graph", help="the pipeline as Mermaid text")
    graph.add_argument("file", metavar="FILE")
    env = commands.add_parser("env", help="a step's variables as an env file")
    env.add_argument("file", metavar="FILE")
    env.add_argument("step", metavar="STEP", help="the step's name")
    up = commands.add_parser("up", help="run the pipeline locally")
    up.add_argument("file", metavar="FILE")
    up.add_argument(
        "--local",
        action="store_true",
        help="start a moto server (the default when AWS_ENDPOINT_URL is not set)",
    )
    up.add_argument("--seed", metavar="DIR", type=Path, help="upload DIR/<bucket>/<key> first")
    up.add_argument(
        "--backfill",
        action="store_true",
        help="first feed each step the inputs already in its bucket (as if just uploaded)",
    )
    up.add_argument(
        "--until-idle",
        action="store_true",
        help="exit once every queue is empty and nothing runs (1 if a message reached a DLQ)",
    )
    up.add_argument("--timeout", type=float, metavar="S", help="give up (exit 1) after S seconds")
    up.add_argument("--logs", metavar="DIR", type=Path, help="also write DIR/<step>.log")
    up.add_argument("--log-format", choices=("text", "json"), help="LOG_FORMAT of every step")
    up.add_argument(
        "--visibility-timeout", type=int, default=30, metavar="S", help="of each queue (30)"
    )
    up.add_argument(
        "--max-receive-count", type=int, default=3, metavar="N", help="receives before the DLQ (3)"
    )
    status = commands.add_parser(
        "status", help="per step: unprocessed inputs and orphaned outputs, from S3 alone"
    )
    status.add_argument("file", metavar="FILE")
    status.add_argument("--json", action="store_true", help="the findings as JSON")
    status.add_argument(
        "--fix",
        action="store_true",
        help="send the unprocessed inputs to their step's queue; remove the orphans' outputs",
    )
    render = commands.add_parser("render", help="deployment: AWS SAM template or Kubernetes")
    render.add_argument("file", metavar="FILE")
    render.add_argument("--format", choices=("sam", "k8s"), required=True)
    render.add_argument("--image", help="k8s: the image (built FROM the bridge's base image)")
    render.add_argument("--region", help="k8s: the Region of the queues")
    render.add_argument("--account-id", help="k8s: the AWS account of the queues and roles")


def run(options: argparse.Namespace) -> int:
    """Run one sub-command; invalid files exit 2 with every problem on stderr."""
    try:
        pipeline = load_pipeline(options.file)
    except PipelineError as exc:
        for problem in exc.problems:
            print(f"{PROG}: {exc.source}: {problem}", file=sys.stderr)
        return EXIT_USAGE
    action = options.action
    if action == "check":
        report = analyse(pipeline)
        print(report.render())
        return report.exit_code
    if action == "graph":
        from bridge.pipeline.graph import mermaid

        sys.stdout.write(mermaid(pipeline))
        return EXIT_OK
    if action == "env":
        return _env(pipeline, options.step)
    if action == "status":
        return _status(pipeline, options)
    report = analyse(pipeline)
    if report.exit_code == EXIT_USAGE:
        print(report.render(), file=sys.stderr)
        print(f"{PROG} {action}: refused: 'pipeline check' reports errors", file=sys.stderr)
        return EXIT_USAGE
    for finding in report.findings:
        if finding.level is Level.WARNING:
            print(f"{PROG} {action}: {finding}", file=sys.stderr)
    if action == "render":
        return _render(pipeline, options)
    return _up(pipeline, options)


def _env(pipeline: Pipeline, name: str) -> int:
    try:
        step = pipeline.step(name)
    except KeyError as exc:
        print(f"{PROG} env: {exc.args[0]}", file=sys.stderr)
        return EXIT_USAGE
    print(f"# pipeline {pipeline.name}, step {step.name}: s3-event-bridge configuration")
    print(f"# (docker run --env-file); run it in {step.workdir}")
    for key, value in step.variables.items():
        print(f"{key}={value}")
    return EXIT_OK


def _status(pipeline: Pipeline, options: argparse.Namespace) -> int:
    """Exit 0 when every step is clean (or ``--fix`` fixed everything), 1 otherwise."""
    from botocore.exceptions import BotoCoreError, ClientError

    from bridge.awserrors import describe
    from bridge.clients import s3_client, sqs_client
    from bridge.pipeline.status import fix_step, render_table, step_status

    s3 = s3_client()
    try:
        statuses = [step_status(step, s3) for step in pipeline.steps]
        if options.json:
            print(json.dumps([s.document() for s in statuses], indent=2, ensure_ascii=False))
        else:
            print(render_table(statuses))
        if not options.fix:
            return EXIT_OK if all(s.clean for s in statuses) else EXIT_FAILED
        sqs, region = sqs_client(), s3.meta.region_name
        ok = True
        for step, status in zip(pipeline.steps, statuses, strict=True):
            if status.clean:
                continue
            fixed = fix_step(pipeline, step, status, s3, sqs, region)
            if fixed.sent is not None:
                ok = ok and fixed.sent.ok
                for line in fixed.sent.lines():
                    print(f"{step.name}: fix: {line}", file=sys.stderr)
            removal = fixed.removal
            if status.orphans:
                print(
                    f"{step.name}: fix: {len(status.orphans)} orphans: {len(removal.removed)} "
                    f"outputs removed, {len(removal.gone)} already gone, {len(removal.kept)} "
                    "kept (changed since the bridge wrote them)",
                    file=sys.stderr,
                )
    except (BotoCoreError, ClientError) as exc:
        print(f"{PROG} status: {describe(exc).message}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK if ok else EXIT_FAILED


def _render(pipeline: Pipeline, options: argparse.Namespace) -> int:
    import yaml

    documents: list[Any]
    if options.format == "sam":
        from bridge.pipeline.render_sam import render_sam

        documents = [render_sam(pipeline)]
    else:
        from bridge.pipeline.render_k8s import K8sOptions, render_k8s

        given = {
            field: value
            for field, value in (
                ("image", options.image),
                ("region", options.region),
                ("account_id", options.account_id),
            )
            if value
        }
        documents = render_k8s(pipeline, K8sOptions(**given))
    # Through JSON first: plain types only, so the YAML has no Python tags.
    plain = json.loads(json.dumps(documents))
    sys.stdout.write(
        yaml.safe_dump_all(
            plain, sort_keys=False, width=100, allow_unicode=True, explicit_start=True
        )
    )
    return EXIT_OK


def _up(pipeline: Pipeline, options: argparse.Namespace) -> int:
    from bridge.pipeline.up import UpError, UpOptions, run_up

    try:
        return run_up(
            pipeline,
            UpOptions(
                local=options.local,
                seed=options.seed,
                until_idle=options.until_idle,
                timeout=options.timeout,
                logs=options.logs,
                log_format=options.log_format,
                visibility_timeout=options.visibility_timeout,
                max_receive_count=options.max_receive_count,
                backfill=options.backfill,
            ),
        )
    except UpError as exc:
        print(f"{PROG} up: {exc}", file=sys.stderr)
        return EXIT_USAGE
