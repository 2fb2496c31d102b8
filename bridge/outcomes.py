"""How an execution group ended (docs/design.md §7). Pure: no I/O, no AWS imports.

The engine produces these, ``batch`` turns them into per-message results, and the drivers
act on them; keeping them here lets ``batch`` stay importable without boto3 or jq.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from bridge.events import ObjectEvent
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
    """The result of one execution group.

    ``permanent`` classes a failure: true when running the group again cannot succeed (the
    chain-depth limit, a configuration that cannot act on it), false when a retry may (the
    handler failed or timed out, a transient S3 error). Sources that report per object
    (S3 Batch Operations) answer ``PermanentFailure`` or ``TemporaryFailure`` from it.

    ``unusable`` lists the group's triggering keys it could not act on although it ran, with
    why: the object does not exist, or its key is refused by the safety rules. Not a failure
    of the group (a notification for an object deleted since is no error), but a source
    that names objects on purpose fails those objects' tasks.
    """

    group: ExecutionGroup
    status: Status
    reason: str | None = None
    uploaded: tuple[str, ...] = ()
    permanent: bool = False
    unusable: tuple[tuple[str, str], ...] = ()
    removed: tuple[str, ...] = ()  # outputs removed because their input is gone

    @property
    def ok(self) -> bool:
        """Succeeded or skipped."""
        return self.status in (Status.SUCCEEDED, Status.SKIPPED)

    @property
    def ran(self) -> bool:
        """The group was started (whatever its result); false only for ``not run``."""
        return self.status is not Status.NOT_RUN


NO_SUCH_OBJECT = "the object does not exist"


def unusable_triggers(
    events: Iterable[ObjectEvent],
    refused: Mapping[str, str],
    present: Collection[str] | None,
    gone: Collection[str] = (),
) -> tuple[tuple[str, str], ...]:
    """The triggering keys of a group that ran without acting on them, with why.

    ``refused``: keys the safety rules refused, and why; ``present``: the keys listed under
    the group prefix (None when nothing was listed); ``gone``: keys found missing when
    fetched. A removal event names an object that is gone by definition: never unusable.
    """
    found: dict[str, str] = {}
    for event in events:
        if event.is_removal or event.key in found:
            continue
        if event.key in refused:
            found[event.key] = f"key refused: {refused[event.key]}"
        elif event.key in gone or (present is not None and event.key not in present):
            found[event.key] = NO_SUCH_OBJECT
    return tuple(found.items())


# S3 error codes that a retry within a Batch Operations job cannot cure: the configuration
# (a bucket, a permission) must change first.
PERMANENT_S3_ERRORS = frozenset(
    {"403", "AccessDenied", "Forbidden", "NoSuchBucket", "InvalidBucketName", "AllAccessDisabled"}
)


def not_run(group: ExecutionGroup, why: str) -> GroupOutcome:
    """The outcome of a group a driver did not start (shutdown)."""
    return GroupOutcome(group, Status.NOT_RUN, f"not run: {why}")
