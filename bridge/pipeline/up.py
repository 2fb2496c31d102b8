"""``pipeline up``: run a pipeline on this machine (docs/design.md §14).

Starts a moto server in its own process (``--local``, the default when ``AWS_ENDPOINT_URL``
is not set), creates the buckets, one queue with a dead-letter queue per step and the
bucket notifications, with ``--backfill`` sends each step's queue a notification for every
input already in its bucket (``bridge.backfill``), uploads ``--seed`` files, and runs each
step's ``consume`` workers as subprocesses configured with the step's variables, their log
lines prefixed with the step's name. Stops on SIGTERM/Ctrl-C (the workers drain first), or
with ``--until-idle`` once every queue is empty and nothing runs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import boto3

from bridge.local_aws import FAKE_AWS_ENV, LEAKY_VARIABLES, MOTO_MISSING, MotoServer, moto_available
from bridge.pipeline.model import Pipeline, StepConfig, s3_event_types

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

POLL_INTERVAL = 0.5
IDLE_ROUNDS = 2  # consecutive idle observations: a chain's next message is never missed
WAIT_TIME = 2  # the workers' long poll: short, so a stop is quick
FORCE_INTERVAL = 1.0  # between the two SIGINTs that make a worker stop its handlers


class UpError(Exception):
    """``pipeline up`` cannot start: exit 2 with this reason."""


@dataclass(frozen=True)
class UpOptions:
    """The options of ``pipeline up``."""

    local: bool = False
    seed: Path | None = None
    until_idle: bool = False
    timeout: float | None = None
    logs: Path | None = None
    log_format: str | None = None
    visibility_timeout: int = 30
    max_receive_count: int = 3
    backfill: bool = False


@dataclass
class _Queues:
    url: str
    arn: str
    dlq_url: str


def seed_files(folder: Path, buckets: tuple[str, ...]) -> list[tuple[str, str, Path]]:
    """``(bucket, key, file)`` for each file under ``folder/<bucket>/``, shallowest first
    (then by name), so a job's manifest lands before the files of its sub-folders."""
    if not folder.is_dir():
        raise UpError(f"--seed {folder}: not a folder")
    found = []
    for entry in sorted(folder.iterdir()):
        if not entry.is_dir() or entry.name not in buckets:
            raise UpError(
                f"--seed {folder}: {entry.name!r} is not a folder named after one of the "
                f"pipeline's buckets ({', '.join(buckets)}); lay files out as <bucket>/<key>"
            )
        for path in entry.rglob("*"):
            if path.is_file():
                key = path.relative_to(entry).as_posix()
                found.append((entry.name, key, path))
    return sorted(found, key=lambda item: (item[1].count("/"), item[0], item[1]))


def run_up(pipeline: Pipeline, options: UpOptions, out: IO[str] | None = None) -> int:
    """Run ``pipeline`` locally until stopped (or idle); the exit status."""
    stream = out if out is not None else sys.stderr
    seeds = seed_files(options.seed, pipeline.all_buckets) if options.seed else []
    local = options.local or not os.environ.get("AWS_ENDPOINT_URL")
    if local and not moto_available():
        raise UpError(f"pipeline up --local: {MOTO_MISSING}")
    requests = _StopRequests()
    stop = requests.event
    with ExitStack() as stack:
        stack.enter_context(_stop_on_signals(requests))
        environment = _base_environment(local)
        if local:
            server = stack.enter_context(MotoServer())
            environment.update(FAKE_AWS_ENV, AWS_ENDPOINT_URL=server.endpoint)
            _say(stream, f"local S3 + SQS (moto server) at {server.endpoint}")
        s3, sqs = _clients(environment)
        queues = _create_resources(pipeline, options, s3, sqs)
        _say(stream, f"buckets {', '.join(pipeline.all_buckets)}; a queue and DLQ per step")
        if options.backfill and not _backfill(pipeline, s3, sqs, queues, seeds, stream):
            return 1
        for bucket, key, path in seeds:
            s3.upload_file(str(path), bucket, key)
        if seeds:
            _say(stream, f"seeded {len(seeds)} files from {options.seed}")
        workers = _Workers(pipeline, options, environment, queues, stream)
        stack.callback(workers.stop)
        requests.force = workers.force
        workers.start()
        _say(stream, "workers started: " + ", ".join(s.name for s in pipeline.steps))
        return _watch(pipeline, options, sqs, queues, workers, stop, stream)
    raise AssertionError("unreachable")  # pragma: no cover - ExitStack does not swallow


def _backfill(
    pipeline: Pipeline,
    s3: S3Client,
    sqs: SQSClient,
    queues: dict[str, _Queues],
    seeds: list[tuple[str, str, Path]],
    stream: IO[str],
) -> bool:
    """Feed each step's queue the inputs already in its bucket; whether all were sent.

    Runs before the seed is uploaded, and leaves out the keys the seed will write: their
    uploads notify the steps themselves, so no object is fed twice.
    """
    from bridge.backfill import objects_to_backfill, scope_for_step, send_to_queue

    ok = True
    for step in pipeline.steps:
        seeded = frozenset(key for bucket, key, _ in seeds if bucket == step.spec.on.bucket)
        listing = objects_to_backfill(s3, scope_for_step(step, exclude=seeded))
        region = s3.meta.region_name or "us-east-1"
        summary = send_to_queue(listing, sqs, queues[step.name].url, region=region)
        for line in summary.lines():
            _say(stream, f"backfill {step.name}: {line}")
        ok = ok and summary.ok
    return ok


# One line at a time on the output: the driver's lines and the workers' pumped ones.
_OUTPUT = threading.RLock()  # re-entrant: a signal handler may print mid-line


def _say(stream: IO[str], message: str) -> None:
    with _OUTPUT:
        stream.write(f"pipeline up: {message}\n")
        stream.flush()


class _StopRequests:
    """The first SIGTERM/SIGINT asks for a drain; a second one forces the workers to stop
    their running handlers now (``force``, once the workers exist)."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.force: Callable[[], None] | None = None

    def __call__(self, signum: int, frame: object) -> None:
        if self.event.is_set() and self.force is not None:
            self.force()
        self.event.set()


@contextmanager
def _stop_on_signals(requests: _StopRequests) -> Iterator[None]:
    """SIGTERM and SIGINT go to ``requests`` (when running in the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    for sig in previous:
        signal.signal(sig, requests)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _base_environment(local: bool) -> dict[str, str]:
    """This process's environment without the bridge's configuration (each worker gets its
    step's own) and, for a local run, without what would point AWS calls elsewhere."""
    leaky = set(LEAKY_VARIABLES) if local else {v for v in LEAKY_VARIABLES if "AWS_" not in v}
    return {k: v for k, v in os.environ.items() if k not in leaky}


def _clients(environment: dict[str, str]) -> tuple[S3Client, SQSClient]:
    session = boto3.session.Session(
        aws_access_key_id=environment.get("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=environment.get("AWS_SECRET_ACCESS_KEY"),
        aws_session_token=environment.get("AWS_SESSION_TOKEN"),
        region_name=environment.get("AWS_REGION") or environment.get("AWS_DEFAULT_REGION"),
    )
    endpoint = environment.get("AWS_ENDPOINT_URL")
    return (
        session.client("s3", endpoint_url=endpoint),
        session.client("sqs", endpoint_url=endpoint),
    )


def _create_resources(
    pipeline: Pipeline, options: UpOptions, s3: S3Client, sqs: SQSClient
) -> dict[str, _Queues]:
    for bucket in pipeline.all_buckets:
        with suppress(s3.exceptions.BucketAlreadyOwnedByYou):
            s3.create_bucket(Bucket=bucket)
    queues = {step.name: _create_queues(pipeline, step, options, sqs) for step in pipeline.steps}
    for bucket in pipeline.buckets:
        configurations: list[Any] = []
        for step in pipeline.steps:
            if step.spec.on.bucket != bucket:
                continue
            rules = [
                {"Name": name, "Value": value}
                for name, value in (
                    ("prefix", step.spec.on.prefix),
                    ("suffix", step.spec.on.suffix),
                )
                if value
            ]
            configuration: dict[str, Any] = {
                "Id": f"{pipeline.name}-{step.name}",
                "QueueArn": queues[step.name].arn,
                "Events": s3_event_types(step.notification_events),
            }
            if rules:
                configuration["Filter"] = {"Key": {"FilterRules": rules}}
            configurations.append(configuration)
        s3.put_bucket_notification_configuration(
            Bucket=bucket, NotificationConfiguration={"QueueConfigurations": configurations}
        )
    return queues


def _create_queues(
    pipeline: Pipeline, step: StepConfig, options: UpOptions, sqs: SQSClient
) -> _Queues:
    name = f"{pipeline.name}-{step.name}"
    dlq_url = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = _arn(sqs, dlq_url)
    redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(options.max_receive_count)}
    url = sqs.create_queue(
        QueueName=name,
        Attributes={
            "VisibilityTimeout": str(options.visibility_timeout),
            "RedrivePolicy": json.dumps(redrive),
        },
    )["QueueUrl"]
    arn = _arn(sqs, url)
    # What a real S3 (or a faithful emulator) checks before it sends notifications.
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "s3.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": arn,
                "Condition": {"ArnLike": {"aws:SourceArn": f"arn:aws:s3:::{step.spec.on.bucket}"}},
            }
        ],
    }
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(policy)})
    return _Queues(url, arn, dlq_url)


def _arn(sqs: SQSClient, url: str) -> str:
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    return attributes["Attributes"]["QueueArn"]


def _count(sqs: SQSClient, url: str) -> int:
    """Messages in a queue: visible, in flight and delayed."""
    attributes = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=[
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ],
    )["Attributes"]
    return sum(int(value) for value in attributes.values())


class _Workers:
    """Each step's ``consume`` subprocess, its output pumped to the stream with a prefix."""

    def __init__(
        self,
        pipeline: Pipeline,
        options: UpOptions,
        environment: dict[str, str],
        queues: dict[str, _Queues],
        stream: IO[str],
    ) -> None:
        self.pipeline = pipeline
        self.options = options
        self.environment = environment
        self.queues = queues
        self.stream = stream
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.pumps: list[threading.Thread] = []

    def start(self) -> None:
        """Start one ``consume`` per step, in the step's working folder."""
        width = max(len(s.name) for s in self.pipeline.steps)
        if self.options.logs is not None:
            self.options.logs.mkdir(parents=True, exist_ok=True)
        for step in self.pipeline.steps:
            env = dict(self.environment)
            env.update(step.variables)
            if self.options.log_format:
                env["LOG_FORMAT"] = self.options.log_format
            # `python` in a handler command is this interpreter's, as in the image.
            env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
            command = [sys.executable, "-m", "bridge.cli", "consume"]
            command += ["--queue-url", self.queues[step.name].url]
            command += ["--workers", str(step.spec.workers), "--wait-time", str(WAIT_TIME)]
            process = subprocess.Popen(
                command,
                cwd=step.workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # only this driver stops it, after a drain
            )
            self.processes[step.name] = process
            prefix = f"{step.name:<{width}} | "
            log = self.options.logs / f"{step.name}.log" if self.options.logs else None
            pump = threading.Thread(target=self._pump, args=(process, prefix, log), daemon=True)
            pump.start()
            self.pumps.append(pump)

    def _pump(self, process: subprocess.Popen[bytes], prefix: str, log: Path | None) -> None:
        assert process.stdout is not None
        with ExitStack() as stack:
            copy = stack.enter_context(log.open("w", encoding="utf-8")) if log else None
            for raw in process.stdout:
                line = raw.decode("utf-8", errors="replace").rstrip("\n")
                with _OUTPUT:
                    self.stream.write(prefix + line + "\n")
                    self.stream.flush()
                if copy is not None:
                    copy.write(line + "\n")
                    copy.flush()

    def exited(self) -> list[tuple[str, int]]:
        """Steps whose worker has exited, with the exit status."""
        return [(n, p.returncode) for n, p in self.processes.items() if p.poll() is not None]

    def force(self) -> None:
        """Stop the running handlers now: ``consume`` forces on its second SIGINT.

        Called from a signal handler: the signals are sent from a thread, a moment apart,
        because two signals close together can reach a process as one.
        """
        _say(self.stream, "stop requested again: stopping running handlers")
        threading.Thread(target=self._interrupt_twice, daemon=True).start()

    def _interrupt_twice(self) -> None:
        for _ in range(2):
            for process in self.processes.values():
                if process.poll() is None:
                    process.send_signal(signal.SIGINT)
            time.sleep(FORCE_INTERVAL)

    def stop(self) -> None:
        """SIGTERM every worker (they finish running groups), wait, then collect the logs."""
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.options.visibility_timeout + WAIT_TIME + 10
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for pump in self.pumps:
            pump.join(timeout=10)


def _watch(
    pipeline: Pipeline,
    options: UpOptions,
    sqs: SQSClient,
    queues: dict[str, _Queues],
    workers: _Workers,
    stop: threading.Event,
    stream: IO[str],
) -> int:
    """Wait for a signal, idleness (``--until-idle``), the timeout or a dead worker."""
    started = time.monotonic()
    idle_rounds = 0
    reported: dict[str, int] = {}
    while not stop.wait(POLL_INTERVAL):
        dead = workers.exited()
        if dead:
            for name, status in dead:
                _say(stream, f"the workers of step {name} exited with status {status}")
            return 1
        for step in pipeline.steps:
            failed = _count(sqs, queues[step.name].dlq_url)
            if failed > reported.get(step.name, 0):
                _say(stream, f"step {step.name}: {failed} message(s) in its dead-letter queue")
                reported[step.name] = failed
        if options.until_idle:
            busy = any(_count(sqs, q.url) for q in queues.values())
            idle_rounds = 0 if busy else idle_rounds + 1
            if idle_rounds >= IDLE_ROUNDS:
                _say(stream, "idle: every queue is empty and no step is running")
                break
        if options.timeout is not None and time.monotonic() - started > options.timeout:
            _say(stream, f"stopping: not idle after {options.timeout:g} s")
            return 1
    else:
        _say(stream, "stop requested: draining the workers")
    failed_steps = [s.name for s in pipeline.steps if _count(sqs, queues[s.name].dlq_url)]
    if failed_steps:
        _say(stream, "messages reached the dead-letter queue of: " + ", ".join(failed_steps))
        return 1
    return 0
