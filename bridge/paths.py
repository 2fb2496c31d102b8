"""Object keys <-> local paths, safely (docs/design.md §11). Pure: no I/O.

Keys are untrusted. A key maps to a path under the root folder only if, after removing
the group prefix, it is non-empty, relative, free of NUL, and no ``/``-separated part is
empty, ``.`` or ``..``. Nothing else is ever turned into a path.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bridge.events import ObjectEvent

# Linux's NAME_MAX: a longer path component cannot be created, so such a key cannot be pulled.
_MAX_COMPONENT_BYTES = 255


class UnsafeKey(ValueError):
    """The key cannot be mapped to a local path; the message says why."""


def relative_path(key: str, prefix: str) -> str:
    """The POSIX path, relative to the root folder, where ``key`` is pulled.

    Raises ``UnsafeKey`` when the key must not become a path.
    """
    if not key.startswith(prefix):
        raise UnsafeKey(f"not under the prefix {prefix!r}")
    rest = key[len(prefix) :]
    if not rest:
        raise UnsafeKey("empty path after removing the prefix")
    if "\x00" in rest:
        raise UnsafeKey("contains a NUL character")
    if rest.startswith("/"):
        raise UnsafeKey("absolute path")
    for part in rest.split("/"):
        if part in ("", ".", ".."):
            raise UnsafeKey(f"path part {part!r} is not allowed")
        if len(part.encode("utf-8", "surrogatepass")) > _MAX_COMPONENT_BYTES:
            raise UnsafeKey(f"path part longer than {_MAX_COMPONENT_BYTES} bytes")
    return rest


def is_folder_marker(key: str) -> bool:
    """Keys ending in ``/`` are console "folders": skipped silently."""
    return key.endswith("/")


def object_key(prefix: str, path: str) -> str:
    """The key an output at relative POSIX ``path`` is pushed to."""
    return prefix + path


@dataclass(frozen=True)
class ListedObject:
    """One object from the listing: the fields the engine needs plus the raw listing entry."""

    key: str
    size: int
    etag: str  # without quotes
    last_modified_ns: int
    listing: dict[str, object]  # the S3 Object fields, JSON-ready, for the execution filter


@dataclass(frozen=True)
class PullItem:
    """An object to download and the relative path it lands at."""

    obj: ListedObject
    path: str


@dataclass(frozen=True)
class SkippedObject:
    """A listed object that is not pulled, and why (``reason``); ``warn`` if it deserves one."""

    key: str
    reason: str
    warn: bool


@dataclass(frozen=True)
class PullPlan:
    """Which listed objects are pulled, and which are skipped with their reasons."""

    pull: tuple[PullItem, ...]
    skipped: tuple[SkippedObject, ...]

    @property
    def total_bytes(self) -> int:
        """Bytes to download."""
        return sum(item.obj.size for item in self.pull)


def plan_pull(
    objects: Iterable[ListedObject], prefix: str, pull_match_keys: Sequence[re.Pattern[str]]
) -> PullPlan:
    """Decide which objects to pull under ``prefix``.

    An object is pulled when its key matches any of ``pull_match_keys`` (all when empty) and
    maps to a safe path. When a pulled file would have to be a folder for another pulled
    file (``a`` and ``a/b``), the file ``a`` is skipped: the deeper files are kept.
    """
    candidates: list[PullItem] = []
    skipped: list[SkippedObject] = []
    for obj in objects:
        if is_folder_marker(obj.key):
            skipped.append(SkippedObject(obj.key, "folder marker", warn=False))
            continue
        if pull_match_keys and not any(p.search(obj.key) for p in pull_match_keys):
            skipped.append(SkippedObject(obj.key, "does not match PULL_MATCH_KEYS", warn=False))
            continue
        try:
            path = relative_path(obj.key, prefix)
        except UnsafeKey as exc:
            skipped.append(SkippedObject(obj.key, f"unsafe key: {exc}", warn=True))
            continue
        candidates.append(PullItem(obj, path))

    folders = {path for item in candidates for path in _parent_folders(item.path)}
    pull = []
    for item in candidates:
        if item.path in folders:
            reason = "collides with a folder of the same name holding other objects"
            skipped.append(SkippedObject(item.obj.key, reason, warn=True))
        else:
            pull.append(item)
    return PullPlan(tuple(pull), tuple(skipped))


def plan_event_pull(
    events: Iterable[ObjectEvent], prefix: str, pull_match_keys: Sequence[re.Pattern[str]]
) -> PullPlan:
    """Decide which triggering objects to pull (``PULL_SCOPE=events``, docs/design.md §2.1).

    Each key once (its last event counts), removals never, and otherwise exactly the rules of
    ``plan_pull``. Size and ETag come from the event, so nothing is asked of S3 beforehand;
    an event without them (not sent by S3) gets size 0 and an empty ETag, which makes the
    pull ask S3 for them.
    """
    latest: dict[str, ObjectEvent] = {}
    for event in events:
        latest.pop(event.key, None)  # in the order of each key's last event
        latest[event.key] = event
    removed = [
        SkippedObject(key, f"removed ({event.event_name}): nothing to pull", warn=False)
        for key, event in latest.items()
        if event.is_removal
    ]
    triggered = [
        ListedObject(
            key=event.key,
            size=event.size or 0,
            etag=event.etag or "",
            last_modified_ns=0,  # unknown until the GetObject response
            listing={},
        )
        for event in latest.values()
        if not event.is_removal
    ]
    plan = plan_pull(triggered, prefix, pull_match_keys)
    return PullPlan(plan.pull, (*removed, *plan.skipped))


def _parent_folders(path: str) -> Iterable[str]:
    parts = path.split("/")
    for depth in range(1, len(parts)):
        yield "/".join(parts[:depth])
