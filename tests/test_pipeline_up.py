"""`pipeline up` end to end: buckets, queues, notifications and `consume` workers per step,
run as a user runs it (a subprocess), over a moto server in its own process."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from bridge.cli import main
from tests.conftest import EXAMPLES, MotoServer, bridge_command, subprocess_env
from tests.helpers import put, versioned_bucket, versions

WORDCOUNT = EXAMPLES / "wordcount" / "pipeline.yaml"
TEXTS = EXAMPLES / "demo_data" / "texts"
BUCKET = "wordcount-data"


def wordcount_seed(folder: Path) -> Path:
    """DIR/<bucket>/<key>: a job's manifest and its texts (the manifest is shallower)."""
    job = folder / BUCKET / "jobs" / "demo"
    (job / "input").mkdir(parents=True)
    names = sorted(p.name for p in TEXTS.glob("*.txt"))
    for name in names:
        (job / "input" / name).write_bytes((TEXTS / name).read_bytes())
    (job / f"manifest-{len(names)}.json").write_text(json.dumps({"inputs": names}))
    return folder


def one_step_pipeline(folder: Path, pipeline: str, step: str, run: str) -> None:
    """``folder/pipeline.yaml``: one step running ``run`` on inbox into outbox; and a seed
    of one file, ``folder/seed/inbox/a.txt``."""
    (folder / "pipeline.yaml").write_text(
        f"pipeline: {pipeline}\nbuckets: [inbox, outbox]\nsteps:\n"
        f"  - name: {step}\n    run: {run}\n"
        "    on: {bucket: inbox}\n    to: outbox\n"
    )
    (folder / "seed" / "inbox").mkdir(parents=True)
    (folder / "seed" / "inbox" / "a.txt").write_text("a")


def up(*arguments: str, timeout: float = 180, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*bridge_command(), "pipeline", "up", *arguments],
        env=subprocess_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_up_runs_the_wordcount_pipeline_file_to_its_result(
    aws: MotoServer, s3: Any, sqs: Any, tmp_path: Path
) -> None:
    seed = wordcount_seed(tmp_path / "seed")
    logs = tmp_path / "logs"
    result = up(
        str(WORDCOUNT), "--seed", str(seed), "--until-idle", "--timeout", "150", "--logs", str(logs)
    )
    assert result.returncode == 0, result.stderr
    total = json.loads(
        s3.get_object(Bucket=BUCKET, Key="jobs/demo/result/total.json")["Body"].read()
    )
    expected = sorted(p.name for p in TEXTS.glob("*.txt"))
    assert total["inputs"] == expected
    counts = [
        json.loads(
            s3.get_object(Bucket=BUCKET, Key=f"jobs/demo/counts/{Path(n).stem}.json")["Body"].read()
        )
        for n in expected
    ]
    assert total["total_words"] == sum(sum(c.values()) for c in counts)
    top = s3.get_object(Bucket=BUCKET, Key="jobs/demo/result/top.txt")["Body"].read().decode()
    assert len(top.splitlines()) == 10
    # One queue and one DLQ per step, named after the pipeline; nothing failed.
    urls = sqs.list_queues(QueueNamePrefix="wordcount-")["QueueUrls"]
    assert sorted(u.rsplit("/", 1)[1] for u in urls) == [
        "wordcount-map",
        "wordcount-map-dlq",
        "wordcount-reduce",
        "wordcount-reduce-dlq",
    ]
    # Worker logs are streamed with the step's name in front, and copied per step.
    lines = result.stderr.splitlines()
    assert any(line.startswith("map    | ") and "counted input/" in line for line in lines)
    assert any(line.startswith("reduce | ") and "reduced 3 inputs" in line for line in lines)
    assert "pipeline up: idle: every queue is empty and no step is running" in result.stderr
    assert "reduced 3 inputs" in (logs / "reduce.log").read_text()


def test_a_file_check_rejects_is_refused_before_anything_starts(
    aws: MotoServer, s3: Any, sqs: Any, tmp_path: Path
) -> None:
    looping = tmp_path / "pipeline.yaml"
    looping.write_text(
        "pipeline: thumbs\nbuckets: [photos]\nsteps:\n"
        "  - name: thumbnail\n    run: python thumbnail.py\n"
        "    on: {bucket: photos, suffix: .jpg}\n    outputs: [thumbnails/]\n"
    )
    result = up(str(looping), "--until-idle", "--timeout", "60")
    assert result.returncode == 2
    assert "error: loop thumbnail -> thumbnail:" in result.stderr
    assert "refused: 'pipeline check' reports errors" in result.stderr
    assert "moto server" not in result.stderr and "workers started" not in result.stderr
    assert s3.list_buckets()["Buckets"] == []
    assert "QueueUrls" not in sqs.list_queues()


def test_up_local_starts_its_own_server_and_exits_1_when_a_message_reaches_a_dlq(
    tmp_path: Path,
) -> None:
    one_step_pipeline(tmp_path, "failing", "fail", "python -c 'raise SystemExit(3)'")
    result = up(
        str(tmp_path / "pipeline.yaml"),
        "--local",
        "--seed",
        str(tmp_path / "seed"),
        "--until-idle",
        "--timeout",
        "150",
        "--visibility-timeout",
        "1",
        "--max-receive-count",
        "1",
    )
    assert result.returncode == 1, result.stderr
    assert "pipeline up: local S3 + SQS (moto server) at http://127.0.0.1:" in result.stderr
    assert "step fail: 1 message(s) in its dead-letter queue" in result.stderr
    assert "messages reached the dead-letter queue of: fail" in result.stderr


def test_up_drains_and_stops_on_sigterm(aws: MotoServer, tmp_path: Path) -> None:
    seed = wordcount_seed(tmp_path / "seed")
    process = subprocess.Popen(
        [*bridge_command(), "pipeline", "up", str(WORDCOUNT), "--seed", str(seed)],
        env=subprocess_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    seen = []
    try:
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:  # both workers are running once the reduce ran
            line = process.stderr.readline()
            seen.append(line)
            if "reduced 3 inputs" in line or not line:
                break
        assert any("reduced 3 inputs" in line for line in seen), "".join(seen)
        process.send_signal(signal.SIGTERM)
        rest = process.stderr.read()
        assert process.wait(timeout=120) == 0, rest
    finally:
        if process.poll() is None:
            process.kill()
    assert "pipeline up: stop requested: draining the workers" in rest
    # Both workers got the stop and drained (consume's own log line), then exited.
    assert any(
        line.startswith("map    | ") and "stop requested" in line for line in rest.splitlines()
    )
    assert any(
        line.startswith("reduce | ") and "stop requested" in line for line in rest.splitlines()
    )


def test_up_local_without_moto_says_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A clean install has no moto (it is in the demo extra): the error says what to install."""
    monkeypatch.setattr("bridge.pipeline.up.moto_available", lambda: False)
    assert main(["pipeline", "up", str(WORDCOUNT), "--local"]) == 2
    err = capsys.readouterr().err
    assert "pipeline up --local: the moto server (a local S3 and SQS) is not installed" in err
    assert "pip install 's3-event-bridge[demo]'" in err


def test_a_second_stop_request_stops_running_handlers(aws: MotoServer, tmp_path: Path) -> None:
    """SIGTERM drains (a handler still running is waited for); a second one forces."""
    one_step_pipeline(tmp_path, "slow", "slow", "python -c 'import time; time.sleep(600)'")
    options = ["--seed", str(tmp_path / "seed"), "--visibility-timeout", "600"]
    process = subprocess.Popen(
        [*bridge_command(), "pipeline", "up", str(tmp_path / "pipeline.yaml"), *options],
        env=subprocess_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    seen: list[str] = []
    try:
        for expected in ("group started", "stop requested: finishing running groups"):
            while not any(expected in line for line in seen):
                line = process.stderr.readline()
                assert line, "".join(seen)
                seen.append(line)
                if expected == "group started" and expected in line:
                    process.send_signal(signal.SIGTERM)  # the handler sleeps: a drain waits
        process.send_signal(signal.SIGTERM)
        rest = process.stderr.read()
        assert process.wait(timeout=120) == 0, rest
    finally:
        if process.poll() is None:
            process.kill()
    assert "pipeline up: stop requested again: stopping running handlers" in rest
    assert "forced stop: stopping running handlers" in rest


def triggered(counter: Path) -> list[str]:
    """The keys that triggered the runs recorded by the copier (``COUNTER_FILE``)."""
    runs = [json.loads(line) for line in counter.read_text().splitlines()]
    return sorted(key for run in runs for key in run)


def test_up_backfill_feeds_inputs_already_there_once_and_a_rerun_changes_nothing(
    aws: MotoServer, s3: Any, tmp_path: Path
) -> None:
    """A bucket kept from a previous run: --backfill processes what it holds; seeded files
    are fed by their own uploads only; running it again re-runs the handler and uploads
    nothing new (SKIP_UNCHANGED)."""
    counter = tmp_path / "runs.jsonl"
    copier = Path(__file__).parent / "handlers" / "copier.py"
    (tmp_path / "pipeline.yaml").write_text(
        "pipeline: refill\nbuckets: [inbox, outbox]\nsteps:\n"
        f"  - name: copy\n    run: python {copier}\n"
        "    on: {bucket: inbox, suffix: .txt}\n    to: outbox\n    pull: {scope: events}\n"
        f"    env: {{COUNTER_FILE: '{counter}'}}\n"
    )
    s3.create_bucket(Bucket="inbox")
    versioned_bucket(s3, "outbox")
    for key in ("old/a.txt", "old/b.txt", "old/", "old/c.bin"):
        put(s3, "inbox", key, f"kept {key}")
    (tmp_path / "seed" / "inbox" / "new").mkdir(parents=True)
    (tmp_path / "seed" / "inbox" / "new" / "d.txt").write_text("seeded")
    pipeline_file = str(tmp_path / "pipeline.yaml")
    first = up(pipeline_file, "--backfill", "--seed", str(tmp_path / "seed"), "--until-idle")
    assert first.returncode == 0, first.stderr
    assert "pipeline up: backfill copy: 2 objects, 2 messages to " in first.stderr
    inputs = ["new/d.txt", "old/a.txt", "old/b.txt"]
    assert triggered(counter) == inputs  # each once: the seeded one by its upload only
    outputs = ["new/out/d.txt", "old/out/a.txt", "old/out/b.txt"]
    assert [len(versions(s3, "outbox", key)) for key in outputs] == [1, 1, 1]

    again = up(pipeline_file, "--backfill", "--until-idle")
    assert again.returncode == 0, again.stderr
    assert "pipeline up: backfill copy: 3 objects, 3 messages to " in again.stderr
    assert triggered(counter) == sorted(inputs * 2)  # every input ran again ...
    assert [len(versions(s3, "outbox", key)) for key in outputs] == [1, 1, 1]  # ... to no effect
