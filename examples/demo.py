"""`make demo`: three pipeline steps end to end on this machine, with no AWS account.

1. start a moto server (local S3 + SQS) in its own process on a free port;
2. create the buckets, one queue per step (each with a DLQ and a redrive policy) and the
   bucket notifications that feed them, as a real deployment would;
3. start an `s3-event-bridge consume` worker per step, configured by the example's own
   env file: word-count map, word-count reduce (gated by a jq filter), thumbnails;
4. upload the bundled sample inputs (a job manifest, three texts, three images);
5. wait for the results, print a summary (top words, thumbnails, and per step the objects
   listed and pulled and the phase timings, taken from the workers' group summary lines),
   stop everything.

The word-count map and the thumbnails run with PULL_SCOPE=events (they list nothing and
pull only the new object); the reduce runs in prefix scope (it needs the whole job).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

import boto3
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from env_file import read_env_file  # noqa: E402
from local_aws import FAKE_AWS_ENV, MotoServer  # noqa: E402

DATA = HERE / "demo_data"
PIPELINE_BUCKET, UPLOADS_BUCKET, PROCESSED_BUCKET = (
    "demo-pipeline",
    "demo-uploads",
    "processed-images",
)
JOB = "jobs/demo/"
TIMEOUT = 90.0
REGION = FAKE_AWS_ENV["AWS_REGION"]


@dataclass
class Step:
    """One pipeline step: its queue, its worker process and the worker's log."""

    name: str
    example: Path
    env_file: str
    queue_url: str = ""
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None


def make_queue(sqs: Any, name: str) -> tuple[str, str]:
    """A queue with a DLQ (redrive after 3 receives); returns (url, arn)."""
    dlq = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"})
    url = sqs.create_queue(
        QueueName=name, Attributes={"VisibilityTimeout": "30", "RedrivePolicy": redrive}
    )["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return url, arn


def notification(queue_arn: str, prefix: str = "", suffix: str = "") -> dict[str, Any]:
    """A queue notification for created objects, filtered by key prefix and suffix if given."""
    rules = [
        {"Name": name, "Value": value}
        for name, value in (("prefix", prefix), ("suffix", suffix))
        if value
    ]
    config: dict[str, Any] = {"QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*"]}
    if rules:
        config["Filter"] = {"Key": {"FilterRules": rules}}
    return config


def start_worker(step: Step, endpoint: str, logs: Path) -> None:
    """`s3-event-bridge consume` for one step, in the example's folder, with its env file."""
    bridge = str(Path(sys.executable).parent / "s3-event-bridge")
    env = dict(os.environ)
    env.update(FAKE_AWS_ENV)
    env.update(read_env_file(step.example / step.env_file))
    env.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_REGION=REGION,
        LOG_FORMAT="json",
        # `python` in the handler commands is this virtual environment's.
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    step.log = logs / f"{step.name}.log"
    step.process = subprocess.Popen(
        [bridge, "consume", "--queue-url", step.queue_url, "--wait-time", "1", "--workers", "2"],
        cwd=step.example,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=step.log.open("wb"),
    )


def wait_until(done: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done():
            return True
        time.sleep(0.5)
    return False


def exists(s3: Any, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except s3.exceptions.ClientError:
        return False
    return True


def group_summaries(log: Path) -> list[dict[str, Any]]:
    """The workers' `group summary` lines (JSON log format)."""
    summaries = []
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("message") == "group summary":
            summaries.append(entry)
    return summaries


def print_timings(steps: list[Step]) -> None:
    phases = ["list", "filter", "pull", "handler", "diff", "push"]
    print("\nper step: groups, objects listed and pulled, outputs, mean phase timings (ms):")
    header = f"  {'step':<17}{'scope':<8}{'groups':<24}{'listed':>7}{'pulled':>7}{'up/same':>8}"
    print(header + "".join(f"{p:>9}" for p in phases))
    for step in steps:
        assert step.log is not None
        summaries = group_summaries(step.log)
        outcomes: dict[str, int] = defaultdict(int)
        sums: dict[str, list[float]] = defaultdict(list)
        totals = {
            name: sum(summary.get(name, 0) for summary in summaries)
            for name in ("listed", "pulled", "uploaded", "unchanged")
        }
        scopes = sorted({str(summary.get("scope", "?")) for summary in summaries})
        for summary in summaries:
            outcomes[summary["outcome"]] += 1
            for phase, millis in summary.get("timings", {}).items():
                sums[phase.removesuffix("_ms")].append(millis)
        counted = ", ".join(f"{n} {outcome}" for outcome, n in sorted(outcomes.items()))
        cells = "".join(
            f"{sum(sums[p]) / len(sums[p]):>9.1f}" if sums[p] else f"{'-':>9}" for p in phases
        )
        transfers = f"{totals['uploaded']}/{totals['unchanged']}"
        print(
            f"  {step.name:<17}{'/'.join(scopes) or '-':<8}{counted or 'none':<24}"
            f"{totals['listed']:>7}{totals['pulled']:>7}{transfers:>8}{cells}"
        )
    print(
        "  (listed, pulled: objects, summed over the step's groups; up/same: outputs uploaded /"
        " skipped because identical to the stored object)"
    )


def main() -> int:
    """Run the demo; exit status 0 when every result arrived."""
    started = time.monotonic()
    steps = [
        Step("wordcount-map", HERE / "wordcount", "map.env"),
        Step("wordcount-reduce", HERE / "wordcount", "reduce.env"),
        Step("thumbnails", HERE / "thumbnails", "thumbnails.env"),
    ]
    texts = sorted((DATA / "texts").glob("*.txt"))
    images = sorted((DATA / "images").iterdir())
    with MotoServer() as server, tempfile.TemporaryDirectory(prefix="bridge-demo-") as logs:
        session = boto3.session.Session(
            region_name=REGION,
            aws_access_key_id=FAKE_AWS_ENV["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=FAKE_AWS_ENV["AWS_SECRET_ACCESS_KEY"],
        )
        s3: Any = session.client("s3", endpoint_url=server.endpoint)
        sqs: Any = session.client("sqs", endpoint_url=server.endpoint)
        print(f"local S3 + SQS (moto server) at {server.endpoint}")

        for bucket in (PIPELINE_BUCKET, UPLOADS_BUCKET, PROCESSED_BUCKET):
            s3.create_bucket(Bucket=bucket)
        arns = {}
        for step in steps:
            step.queue_url, arns[step.name] = make_queue(sqs, step.name)
        s3.put_bucket_notification_configuration(
            Bucket=PIPELINE_BUCKET,
            NotificationConfiguration={
                "QueueConfigurations": [
                    notification(arns["wordcount-map"], "jobs/", ".txt"),
                    notification(arns["wordcount-reduce"], "jobs/", ".json"),
                ]
            },
        )
        s3.put_bucket_notification_configuration(
            Bucket=UPLOADS_BUCKET,
            NotificationConfiguration={"QueueConfigurations": [notification(arns["thumbnails"])]},
        )
        print("buckets, queues (with DLQs) and notifications created")

        for step in steps:
            start_worker(step, server.endpoint, Path(logs))
        print("workers started: " + ", ".join(s.name for s in steps))

        try:
            manifest = {"inputs": [t.name for t in texts]}
            s3.put_object(
                Bucket=PIPELINE_BUCKET,
                Key=f"{JOB}manifest-{len(texts)}.json",
                Body=json.dumps(manifest).encode(),
            )
            for text in texts:
                s3.put_object(
                    Bucket=PIPELINE_BUCKET, Key=f"{JOB}input/{text.name}", Body=text.read_bytes()
                )
            for image in images:
                s3.put_object(Bucket=UPLOADS_BUCKET, Key=image.name, Body=image.read_bytes())
            print(
                f"uploaded a manifest and {len(texts)} texts to s3://{PIPELINE_BUCKET}/{JOB}, "
                f"{len(images)} images to the top of s3://{UPLOADS_BUCKET}/"
            )

            expected = [(PIPELINE_BUCKET, f"{JOB}result/total.json")] + [
                (PROCESSED_BUCKET, f"{kind}/{image.name}{suffix}")
                for image in images
                for kind, suffix in (("thumbnails", ""), ("metadata", ".json"))
            ]
            complete = wait_until(lambda: all(exists(s3, b, k) for b, k in expected), TIMEOUT)
        finally:
            for step in steps:
                assert step.process is not None
                step.process.send_signal(signal.SIGTERM)
            for step in steps:
                assert step.process is not None
                step.process.wait(timeout=60)

        if not complete:
            missing = [f"s3://{b}/{k}" for b, k in expected if not exists(s3, b, k)]
            print(f"\nFAILED: after {TIMEOUT:.0f} s still missing: {', '.join(missing)}")
            for step in steps:
                assert step.log is not None
                print(f"--- {step.name} log (last lines)")
                print("\n".join(step.log.read_text(errors="replace").splitlines()[-15:]))
            return 1

        total = json.loads(
            s3.get_object(Bucket=PIPELINE_BUCKET, Key=f"{JOB}result/total.json")["Body"].read()
        )
        print(
            f"\nword count over {len(total['inputs'])} texts: {total['total_words']} words, "
            f"{total['distinct_words']} distinct; top 10:"
        )
        for word, count in list(total["counts"].items())[:10]:
            print(f"  {count:>4}  {word}")

        print(f"\nthumbnails in s3://{PROCESSED_BUCKET}/:")
        for image in images:
            key = f"thumbnails/{image.name}"
            body = s3.get_object(Bucket=PROCESSED_BUCKET, Key=key)["Body"].read()
            with Image.open(BytesIO(body)) as thumb:
                size = f"{thumb.width}x{thumb.height} {thumb.format}"
            with Image.open(image) as original:
                was = f"{original.width}x{original.height}"
            print(f"  {key:<28} {size:<14} {len(body):>6} B   (original {was})")

        print_timings(steps)
    print(f"\ndemo succeeded in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
