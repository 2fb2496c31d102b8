"""`make demo`: the example pipelines end to end on this machine, with no AWS account.

1. start a moto server (local S3 + SQS) in its own process on a free port;
2. for each example pipeline file (word count, thumbnails, tenants) build a seed folder
   from the bundled sample inputs (a job manifest and three texts; three images; a few
   tenants' CSV files) and run, side by side,
   `s3-event-bridge pipeline up <file> --seed <folder> --until-idle` against that server:
   it creates the buckets, a queue and a DLQ per step and the notifications, uploads the
   seed, runs each step's `consume` workers and exits once every queue is empty;
3. print a summary (top words, thumbnails, tenants' outputs, and per step the objects
   listed and pulled and the phase timings, taken from the workers' group summary lines).

The word-count map, the thumbnails and the tenants step run with PULL_SCOPE=events (they
list nothing and pull only the new object); the reduce runs in prefix scope (it needs the
whole job).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

import boto3
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from local_aws import FAKE_AWS_ENV, LEAKY_VARIABLES, MotoServer  # noqa: E402

DATA = HERE / "demo_data"
WORDCOUNT_BUCKET, UPLOADS_BUCKET, PROCESSED_BUCKET, TENANTS_BUCKET = (
    "wordcount-data",
    "uploads",
    "processed-images",
    "tenants",
)
JOB = "jobs/demo/"
TIMEOUT = 150.0
REGION = FAKE_AWS_ENV["AWS_REGION"]
# Each tenant's uploads: tenant-N/raw/<file>.csv -> tenant-N/silver/<file>.json.
TENANT_FILES = {
    "tenant-1/raw/orders.csv": "order,item,qty\n1,apple,3\n2,pear,1\n",
    "tenant-2/raw/orders.csv": "order,item,qty\n7,plum,12\n",
    "tenant-2/raw/customers.csv": "id,name\nc1,Ada\nc2,Grace\nc3,Linus\n",
}


def seed_wordcount(folder: Path) -> None:
    """The job's manifest (one level up, so uploaded first) and its texts."""
    job = folder / WORDCOUNT_BUCKET / JOB
    (job / "input").mkdir(parents=True)
    texts = sorted((DATA / "texts").glob("*.txt"))
    for text in texts:
        (job / "input" / text.name).write_bytes(text.read_bytes())
    manifest = {"inputs": [t.name for t in texts]}
    (job / f"manifest-{len(texts)}.json").write_text(json.dumps(manifest), encoding="utf-8")


def seed_thumbnails(folder: Path) -> None:
    """The sample images at the top of the uploads bucket."""
    (folder / UPLOADS_BUCKET).mkdir(parents=True)
    for image in sorted((DATA / "images").iterdir()):
        (folder / UPLOADS_BUCKET / image.name).write_bytes(image.read_bytes())


def seed_tenants(folder: Path) -> None:
    """A few tenants' CSV files in their raw/ folders."""
    for key, text in TENANT_FILES.items():
        path = folder / TENANTS_BUCKET / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


@dataclass
class Run:
    """One example pipeline run by `pipeline up`: its file, seed, process and logs."""

    name: str
    seed: Callable[[Path], None]
    process: subprocess.Popen[bytes] | None = None
    output: Path | None = None
    logs: Path | None = None

    @property
    def file(self) -> Path:
        return HERE / self.name / "pipeline.yaml"

    def start(self, endpoint: str, work: Path) -> None:
        """`s3-event-bridge pipeline up` on the shared local server, logs as JSON lines."""
        seed = work / "seed" / self.name
        self.seed(seed)
        self.logs = work / "logs" / self.name
        self.output = work / f"{self.name}.out"
        env = {k: v for k, v in os.environ.items() if k not in LEAKY_VARIABLES}
        env.update(FAKE_AWS_ENV, AWS_ENDPOINT_URL=endpoint)
        command = [sys.executable, "-m", "bridge.cli", "pipeline", "up", str(self.file)]
        command += ["--seed", str(seed), "--until-idle", "--timeout", str(TIMEOUT)]
        command += ["--logs", str(self.logs), "--log-format", "json"]
        with self.output.open("wb") as output:
            self.process = subprocess.Popen(
                command, env=env, stdout=output, stderr=subprocess.STDOUT
            )


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


def print_timings(runs: list[Run]) -> None:
    phases = ["list", "filter", "pull", "handler", "diff", "push"]
    print("\nper step: groups, objects listed and pulled, outputs, mean phase timings (ms):")
    header = f"  {'step':<17}{'scope':<8}{'groups':<24}{'listed':>7}{'pulled':>7}{'up/same':>8}"
    print(header + "".join(f"{p:>9}" for p in phases))
    for run in runs:
        assert run.logs is not None
        for log in sorted(run.logs.glob("*.log")):
            step = log.stem if log.stem == run.name else f"{run.name}-{log.stem}"
            summaries = group_summaries(log)
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
                f"  {step:<17}{'/'.join(scopes) or '-':<8}{counted or 'none':<24}"
                f"{totals['listed']:>7}{totals['pulled']:>7}{transfers:>8}{cells}"
            )
    print(
        "  (listed, pulled: objects, summed over the step's groups; up/same: outputs uploaded /"
        " skipped because identical to the stored object)"
    )


def print_results(s3: Any) -> None:
    total = json.loads(
        s3.get_object(Bucket=WORDCOUNT_BUCKET, Key=f"{JOB}result/total.json")["Body"].read()
    )
    print(
        f"\nword count over {len(total['inputs'])} texts: {total['total_words']} words, "
        f"{total['distinct_words']} distinct; top 10:"
    )
    for word, count in list(total["counts"].items())[:10]:
        print(f"  {count:>4}  {word}")

    print(f"\nthumbnails in s3://{PROCESSED_BUCKET}/:")
    for image in sorted((DATA / "images").iterdir()):
        key = f"thumbnails/{image.name}"
        body = s3.get_object(Bucket=PROCESSED_BUCKET, Key=key)["Body"].read()
        with Image.open(BytesIO(body)) as thumb:
            size = f"{thumb.width}x{thumb.height} {thumb.format}"
        with Image.open(image) as original:
            was = f"{original.width}x{original.height}"
        print(f"  {key:<28} {size:<14} {len(body):>6} B   (original {was})")

    print(f"\ntenants' silver files in s3://{TENANTS_BUCKET}/:")
    for raw in TENANT_FILES:
        key = raw.replace("/raw/", "/silver/").removesuffix(".csv") + ".json"
        records = json.loads(s3.get_object(Bucket=TENANTS_BUCKET, Key=key)["Body"].read())
        noun = "record" if len(records) == 1 else "records"
        print(f"  {key:<32} {len(records)} {noun}   (from {raw})")


def main() -> int:
    """Run the demo; exit status 0 when every pipeline went idle with nothing failed."""
    started = time.monotonic()
    runs = [
        Run("wordcount", seed_wordcount),
        Run("thumbnails", seed_thumbnails),
        Run("tenants", seed_tenants),
    ]
    with MotoServer() as server, tempfile.TemporaryDirectory(prefix="bridge-demo-") as work:
        print(f"local S3 + SQS (moto server) at {server.endpoint}")
        for run in runs:
            run.start(server.endpoint, Path(work))
        print(
            "running: "
            + ", ".join(f"pipeline up {run.file.relative_to(HERE.parent)}" for run in runs)
        )
        failed = []
        for run in runs:
            assert run.process is not None and run.output is not None
            status = run.process.wait()
            print(f"  {run.name}: exit {status}")
            if status != 0:
                failed.append(run)
        if failed:
            for run in failed:
                assert run.output is not None
                lines = run.output.read_text(errors="replace").splitlines()
                print(f"\nFAILED: pipeline {run.name}; its output (last lines):")
                print("\n".join(lines[-20:]))
            return 1
        s3 = boto3.client(
            "s3",
            endpoint_url=server.endpoint,
            region_name=REGION,
            aws_access_key_id=FAKE_AWS_ENV["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=FAKE_AWS_ENV["AWS_SECRET_ACCESS_KEY"],
        )
        print_results(s3)
        print_timings(runs)
    print(f"\ndemo succeeded in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
