"""make chaos: the reliability campaign. Prints one table of figures (RELIABILITY.md).

A moto server in its own process; between it and the bridge, fault-injecting proxies
(tests/faultproxy.py) that reset, truncate, stall and (S3 only) flip bytes in ~10 % of
responses; ``consume`` workers killed with kill -9 and restarted at random while they work;
inputs that re-trigger their own step (a deterministic one that must reach a fixed point, a
non-deterministic one that only the chain depth limit stops); hostile keys that try to
write outside the root folder. Every input must end with a correct output or in the DLQ.

Usage: ``python bench/chaos.py [--objects 300] [--fault-rate 0.1] [--seed N]
[--deadline 300]``. Exit status 0 when nothing was lost or corrupted, nothing escaped and
nothing was left behind; 1 otherwise. It stops by itself and leaves nothing running.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from chaos_handler import expected  # noqa: E402

from bridge.local_aws import FAKE_AWS_ENV, LEAKY_VARIABLES, MotoServer  # noqa: E402
from tests.faultproxy import FaultProxy, Faults  # noqa: E402

HANDLER = Path(__file__).resolve().parent / "chaos_handler.py"
BUCKET = "chaos"
MARK = "CHAOS_CAMPAIGN"  # in every consumer's environment, so every descendant can be found
MiB = 1024 * 1024


@dataclass(frozen=True)
class Plan:
    """The campaign's size and pace."""

    objects: int = 300
    loops: int = 6
    large: int = 3
    hostile: int = 6
    fault_rate: float = 0.10
    consumers: int = 3
    workers: int = 2
    kill_every: tuple[float, float] = (2.0, 5.0)
    visibility: int = 5
    max_receive: int = 10
    max_chain_depth: int = 4
    deadline: float = 300.0
    seed: int = 7


@dataclass
class Figures:
    """What the campaign measured."""

    inputs: int = 0
    correct: int = 0
    lost: int = 0
    corrupt: int = 0
    escapes: int = 0
    leftover_processes: int = 0
    leftover_folders: int = 0
    dlq: int = 0
    dlq_loops: int = 0
    loops_stopped: int = 0
    loops: int = 0
    hostile: int = 0
    kills: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    left_behind: list[str] = field(default_factory=list)
    responses: int = 0
    wall: float = 0.0

    @property
    def clean(self) -> bool:
        """0 lost, 0 corrupt, 0 escapes, nothing left behind, every loop stopped."""
        return not (
            self.lost
            or self.corrupt
            or self.escapes
            or self.leftover_processes
            or self.leftover_folders
            or self.loops_stopped != self.loops
        )


class Fleet:
    """``consume`` processes, each with its own log; killed and restarted at will."""

    def __init__(self, plan: Plan, queue_url: str, env: dict[str, str], logs: Path) -> None:
        self.plan, self.queue_url, self.env, self.logs = plan, queue_url, env, logs
        self.processes: list[subprocess.Popen[bytes]] = []
        self.started = 0
        for _ in range(plan.consumers):
            self.processes.append(self._start())

    def _start(self) -> subprocess.Popen[bytes]:
        self.started += 1
        command = [
            str(Path(sys.executable).parent / "s3-event-bridge"), "consume",
            "--queue-url", self.queue_url, "--workers", str(self.plan.workers),
            "--wait-time", "1",
        ]  # fmt: skip
        with (self.logs / f"consumer-{self.started:03d}.log").open("wb") as log:
            return subprocess.Popen(command, env=self.env, stdout=log, stderr=log)

    def kill_one(self, rng: random.Random) -> None:
        index = rng.randrange(len(self.processes))
        victim = self.processes[index]
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        self.processes[index] = self._start()

    def stop(self) -> None:
        for process in self.processes:
            process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=Plan.objects)
    parser.add_argument("--fault-rate", type=float, default=Plan.fault_rate)
    parser.add_argument("--seed", type=int, default=Plan.seed)
    parser.add_argument("--deadline", type=float, default=Plan.deadline, help="seconds")
    parser.add_argument("--keep", action="store_true", help="keep the campaign folder (logs)")
    options = parser.parse_args(argv)
    plan = Plan(
        objects=options.objects,
        fault_rate=options.fault_rate,
        seed=options.seed,
        deadline=options.deadline,
    )
    work = Path(tempfile.mkdtemp(prefix="chaos-campaign-"))
    try:
        figures = campaign(plan, work)
    finally:
        if not options.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(render(plan, figures))
    if options.keep:
        print(f"campaign folder (logs): {work}")
    return 0 if figures.clean else 1


def campaign(plan: Plan, work: Path) -> Figures:
    """Run the whole campaign in ``work``; everything it started is stopped on return."""
    figures = Figures()
    rng = random.Random(plan.seed)
    tmp, logs = work / "tmp", work / "logs"
    tmp.mkdir()
    logs.mkdir()
    started = time.monotonic()
    with MotoServer() as moto:
        session = boto3.session.Session(
            aws_access_key_id=FAKE_AWS_ENV["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=FAKE_AWS_ENV["AWS_SECRET_ACCESS_KEY"],
            region_name=FAKE_AWS_ENV["AWS_REGION"],
        )
        s3 = session.client("s3", endpoint_url=moto.endpoint)
        sqs = session.client("sqs", endpoint_url=moto.endpoint)
        queue_url, dlq_url = _set_up(s3, sqs, plan)
        rate = plan.fault_rate
        s3_faults = Faults(
            reset=rate * 0.3, truncate=rate * 0.3, stall=rate * 0.2, flip=rate * 0.2,
            stall_seconds=1.0, seed=plan.seed,
        )  # fmt: skip
        # No flipped bytes on SQS: over TLS they cannot happen, and SQS has no body checksum
        # the client verifies (a flipped key would be another key, not a fault to survive).
        sqs_faults = Faults(
            reset=rate * 0.4, truncate=rate * 0.3, stall=rate * 0.3,
            stall_seconds=1.0, seed=plan.seed + 1,
        )  # fmt: skip
        with (
            FaultProxy(moto.endpoint, s3_faults) as s3_proxy,
            FaultProxy(moto.endpoint, sqs_faults) as sqs_proxy,
        ):
            campaign_id = uuid.uuid4().hex
            env = _consumer_env(plan, tmp, s3_proxy.endpoint, sqs_proxy.endpoint, campaign_id)
            expected_results, loop_prefixes, hostile = _upload_inputs(s3, plan, rng)
            figures.inputs = len(expected_results) + len(loop_prefixes)
            figures.loops, figures.hostile = len(loop_prefixes), hostile
            fleet = Fleet(plan, queue_url, env, logs)
            try:
                deadline = started + plan.deadline
                # Chaos: kill -9 a worker every few seconds until every output is right.
                while time.monotonic() < deadline - 60 and not _all_correct(s3, expected_results):
                    time.sleep(rng.uniform(*plan.kill_every))
                    fleet.kill_one(rng)
                    figures.kills += 1
                # Drain: no more kills; wait until the queue is empty (loops end in the DLQ).
                _wait(lambda: _queue_empty(sqs, queue_url), deadline)
            finally:
                fleet.stop()
            for name, proxy in (("s3", s3_proxy), ("sqs", sqs_proxy)):
                for kind, count in proxy.injected().items():
                    figures.faults[f"{name} {kind}"] = count
                figures.responses += proxy.counts["responses"]
            _judge(figures, s3, sqs, dlq_url, expected_results, loop_prefixes, plan)
        figures.leftover_processes = _leftover_processes(campaign_id)
        figures.left_behind = sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*"))
        figures.leftover_folders = len(list(tmp.iterdir()))
        figures.escapes = _escapes(work)
    figures.wall = time.monotonic() - started
    return figures


def _set_up(s3: Any, sqs: Any, plan: Plan) -> tuple[str, str]:
    """Bucket -> notification -> queue (visibility, redrive to a DLQ)."""
    s3.create_bucket(Bucket=BUCKET)
    dlq_url = sqs.create_queue(QueueName="chaos-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])
    redrive = {
        "deadLetterTargetArn": dlq_arn["Attributes"]["QueueArn"],
        "maxReceiveCount": str(plan.max_receive),
    }
    queue_url = sqs.create_queue(
        QueueName="chaos",
        Attributes={
            "VisibilityTimeout": str(plan.visibility),
            "RedrivePolicy": json.dumps(redrive),
        },
    )["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    config = {"QueueArn": arn["Attributes"]["QueueArn"], "Events": ["s3:ObjectCreated:*"]}
    s3.put_bucket_notification_configuration(
        Bucket=BUCKET, NotificationConfiguration={"QueueConfigurations": [config]}
    )
    return queue_url, dlq_url


def _consumer_env(
    plan: Plan, tmp: Path, s3_endpoint: str, sqs_endpoint: str, campaign_id: str
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in LEAKY_VARIABLES}
    env.update(FAKE_AWS_ENV)
    env.pop("AWS_ENDPOINT_URL", None)
    env.update(
        AWS_ENDPOINT_URL_S3=s3_endpoint,
        AWS_ENDPOINT_URL_SQS=sqs_endpoint,
        HANDLER_COMMAND=f"{sys.executable} {HANDLER}",
        MAX_CHAIN_DEPTH=str(plan.max_chain_depth),
        TMPDIR=str(tmp),
        LOG_LEVEL="INFO",
        **{MARK: campaign_id},
    )
    return env


def _upload_inputs(
    s3: Any, plan: Plan, rng: random.Random
) -> tuple[dict[str, str], list[str], int]:
    """Put the inputs; returns {result key: expected text}, the loop prefixes, hostile count."""
    bodies: dict[str, bytes] = {}
    normal = plan.objects - plan.loops
    for index in range(normal):
        size = 9 * MiB + rng.randrange(MiB) if index < plan.large else rng.randrange(1, 64 * 1024)
        bodies[f"in/{index:04d}/input.bin"] = rng.randbytes(size)
    loops = [f"loop/{index:02d}/" for index in range(plan.loops)]
    for prefix in loops:
        bodies[f"{prefix}input.bin"] = rng.randbytes(100)
    # Keys that map outside the root of the group listing them: skipped, never written.
    hostile = {
        f"in/{index:04d}/{'../' * (2 + index)}ESCAPE-{index}": b"escape"
        for index in range(plan.hostile)
    }
    hostile["in/0000/a/../../../ESCAPE-nested"] = b"escape"
    results = {
        key.replace("input.bin", "result.txt"): expected(body)
        for key, body in bodies.items()
        if key.startswith("in/")
    }
    items = list(hostile.items()) + list(bodies.items())
    rng.shuffle(items)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda item: s3.put_object(Bucket=BUCKET, Key=item[0], Body=item[1]), items))
    return results, loops, len(hostile)


def _all_correct(s3: Any, expected_results: dict[str, str]) -> bool:
    found = _results(s3)
    return all(found.get(key) == text for key, text in expected_results.items())


def _results(s3: Any, prefix: str = "in/") -> dict[str, str]:
    """The text of every result.txt under ``prefix`` (read directly, without faults)."""
    keys = [
        entry["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        for entry in page.get("Contents", [])
        if entry["Key"].endswith("/result.txt")
    ]

    def read(key: str) -> tuple[str, str]:
        body: bytes = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        return key, body.decode("utf-8", errors="replace")

    with ThreadPoolExecutor(8) as pool:
        return dict(pool.map(read, keys))


def _queue_empty(sqs: Any, url: str) -> bool:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return all(int(value) == 0 for value in attributes.values())


def _wait(predicate: Callable[[], bool], deadline: float) -> bool:
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(1.0)
    return False


def _dlq_keys(sqs: Any, url: str) -> list[str]:
    """The object keys of every message in the DLQ (each read once)."""
    keys: list[str] = []
    while True:
        messages = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0, VisibilityTimeout=300
        ).get("Messages", [])
        if not messages:
            return keys
        for message in messages:
            body = json.loads(message["Body"])
            keys += [record["s3"]["object"]["key"] for record in body.get("Records", [])]


def _judge(
    figures: Figures,
    s3: Any,
    sqs: Any,
    dlq_url: str,
    expected_results: dict[str, str],
    loop_prefixes: list[str],
    plan: Plan,
) -> None:
    from urllib.parse import unquote_plus

    found = _results(s3)
    dead = [unquote_plus(key) for key in _dlq_keys(sqs, dlq_url)]
    figures.dlq = len(dead)
    figures.dlq_loops = sum(key.startswith("loop/") for key in dead)
    dead_prefixes = {key.rsplit("/", 1)[0] + "/" for key in dead}
    for key, text in expected_results.items():
        if found.get(key) == text:
            figures.correct += 1
        elif key in found:
            figures.corrupt += 1
        elif key.rsplit("/", 1)[0] + "/" not in dead_prefixes:
            figures.lost += 1
    # A loop stopped: its chain never went past the depth limit, and nothing is in flight.
    for prefix in loop_prefixes:
        head = s3.head_object(Bucket=BUCKET, Key=f"{prefix}result.txt")
        depth = int(head["Metadata"].get("bridge-depth", "0"))
        figures.loops_stopped += depth <= plan.max_chain_depth


def _leftover_processes(campaign_id: str) -> int:
    """Processes still carrying the campaign's mark, after a grace for the guards to act.

    Whatever is found is counted, then killed, so the campaign leaves nothing running.
    """
    needle = f"{MARK}={campaign_id}".encode()

    def marked() -> list[int]:
        pids = []
        for entry in os.listdir("/proc"):
            if entry.isdigit() and int(entry) != os.getpid():
                try:
                    environ = Path(f"/proc/{entry}/environ").read_bytes()
                except OSError:
                    continue
                if needle in environ.split(b"\0"):
                    pids.append(int(entry))
        return pids

    _wait(lambda: not marked(), time.monotonic() + 15)
    left = marked()
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return len(left)


def _escapes(work: Path) -> int:
    """Files named like a hostile key's target anywhere they could have landed."""
    places = {work, Path(tempfile.gettempdir()), *work.parents}
    found = [p for p in work.rglob("ESCAPE-*")]
    for place in places - {work}:
        found += list(place.glob("ESCAPE-*"))
    return len(found)


def render(plan: Plan, figures: Figures) -> str:
    """The figures as a Markdown table, with the machine and the campaign's parameters."""
    faults = sum(figures.faults.values())
    rows = [
        (
            f"inputs ({figures.inputs - figures.loops} with an output to check, "
            f"{figures.loops} looping)",
            figures.inputs,
        ),
        ("outputs correct", figures.correct),
        ("lost (no correct output, not in the DLQ)", figures.lost),
        ("corrupt (an output with wrong content)", figures.corrupt),
        ("escapes (files written outside a root folder)", figures.escapes),
        ("leftover processes", figures.leftover_processes),
        ("leftover temporary folders", figures.leftover_folders),
        (f"DLQ messages (of which looping inputs: {figures.dlq_loops})", figures.dlq),
        ("self-triggering loops stopped", f"{figures.loops_stopped} / {figures.loops}"),
        ("hostile keys", figures.hostile),
        ("consume workers killed with kill -9", figures.kills),
        (
            "faults injected / responses",
            f"{faults} / {figures.responses} "
            + "("
            + ", ".join(f"{k} {v}" for k, v in figures.faults.items() if v)
            + ")",
        ),
        ("wall time", f"{figures.wall:.0f} s"),
    ]
    lines = [
        f"chaos campaign: {plan.objects} objects, fault rate {plan.fault_rate:.0%}, "
        f"{plan.consumers} consume processes x {plan.workers} workers, seed {plan.seed}",
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}",
        "",
        "| figure | value |",
        "| --- | --- |",
        *(f"| {name} | {value} |" for name, value in rows),
        "",
        "verdict: " + ("clean" if figures.clean else "NOT CLEAN"),
    ]
    if figures.left_behind:
        lines += ["", "left in TMPDIR:", *figures.left_behind[:20]]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
