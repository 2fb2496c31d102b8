"""`pipeline status [--json] [--fix]`: inputs without outputs and outputs without inputs,
per step, from S3 alone (docs/design.md §15). The steps run in process on the moto server
(their own settings, real handler subprocesses); `status` runs as the CLI runs it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bridge.app import App
from bridge.backfill import ExistingObject
from bridge.cli import main
from bridge.engine import Engine
from bridge.lineage import Unit
from bridge.pipeline.model import load_pipeline
from bridge.pipeline.status import StepStatus, Written, assess_groups, assess_objects
from bridge.storage import Storage, s3_client
from tests.conftest import MotoServer
from tests.helpers import HANDLERS, objects, put, s3_notification, sqs_payload

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def existing(key: str, minute: int = 0) -> ExistingObject:
    return ExistingObject("in", key, 1, "e", T0 + timedelta(minutes=minute))


def written(kind: str, name: str, minute: int) -> Written:
    return Written(Unit("s", "in", kind, name), T0 + timedelta(minutes=minute))  # type: ignore[arg-type]


def test_objects_need_a_record_written_after_them() -> None:
    status = StepStatus("s", "events", "in", "out")
    inputs = [existing("a", 0), existing("b", 5), existing("c", 0)]
    records = [written("object", "a", 1), written("object", "b", 1), written("object", "gone", 1)]
    assess_objects(status, inputs, records)
    assert (status.inputs, status.processed) == (3, 1)
    assert status.unprocessed == ["b", "c"]  # put again since; never processed
    assert [u.name for u in status.orphans] == ["gone"]
    assert [o.key for o in status.to_notify] == ["b", "c"]


def test_groups_need_a_fresh_record_whose_inputs_all_remain() -> None:
    status = StepStatus("s", "prefix", "in", "out")
    inputs = [existing("j1/a"), existing("j2/a"), existing("j3/a"), existing("j3/b", 3)]
    records = [written("group", "j1/", 1), written("group", "j2/", 1), written("group", "j9/", 1)]
    recorded = {"j1/": {"j1/a": "e"}, "j2/": {"j2/a": "e", "j2/lost": "e"}}
    assess_groups(
        status,
        inputs,
        records,
        lambda unit: recorded.get(unit.name, {}),
        present={o.key for o in inputs},
        parent_dirs=0,
        waits=lambda prefix: prefix == "j3/",
    )
    assert (status.inputs, status.processed) == (3, 1)
    assert status.unprocessed == ["j2/"]  # a recorded input is gone: not run since
    assert status.waiting == ["j3/"]  # no record, but its filter says false
    assert [u.name for u in status.orphans] == ["j9/"]
    assert [o.key for o in status.to_notify] == ["j2/a"]


PIPELINE = """\
pipeline: audit
buckets: [inbox, outbox]
steps:
  - name: copy
    run: {copier}
    on: {{bucket: inbox, prefix: in/, events: '^Object(Created|Removed):'}}
    pull: {{scope: events}}
    to: outbox
    on_delete: remove-outputs
  - name: gather
    run: {mirror}
    on: {{bucket: inbox, prefix: jobs/}}
    pull: {{parent_dirs: 0}}
    filter: 'length >= 2'
    to: outbox
"""


@pytest.fixture
def audit(aws: MotoServer, s3: Any, tmp_path: Path) -> Path:
    path = tmp_path / "pipeline.yaml"
    copier, mirror = (f"python {HANDLERS / name}.py" for name in ("copier", "mirror"))
    path.write_text(PIPELINE.format(copier=copier, mirror=mirror), encoding="utf-8")
    s3.create_bucket(Bucket="inbox")
    s3.create_bucket(Bucket="outbox")
    return path


def run_step(path: Path, name: str, keys: list[str]) -> None:
    """Run a step of the file on the creation of ``keys`` as its workers would."""
    step = load_pipeline(path).step(name)
    app = App(
        step.settings, Engine(step.settings, step.settings.handler_command, Storage(s3_client(), 4))
    )
    payload, _ = sqs_payload([s3_notification("inbox", keys)])
    assert app.handle_payload(payload).body == {"batchItemFailures": []}


def status(path: Path, capsys: pytest.CaptureFixture[str], *flags: str) -> tuple[int, Any]:
    code = main(["pipeline", "status", str(path), *flags])
    out = capsys.readouterr().out
    return code, json.loads(out) if "--json" in flags else out


def test_status_finds_unprocessed_inputs_and_orphans_and_fix_mends_them(
    audit: Path, s3: Any, sqs: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    for key in ("in/a.txt", "in/b.txt", "in/c.txt"):
        put(s3, "inbox", key, key)
    run_step(audit, "copy", ["in/a.txt", "in/b.txt"])
    s3.delete_object(Bucket="inbox", Key="in/b.txt")  # its removal event never processed
    for key in ("jobs/1/x.csv", "jobs/1/y.csv", "jobs/2/x.csv"):
        put(s3, "inbox", key, key)
    run_step(audit, "gather", ["jobs/1/x.csv"])

    code, found = status(audit, capsys, "--json")
    assert code == 1
    copy, gather = found
    assert (copy["inputs"], copy["processed"]) == (2, 1)
    assert (copy["unprocessed"], copy["orphans"]) == (["in/c.txt"], ["in/b.txt"])
    assert (gather["inputs"], gather["processed"], gather["waiting"]) == (2, 1, ["jobs/2/"])
    assert gather["unprocessed"] == gather["orphans"] == []

    code, table = status(audit, capsys)
    assert code == 1
    assert "copy: unprocessed: s3://inbox/in/c.txt" in table
    assert "copy: orphan (input gone): s3://inbox/in/b.txt" in table
    assert "gather: waiting (filter false): s3://inbox/jobs/2/" in table

    queue = sqs.create_queue(QueueName="audit-copy")["QueueUrl"]
    code, _ = status(audit, capsys, "--fix")
    assert code == 0
    assert "in/out/b.txt" not in objects(s3, "outbox")
    assert "in/out/a.txt" in objects(s3, "outbox")
    (message,) = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    assert json.loads(message["Body"])["Records"][0]["s3"]["object"]["key"] == "in/c.txt"

    run_step(audit, "copy", ["in/c.txt"])
    code, found = status(audit, capsys, "--json")
    assert found[0]["unprocessed"] == found[0]["orphans"] == []


def test_a_group_that_lost_a_recorded_input_is_unprocessed(
    audit: Path, s3: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    for key in ("jobs/1/x.csv", "jobs/1/y.csv", "jobs/1/z.csv"):
        put(s3, "inbox", key, key)
    run_step(audit, "gather", ["jobs/1/x.csv"])
    s3.delete_object(Bucket="inbox", Key="jobs/1/z.csv")

    code, found = status(audit, capsys, "--json")
    assert code == 1
    assert found[1]["unprocessed"] == ["jobs/1/"]


def test_status_of_a_missing_bucket_says_so(
    aws: MotoServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "pipeline.yaml"
    path.write_text(PIPELINE.format(copier="python c.py", mirror="python m.py"), encoding="utf-8")
    assert main(["pipeline", "status", str(path)]) == 1
    assert "NoSuchBucket" in capsys.readouterr().err
