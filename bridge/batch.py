"""Invocation -> groups -> outcomes -> response (docs/design.md §7). Pure given ``run_group``.

Modelled on the partial-batch processors of Lambda tooling: every SQS message is
acknowledged on its own, a bad message never takes the batch down with it, and for FIFO
queues processing stops at the first failure so ordering is preserved.
"""

from __future__ import annotations

import contextvars
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from bridge.events import Invocation, Message, ObjectEvent
from bridge.groups import ExecutionGroup, group_events, select_events
from bridge.logs import log
from bridge.outcomes import GroupOutcome, Status
from bridge.sources import Reply, Settled, reply

logger = logging.getLogger("bridge.batch")

RunGroup = Callable[[ExecutionGroup], GroupOutcome]


@dataclass(frozen=True)
class Routing:
    """The settings that decide which events run and how they group."""

    match_key: re.Pattern[str] | None
    match_events: re.Pattern[str] | None
    pull_parent_dirs: int
    # GROUP_CONCURRENCY: how many independent groups of one invocation may run at once.
    group_concurrency: int = 1
    # One group per object (events scope with lineage records): see ``group_events``.
    per_object: bool = False

    def route(self, events: Iterable[ObjectEvent]) -> Routed:
        """Select the events and group the kept ones: what every driver and ``plan`` run."""
        selection = select_events(events, self.match_key, self.match_events)
        groups = group_events(selection.kept, self.pull_parent_dirs, per_object=self.per_object)
        return Routed(tuple(groups), selection.ignored)


@dataclass(frozen=True)
class Routed:
    """The execution groups of some events, and the events ignored with the reason for each."""

    groups: tuple[ExecutionGroup, ...]
    ignored: tuple[tuple[ObjectEvent, str], ...]


@dataclass(frozen=True)
class MessageFailure:
    """A message that did not succeed, and why.

    ``not_run`` marks a message none of whose work failed: it was only left undone because
    the driver is shutting down (its groups were ``not run``), so it can be released at once.
    ``permanent``: processing it again cannot succeed (it cannot be parsed, or a group of it
    failed permanently: ``GroupOutcome.permanent``).
    """

    message_id: str | None
    reason: str
    not_run: bool = False
    permanent: bool = False


@dataclass(frozen=True)
class InvocationResult:
    """Everything that happened to one invocation."""

    invocation: Invocation
    outcomes: tuple[GroupOutcome, ...]
    failures: tuple[MessageFailure, ...]
    ignored: tuple[tuple[ObjectEvent, str], ...] = ()

    @property
    def succeeded(self) -> bool:
        """Every message succeeded."""
        return not self.failures

    @property
    def failed_message_ids(self) -> list[str]:
        """Ids of the messages to report (SQS) or leave for redelivery (consumer)."""
        return [f.message_id for f in self.failures if f.message_id is not None]

    @property
    def not_run_message_ids(self) -> list[str]:
        """Ids of the failed messages that were only left undone (shutdown), never failed."""
        return [f.message_id for f in self.failures if f.not_run and f.message_id is not None]

    def reply(self) -> Reply:
        """What goes back to Lambda, by the response rule of the invocation's source
        (``bridge.sources``): the partial batch response for SQS; for a direct invocation
        ``{}``, or an error document when it failed."""
        return reply(self.invocation, self.failures, self.settled())

    def settled(self) -> tuple[Settled, ...]:
        """What happened to each message that did not fail (outputs, groups, unusable keys)."""
        failed = {f.message_id for f in self.failures}
        return tuple(
            _settled(message, self.outcomes, self.ignored)
            for message in self.invocation.messages
            if message.message_id not in failed
        )

    def response(self) -> dict[str, Any]:
        """The Lambda response when it is not an error (``{}`` for a failed direct one: use
        ``error()`` there)."""
        answer = self.reply()
        return {} if answer.is_error else answer.body

    def error(self) -> dict[str, Any] | None:
        """The Runtime API error document for a failed direct invocation, else None."""
        answer = self.reply()
        return answer.body if answer.is_error else None


@dataclass(frozen=True)
class Settlement:
    """What a queue driver does with each message it received, once the batch is processed.

    Every received id is in exactly one of the three: ``delete`` (it succeeded),
    ``release`` (it was not run: make it visible again now) or ``keep`` (it failed: leave it
    to come back after its visibility timeout, and to the DLQ after ``maxReceiveCount``).
    """

    delete: tuple[str, ...]
    release: tuple[str, ...]
    keep: tuple[str, ...]


def settle(received: Iterable[str], result: InvocationResult) -> Settlement:
    """Sort the ``received`` message ids of a processed batch by what must happen to them."""
    failed, undone = set(result.failed_message_ids), set(result.not_run_message_ids)
    ids = list(dict.fromkeys(received))
    return Settlement(
        delete=tuple(i for i in ids if i not in failed),
        release=tuple(i for i in ids if i in undone),
        keep=tuple(i for i in ids if i in failed and i not in undone),
    )


def process_invocation(
    invocation: Invocation, routing: Routing, run_group: RunGroup
) -> InvocationResult:
    """Run every group of ``invocation`` and decide which messages failed."""
    if invocation.fifo:
        return _process_in_order(invocation, routing, run_group)
    failures = [_parse_failure(m) for m in invocation.messages if m.error is not None]
    parsed = [m for m in invocation.messages if m.error is None]
    outcomes, ignored = _run_groups(_events_of(parsed), routing, run_group)
    failed_groups = [o for o in outcomes if not o.ok]
    for message in parsed:
        failure = _message_failure(message, [o for o in failed_groups if _contributed(message, o)])
        if failure is not None:
            failures.append(failure)
    return InvocationResult(invocation, tuple(outcomes), tuple(failures), ignored)


def _process_in_order(
    invocation: Invocation, routing: Routing, run_group: RunGroup
) -> InvocationResult:
    outcomes: list[GroupOutcome] = []
    failures: list[MessageFailure] = []
    ignored: list[tuple[ObjectEvent, str]] = []
    for index, message in enumerate(invocation.messages):
        if message.error is not None:
            failures.append(_parse_failure(message))
        else:
            message_outcomes, message_ignored = _run_groups(
                message.events, routing, run_group, stop_on_failure=True
            )
            outcomes.extend(message_outcomes)
            ignored.extend(message_ignored)
            failure = _message_failure(message, [o for o in message_outcomes if not o.ok])
            if failure is not None:
                failures.append(failure)
        if failures:
            not_run = failures[-1].not_run
            reason = f"not processed: an earlier message ({message.message_id}) failed"
            if not_run:
                reason = f"not processed: an earlier message ({message.message_id}) was not run"
            failures += [
                MessageFailure(later.message_id, reason, not_run=not_run)
                for later in invocation.messages[index + 1 :]
            ]
            break
    return InvocationResult(invocation, tuple(outcomes), tuple(failures), tuple(ignored))


def _run_groups(
    events: Iterable[ObjectEvent],
    routing: Routing,
    run_group: RunGroup,
    stop_on_failure: bool = False,
) -> tuple[list[GroupOutcome], tuple[tuple[ObjectEvent, str], ...]]:
    """The outcomes of the groups of ``events``, and the events ignored with why."""
    routed = routing.route(events)
    for event, why in routed.ignored:
        log(logger, logging.INFO, "event ignored", bucket=event.bucket, key=event.key, why=why)
    if not stop_on_failure and routing.group_concurrency > 1 and len(routed.groups) > 1:
        side_by_side = _run_side_by_side(routed.groups, run_group, routing.group_concurrency)
        return side_by_side, routed.ignored
    outcomes = []
    for group in routed.groups:
        outcomes.append(run_group(group))
        if stop_on_failure and not outcomes[-1].ok:
            break
    return outcomes, routed.ignored


def _run_side_by_side(
    groups: Sequence[ExecutionGroup], run_group: RunGroup, concurrency: int
) -> list[GroupOutcome]:
    """Run ``groups`` on up to ``concurrency`` threads; outcomes in the order of ``groups``.

    Groups that are not independent (one's prefix contains the other's, so one may read
    what the other writes) keep their order: a group starts only after every earlier group
    it overlaps has ended. Each task runs in a copy of the caller's context, so log lines
    keep the request id.
    """
    futures: list[Future[GroupOutcome]] = []

    def after(earlier: list[Future[GroupOutcome]], group: ExecutionGroup) -> GroupOutcome:
        for future in earlier:
            future.exception()  # wait; its own outcome is collected below
        return run_group(group)

    with ThreadPoolExecutor(min(concurrency, len(groups)), "bridge-group") as pool:
        for index, group in enumerate(groups):
            earlier = [futures[i] for i in range(index) if overlaps(groups[i], group)]
            context = contextvars.copy_context()
            futures.append(pool.submit(context.run, after, earlier, group))
    # Earlier groups are submitted first and the pool starts tasks in order, so a group
    # waiting for an earlier one never holds up a thread that earlier one needs.
    return [future.result() for future in futures]


def overlaps(first: ExecutionGroup, second: ExecutionGroup) -> bool:
    """Whether two groups may touch the same keys: one prefix contains the other (any
    bucket, since outputs may go to another bucket)."""
    return first.prefix.startswith(second.prefix) or second.prefix.startswith(first.prefix)


def _events_of(messages: Iterable[Message]) -> list[ObjectEvent]:
    return [event for message in messages for event in message.events]


def _contributed(message: Message, outcome: GroupOutcome) -> bool:
    if message.message_id is None:  # a direct invocation is a single message
        return True
    return message.message_id in outcome.group.message_ids


def _message_failure(message: Message, failed: Sequence[GroupOutcome]) -> MessageFailure | None:
    """The failure of a message whose groups include ``failed`` (none: it succeeded)."""
    if not failed:
        return None
    reason = "; ".join(_failure_reason(o) for o in failed)
    return MessageFailure(
        message.message_id,
        reason,
        not_run=not any(o.ran for o in failed),
        permanent=any(o.permanent for o in failed),
    )


def _settled(
    message: Message,
    outcomes: Sequence[GroupOutcome],
    ignored: Sequence[tuple[ObjectEvent, str]],
) -> Settled:
    """What the groups ``message`` contributed to did for it."""
    mine = [o for o in outcomes if _contributed(message, o)]
    keys = {event.key for event in message.events}
    why = next((why for event, why in ignored if event in message.events), None)
    return Settled(
        message.message_id,
        outputs=sum(len(o.uploaded) for o in mine),
        groups=len(mine),
        skipped=sum(1 for o in mine if o.status is Status.SKIPPED),
        ignored=why,
        unusable=tuple(pair for o in mine for pair in o.unusable if pair[0] in keys),
    )


def _failure_reason(outcome: GroupOutcome) -> str:
    return f"{outcome.group.label}: {outcome.reason}"


def _parse_failure(message: Message) -> MessageFailure:
    log(
        logger,
        logging.ERROR,
        "message cannot be parsed",
        message_id=message.message_id,
        why=message.error,
    )
    return MessageFailure(
        message.message_id, f"cannot parse message: {message.error}", permanent=True
    )
