"""What ``plan`` reports: a dry run of one key through selection, grouping, filter and pull."""

from __future__ import annotations

import json
from typing import Any

from bridge.app import App
from bridge.engine import GroupPlan
from bridge.events import ObjectEvent
from bridge.groups import ExecutionGroup, group_prefix, select_events
from bridge.settings import Settings


def plan_key(app: App, bucket: str, key: str, event_name: str) -> dict[str, Any]:
    """What an event for ``bucket``/``key`` would do under ``app``'s configuration.

    Lists the group's prefix and evaluates the filter; pulls, runs and writes nothing.
    """
    settings = app.settings
    event = ObjectEvent(bucket, key, event_name, None, None, None)
    selection = select_events([event], settings.match_key, settings.match_events)
    group = ExecutionGroup(bucket, group_prefix(key, settings.pull_parent_dirs), (event,))
    ignored = selection.ignored[0][1] if selection.ignored else None
    return describe_plan(app.engine.plan_group(group), settings, ignored)


def describe_plan(plan: GroupPlan, settings: Settings, ignored: str | None) -> dict[str, Any]:
    """The plan as a JSON-ready document."""
    group = plan.group
    execution_filter = settings.execution_filter
    if execution_filter is None:
        verdict: dict[str, Any] = {"program": None, "decision": "proceed (no filter)"}
    elif plan.filter_error is not None:
        verdict = {
            "program": execution_filter.program,
            "decision": "fail",
            "error": plan.filter_error,
        }
    else:
        assert plan.verdict is not None
        verdict = {
            "program": execution_filter.program,
            "first_output": plan.verdict.first_output,
            "decision": "proceed" if plan.verdict.proceed else "skip",
        }
        if not plan.verdict.produced_output:  # ``empty``: not the same as a ``null`` output
            verdict["decision"] = "proceed (no output)"
    return {
        "trigger": {
            "bucket": group.bucket,
            "key": group.events[0].key if group.events else None,
            "selected": ignored is None,
            "ignored_because": ignored,
        },
        "group": {"bucket": group.bucket, "prefix": group.prefix},
        "listed": plan.listed,
        "filter": verdict,
        "pull": [{"key": i.obj.key, "path": i.path, "size": i.obj.size} for i in plan.pull.pull],
        "skip": [{"key": s.key, "reason": s.reason} for s in plan.pull.skipped],
        "target": {"bucket": plan.target_bucket, "key_prefix": group.prefix},
    }


def render_plan(report: dict[str, Any]) -> str:
    """The plan as text for people."""
    trigger, group, target = report["trigger"], report["group"], report["target"]
    lines = [f"trigger:  s3://{trigger['bucket']}/{trigger['key']}"]
    if trigger["selected"]:
        lines.append("          selected (matches MATCH_KEY and MATCH_EVENTS)")
    else:
        lines.append(f"          IGNORED: {trigger['ignored_because']} (nothing would run)")
    lines.append(f"group:    s3://{group['bucket']}/{group['prefix']}  ({report['listed']} listed)")
    verdict = report["filter"]
    if verdict["program"] is None:
        lines.append("filter:   none: proceed")
    else:
        lines.append(f"filter:   {verdict['program'].strip()}")
        if "error" in verdict:
            lines.append(f"          ERROR: {verdict['error']}: the group would fail")
        elif verdict["decision"] == "proceed (no output)":
            lines.append("          no output: proceed")
        else:
            shown = json.dumps(verdict["first_output"], ensure_ascii=False)
            lines.append(f"          first output {shown}: {verdict['decision']}")
    lines.append(f"pull:     {len(report['pull'])} objects")
    lines += [
        f"          {p['key']} -> $ROOT_FOLDER/{p['path']} ({p['size']} B)" for p in report["pull"]
    ]
    lines.append(f"skip:     {len(report['skip'])} objects")
    lines += [f"          {s['key']}: {s['reason']}" for s in report["skip"]]
    lines.append(f"target:   s3://{target['bucket']}/{target['key_prefix']}<output path>")
    return "\n".join(lines)
