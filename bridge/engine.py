"""One execution group end to end -> outcome (docs/design.md §2 steps 4-10, §6, §9, §11).

The engine knows nothing about where events came from: drivers hand it an
``ExecutionGroup`` and get a ``GroupOutcome`` back. Exactly one summary line is logged per
group, whatever happens.
"""

from __future__ import annotations

import contextlib
import json
import logging
import mimetypes
import os
import shutil
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from bridge import signatures, workspace
from bridge.groups import ExecutionGroup
from bridge.handler import KILL_GRACE_SECONDS, run_handler
from bridge.jqfilter import FilterRuntimeError, FilterVerdict
from bridge.lineage import is_reserved
from bridge.logs import log
from bridge.outcomes import PERMANENT_S3_ERRORS, GroupOutcome, Status, unusable_triggers
from bridge.paths import ListedObject, PullItem, PullPlan, object_key, plan_event_pull, plan_pull
from bridge.progress import Progress
from bridge.settings import Settings
from bridge.storage import (
    DEPTH_METADATA,
    IntegrityError,
    PushResult,
    Storage,
    Upload,
    error_code,
)
from bridge.summary import GroupReport, log_summary

if TYPE_CHECKING:
    from bridge.follow import Follower

logger = logging.getLogger("bridge.engine")

EVENTS_FILE_VAR = "BRIDGE_EVENTS_FILE"
USER_ARGUMENTS_VAR = "BRIDGE_USER_ARGUMENTS"
CHAIN_DEPTH_REASON = "chain depth limit reached"
GONE_REASON = "gone since its event (404)"
RESERVED_OUTPUT = "under the bridge's reserved prefix .s3-event-bridge/ (its lineage records)"


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
    """What a driver adds to every group of one invocation.

    ``user_arguments``: the invocation's user arguments as a JSON object (S3 Batch
    Operations' ``job.userArguments``), given to the handler as ``BRIDGE_USER_ARGUMENTS``.
    """

    deadline: Deadline | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    user_arguments: str = "{}"


class GroupFailure(Exception):
    """The group fails with this reason; ``permanent`` when running it again cannot help."""

    def __init__(self, reason: str, permanent: bool = False) -> None:
        super().__init__(reason)
        self.permanent = permanent


@dataclass(frozen=True)
class ChainDepth:
    """The loop guard's verdict (docs/design.md §9): the group's depth against the limit."""

    depth: int
    limit: int  # MAX_CHAIN_DEPTH; 0 disables the guard

    @property
    def exceeded(self) -> bool:
        """The group must not run."""
        return bool(self.limit) and self.depth >= self.limit

    @property
    def reason(self) -> str:
        """The failure reason when ``exceeded``."""
        return f"{CHAIN_DEPTH_REASON} (depth {self.depth}, MAX_CHAIN_DEPTH {self.limit})"


@dataclass(frozen=True)
class GroupPlan:
    """Everything the engine decides about a group before pulling: ``run`` executes it and
    ``plan`` prints it, so a dry run cannot drift from what runs.

    ``listing`` is None when nothing is listed (``PULL_SCOPE=events`` without a filter).
    ``depth_probes`` are the triggering keys whose chain depth is not read from a GetObject
    response of the pull, so it needs a HeadObject. ``chain`` is filled in by ``plan_group``
    (from HeadObject) and left None by ``run_group``, which learns the depths while pulling.
    """

    group: ExecutionGroup
    scope: str
    target_bucket: str
    listing: tuple[ListedObject, ...] | None
    verdict: FilterVerdict | None
    filter_error: str | None
    pull: PullPlan
    depth_probes: tuple[str, ...]
    chain: ChainDepth | None = None
    chain_error: str | None = None

    @property
    def listed(self) -> int | None:
        """How many objects were listed; None when nothing was listed."""
        return None if self.listing is None else len(self.listing)

    @property
    def proceeds(self) -> bool:
        """The filter lets the group run (no filter, or any first output but ``false``)."""
        return self.filter_error is None and (self.verdict is None or self.verdict.proceed)


class Engine:
    """Runs execution groups with one configuration, handler command and S3 storage."""

    def __init__(self, settings: Settings, command: Sequence[str], storage: Storage) -> None:
        self.settings = settings
        self.command = tuple(command)
        self.storage = storage
        self.follower: Follower | None = None
        if settings.records_lineage:  # loaded only by a configuration that records lineage
            from bridge.follow import Follower
            from bridge.lineage_store import LineageStore

            self.follower = Follower(settings, LineageStore(storage.client))

    def run_group(
        self, group: ExecutionGroup, context: InvocationContext | None = None
    ) -> GroupOutcome:
        """Decide (list, filter, pull plan), then pull, run the handler, diff and push."""
        report = GroupReport(scope=self.settings.pull_scope)
        started: dict[str, Any] = {"bucket": group.bucket, "prefix": group.prefix}
        started["events"] = len(group.events)
        if group.message_ids:
            started["message_ids"] = sorted(group.message_ids)
        log(logger, logging.INFO, "group started", **started)
        try:
            outcome = self._run(group, context or InvocationContext(), report)
        except GroupFailure as exc:
            outcome = GroupOutcome(group, Status.FAILED, str(exc), permanent=exc.permanent)
        except (ClientError, BotoCoreError, OSError, FilterRuntimeError, IntegrityError) as exc:
            outcome = GroupOutcome(group, Status.FAILED, f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # anything unforeseen fails this group only, not the batch
            logger.exception("unexpected error in group %s", group.label)
            outcome = GroupOutcome(group, Status.FAILED, f"unexpected {type(exc).__name__}: {exc}")
        log_summary(group, outcome, report, lineage=self.follower is not None)
        return outcome

    def decide(self, group: ExecutionGroup, report: GroupReport | None = None) -> GroupPlan:
        """List (unless the scope needs no listing), evaluate the filter, plan the pull.

        Reads only listings: the one decision path of ``run_group`` and ``plan_group``.
        """
        report = report or GroupReport()
        settings = self.settings
        events_scope = settings.pull_scope == "events"
        listing: tuple[ListedObject, ...] | None = None
        if not events_scope or settings.execution_filter is not None:
            with report.phase("list"):
                listed = self.storage.list_objects(group.bucket, group.prefix)
                listing = tuple(obj for obj in listed if not is_reserved(obj.key))
            report.listed = len(listing)

        verdict, error = None, None
        if settings.execution_filter is not None:
            assert listing is not None
            with report.phase("filter"):
                try:
                    verdict = settings.execution_filter.evaluate([o.listing for o in listing])
                except FilterRuntimeError as exc:
                    error = str(exc)
            report.filter = verdict.describe() if verdict is not None else None

        if events_scope:
            pull = plan_event_pull(group.events, group.prefix, settings.pull_match_keys)
        else:
            pull = plan_pull(listing or (), group.prefix, settings.pull_match_keys)
        pulled = {item.obj.key for item in pull.pull}
        probes = tuple(
            dict.fromkeys(
                e.key
                for e in group.events
                if e.key not in pulled and not (events_scope and e.is_removal)
            )
        )
        return GroupPlan(
            group=group,
            scope=settings.pull_scope,
            target_bucket=settings.target_for(group.bucket),
            listing=listing,
            verdict=verdict,
            filter_error=error,
            pull=pull,
            depth_probes=probes,
        )

    def plan_group(self, group: ExecutionGroup) -> GroupPlan:
        """What ``run_group`` would do, without pulling, running or writing anything.

        The chain depth is read with a HeadObject per triggering object (the run reads it
        from the GetObject responses instead).
        """
        plan = self.decide(group)
        try:
            depths = {key: self.storage.depth_of(group.bucket, key) for key in plan.depth_probes}
            depths.update(
                {
                    item.obj.key: self.storage.depth_of(group.bucket, item.obj.key)
                    for item in plan.pull.pull
                    if item.obj.key in {e.key for e in group.events}
                }
            )
        except (ClientError, BotoCoreError) as exc:
            return replace(plan, chain_error=f"{type(exc).__name__}: {exc}")
        return replace(plan, chain=self._chain_verdict(depths.values()))

    def _chain_verdict(self, depths: Iterable[int]) -> ChainDepth:
        return ChainDepth(max([0, *depths]), self.settings.max_chain_depth)

    def _run(
        self, group: ExecutionGroup, context: InvocationContext, report: GroupReport
    ) -> GroupOutcome:
        follower = self.follower
        target = self.settings.target_for(group.bucket)
        if follower is not None and follower.removals_only(group):
            with report.phase("remove"), _s3_context("remove outputs in", target, group.prefix):
                report.removal = follower.follow_removals(group, target)
            return GroupOutcome(group, Status.SUCCEEDED, removed=report.removal.removed)
        with _s3_context("list", group.bucket, group.prefix):
            plan = self.decide(group, report)
        if plan.filter_error is not None:
            raise GroupFailure(f"FilterRuntimeError: {plan.filter_error}", permanent=True)
        closing = (not plan.proceeds or not plan.pull.pull) and (
            follower is not None and follower.closed_by_removal(group, plan.listing or ())
        )
        if closing:
            assert follower is not None
            with report.phase("remove"), _s3_context("remove outputs in", target, group.prefix):
                report.removal = follower.clear_group(group, target)
            status, why = (
                (Status.SKIPPED, "execution filter returned false")
                if not plan.proceeds
                else (Status.SUCCEEDED, None)
            )
            return GroupOutcome(group, status, why, removed=report.removal.removed)
        if not plan.proceeds:
            return GroupOutcome(group, Status.SKIPPED, "execution filter returned false")

        report.skipped = {s.key: s.reason for s in plan.pull.skipped}
        for skipped in plan.pull.skipped:
            if skipped.warn:
                log(logger, logging.WARNING, "object skipped", key=skipped.key, why=skipped.reason)

        with workspace.group_folder() as workdir:
            root = Path(workdir, "root")
            root.mkdir()
            _check_free_space(root, plan.pull.total_bytes)
            with report.phase("pull"), _s3_context("pull", group.bucket, group.prefix):
                pulled, depths = self._pull(plan, root, report)

            with _s3_context("read the chain depth", group.bucket, group.prefix):
                probed = [self.storage.depth_of(group.bucket, key) for key in plan.depth_probes]
            triggering = {event.key for event in group.events}
            chain = self._chain_verdict(
                [*(depth for key, depth in depths.items() if key in triggering), *probed]
            )
            report.depth = chain.depth
            if chain.exceeded:
                raise GroupFailure(chain.reason, permanent=True)

            snapshot = signatures.take_snapshot(root, (item.path for item in pulled))
            events_file = Path(workdir, "events.json")
            _write_events_file(events_file, group, pulled)

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
            with report.phase("push"), _s3_context("push to", plan.target_bucket, group.prefix):
                pushed = self._push(group, root, candidates, plan, chain.depth + 1)
            report.uploaded, report.unchanged = pushed.uploaded, pushed.unchanged
            report.bytes_out, report.not_uploaded = pushed.bytes_out, pushed.refused
            if follower is not None:
                with report.phase("lineage"), _s3_context("record lineage in", target, ""):
                    report.removal = follower.record_run(
                        group, target, pulled, root, candidates, pushed.etags
                    )
        refused = {s.key: s.reason for s in plan.pull.skipped if s.warn}
        present = None if plan.listing is None else {o.key for o in plan.listing}
        gone = {key for key, why in report.skipped.items() if why == GONE_REASON}
        unusable = unusable_triggers(group.events, refused, present, gone)
        return GroupOutcome(
            group,
            Status.SUCCEEDED,
            uploaded=report.uploaded,
            unusable=unusable,
            removed=report.removal.removed,
        )

    def _pull(
        self, plan: GroupPlan, root: Path, report: GroupReport
    ) -> tuple[tuple[PullItem, ...], Mapping[str, int]]:
        """Pull the planned objects; returns those pulled and their chain depths."""
        group = plan.group
        if plan.scope != "events":
            result = self.storage.pull(
                group.bucket, plan.pull.pull, root, _progress("pull", plan.pull.pull, group)
            )
            _report_unverified(result.unverified, report)
            report.pulled, report.bytes_in = len(plan.pull.pull), plan.pull.total_bytes
            return plan.pull.pull, result.depths
        fetched = self.storage.fetch(
            group.bucket, plan.pull.pull, root, _progress("pull", plan.pull.pull, group)
        )
        _report_unverified(fetched.unverified, report)
        for key in fetched.missing:
            log(logger, logging.WARNING, "object skipped", key=key, why=GONE_REASON)
            report.skipped[key] = GONE_REASON
        report.gone = len(fetched.missing)
        pulled = tuple(
            replace(
                item, obj=replace(item.obj, etag=fetched.etags.get(item.obj.key, item.obj.etag))
            )
            for item in plan.pull.pull
            if item.obj.key not in fetched.missing
        )
        report.pulled = len(pulled)
        report.bytes_in = sum((root / item.path).stat().st_size for item in pulled)
        return pulled, fetched.depths

    def _handler_env(
        self, group: ExecutionGroup, root: Path, events_file: Path, context: InvocationContext
    ) -> dict[str, str]:
        env = dict(os.environ)
        env.update(context.env)
        env[self.settings.root_folder_var] = str(root)
        env[self.settings.bucket_var] = group.bucket
        env[self.settings.key_prefix_var] = group.prefix
        env[EVENTS_FILE_VAR] = str(events_file)
        env[USER_ARGUMENTS_VAR] = context.user_arguments
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
        plan: GroupPlan,
        depth: int,
    ) -> PushResult:
        reserved = {
            path: RESERVED_OUTPUT
            for path in candidates
            if is_reserved(object_key(group.prefix, path))
        }
        for path in reserved:
            log(logger, logging.WARNING, "output not uploaded", path=path, why=RESERVED_OUTPUT)
        candidates = [path for path in candidates if path not in reserved]
        if not candidates:
            return PushResult(refused=reserved)
        target = plan.target_bucket
        existing: dict[str, str] = {}
        if self.settings.skip_unchanged:
            with _s3_context("read stored ETags", target, group.prefix):
                existing = self._stored_etags(plan, candidates)
        uploads = [
            Upload(
                path=path,
                key=object_key(group.prefix, path),
                content_type=mimetypes.guess_type(path)[0] or "application/octet-stream",
                metadata={DEPTH_METADATA: str(depth)},
                known_etag=existing.get(object_key(group.prefix, path)),
            )
            for path in candidates
        ]
        progress = Progress("push", len(uploads), _total_size(root, candidates), label=group.label)
        pushed = self.storage.push(target, root, uploads, progress)
        return replace(pushed, refused={**reserved, **pushed.refused}) if reserved else pushed

    def _stored_etags(self, plan: GroupPlan, candidates: Sequence[str]) -> dict[str, str]:
        """ETags already stored at the candidates' keys (docs/design.md §6, §2.1)."""
        group = plan.group
        if plan.target_bucket == group.bucket and plan.listing is not None:
            return {o.key: o.etag for o in plan.listing}
        if plan.scope == "events":  # no listing: one HeadObject per candidate, in parallel
            keys = [object_key(group.prefix, path) for path in candidates]
            return self.storage.stored_etags(plan.target_bucket, keys)
        return self.storage.etags(plan.target_bucket, group.prefix)


def _progress(what: str, items: Sequence[PullItem], group: ExecutionGroup) -> Progress:
    total = sum(item.obj.size for item in items)
    return Progress(what, len(items), total, label=group.label)


def _total_size(root: Path, paths: Sequence[str]) -> int:
    """Bytes of the files at ``paths`` under ``root`` (symlinks not followed), for progress."""
    total = 0
    for path in paths:
        with contextlib.suppress(OSError):
            total += (root / path).lstat().st_size
    return total


def _report_unverified(keys: Sequence[str], report: GroupReport) -> None:
    report.unverified = len(keys)
    if keys:
        why = "no checksum this process can compute, no MD5 ETag"
        log(logger, logging.WARNING, "pulled objects not verified", why=why, keys=list(keys[:10]))


def _check_free_space(root: Path, needed: int) -> None:
    free = shutil.disk_usage(root).free
    if needed > free:
        raise GroupFailure(
            f"not enough space in {workspace.temp_root()}: the pull needs {needed} bytes, "
            f"{free} are free",
            permanent=True,
        )


@contextmanager
def _s3_context(doing: str, bucket: str, prefix: str) -> Iterator[None]:
    """Turn an S3 error into a one-line reason naming the action and the bucket."""
    try:
        yield
    except ClientError as exc:
        permanent = error_code(exc) in PERMANENT_S3_ERRORS
        raise GroupFailure(describe_s3_error(exc, doing, bucket, prefix), permanent) from exc


def describe_s3_error(exc: ClientError, doing: str, bucket: str, prefix: str) -> str:
    """``s3:ListBucket denied on bucket src (list s3://src/in/): AccessDenied: ...``."""
    code = error_code(exc)
    operation = exc.operation_name
    action = _IAM_ACTIONS.get(operation, f"s3:{operation}")
    message = exc.response.get("Error", {}).get("Message", "")
    where = f"{doing} s3://{bucket}/{prefix}"
    if code in ("403", "AccessDenied", "Forbidden"):
        return f"{action} denied on bucket {bucket} ({where}): {code}: {message}".rstrip(": ")
    if code == "NoSuchBucket":
        check = "TARGET_BUCKET" if doing.startswith(("push", "read stored")) else "the trigger"
        return f"bucket {bucket} does not exist ({where}): {code}: check {check}"
    return f"{operation} failed on bucket {bucket} ({where}): {code}: {message}".rstrip(": ")


# The IAM action each S3 operation the bridge calls needs.
_IAM_ACTIONS = {
    "ListObjectsV2": "s3:ListBucket",
    "GetObject": "s3:GetObject",
    "HeadObject": "s3:GetObject",
    "PutObject": "s3:PutObject",
    "CreateMultipartUpload": "s3:PutObject",
    "UploadPart": "s3:PutObject",
    "CompleteMultipartUpload": "s3:PutObject",
    "DeleteObject": "s3:DeleteObject",
}


def _write_events_file(path: Path, group: ExecutionGroup, items: Sequence[PullItem]) -> None:
    pulled = {item.obj.key: item.path for item in items}
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
