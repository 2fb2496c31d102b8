"""What one execution group did, as its single summary line and metrics (docs/design.md §7).

The engine fills a ``GroupReport`` as the phases run and logs it once, whatever happened.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from bridge.groups import ExecutionGroup
from bridge.lineage import Removal
from bridge.logs import log
from bridge.metrics import GroupMetrics, record_group
from bridge.outcomes import GroupOutcome, Status

# The engine's logger: operators' queries look for the summary line there.
logger = logging.getLogger("bridge.engine")


@dataclass
class GroupReport:
    """What the summary line says about a group; filled in as the phases run."""

    scope: str = "prefix"
    listed: int = 0
    pulled: int = 0
    gone: int = 0  # events scope: triggering objects deleted since their event
    skipped: dict[str, str] = field(default_factory=dict)
    bytes_in: int = 0
    bytes_out: int = 0
    unverified: int = 0
    uploaded: tuple[str, ...] = ()
    unchanged: int = 0
    not_uploaded: dict[str, str] = field(default_factory=dict)
    filter: str | None = None
    depth: int | None = None
    removal: Removal = field(default_factory=Removal)
    timings: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            # The unit is in the key (pull_ms), so a log query needs no documentation.
            self.timings[f"{name}_ms"] = round(1000 * (time.perf_counter() - started), 1)


def log_summary(
    group: ExecutionGroup, outcome: GroupOutcome, report: GroupReport, *, lineage: bool
) -> None:
    """The group's one summary line (and its metrics line); ``lineage``: the configuration
    keeps lineage records, so the line counts the outputs removed."""
    fields: dict[str, Any] = {
        "bucket": group.bucket,
        "prefix": group.prefix,
        "events": [e.key for e in group.events],
        "scope": report.scope,
        "outcome": outcome.status.value,
    }
    if outcome.reason:
        fields["reason"] = outcome.reason
        if group.message_ids:  # beside the reason: a message in the DLQ leads here
            fields["message_ids"] = sorted(group.message_ids)
    fields.update(
        listed=report.listed,
        pulled=report.pulled,
        gone=report.gone,
        skipped=report.skipped,
        bytes_in=report.bytes_in,
        bytes_out=report.bytes_out,
        uploaded=len(report.uploaded),
        unchanged=report.unchanged,
        unverified=report.unverified,
    )
    if report.not_uploaded:
        fields["not_uploaded"] = report.not_uploaded
    if report.filter is not None:
        fields["filter"] = report.filter
    if report.depth is not None:
        fields["depth"] = report.depth
    if lineage:
        fields["removed"] = len(report.removal.removed)
        if report.removal.kept:
            fields["kept"] = report.removal.kept
    fields["timings"] = report.timings
    level = logging.ERROR if outcome.status is Status.FAILED else logging.INFO
    log(logger, level, "group summary", **fields)
    record_group(
        GroupMetrics(
            bucket=group.bucket,
            prefix=group.prefix,
            outcome=outcome.status.value,
            handler_ms=report.timings.get("handler_ms"),
            bytes_in=report.bytes_in,
            bytes_out=report.bytes_out,
            uploaded=len(report.uploaded),
            unchanged=report.unchanged,
        )
    )
