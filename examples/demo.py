"""`make demo`: the example pipelines end to end on this machine, with no AWS account.

1. start a moto server (local S3 + SQS) in its own process on a free port;
2. for each example pipeline file (word count, thumbnails, tenants) build a seed folder
   from the bundled sample inputs (a job manifest and three texts; three images; a few
   tenants' CSV files) and run, side by side,
   `s3-event-bridge pipeline up <file> --seed <folder> --until-idle` against that server:
   it creates the buckets, a queue and a DLQ per step and the notifications, uploads the
   seed, runs each step's `consume` workers and exits once every queue is empty;
3. print a summary (top words, thumbnails, tenants' outputs, and per step the objects
   listed and pulled and the phase timings, taken from the workers' group summary lines);
4. outputs follow inputs, in word count: a job already in the bucket before the pipeline
   (`archive`) is processed by `pipeline up --backfill`; then one text is removed from
   the demo job (its manifest replaced first), `pipeline up --until-idle` runs again, and
   the text's counts are gone and the job's result is recomputed without it;
   `pipeline status` then finds nothing unprocessed and nothing orphaned.

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
ARCHIVE = "jobs/archive/"  # in the bucket before the pipeline: processed by --backfill
REMOVED_TEXT = "sonnet18.txt"  # removed from the demo job afterwards
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
    seed: Callable[[Path], None] | None
    options: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = None
    output: Path | None = None
    logs: Path | None = None

    @property
    def file(self) -> Path:
        return HERE / self.name / "pipeline.yaml"

    def start(self, endpoint: str, work: Path) -> None:
        """`s3-event-bridge pipeline up` on the shared local server, logs as JSON lines."""
        self.logs = work / "logs" / self.name
        self.output = work / f"{self.name}.out"
        command = [*bridge(), "pipeline", "up", str(self.file), *self.options]
        if self.seed is not None:
            seed = work / "seed" / self.name
            self.seed(seed)
            command += ["--seed", str(seed)]
        command += ["--until-idle", "--timeout", str(TIMEOUT)]
        command += ["--logs", str(self.logs), "--log-format", "json"]
        with self.output.open("wb") as output:
            self.process = subprocess.Popen(
                command, env=local_env(endpoint), stdout=output, stderr=subprocess.STDOUT
            )

    def wait(self) -> int:
        """Its exit status; on failure, the last lines of its output are printed."""
        assert self.process is not None and self.output is not None
        status = self.process.wait()
        print(f"  {self.name}: exit {status}")
        if status != 0:
            lines = self.output.read_text(errors="replace").splitlines()
            print(f"\nFAILED: pipeline {self.name}; its output (last lines):")
            print("\n".join(lines[-20:]))
        return status


def bridge() -> list[str]:
    return [sys.executable, "-m", "bridge.cli"]


def local_env(endpoint: str) -> dict[str, str]:
    """This environment without the bridge's own variables, on the local server."""
    env = {k: v for k, v in os.environ.items() if k not in LEAKY_VARIABLES}
    env.update(FAKE_AWS_ENV, AWS_ENDPOINT_URL=endpoint)
    return env


def put_archive_job(s3: Any) -> None:
    """A job already in the bucket before the pipeline exists: no event will ever say so."""
    s3.create_bucket(Bucket=WORDCOUNT_BUCKET)
    texts = sorted((DATA / "texts").glob("*.txt"))[:2]
    manifest = {"inputs": [t.name for t in texts]}
    s3.put_object(
        Bucket=WORDCOUNT_BUCKET,
        Key=f"{ARCHIVE}manifest-{len(texts)}.json",
        Body=json.dumps(manifest).encode(),
    )
    for text in texts:
        s3.put_object(
            Bucket=WORDCOUNT_BUCKET, Key=f"{ARCHIVE}input/{text.name}", Body=text.read_bytes()
        )


def total_of(s3: Any, job: str) -> dict[str, Any]:
    body = s3.get_object(Bucket=WORDCOUNT_BUCKET, Key=f"{job}result/total.json")["Body"].read()
    result: dict[str, Any] = json.loads(body)
    return result


def follow_a_deletion(s3: Any, endpoint: str, work: Path) -> bool:
    """Remove a text from the demo job; the pipeline removes what it derived from it."""
    archive = total_of(s3, ARCHIVE)
    print(
        f"\nbackfill: job archive was in the bucket before the pipeline; `pipeline up "
        f"--backfill` counted its {len(archive['inputs'])} texts: {archive['total_words']} words"
    )
    texts = sorted(p.name for p in (DATA / "texts").glob("*.txt"))
    kept = [name for name in texts if name != REMOVED_TEXT]
    # The producer's side: the manifest first (it is no trigger), then the text itself.
    s3.delete_object(Bucket=WORDCOUNT_BUCKET, Key=f"{JOB}manifest-{len(texts)}.json")
    s3.put_object(
        Bucket=WORDCOUNT_BUCKET,
        Key=f"{JOB}manifest-{len(kept)}.json",
        Body=json.dumps({"inputs": kept}).encode(),
    )
    s3.delete_object(Bucket=WORDCOUNT_BUCKET, Key=f"{JOB}input/{REMOVED_TEXT}")
    print(f"deletion: {JOB}input/{REMOVED_TEXT} removed (manifest now lists {len(kept)} texts)")
    run = Run("wordcount", None)
    (work / "after-deletion").mkdir()
    run.start(endpoint, work / "after-deletion")
    if run.wait() != 0:
        return False
    counts = f"{JOB}counts/{Path(REMOVED_TEXT).stem}.json"
    listed = s3.list_objects_v2(Bucket=WORDCOUNT_BUCKET, Prefix=counts).get("KeyCount", 0)
    total = total_of(s3, JOB)
    print(
        f"  map removed {counts}: {'yes' if listed == 0 else 'NO'}; reduce recomputed "
        f"result/total.json over {len(total['inputs'])} texts: {total['total_words']} words"
    )
    if listed != 0 or total["inputs"] != kept:
        print("FAILED: the deletion did not travel through the pipeline")
        return False
    status = subprocess.run(
        [*bridge(), "pipeline", "status", str(run.file)],
        env=local_env(endpoint),
        capture_output=True,
        text=True,
        check=False,
    )
    print(f"\npipeline status {run.file.relative_to(HERE.parent)} (exit {status.returncode}):")
    print("\n".join(f"  {line}" for line in status.stdout.splitlines()))
    if status.returncode != 0:
        print(status.stderr)
    return status.returncode == 0


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
        Run("wordcount", seed_wordcount, ("--backfill",)),
        Run("thumbnails", seed_thumbnails),
        Run("tenants", seed_tenants),
    ]
    with MotoServer() as server, tempfile.TemporaryDirectory(prefix="bridge-demo-") as work:
        print(f"local S3 + SQS (moto server) at {server.endpoint}")
        s3 = boto3.client(
            "s3",
            endpoint_url=server.endpoint,
            region_name=REGION,
            aws_access_key_id=FAKE_AWS_ENV["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=FAKE_AWS_ENV["AWS_SECRET_ACCESS_KEY"],
        )
        put_archive_job(s3)
        for run in runs:
            run.start(server.endpoint, Path(work))
        print(
            "running: "
            + ", ".join(f"pipeline up {run.file.relative_to(HERE.parent)}" for run in runs)
        )
        statuses = [run.wait() for run in runs]
        if any(statuses):
            return 1
        print_results(s3)
        print_timings(runs)
        if not follow_a_deletion(s3, server.endpoint, Path(work)):
            return 1
    print(f"\ndemo succeeded in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
