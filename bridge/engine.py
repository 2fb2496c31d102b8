"""One execution group end to end -> outcome (docs/design.md §2 steps 4-10, §6, §9, §11).

The engine knows nothing about where events came from: drivers hand it an
``ExecutionGroup`` and get a ``GroupOutcome`` back. Exactly one summary line is logged per
group, whatever happens.
"""

from __future__ import annotations

import json
import logging
import mimetypes
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from bridge import signatures
from bridge.groups import ExecutionGroup
from bridge.handler import KILL_GRACE_SECONDS, run_handler
from bridge.jqfilter import FilterRuntimeError, FilterVerdict
from bridge.logs import log
from bridge.outcomes import GroupOutcome, Status
from bridge.paths import ListedObject, PullPlan, object_key, plan_pull
from bridge.settings import Settings
from bridge.storage import DEPTH_METADATA, MULTIPART_THRESHOLD, Storage, Upload

logger = logging.getLogger("bridge.engine")

EVENTS_FILE_VAR = "BRIDGE_EVENTS_FILE"
CHAIN_DEPTH_REASON = "chain depth limit reached"


@dataclass(frozen=True)
class Deadline:
    """A Lambda invocation deadline and the margin kept to report a failure cleanly."""

    epoch_ms: int
    margin_s: float

    @classmethod
    def for_invocation(cls, epoch_ms: int, now: float | None = None) -> Deadline:
        """Margin: 10 % of the time left when the invocation starts, at least 1 s."""
        left = epoch_ms / 1000 - (time.time() if now is None else now)
        return cls(epoch_ms, max(1.0, 0.1 * left))

    def handler_budget(self) -> float:
        """Seconds the handler may still run."""
        return self.epoch_ms / 1000 - time.time() - self.margin_s


@dataclass(frozen=True)
class InvocationContext:
    """What a driver adds to every group of one invocation."""

    deadline: Deadline | None = None
    env: Mapping[str, str] = field(default_factory=dict)


class GroupFailure(Exception):
    """The group fails with this reason."""


@dataclass
class _Report:
    """What the summary line says about a group; filled in as the phases run."""

    listed: int = 0
    pulled: int = 0
    skipped: dict[str, str] = field(default_factory=dict)
    bytes_in: int = 0
    bytes_out: int = 0
    uploaded: list[str] = field(default_factory=list)
    unchanged: int = 0
    filter: str | None = None
    depth: int | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = round(time.perf_counter() - started, 4)


@dataclass(frozen=True)
class GroupPlan:
    """What ``plan`` shows: everything the engine would decide, with nothing run."""

    group: ExecutionGroup
    target_bucket: str
    listed: int
    pull: PullPlan
    verdict: FilterVerdict | None
    filter_error: str | None


class Engine:
    """Runs execution groups with one configuration, handler command and S3 storage."""

    def __init__(self, settings: Settings, command: Sequence[str], storage: Storage) -> None:
        self.settings = settings
        self.command = tuple(command)
        self.storage = storage

    def run_group(
        self, group: ExecutionGroup, context: InvocationContext | None = None
    ) -> GroupOutcome:
        """List, filter, pull, run the handler, diff and push one group."""
        report = _Report()
        try:
            outcome = self._run(group, context or InvocationContext(), report)
        except GroupFailure as exc:
            outcome = GroupOutcome(group, Status.FAILED, str(exc))
        except (ClientError, BotoCoreError, OSError, FilterRuntimeError) as exc:
            outcome = GroupOutcome(group, Status.FAILED, f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # anything unforeseen fails this group only, not the batch
            logger.exception("unexpected error in group %s", group.label)
            outcome = GroupOutcome(group, Status.FAILED, f"unexpected {type(exc).__name__}: {exc}")
        self._summarise(group, outcome, report)
        return outcome

    def plan_group(self, group: ExecutionGroup) -> GroupPlan:
        """Decide what ``run_group`` would do, without pulling, running or writing anything."""
        listing = self.storage.list_objects(group.bucket, group.prefix)
        verdict, error = None, None
        if self.settings.execution_filter is not None:
            try:
                verdict = self.settings.execution_filter.evaluate([o.listing for o in listing])
            except FilterRuntimeError as exc:
                error = str(exc)
        return GroupPlan(
            group=group,
            target_bucket=self.settings.target_for(group.bucket),
            listed=len(listing),
            pull=plan_pull(listing, group.prefix, self.settings.pull_match_keys),
            verdict=verdict,
            filter_error=error,
        )

    def _run(
        self, group: ExecutionGroup, context: InvocationContext, report: _Report
    ) -> GroupOutcome:
        with report.phase("list"):
            listing = self.storage.list_objects(group.bucket, group.prefix)
        report.listed = len(listing)

        execution_filter = self.settings.execution_filter
        if execution_filter is not None:
            with report.phase("filter"):
                verdict = execution_filter.evaluate([o.listing for o in listing])
            report.filter = verdict.describe()
            if not verdict.proceed:
                return GroupOutcome(group, Status.SKIPPED, "execution filter returned false")

        plan = plan_pull(listing, group.prefix, self.settings.pull_match_keys)
        report.skipped = {s.key: s.reason for s in plan.skipped}
        for skipped in plan.skipped:
            if skipped.warn:
                log(logger, logging.WARNING, "object skipped", key=skipped.key, why=skipped.reason)

        with tempfile.TemporaryDirectory(prefix="s3-event-bridge-") as workdir:
            root = Path(workdir, "root")
            root.mkdir()
            _check_free_space(root, plan.total_bytes)
            with report.phase("pull"):
                depths = self.storage.pull(group.bucket, plan.pull, root)
            report.pulled, report.bytes_in = len(plan.pull), plan.total_bytes

            depth = self._chain_depth(group, depths)
            report.depth = depth
            limit = self.settings.max_chain_depth
            if limit and depth >= limit:
                raise GroupFailure(f"{CHAIN_DEPTH_REASON} (depth {depth}, MAX_CHAIN_DEPTH {limit})")

            snapshot = signatures.take_snapshot(root, (item.path for item in plan.pull))
            events_file = Path(workdir, "events.json")
            _write_events_file(events_file, group, plan)

            with report.phase("handler"):
                result = run_handler(
                    self.command,
                    self._handler_env(group, root, events_file, context),
                    self._handler_timeout(context),
                    tags={"group": group.label},
                    kill_grace=self._kill_grace(context),
                )
            if not result.ok:
                raise GroupFailure(result.describe())

            with report.phase("diff"):
                candidates = signatures.changed_files(root, snapshot)
            with report.phase("push"):
                self._push(group, root, candidates, listing, depth + 1, report)
        return GroupOutcome(group, Status.SUCCEEDED, uploaded=tuple(report.uploaded))

    def _chain_depth(self, group: ExecutionGroup, pulled_depths: Mapping[str, int]) -> int:
        """Largest ``bridge-depth`` among the triggering objects (HeadObject if not pulled)."""
        depths = [0]
        for key in {event.key for event in group.events}:
            if key in pulled_depths:
                depths.append(pulled_depths[key])
            else:
                depths.append(self.storage.depth_of(group.bucket, key))
        return max(depths)

    def _handler_env(
        self, group: ExecutionGroup, root: Path, events_file: Path, context: InvocationContext
    ) -> dict[str, str]:
        env = dict(os.environ)
        env.update(context.env)
        env[self.settings.root_folder_var] = str(root)
        env[self.settings.bucket_var] = group.bucket
        env[self.settings.key_prefix_var] = group.prefix
        env[EVENTS_FILE_VAR] = str(events_file)
        return env

    def _handler_timeout(self, context: InvocationContext) -> float | None:
        limits = [self.settings.handler_timeout]
        if context.deadline is not None:
            limits.append(context.deadline.handler_budget())
        present = [limit for limit in limits if limit is not None]
        return min(present) if present else None

    def _kill_grace(self, context: InvocationContext) -> float:
        # Under a deadline, SIGTERM -> SIGKILL must fit in the margin, or the answer is late.
        if context.deadline is None:
            return KILL_GRACE_SECONDS
        return min(KILL_GRACE_SECONDS, context.deadline.margin_s / 2)

    def _push(
        self,
        group: ExecutionGroup,
        root: Path,
        candidates: Sequence[str],
        listing: Sequence[ListedObject],
        depth: int,
        report: _Report,
    ) -> None:
        if not candidates:
            return
        target = self.settings.target_for(group.bucket)
        existing: dict[str, str] = {}
        if self.settings.skip_unchanged:
            if target == group.bucket:
                existing = {o.key: o.etag for o in listing}
            else:
                existing = self.storage.etags(target, group.prefix)

        uploads = []
        for path in candidates:
            local = root / path
            key = object_key(group.prefix, path)
            size = local.stat().st_size
            digest = signatures.md5_of(local) if size < MULTIPART_THRESHOLD else None
            etag = existing.get(key)
            if etag and "-" not in etag:  # a plain MD5 ETag: comparable
                digest = digest or signatures.md5_of(local)
                if digest.hex == etag:
                    report.unchanged += 1
                    continue
            uploads.append(
                Upload(
                    path=local,
                    key=key,
                    content_type=mimetypes.guess_type(path)[0] or "application/octet-stream",
                    metadata={DEPTH_METADATA: str(depth)},
                    content_md5=digest.base64 if digest and size < MULTIPART_THRESHOLD else None,
                )
            )
            report.bytes_out += size
        self.storage.push(target, uploads)
        report.uploaded = [upload.key for upload in uploads]

    def _summarise(self, group: ExecutionGroup, outcome: GroupOutcome, report: _Report) -> None:
        fields: dict[str, Any] = {
            "bucket": group.bucket,
            "prefix": group.prefix,
            "events": [e.key for e in group.events],
            "outcome": outcome.status.value,
        }
        if outcome.reason:
            fields["reason"] = outcome.reason
        fields.update(
            listed=report.listed,
            pulled=report.pulled,
            skipped=report.skipped,
            bytes_in=report.bytes_in,
            bytes_out=report.bytes_out,
            uploaded=len(report.uploaded),
            unchanged=report.unchanged,
        )
        if report.filter is not None:
            fields["filter"] = report.filter
        if report.depth is not None:
            fields["depth"] = report.depth
        fields["timings"] = report.timings
        level = logging.ERROR if outcome.status is Status.FAILED else logging.INFO
        log(logger, level, "group summary", **fields)


def _check_free_space(root: Path, needed: int) -> None:
    free = shutil.disk_usage(root).free
    if needed > free:
        raise GroupFailure(
            f"not enough space in {root.parent.parent}: the pull needs {needed} bytes, "
            f"{free} are free"
        )


def _write_events_file(path: Path, group: ExecutionGroup, plan: PullPlan) -> None:
    pulled = {item.obj.key: item.path for item in plan.pull}
    events = [
        {
            "bucket": e.bucket,
            "key": e.key,
            "path": pulled.get(e.key) if e.bucket == group.bucket else None,
            "event_name": e.event_name,
            "size": e.size,
            "etag": e.etag,
        }
        for e in group.events
    ]
    path.write_text(json.dumps(events, ensure_ascii=False), encoding="utf-8")
