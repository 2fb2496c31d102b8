"""Multi-tenant buckets end to end: notifications -> one shared SQS queue -> ``consume``.

Three tenants share a bucket and a queue (examples/tenants, configured by its env file).
Every good file lands in its own tenant's ``silver/``, never in another's; one tenant's
malformed file fails only its own message, which reaches the DLQ after maxReceiveCount,
while the other tenants' files of the same batches are processed.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from env_file import read_env_file

from tests.conftest import EXAMPLES, MotoServer, bridge_command, subprocess_env
from tests.helpers import wait_for
from tests.test_consume_e2e import Step, make_step

TENANTS = EXAMPLES / "tenants"
GOOD = {
    "tenant-1/raw/orders.csv": "id,item\n1,apple\n2,pear\n",
    "tenant-1/raw/customers.csv": "id,name\n7,Ada\n",
    "tenant-3/raw/orders.csv": "id,item\n9,plum\n",  # the same file name as tenant-1's
}
BROKEN = "tenant-2/raw/orders.csv"
BROKEN_BODY = "id,item\n1,apple,extra field\n"


def consume_once(step: Step, log: Path) -> subprocess.CompletedProcess[str]:
    """One receive of up to 10 messages from the shared queue, processed, then exit."""
    env = subprocess_env(**read_env_file(TENANTS / "tenants.env"), LOG_FORMAT="json")
    result = subprocess.run(
        [
            *bridge_command(), "consume", "--queue-url", step.queue_url, "--once",
            "--max-messages", "10", "--wait-time", "1",
        ],
        cwd=TENANTS, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    with log.open("a", encoding="utf-8") as stream:
        stream.write(result.stderr)
    return result


def summaries(stderr: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("message") == "group summary"]


def silver(step: Step) -> dict[str, Any]:
    listed = step.s3.list_objects_v2(Bucket=step.bucket).get("Contents", [])
    return {
        entry["Key"]: json.loads(step.read(entry["Key"]) or b"null")
        for entry in listed
        if "/silver/" in entry["Key"]
    }


def test_a_malformed_file_fails_only_its_own_tenants_message(
    aws: MotoServer, s3: Any, sqs: Any, tmp_path: Path
) -> None:
    step = make_step(s3, sqs, "tenant-group-a", suffix=".csv", visibility=1, max_receive=2)
    for key, body in GOOD.items():
        step.put(key, body)
    step.put(BROKEN, BROKEN_BODY)
    # Four notifications, and the s3:TestEvent S3 sends when the notification is configured.
    wait_for(lambda: step.depth() == 5, what="five messages in the shared queue")
    log = tmp_path / "consume.log"

    first = consume_once(step, log)  # one receive: all five messages, one batch

    assert first.returncode == 1, first.stderr  # a message failed
    by_tenant = {s["prefix"]: s for s in summaries(first.stderr)}
    assert set(by_tenant) == {"tenant-1/", "tenant-2/", "tenant-3/"}
    assert by_tenant["tenant-2/"]["outcome"] == "failed"
    assert "handler exited with status 1" in by_tenant["tenant-2/"]["reason"]
    assert by_tenant["tenant-1/"]["outcome"] == by_tenant["tenant-3/"]["outcome"] == "succeeded"
    assert all(s["scope"] == "events" and s["listed"] == 0 for s in by_tenant.values())
    assert "tenant-2/raw/orders.csv: malformed CSV: line 2: 3 fields" in first.stderr
    assert silver(step) == {
        "tenant-1/silver/orders.json": [{"id": "1", "item": "apple"}, {"id": "2", "item": "pear"}],
        "tenant-1/silver/customers.json": [{"id": "7", "name": "Ada"}],
        "tenant-3/silver/orders.json": [{"id": "9", "item": "plum"}],
    }

    # Redelivered until maxReceiveCount, then in the DLQ: only the malformed file's message.
    def dead_lettered() -> bool:
        if step.depth(step.dlq_url) == 1 and step.depth() == 0:
            return True
        consume_once(step, log)  # each receive long-polls 1 s: the visibility timeout
        return False

    wait_for(dead_lettered, timeout=90, what="the malformed file's message in the DLQ")
    [dead] = sqs.receive_message(QueueUrl=step.dlq_url, MaxNumberOfMessages=10)["Messages"]
    assert "tenant-2%2Fraw%2Forders.csv" in dead["Body"] or BROKEN in dead["Body"]
    assert set(silver(step)) == {
        "tenant-1/silver/orders.json",
        "tenant-1/silver/customers.json",
        "tenant-3/silver/orders.json",
    }
    # The good files ran exactly once: later receives held only the malformed file.
    runs = [s["prefix"] for s in summaries(log.read_text(encoding="utf-8"))]
    assert runs.count("tenant-1/") == runs.count("tenant-3/") == 1
    assert runs.count("tenant-2/") == 2  # maxReceiveCount deliveries, each a failed run
