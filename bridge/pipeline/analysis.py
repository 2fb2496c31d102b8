"""``pipeline check``: which step's outputs can trigger which step, loops, and S3-rejected
notification overlaps (docs/design.md §14). Pure: a validated ``Pipeline`` in, a report out.

- An edge A -> B exists when A writes to B's bucket a key that B's notification filter
  (prefix, suffix) and ``on.key`` (MATCH_KEY) accept, and B's notification carries upload
  events. A's keys are its group prefixes (the keys its trigger accepts, cut by
  ``pull.parent_dirs``) followed by one of its ``outputs``, or anything without ``outputs``.
  Key sets are automata (``keysets``), so each edge comes with an example key.
- A cycle (a step triggering itself, or a ring) is an error unless every step in it says
  ``loop: allowed``; then it is a note (the loop guard of docs/design.md §9 stops it).
- Two notifications on one bucket with a common event type whose prefixes overlap (one
  starts the other) and whose suffixes overlap (one ends the other) are rejected by S3.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from functools import cached_property

from bridge.pipeline.keysets import KeySet
from bridge.pipeline.model import UPLOAD_EVENT_NAMES, Pipeline, StepConfig, s3_event_types

LAMBDA_ENVIRONMENT_LIMIT = 4096  # bytes, keys and values of a function's environment

# Paths of regular files relative to the root folder: what the bridge uploads (never a
# "folder/" key, never an empty part).
_FILE_PATHS = KeySet.searched(r"^([^/]+/)*[^/]+$")
# Keys whose parts are not empty and do not start with a dot: examples read better.
_READABLE = KeySet.searched(r"^([^/.][^/]*/)*([^/.][^/]*)?$")


class Level(Enum):
    """How bad a finding is; ``pipeline check`` exits with the worst one's code."""

    NOTE = 0
    WARNING = 1
    ERROR = 2


@dataclass(frozen=True)
class Finding:
    """One line of the report."""

    level: Level
    message: str

    def __str__(self) -> str:
        return f"{self.level.name.lower()}: {self.message}"


@dataclass(frozen=True)
class Edge:
    """Step ``source``'s outputs can trigger step ``target``; ``example`` is such a key."""

    source: str
    target: str
    bucket: str
    example: str


class StepKeys:
    """The keys a step reacts to and the keys it may write, as key sets."""

    def __init__(self, step: StepConfig) -> None:
        self.step = step

    @cached_property
    def triggers(self) -> KeySet:
        """Keys that pass the notification filter and MATCH_KEY."""
        on = self.step.spec.on
        keys = KeySet.starting_with(on.prefix).intersect(KeySet.ending_with(on.suffix))
        if self.step.settings.match_key is not None:
            keys = keys.intersect(KeySet.searched(self.step.settings.match_key))
        return keys

    @cached_property
    def outputs(self) -> KeySet:
        """Keys the step may write: a group prefix, then an ``outputs`` entry (or anything)."""
        prefixes = self.triggers.group_prefixes(self.step.settings.pull_parent_dirs)
        entries = self.step.spec.outputs
        if entries is None:
            return prefixes.concat(_FILE_PATHS)
        written = KeySet.starting_with(entries[0])
        for entry in entries[1:]:
            written = written.union(KeySet.starting_with(entry))
        return prefixes.concat(written.intersect(_FILE_PATHS))

    @property
    def hears_uploads(self) -> bool:
        """True when the notification and MATCH_EVENTS let an upload event through."""
        return any(name in UPLOAD_EVENT_NAMES for name in self.step.notification_events)


@dataclass(frozen=True)
class Report:
    """The outcome of ``check``: step triggers, edges and findings."""

    pipeline: Pipeline
    edges: tuple[Edge, ...]
    findings: tuple[Finding, ...]

    @property
    def exit_code(self) -> int:
        """0 clean (notes only), 1 warnings, 2 errors."""
        return max((f.level.value for f in self.findings), default=0)

    def render(self) -> str:
        """The human-readable report ``pipeline check`` prints."""
        count = len(self.pipeline.steps)
        lines = [f"pipeline {self.pipeline.name}: {count} step{'s' if count > 1 else ''}"]
        width = max(len(s.name) for s in self.pipeline.steps)
        for step in self.pipeline.steps:
            lines.append(f"  {step.name:<{width}}  {describe_trigger(step)}")
        lines.append("edges (A's outputs can trigger B):" if self.edges else "edges: none")
        pairs = [f"{edge.source} -> {edge.target}" for edge in self.edges]
        pad = max(map(len, pairs), default=0)
        for pair, edge in zip(pairs, self.edges, strict=True):
            lines.append(f"  {pair:<{pad}}  e.g. s3://{edge.bucket}/{edge.example}")
        lines.extend(str(finding) for finding in self.findings)
        errors = sum(f.level is Level.ERROR for f in self.findings)
        warnings = sum(f.level is Level.WARNING for f in self.findings)
        lines.append(f"{errors} error(s), {warnings} warning(s)")
        return "\n".join(lines)


def describe_trigger(step: StepConfig) -> str:
    """``s3://data/jobs/*.json, key ^jobs/…, ObjectCreated:* -> s3://data`` for one step."""
    on = step.spec.on
    parts = [f"on s3://{on.bucket}/{on.prefix}*{on.suffix}"]
    if on.key is not None:
        parts.append(f"key {on.key}")
    parts.append(f"events {_events_label(step.notification_events)}")
    parts.append(f"{step.scope} scope")
    return ", ".join(parts) + f" -> s3://{step.target}"


def _events_label(names: tuple[str, ...]) -> str:
    return ",".join(t.removeprefix("s3:") for t in s3_event_types(names))


def analyse(pipeline: Pipeline) -> Report:
    """Edges, cycles and notification overlaps of a validated pipeline."""
    keys = {step.name: StepKeys(step) for step in pipeline.steps}
    findings: list[Finding] = []
    for step in pipeline.steps:
        findings.extend(_step_findings(keys[step.name]))
    edges = tuple(_edges(pipeline, keys))
    findings.extend(_cycles(pipeline, edges))
    findings.extend(_overlaps(pipeline))
    order = sorted(findings, key=lambda f: -f.level.value)
    return Report(pipeline, edges, tuple(order))


def _step_findings(keys: StepKeys) -> list[Finding]:
    step = keys.step
    found = []
    if keys.triggers.is_empty():
        found.append(
            Finding(
                Level.WARNING,
                f"{step.path} ({step.name}): no key passes both the notification filter "
                "(on.prefix, on.suffix) and on.key: the step never runs",
            )
        )
    size = sum(len(k.encode()) + len(v.encode()) for k, v in step.variables.items())
    if size > LAMBDA_ENVIRONMENT_LIMIT:
        found.append(
            Finding(
                Level.WARNING,
                f"{step.path} ({step.name}): its variables take {size} bytes; Lambda allows "
                f"{LAMBDA_ENVIRONMENT_LIMIT} in a function's environment, so the rendered SAM "
                "template would not deploy (a long filter belongs in filter.file)",
            )
        )
    if keys.triggers.approximate:
        found.append(
            Finding(
                Level.NOTE,
                f"{step.path} ({step.name}): on.key uses look-arounds, back-references or "
                "large repeat counts; the analysis widens them, so an edge may be reported "
                "that cannot happen",
            )
        )
    return found


def _edges(pipeline: Pipeline, keys: dict[str, StepKeys]) -> list[Edge]:
    edges = []
    for source in pipeline.steps:
        for target in pipeline.steps:
            if source.target != target.spec.on.bucket or not keys[target.name].hears_uploads:
                continue
            common = keys[source.name].outputs.intersect(keys[target.name].triggers)
            example = common.intersect(_READABLE).example() or common.example()
            if example is not None:
                edges.append(Edge(source.name, target.name, source.target, example))
    return edges


def _cycles(pipeline: Pipeline, edges: tuple[Edge, ...]) -> list[Finding]:
    graph: dict[str, list[Edge]] = {step.name: [] for step in pipeline.steps}
    for edge in edges:
        graph[edge.source].append(edge)
    found = []
    for component in _strong_components(list(graph), graph):
        ring = _ring(component, graph)
        if ring is None:
            continue
        steps = [pipeline.step(name) for name in component]
        path = " -> ".join([e.source for e in ring] + [ring[0].source])
        how = "; ".join(
            f"{e.source} writes s3://{e.bucket}/{e.example}, which triggers {e.target}"
            for e in ring
        )
        if len(component) > len(ring):
            how += f" (steps {', '.join(component)} all feed one another)"
        if all(s.spec.loop == "allowed" for s in steps):
            found.append(
                Finding(
                    Level.NOTE,
                    f"loop {path} is allowed (loop: allowed); the loop guard "
                    f"(MAX_CHAIN_DEPTH) stops it: {how}",
                )
            )
        else:
            missing = ", ".join(s.name for s in steps if s.spec.loop != "allowed")
            found.append(
                Finding(
                    Level.ERROR,
                    f"loop {path}: {how}. Narrow on.prefix, on.suffix, on.key or outputs, "
                    f"write elsewhere (to), or say 'loop: allowed' on {missing}",
                )
            )
    return found


def _strong_components(nodes: list[str], graph: dict[str, list[Edge]]) -> list[list[str]]:
    """Tarjan's algorithm; components in the order of the steps."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for edge in graph[node]:
            if edge.target not in index:
                visit(edge.target)
                low[node] = min(low[node], low[edge.target])
            elif edge.target in on_stack:
                low[node] = min(low[node], index[edge.target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            components.append(sorted(component, key=nodes.index))

    for node in nodes:
        if node not in index:
            visit(node)
    return sorted(components, key=lambda c: nodes.index(c[0]))


def _ring(component: list[str], graph: dict[str, list[Edge]]) -> list[Edge] | None:
    """A shortest cycle through the component's first step, or None if there is none."""
    start = component[0]
    members = set(component)
    came: dict[str, Edge | None] = {start: None}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for edge in graph[node]:
                if edge.target == start:
                    ring = [edge]
                    step = came[node]
                    while step is not None:
                        ring.append(step)
                        step = came[step.source]
                    return list(reversed(ring))
                if edge.target in members and edge.target not in came:
                    came[edge.target] = edge
                    following.append(edge.target)
        frontier = following
    return None


def _overlaps(pipeline: Pipeline) -> list[Finding]:
    found = []
    steps = pipeline.steps
    for i, first in enumerate(steps):
        for second in steps[i + 1 :]:
            a, b = first.spec.on, second.spec.on
            if a.bucket != b.bucket:
                continue
            common = [n for n in first.notification_events if n in second.notification_events]
            prefixes = a.prefix.startswith(b.prefix) or b.prefix.startswith(a.prefix)
            suffixes = a.suffix.endswith(b.suffix) or b.suffix.endswith(a.suffix)
            if common and prefixes and suffixes:
                found.append(
                    Finding(
                        Level.ERROR,
                        f"{first.name} and {second.name}: notifications on bucket {a.bucket} "
                        f"overlap for {_events_label(tuple(common))} (prefixes {a.prefix!r} "
                        f"and {b.prefix!r}, suffixes {a.suffix!r} and {b.suffix!r}); S3 "
                        "rejects this configuration: make the prefixes or the suffixes disjoint",
                    )
                )
    return found
