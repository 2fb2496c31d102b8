"""Outputs follow inputs (docs/design.md §15): the engine's use of lineage records.

With ``LINEAGE`` on, every successful run records which outputs it left from which inputs.
With ``ON_DELETE=remove-outputs`` it also removes what the record says is no longer made:

- events scope (one group per object): a removal of the input forgets it (its recorded
  outputs are removed, its record dropped) without running the handler; a new version of
  the input that makes other outputs removes the old ones;
- prefix scope: the group runs again without the removed object, and the outputs its last
  run left that this run did not are removed; when a removal leaves the group nothing to
  pull, or closes its execution filter, the group's recorded outputs are removed.

A removal event whose key exists again (deleted and re-put before the event arrived) is
stale: it removes nothing. An output whose ETag changed since the bridge wrote it is kept.
"""

from __future__ import annotations

import logging
import stat
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from bridge.events import ObjectEvent
from bridge.groups import ExecutionGroup
from bridge.lineage import LineageRecord, Removal, Unit, stale_outputs
from bridge.lineage_store import LineageStore
from bridge.logs import log
from bridge.paths import ListedObject, PullItem
from bridge.settings import Settings

logger = logging.getLogger(__name__)

STALE_REMOVAL = "the key exists again: the removal event is stale, nothing removed"


class Follower:
    """Lineage for one configuration (step name, scope, ``ON_DELETE``)."""

    def __init__(self, settings: Settings, store: LineageStore) -> None:
        self.settings = settings
        self.store = store
        self.events_scope = settings.pull_scope == "events"

    # --- events scope ------------------------------------------------------------------

    def removals_only(self, group: ExecutionGroup) -> bool:
        """Events scope with remove-outputs: every key of the group was last removed, so the
        group is a deletion to follow, not a run."""
        if not (self.events_scope and self.settings.removes_outputs):
            return False
        return bool(group.events) and all(event.is_removal for event in _last_events(group))

    def follow_removals(self, group: ExecutionGroup, target: str) -> Removal:
        """Forget each removed input that is really gone (stale events remove nothing)."""
        removal = Removal()
        for event in _last_events(group):
            if self.store.exists(group.bucket, event.key):
                log(logger, logging.INFO, "removal ignored", key=event.key, why=STALE_REMOVAL)
                continue
            removal += self.store.forget(self._object_unit(group.bucket, event.key), target)
        return removal

    def preview_removals(self, group: ExecutionGroup, target: str) -> list[dict[str, object]]:
        """What ``follow_removals`` would do, reading only: per removed key, whether it exists
        again (stale) and the outputs its record lists (``plan``)."""
        preview: list[dict[str, object]] = []
        for event in _last_events(group):
            unit = self._object_unit(group.bucket, event.key)
            record = self.store.read(target, unit)
            preview.append(
                {
                    "key": event.key,
                    "exists_again": self.store.exists(group.bucket, event.key),
                    "record": f"s3://{target}/{unit.record_key}",
                    "outputs": sorted(record.outputs) if record is not None else [],
                }
            )
        return preview

    # --- prefix scope ------------------------------------------------------------------

    def closed_by_removal(self, group: ExecutionGroup, listing: Sequence[ListedObject]) -> bool:
        """Prefix scope with remove-outputs: a removal of the group (whose key is not
        listed again) triggered this run."""
        if self.events_scope or not self.settings.removes_outputs:
            return False
        listed = {obj.key for obj in listing}
        return any(e.is_removal and e.key not in listed for e in _last_events(group))

    def clear_group(self, group: ExecutionGroup, target: str) -> Removal:
        """The group has nothing left to make: remove its recorded outputs."""
        return self.store.forget(self._group_unit(group), target)

    # --- after a successful run ----------------------------------------------------------

    def record_run(
        self,
        group: ExecutionGroup,
        target: str,
        pulled: Sequence[PullItem],
        root: Path,
        changed: Iterable[str],
        outputs: Mapping[str, str],
    ) -> Removal:
        """Record the run's ``outputs`` (key -> ETag left in ``target``) against its inputs,
        removing the stale ones first with remove-outputs.

        ``changed`` are the paths the diff found new or changed: a pulled object outside
        them, still in the root folder, was left as it was, so a recorded output among them
        is still made (same bucket, prefix scope).
        """
        remove = self.settings.removes_outputs
        if self.events_scope:
            triggering = {event.key for event in group.events if not event.is_removal}
            removal = Removal()
            for item in pulled:
                if item.obj.key in triggering:
                    unit = self._object_unit(group.bucket, item.obj.key)
                    inputs = {item.obj.key: item.obj.etag}
                    removal += self._settle(unit, target, inputs, outputs, remove, {})
            return removal
        untouched = _untouched(root, pulled, set(changed)) if target == group.bucket else {}
        inputs = {item.obj.key: item.obj.etag for item in pulled}
        return self._settle(self._group_unit(group), target, inputs, outputs, remove, untouched)

    def _settle(
        self,
        unit: Unit,
        target: str,
        inputs: Mapping[str, str],
        outputs: Mapping[str, str],
        remove: bool,
        untouched: Mapping[str, str],
    ) -> Removal:
        previous = self.store.read(target, unit) if remove else None
        present = dict(outputs)
        if previous is not None:
            present.update(
                {k: etag for k, etag in previous.outputs.items() if untouched.get(k) == etag}
            )
        removal = self.store.remove_outputs(target, stale_outputs(previous, present))
        self.store.write(LineageRecord(unit, target, inputs, present))
        return removal

    def _object_unit(self, bucket: str, key: str) -> Unit:
        return Unit(self.settings.step_name, bucket, "object", key)

    def _group_unit(self, group: ExecutionGroup) -> Unit:
        return Unit(self.settings.step_name, group.bucket, "group", group.prefix)


def _last_events(group: ExecutionGroup) -> list[ObjectEvent]:
    """The last event of each key of the group, in order of first appearance."""
    last: dict[str, ObjectEvent] = {}
    for event in group.events:
        last[event.key] = event
    return list(last.values())


def _untouched(root: Path, pulled: Sequence[PullItem], changed: set[str]) -> dict[str, str]:
    """Pulled objects still in the root folder as pulled (key -> ETag)."""
    untouched: dict[str, str] = {}
    for item in pulled:
        if item.path in changed:
            continue
        try:
            mode = (root / item.path).lstat().st_mode
        except OSError:
            continue
        if stat.S_ISREG(mode):
            untouched[item.obj.key] = item.obj.etag
    return untouched
