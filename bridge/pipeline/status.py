"""``pipeline status FILE [--json] [--fix]``: does every step's output follow its inputs?
(docs/design.md §15). From S3 alone: the step's inputs (what its notification filter and
``MATCH_KEY`` select, as ``backfill`` selects them) against its lineage records.

Per step:

- **unprocessed**: an input with no record, or put again since its record was written
  (never processed, failed into the DLQ, or changed since); in prefix scope per group, also
  a group one of whose recorded inputs is gone and which did not run again. A group whose
  execution filter says ``false`` now is **waiting**, not unprocessed.
- **orphans**: records whose input is gone (events scope), or whose group has no input left
  (prefix scope): their outputs follow nothing.

A step without lineage records (``lineage: off``, or unset without ``remove-outputs``) is
shown as untracked, and is no finding.

``--fix`` sends each unprocessed input to the step's queue (``<pipeline>-<step>``, as
``pipeline up`` and the SAM template name it; the newest input of a group, in prefix scope)
and removes the orphans' outputs under the guards of a deletion: the input must be gone
now, and an output is removed only while its ETag is the recorded one.

Costs: one listing of the step's inputs and one of its records; a GetObject per group
record (prefix scope, for its inputs) and per record whose key is hashed; for a group
without a record and with a filter, one listing of the group prefix.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bridge import backfill
from bridge.groups import group_prefix
from bridge.jqfilter import FilterRuntimeError
from bridge.lineage import (
    Removal,
    Unit,
    is_reserved,
    step_records_prefix,
    unit_of_record_key,
)
from bridge.lineage_store import LineageStore
from bridge.pipeline.model import Pipeline, StepConfig

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

SHOWN = 5  # keys shown per finding in the table; --json lists them all


@dataclass(frozen=True)
class Written:
    """A lineage record found by listing the records: its unit and when it was written."""

    unit: Unit
    when: datetime


@dataclass
class StepStatus:
    """What ``pipeline status`` found for one step."""

    step: str
    scope: str
    source: str
    target: str
    tracked: bool = True  # LINEAGE on: without records there is nothing to compare
    inputs: int = 0  # inputs in events scope; groups in prefix scope
    processed: int = 0
    unprocessed: list[str] = field(default_factory=list)  # keys, or group prefixes
    waiting: list[str] = field(default_factory=list)  # group prefixes, filter false
    orphans: list[Unit] = field(default_factory=list)
    to_notify: list[backfill.ExistingObject] = field(default_factory=list)  # for --fix

    @property
    def clean(self) -> bool:
        """Nothing unprocessed and nothing orphaned (waiting groups are fine)."""
        return not self.unprocessed and not self.orphans

    def document(self) -> dict[str, Any]:
        """The ``--json`` form of the findings."""
        return {
            "step": self.step,
            "scope": self.scope,
            "source": self.source,
            "target": self.target,
            "tracked": self.tracked,
            "units": "objects" if self.scope == "events" else "groups",
            "inputs": self.inputs,
            "processed": self.processed,
            "unprocessed": self.unprocessed,
            "waiting": self.waiting,
            "orphans": [unit.name for unit in self.orphans],
        }


# --------------------------------------------------------------------------- pure


def assess_objects(
    status: StepStatus, inputs: Sequence[backfill.ExistingObject], records: Sequence[Written]
) -> None:
    """Events scope: each input needs a record of its own written after it."""
    written = {r.unit.name: r.when for r in records if r.unit.kind == "object"}
    status.inputs = len(inputs)
    for obj in inputs:
        when = written.get(obj.key)
        if when is None or obj.last_modified > when:
            status.unprocessed.append(obj.key)
            status.to_notify.append(obj)
        else:
            status.processed += 1
    present = {obj.key for obj in inputs}
    status.orphans = [
        r.unit for r in records if r.unit.kind == "object" and r.unit.name not in present
    ]


def assess_groups(
    status: StepStatus,
    inputs: Sequence[backfill.ExistingObject],
    records: Sequence[Written],
    recorded_inputs: Callable[[Unit], Mapping[str, str]],
    present: set[str],
    parent_dirs: int,
    waits: Callable[[str], bool],
) -> None:
    """Prefix scope: each group of inputs needs a record written after its newest input,
    none of whose recorded inputs is gone (``present``: every key listed now).
    ``recorded_inputs`` reads a group's record; ``waits`` asks its filter."""
    groups: dict[str, list[backfill.ExistingObject]] = {}
    for obj in inputs:
        groups.setdefault(group_prefix(obj.key, parent_dirs), []).append(obj)
    written = {r.unit.name: r for r in records if r.unit.kind == "group"}
    status.inputs = len(groups)
    for prefix, members in groups.items():
        newest = max(members, key=lambda obj: obj.last_modified)
        record = written.get(prefix)
        stale = (
            record is None
            or newest.last_modified > record.when
            or any(key not in present for key in recorded_inputs(record.unit))
        )
        if not stale:
            status.processed += 1
        elif waits(prefix):
            status.waiting.append(prefix)
        else:
            status.unprocessed.append(prefix)
            status.to_notify.append(newest)
    status.orphans = [r.unit for name, r in written.items() if name not in groups]


def render_table(statuses: Sequence[StepStatus]) -> str:
    """The findings as a table, then the keys behind each finding (a few per step)."""
    header = ("step", "scope", "inputs", "processed", "unprocessed", "waiting", "orphans")
    rows = [header] + [
        (
            s.step,
            s.scope,
            f"{s.inputs} {'objects' if s.scope == 'events' else 'groups'}",
            str(s.processed),
            str(len(s.unprocessed)),
            str(len(s.waiting)),
            str(len(s.orphans)),
        )
        if s.tracked
        else (s.step, s.scope, "untracked (lineage off)", "-", "-", "-", "-")
        for s in statuses
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    for s in statuses:
        for what, keys in (
            ("unprocessed", s.unprocessed),
            ("waiting (filter false)", s.waiting),
            ("orphan (input gone)", [unit.name for unit in s.orphans]),
        ):
            for key in keys[:SHOWN]:
                lines.append(f"{s.step}: {what}: s3://{s.source}/{key}")
            if len(keys) > SHOWN:
                lines.append(
                    f"{s.step}: {what}: ... and {len(keys) - SHOWN} more (--json lists all)"
                )
    return "\n".join(lines)


# --------------------------------------------------------------------------- S3


def step_status(step: StepConfig, s3: S3Client) -> StepStatus:
    """Read the step's inputs and records and assess them."""
    scope = backfill.scope_for_step(step)
    source, target = step.spec.on.bucket, step.target
    status = StepStatus(step.name, step.scope, source, target)
    if not step.settings.records_lineage:
        status.tracked = False
        return status
    entries = [
        dict(entry)
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=source, Prefix=scope.prefix)
        for entry in page.get("Contents", [])
        if not is_reserved(entry["Key"])
    ]
    listed = [backfill.ExistingObject.from_listing(source, entry) for entry in entries]
    inputs = backfill.keep(listed, scope)
    store = LineageStore(s3)
    records = _records(s3, store, step, source, target)
    if step.scope == "events":
        assess_objects(status, inputs, records)
        return status

    def recorded_inputs(unit: Unit) -> Mapping[str, str]:
        record = store.read(target, unit)
        return record.inputs if record is not None else {}

    def waits(prefix: str) -> bool:
        # The group's listing is part of the step's, unless PULL_PARENT_DIRS reaches above it.
        known = None
        if prefix.startswith(scope.prefix):
            known = [entry for entry in entries if str(entry["Key"]).startswith(prefix)]
        return _filter_verdict(step, s3, source, prefix, known) is False

    parent_dirs = step.settings.pull_parent_dirs
    present = {obj.key for obj in listed}
    assess_groups(status, inputs, records, recorded_inputs, present, parent_dirs, waits)
    return status


def _records(
    s3: S3Client, store: LineageStore, step: StepConfig, source: str, target: str
) -> list[Written]:
    prefix = step_records_prefix(step.name, source)
    found = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=target, Prefix=prefix):
        for entry in page.get("Contents", []):
            unit = unit_of_record_key(step.name, source, entry["Key"])
            if unit is None:  # hashed: the record names its unit
                try:
                    record = store.read_key(target, entry["Key"])
                except ValueError:
                    record = None  # not a record the bridge can read: not this step's
                unit = record.unit if record is not None else None
            if unit is not None:
                found.append(Written(unit, entry["LastModified"]))
    return found


def _filter_verdict(
    step: StepConfig,
    s3: S3Client,
    bucket: str,
    prefix: str,
    entries: Sequence[dict[str, Any]] | None = None,
) -> bool | None:
    """The step's execution filter on the group's listing now; None without a filter.

    ``entries``: the group's ``Contents`` entries when already listed (else listed here).
    """
    program = step.settings.execution_filter
    if program is None:
        return None
    from bridge.listing import Lookups, listed_object

    if entries is None:
        listed = Lookups(s3, 1).list_objects(bucket, prefix)
    else:
        listed = [listed_object(entry) for entry in entries]
    try:
        return program.evaluate([o.listing for o in listed if not is_reserved(o.key)]).proceed
    except FilterRuntimeError:
        return None  # the run would fail: the group counts as unprocessed


@dataclass(frozen=True)
class Fixed:
    """What ``--fix`` did for one step."""

    step: str
    sent: backfill.BackfillSummary | None
    removal: Removal


def fix_step(
    pipeline: Pipeline,
    step: StepConfig,
    status: StepStatus,
    s3: S3Client,
    sqs: SQSClient,
    region: str,
) -> Fixed:
    """Send the unprocessed inputs to the step's queue; remove the orphans' outputs."""
    sent = None
    if status.to_notify:
        queue_url = sqs.get_queue_url(QueueName=f"{pipeline.name}-{step.name}")["QueueUrl"]
        sent = backfill.send_to_queue(status.to_notify, sqs, queue_url, region=region)
    store = LineageStore(s3)
    removal = Removal()
    for unit in status.orphans:
        if unit.kind == "object" and store.exists(unit.bucket, unit.name):
            continue  # the input is back: not an orphan any more
        removal += store.forget(unit, status.target)
    return Fixed(step.name, sent, removal)
