"""How an execution group ended (docs/design.md §7). Pure: no I/O, no AWS imports.

The engine produces these, ``batch`` turns them into per-message results, and the drivers
act on them; keeping them here lets ``batch`` stay importable without boto3 or jq.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from bridge.groups import ExecutionGroup


class Status(enum.Enum):
    """How a group ended.

    ``skipped`` (the filter said false) counts as success. ``not run`` is a group a driver
    did not start because it is shutting down: not a success (its messages must be
    delivered again), but not a handler failure either.
    """

    SUCCEEDED = "succeeded"
    SKIPPED = "skipped"
    FAILED = "failed"
    NOT_RUN = "not run"


@dataclass(frozen=True)
class GroupOutcome:
    """The result of one execution group."""

    group: ExecutionGroup
    status: Status
    reason: str | None = None
    uploaded: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()  # outputs removed because their input is gone

    @property
    def ok(self) -> bool:
        """Succeeded or skipped."""
        return self.status in (Status.SUCCEEDED, Status.SKIPPED)

    @property
    def ran(self) -> bool:
        """The group was started (whatever its result); false only for ``not run``."""
        return self.status is not Status.NOT_RUN


def not_run(group: ExecutionGroup, why: str) -> GroupOutcome:
    """The outcome of a group a driver did not start (shutdown)."""
    return GroupOutcome(group, Status.NOT_RUN, f"not run: {why}")
