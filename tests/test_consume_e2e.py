"""End to end over real HTTP: bucket notifications -> SQS -> `s3-event-bridge consume`.

The moto server runs in its own process; S3 delivers notifications (with prefix/suffix
filters) to SQS queues with DLQs; the consumer runs as a subprocess with real handlers.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from env_file import read_env_file

from tests.conftest import EXAMPLES, MotoServer, bridge_command, subprocess_env
from tests.helpers import wait_for

HANDLERS = Path(__file__).parent / "e2e_handlers"
COUNTED = HANDLERS / "counted.py"


@dataclass
class Step:
    """A bucket whose notifications feed a queue (with a DLQ), as a deployment would."""

    s3: Any
    sqs: Any
    bucket: str
    queue_url: str
    dlq_url: str

    def depth(self, url: str | None = None) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=url or self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(
            attributes["ApproximateNumberOfMessagesNotVisible"]
        )

    def put(self, key: str, body: bytes | str) -> None:
        self.s3.put_object(
            Bucket=self.bucket, Key=key, Body=body.encode() if isinstance(body, str) else body
        )

    def read(self, key: str) -> bytes | None:
        try:
            body: bytes = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except self.s3.exceptions.NoSuchKey:
            return None
        return body

    def versions(self, key: str) -> list[dict[str, Any]]:
        listed = self.s3.list_object_versions(Bucket=self.bucket, Prefix=key)
        return [v for v in listed.get("Versions", []) if v["Key"] == key]


def make_step(
    s3: Any,
    sqs: Any,
    name: str,
    prefix: str = "",
    suffix: str = "",
    visibility: int = 10,
    max_receive: int = 2,
) -> Step:
    """Bucket -> notification (prefix/suffix filter) -> queue with DLQ and redrive policy."""
    s3.create_bucket(Bucket=name)
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    dlq_url = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    queue_url = sqs.create_queue(
        QueueName=name,
        Attributes={
            "VisibilityTimeout": str(visibility),
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receive)}
            ),
        },
    )["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    rules = [{"Name": "prefix", "Value": prefix}] if prefix else []
    rules += [{"Name": "suffix", "Value": suffix}] if suffix else []
    config: dict[str, Any] = {"QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*"]}
    if rules:
        config["Filter"] = {"Key": {"FilterRules": rules}}
    s3.put_bucket_notification_configuration(
        Bucket=name, NotificationConfiguration={"QueueConfigurations": [config]}
    )
    return Step(s3, sqs, name, queue_url, dlq_url)


class Consumer:
    """`s3-event-bridge consume` as a subprocess; its stderr goes to a log file.

    ``handler`` may be empty: the command then comes from HANDLER_COMMAND in ``env``.
    """

    def __init__(
        self,
        step: Step,
        log: Path,
        handler: list[str],
        *args: str,
        cwd: Path | None = None,
        **env: str,
    ):
        self.log = log
        self._stream = log.open("wb")
        command = [
            *bridge_command(), "consume", "--queue-url", step.queue_url, "--wait-time", "1",
            *args, *(["--", *handler] if handler else []),
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command,
            cwd=cwd,
            env=subprocess_env(**env),
            stdout=subprocess.DEVNULL,
            stderr=self._stream,
        )

    def stop(self) -> int:
        """One SIGTERM (if still running), then wait for the drain to end; the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.wait()

    def wait(self, timeout: float = 60) -> int:
        """Wait for the process to exit by itself (no signal sent); the exit status."""
        try:
            code = self.process.wait(timeout=timeout)
        finally:
            self._stream.close()
        return code

    def signal_seen(self, sig: signal.Signals, line: str) -> None:
        """Send ``sig`` and wait until the log shows ``line`` (the consumer handled it)."""
        before = self.output().count(line)
        self.process.send_signal(sig)
        wait_for(lambda: self.output().count(line) > before, what=f"{line!r} after {sig.name}")

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


@pytest.fixture
def consumers() -> Iterator[list[Consumer]]:
    started: list[Consumer] = []
    yield started
    for consumer in started:
        if consumer.process.poll() is None:
            consumer.process.kill()
            consumer.process.wait()


def runs(path: Path) -> list[list[str]]:
    """The triggering keys of every handler run so far."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_single_step(
    aws: MotoServer, s3: Any, sqs: Any, tmp_path: Path, consumers: list[Consumer]
) -> None:
    """Upload -> notification -> consumer -> output; the TestEvent and the event are deleted."""
    step = make_step(s3, sqs, "single-step", prefix="in/", suffix=".txt")
    runs_file = tmp_path / "runs.jsonl"
    consumer = Consumer(
        step, tmp_path / "consumer.log", [sys.executable, str(COUNTED)],
        RUNS_FILE=str(runs_file), MATCH_KEY=r"^in/[^/]+\.txt$",
    )  # fmt: skip
    consumers.append(consumer)
    step.put("in/red flower+1.txt", "hello")

    assert wait_for(lambda: step.read("in/out/red flower+1.txt"), what="output") == b"HELLO"
    wait_for(lambda: step.depth() == 0, what="queue drained")
    assert consumer.stop() == 0
    assert runs(runs_file) == [["in/red flower+1.txt"]]
    assert step.depth(step.dlq_url) == 0
    assert "batch done" in consumer.output()


def test_failing_handler_reaches_dlq_and_worker_stays_up(
    aws: MotoServer, s3: Any, sqs: Any, tmp_path: Path, consumers: list[Consumer]
) -> None:
    """A message whose handler always fails is retried maxReceiveCount times, then DLQ'd."""
    step = make_step(s3, sqs, "failing-step", prefix="in/", visibility=1, max_receive=2)
    runs_file = tmp_path / "runs.jsonl"
    consumer = Consumer(
        step, tmp_path / "consumer.log", [sys.executable, str(COUNTED)],
        RUNS_FILE=str(runs_file), BEHAVIOUR="fail-bad", MATCH_KEY=r"^in/[^/]+$",
    )  # fmt: skip
    consumers.append(consumer)
    step.put("in/bad.txt", "x")

    wait_for(lambda: step.depth(step.dlq_url) == 1, timeout=45, what="message in the DLQ")
    dead = sqs.receive_message(QueueUrl=step.dlq_url, MaxNumberOfMessages=1)["Messages"][0]
    assert "in%2Fbad.txt" in dead["Body"]  # moto URL-encodes keys, "/" included
    assert [r for r in runs(runs_file) if r == ["in/bad.txt"]] == [["in/bad.txt"]] * 2
    assert step.read("in/out/bad.txt") is None

    # The worker is still up and processes the next message normally.
    assert consumer.process.poll() is None
    step.put("in/good.txt", "fine")
    assert wait_for(lambda: step.read("in/out/good.txt"), what="good output") == b"FINE"
    assert consumer.stop() == 0
    assert "handler exited with status 1" in consumer.output()


POISON_SIZE_BODY = (
    '{"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Put",'
    '"s3":{"bucket":{"name":"b"},"object":{"key":"in/a","size":"\u00b2"}}}]}'
)


def test_poison_size_message_does_not_stop_the_consumer(
    aws: MotoServer, s3: Any, sqs: Any, tmp_path: Path, consumers: list[Consumer]
) -> None:
    """A size "²" (a digit to str.isdigit, not to int) once killed every worker silently."""
    step = make_step(s3, sqs, "poison-step", prefix="in/", visibility=1, max_receive=2)
    runs_file = tmp_path / "runs.jsonl"
    consumer = Consumer(
        step, tmp_path / "consumer.log", [sys.executable, str(COUNTED)],
        RUNS_FILE=str(runs_file), MATCH_KEY=r"^in/[^/]+$",
    )  # fmt: skip
    consumers.append(consumer)
    sqs.send_message(QueueUrl=step.queue_url, MessageBody=POISON_SIZE_BODY)
    # Bucket "b" does not exist: the group fails like any other, and the message is DLQ'd.
    wait_for(lambda: step.depth(step.dlq_url) == 1, timeout=45, what="poison message in the DLQ")

    assert consumer.process.poll() is None
    step.put("in/good.txt", "fine")
    assert wait_for(lambda: step.read("in/out/good.txt"), what="good output") == b"FINE"
    assert consumer.stop() == 0
    assert "NoSuchBucket" in consumer.output()


def test_long_handler_is_not_run_twice(
    aws: MotoServer, s3: Any, sqs: Any, tmp_path: Path, consumers: list[Consumer]
) -> None:
    """A handler running 3x the visibility timeout is not redelivered: the heartbeat holds it."""
    step = make_step(s3, sqs, "slow-step", prefix="in/", visibility=2)
    runs_file = tmp_path / "runs.jsonl"
    consumer = Consumer(
        step, tmp_path / "consumer.log", [sys.executable, str(COUNTED)], "--workers", "2",
        RUNS_FILE=str(runs_file), SLEEP="6", MATCH_KEY=r"^in/[^/]+$",
    )  # fmt: skip
    consumers.append(consumer)
    step.put("in/slow.txt", "zzz")

    assert wait_for(lambda: step.read("in/out/slow.txt"), timeout=45, what="output") == b"ZZZ"
    wait_for(lambda: step.depth() == 0, what="queue drained")
    assert consumer.stop() == 0
    assert runs(runs_file) == [["in/slow.txt"]]


def gated_consumer(
    step: Step, tmp_path: Path, consumers: list[Consumer], match_key: str = ""
) -> tuple[Consumer, Path, Path]:
    """A consumer whose handler (``counted.py``) records its run, then waits at a gate file.

    Returns the consumer, the runs file and the gate: touch the gate to let the handler end.
    """
    runs_file, gate = tmp_path / "runs.jsonl", tmp_path / "gate"
    consumer = Consumer(
        step, tmp_path / "consumer.log", [sys.executable, str(COUNTED)],
        RUNS_FILE=str(runs_file), GATE=str(gate), MATCH_KEY=match_key,
    )  # fmt: skip
    consumers.append(consumer)
    return consumer, runs_file, gate


def test_sigterm_during_handler_loses_nothing(
    aws: MotoServer, s3: Any, sqs: Any, tmp_path: Path, consumers: list[Consumer]
) -> None:
    """SIGTERM while a handler runs: the group finishes, its output lands, the message goes."""
    step = make_step(s3, sqs, "stopping-step", prefix="in/", visibility=20)
    consumer, runs_file, gate = gated_consumer(step, tmp_path, consumers, match_key=r"^in/[^/]+$")
    step.put("in/precious.txt", "keep me")
    wait_for(lambda: runs(runs_file), what="handler started")

    consumer.signal_seen(signal.SIGTERM, "stop requested: finishing running groups")
    gate.touch()  # the handler ends only now, well after the SIGTERM was handled
    assert consumer.wait() == 0
    assert step.read("in/out/precious.txt") == b"KEEP ME"
    # What is left is only the notification of the output itself (nobody consumes it now).
    left = sqs.receive_message(QueueUrl=step.queue_url, MaxNumberOfMessages=10)["Messages"]
    assert ["out" in m["Body"] and "in%2Fprecious.txt" not in m["Body"] for m in left] == [True]
    assert "stop requested" in consumer.output()


def test_repeated_sigterm_keeps_draining(
    aws: MotoServer, s3: Any, sqs: Any, tmp_path: Path, consumers: list[Consumer]
) -> None:
    """An orchestrator re-sending SIGTERM does not cut the drain short."""
    step = make_step(s3, sqs, "resent-term", prefix="in/", visibility=30)
    consumer, runs_file, gate = gated_consumer(step, tmp_path, consumers, match_key=r"^in/[^/]+$")
    step.put("in/precious.txt", "keep me")
    wait_for(lambda: runs(runs_file), what="handler started")

    consumer.signal_seen(signal.SIGTERM, "stop requested: finishing running groups")
    consumer.signal_seen(signal.SIGTERM, "stop requested again")
    gate.touch()  # the handler was running through both signals
    assert consumer.wait() == 0
    assert step.read("in/out/precious.txt") == b"KEEP ME"
    assert "forced stop" not in consumer.output()
    assert "killed by signal" not in consumer.output()
    assert "outcome=succeeded" in _summaries(consumer)


def test_second_sigint_stops_running_handlers(
    aws: MotoServer, s3: Any, sqs: Any, tmp_path: Path, consumers: list[Consumer]
) -> None:
    """Ctrl-C twice: the running handler is stopped; nothing is uploaded, the message stays."""
    step = make_step(s3, sqs, "impatient", prefix="in/", visibility=30)
    runs_file = tmp_path / "runs.jsonl"
    consumer = Consumer(
        step, tmp_path / "consumer.log", [sys.executable, str(COUNTED)],
        RUNS_FILE=str(runs_file), SLEEP="600", MATCH_KEY=r"^in/[^/]+$",
    )  # fmt: skip
    consumers.append(consumer)
    step.put("in/slow.txt", "slow")
    wait_for(lambda: runs(runs_file), what="handler started")

    consumer.signal_seen(signal.SIGINT, "stop requested: finishing running groups")
    consumer.signal_seen(signal.SIGINT, "forced stop: stopping running handlers")
    assert consumer.wait() == 0  # well before the handler's 600 s
    assert step.read("in/out/slow.txt") is None
    assert "outcome=failed" in _summaries(consumer)
    assert "killed by signal SIGTERM" in consumer.output()
    assert step.depth() == 1  # not deleted: it comes back after its visibility timeout


def _summaries(consumer: Consumer) -> str:
    return "\n".join(line for line in consumer.output().splitlines() if "group summary" in line)


def test_deterministic_self_trigger_reaches_a_fixed_point(
    aws: MotoServer, s3: Any, sqs: Any, tmp_path: Path, consumers: list[Consumer]
) -> None:
    """Outputs re-trigger the step; identical outputs are not uploaded, so the loop stops."""
    step = make_step(s3, sqs, "fixed-point", prefix="data/")
    runs_file = tmp_path / "runs.jsonl"
    consumer = Consumer(
        step, tmp_path / "consumer.log", [sys.executable, str(COUNTED)],
        RUNS_FILE=str(runs_file), BEHAVIOUR="summary",
    )  # fmt: skip
    consumers.append(consumer)
    step.put("data/a.txt", "a")

    wait_for(lambda: len(runs(runs_file)) >= 2, what="the re-triggered run")
    # The second run's group ends having uploaded nothing (its output was unchanged), and
    # its message is deleted. Only an upload notifies the queue, so no third round can come.
    wait_for(lambda: "uploaded=0 unchanged=1" in _summaries(consumer), what="unchanged output")
    wait_for(lambda: step.depth() == 0, what="queue drained")
    assert consumer.stop() == 0
    assert runs(runs_file) == [["data/a.txt"], ["data/summary.txt"]]
    assert len(step.versions("data/summary.txt")) == 1
    assert step.read("data/summary.txt") == b"a.txt\n"


def test_non_deterministic_self_trigger_stops_at_max_chain_depth(
    aws: MotoServer, s3: Any, sqs: Any, tmp_path: Path, consumers: list[Consumer]
) -> None:
    """Ever-changing outputs loop until MAX_CHAIN_DEPTH; the last event lands in the DLQ."""
    step = make_step(s3, sqs, "runaway", prefix="data/", visibility=1, max_receive=2)
    runs_file = tmp_path / "runs.jsonl"
    consumer = Consumer(
        step, tmp_path / "consumer.log", [sys.executable, str(COUNTED)],
        RUNS_FILE=str(runs_file), BEHAVIOUR="random", MAX_CHAIN_DEPTH="3",
    )  # fmt: skip
    consumers.append(consumer)
    step.put("data/seed.txt", "go")

    wait_for(lambda: step.depth(step.dlq_url) == 1, timeout=60, what="message in the DLQ")
    wait_for(lambda: step.depth() == 0, what="queue drained")
    assert consumer.stop() == 0
    # seed (depth 0) -> random.txt at depths 1, 2, 3; the depth-3 trigger is refused.
    assert runs(runs_file) == [["data/seed.txt"], ["data/random.txt"], ["data/random.txt"]]
    head = s3.head_object(Bucket=step.bucket, Key="data/random.txt")
    assert head["Metadata"]["bridge-depth"] == "3"
    assert len(step.versions("data/random.txt")) == 3
    assert "chain depth limit reached" in consumer.output()


def test_sigterm_releases_groups_not_yet_started(
    aws: MotoServer, s3: Any, sqs: Any, tmp_path: Path, consumers: list[Consumer]
) -> None:
    """Groups of the batch not started before SIGTERM are not run; their message is released."""
    step = make_step(s3, sqs, "release-step", prefix="in/", visibility=30)
    step.put("in/a/first.txt", "one")
    step.put("in/b/second.txt", "two")  # another prefix: a second group, after the first
    consumer, runs_file, gate = gated_consumer(step, tmp_path, consumers)
    wait_for(lambda: runs(runs_file), what="first handler started")

    consumer.signal_seen(signal.SIGTERM, "stop requested: finishing running groups")
    gate.touch()  # the first group ends only after the SIGTERM was handled
    assert consumer.wait() == 0
    assert runs(runs_file) == [["in/a/first.txt"]]
    assert step.read("in/a/out/first.txt") == b"ONE"
    # Released at once (visibility 0), not after the 30 s visibility timeout.
    left = sqs.receive_message(QueueUrl=step.queue_url, MaxNumberOfMessages=10)["Messages"]
    assert any("in%2Fb%2Fsecond.txt" in m["Body"] for m in left)
    assert not any("in%2Fa%2Ffirst.txt" in m["Body"] for m in left)
    assert "released=1" in consumer.output()


WORDCOUNT = EXAMPLES / "wordcount"


def example_consumer(step: Step, log: Path, env_file: str) -> Consumer:
    """A consumer started in the word-count example's folder with one of its env files."""
    # The example's `python` is this virtual environment's interpreter.
    path = f"{Path(sys.executable).parent}:{subprocess_env().get('PATH', '')}"
    return Consumer(
        step, log, [], "--workers", "2", cwd=WORDCOUNT,
        **read_env_file(WORDCOUNT / env_file), PATH=path, LOG_FORMAT="json",
    )  # fmt: skip


def test_wordcount_map_reduce_through_one_bucket(
    aws: MotoServer, s3: Any, sqs: Any, tmp_path: Path, consumers: list[Consumer]
) -> None:
    """Map per text, reduce gated by jq: the total is right and never written partially."""
    bucket = "wordcount-e2e"
    step_map = make_step(s3, sqs, bucket, prefix="jobs/", suffix=".txt")
    # The reduce listens on the same bucket: a second queue and notification (".json").
    reduce_url = sqs.create_queue(QueueName="wordcount-reduce")["QueueUrl"]
    reduce_arn = sqs.get_queue_attributes(QueueUrl=reduce_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    current = s3.get_bucket_notification_configuration(Bucket=bucket)["QueueConfigurations"]
    current.append(
        {
            "QueueArn": reduce_arn,
            "Events": ["s3:ObjectCreated:*"],
            "Filter": {
                "Key": {
                    "FilterRules": [
                        {"Name": "prefix", "Value": "jobs/"},
                        {"Name": "suffix", "Value": ".json"},
                    ]
                }
            },
        }
    )
    s3.put_bucket_notification_configuration(
        Bucket=bucket, NotificationConfiguration={"QueueConfigurations": current}
    )
    step_reduce = Step(s3, sqs, bucket, reduce_url, step_map.dlq_url)
    mapper = example_consumer(step_map, tmp_path / "map.log", "map.env")
    reducer = example_consumer(step_reduce, tmp_path / "reduce.log", "reduce.env")
    consumers += [mapper, reducer]

    def reduce_outcomes() -> list[str]:
        return [
            json.loads(line)["outcome"]
            for line in reducer.output().splitlines()
            if line.startswith("{") and '"group summary"' in line
        ]

    def reduce_ran(times: int) -> Callable[[], bool]:
        return lambda: len(reduce_outcomes()) >= times

    texts = {"a.txt": "the cat sat", "b.txt": "The dog and the cat", "c.txt": "a dog's day"}
    step_map.put("jobs/7/manifest-3.json", json.dumps({"inputs": sorted(texts)}))
    for index, (name, text) in enumerate(texts.items()):
        step_map.put(f"jobs/7/input/{name}", text)
        # Each text is counted, and the reduce gate evaluated, before the next one lands.
        wait_for(reduce_ran(index + 1), what=f"reduce run {index + 1}")

    wait_for(lambda: step_map.read("jobs/7/result/total.json"), what="the total")
    wait_for(lambda: step_map.depth() == 0 and step_reduce.depth() == 0, what="queues drained")
    assert mapper.stop() == 0 and reducer.stop() == 0

    expected = {"the": 3, "cat": 2, "dog": 1, "and": 1, "sat": 1, "a": 1, "dog's": 1, "day": 1}
    versions = step_map.versions("jobs/7/result/total.json")
    assert versions, "no total written"
    for version in versions:  # every total ever written is the complete one
        body = s3.get_object(
            Bucket=bucket, Key="jobs/7/result/total.json", VersionId=version["VersionId"]
        )["Body"].read()
        total = json.loads(body)
        assert total["counts"] == expected
        assert sorted(total["inputs"]) == sorted(texts)
    # The gate held while texts were missing, and opened once for the complete job.
    assert reduce_outcomes() == ["skipped", "skipped", "succeeded"]
