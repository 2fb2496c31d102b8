"""Object events -> execution groups (docs/design.md §2 steps 2-3). Pure: no I/O."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from bridge.events import ObjectEvent
from bridge.lineage import is_reserved

RESERVED_REASON = "the bridge's own lineage record (reserved prefix)"


@dataclass(frozen=True)
class ExecutionGroup:
    """All triggering events under one (bucket, prefix): one listing, one handler run."""

    bucket: str
    prefix: str
    events: tuple[ObjectEvent, ...]

    @property
    def message_ids(self) -> frozenset[str]:
        """The messages that contributed events to this group."""
        return frozenset(e.message_id for e in self.events if e.message_id is not None)

    @property
    def label(self) -> str:
        """``s3://bucket/prefix``, for logs and error messages."""
        return f"s3://{self.bucket}/{self.prefix}"


@dataclass(frozen=True)
class Selection:
    """Events kept for processing and events ignored, with the reason for each."""

    kept: tuple[ObjectEvent, ...]
    ignored: tuple[tuple[ObjectEvent, str], ...]


def select_events(
    events: Iterable[ObjectEvent],
    match_key: re.Pattern[str] | None,
    match_events: re.Pattern[str] | None,
) -> Selection:
    """Keep the events whose key matches ``match_key`` and name matches ``match_events``.

    Both regexes use search semantics (unanchored); ``None`` matches everything. Keys under
    the bridge's reserved prefix (its lineage records) are never inputs.
    """
    kept: list[ObjectEvent] = []
    ignored: list[tuple[ObjectEvent, str]] = []
    for event in events:
        if is_reserved(event.key):
            ignored.append((event, RESERVED_REASON))
        elif match_key is not None and not match_key.search(event.key):
            ignored.append((event, "key does not match MATCH_KEY"))
        elif match_events is not None and not match_events.search(event.event_name):
            ignored.append((event, "event name does not match MATCH_EVENTS"))
        else:
            kept.append(event)
    return Selection(tuple(kept), tuple(ignored))


def group_prefix(key: str, pull_parent_dirs: int) -> str:
    """The prefix of the group a key belongs to.

    Split the key on ``/``, drop the last ``pull_parent_dirs + 1`` parts, join with ``/`` and
    append ``/`` if non-empty. Negative values, or values beyond the key's depth, give ``""``.
    """
    if pull_parent_dirs < 0:
        return ""
    parts = key.split("/")
    joined = "/".join(parts[: max(0, len(parts) - pull_parent_dirs - 1)])
    return joined + "/" if joined else ""


def group_events(
    events: Iterable[ObjectEvent], pull_parent_dirs: int, *, per_object: bool = False
) -> list[ExecutionGroup]:
    """Group events by (bucket, prefix), in order of first appearance.

    ``per_object``: one group per (bucket, key) instead, still with the key's group prefix,
    so that every output of a run comes from exactly one input (lineage in events scope).
    """
    buckets: dict[tuple[str, str, str], list[ObjectEvent]] = {}
    for event in events:
        prefix = group_prefix(event.key, pull_parent_dirs)
        identity = (event.bucket, prefix, event.key if per_object else "")
        buckets.setdefault(identity, []).append(event)
    return [
        ExecutionGroup(bucket, prefix, tuple(members))
        for (bucket, prefix, _), members in buckets.items()
    ]
