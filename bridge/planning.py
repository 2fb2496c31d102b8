"""What ``plan`` reports: a dry run of one key through selection, grouping, filter and pull."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from bridge.app import App
from bridge.engine import GroupPlan
from bridge.events import ObjectEvent
from bridge.logs import printable
from bridge.settings import VARIABLES, Settings, unset_meaning


def plan_key(
    app: App,
    bucket: str,
    key: str,
    event_name: str,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """What an event for ``bucket``/``key`` would do under ``app``'s configuration.

    The event goes through the drivers' own routing and the engine's own decision
    (``Engine.plan_group``): lists and reads (HeadObject for the chain depth, HeadBucket for
    the target) only; pulls, runs and writes nothing. The report ends with the effective
    configuration read from ``environ`` (default: this process's environment).
    """
    event = ObjectEvent(bucket, key, event_name, None, None, None)
    routed = app.routing.route([event])
    plan = app.engine.plan_group(routed.groups[0]) if routed.groups else None
    ignored = routed.ignored[0][1] if routed.ignored else None
    report = describe_plan(event, plan, app.settings, ignored)
    follower = app.engine.follower
    if plan is not None and follower is not None and follower.removals_only(plan.group):
        report["removal"] = follower.preview_removals(plan.group, plan.target_bucket)
    if plan is not None:
        exists = app.engine.storage.bucket_exists(plan.target_bucket)
        report["target"]["exists"] = exists
    report["configuration"] = effective_configuration(os.environ if environ is None else environ)
    return report


def effective_configuration(environ: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """Each variable of the bridge: its value as set, or unset and what that means.

    Names are matched without regard to case and an empty value counts as unset, as the
    settings themselves read them.
    """
    by_name = {name.upper(): value for name, value in environ.items() if value != ""}
    return {
        name: (
            {"value": by_name[name]}
            if name in by_name
            else {"value": None, "unset": unset_meaning(name)}
        )
        for name in VARIABLES
    }


def describe_plan(
    event: ObjectEvent, plan: GroupPlan | None, settings: Settings, ignored: str | None
) -> dict[str, Any]:
    """The plan as a JSON-ready document; ``plan`` is None when the event is ignored."""
    report: dict[str, Any] = {
        "trigger": {
            "bucket": event.bucket,
            "key": event.key,
            "selected": ignored is None,
            "ignored_because": ignored,
        },
        "scope": settings.pull_scope,
    }
    if plan is None:
        return report | {
            "group": None,
            "listed": None,
            "filter": None,
            "pull": [],
            "skip": [],
            "chain_depth": None,
            "target": None,
        }
    group = plan.group
    sizes = {e.key: e.size for e in group.events}
    return report | {
        "group": {"bucket": group.bucket, "prefix": group.prefix},
        "listed": plan.listed,  # None: nothing is listed (events scope without a filter)
        "filter": _describe_verdict(plan, settings),
        "pull": [
            {
                "key": i.obj.key,
                "path": i.path,
                # events scope: the size comes from the event, which a dry run does not have
                "size": i.obj.size if plan.scope == "prefix" else sizes.get(i.obj.key),
            }
            for i in plan.pull.pull
        ],
        "skip": [{"key": s.key, "reason": s.reason} for s in plan.pull.skipped],
        "chain_depth": _describe_chain(plan),
        "target": {"bucket": plan.target_bucket, "key_prefix": group.prefix},
    }


def _describe_verdict(plan: GroupPlan, settings: Settings) -> dict[str, Any]:
    execution_filter = settings.execution_filter
    if execution_filter is None:
        return {"program": None, "decision": "proceed (no filter)"}
    if plan.filter_error is not None:
        return {"program": execution_filter.program, "decision": "fail", "error": plan.filter_error}
    assert plan.verdict is not None
    verdict = {
        "program": execution_filter.program,
        "first_output": plan.verdict.first_output,
        "decision": "proceed" if plan.verdict.proceed else "skip",
    }
    if not plan.verdict.produced_output:  # ``empty``: not the same as a ``null`` output
        verdict["decision"] = "proceed (no output)"
    return verdict


def _describe_chain(plan: GroupPlan) -> dict[str, Any]:
    if plan.chain is None:
        return {"decision": "unknown", "error": plan.chain_error}
    verdict: dict[str, Any] = {"depth": plan.chain.depth, "limit": plan.chain.limit}
    if plan.chain.exceeded:
        return verdict | {"decision": "fail", "reason": plan.chain.reason}
    return verdict | {"decision": "run"}


def render_plan(report: dict[str, Any]) -> str:
    """The plan as text for people."""
    trigger, group, target = report["trigger"], report["group"], report["target"]
    lines = [f"trigger:  s3://{trigger['bucket']}/{trigger['key']}"]
    if not trigger["selected"]:
        lines.append(f"          IGNORED: {trigger['ignored_because']} (nothing would run)")
        return "\n".join([*lines, *_render_configuration(report.get("configuration", {}))])
    lines.append("          selected (matches MATCH_KEY and MATCH_EVENTS)")
    if report["scope"] == "events":
        lines.append("scope:    events: pulls only the triggering objects")
    else:
        lines.append("scope:    prefix: pulls what the listing of the group prefix holds")
    listed = (
        "nothing listed (PULL_SCOPE=events, no filter)"
        if report["listed"] is None
        else f"{report['listed']} listed"
    )
    lines.append(f"group:    s3://{group['bucket']}/{group['prefix']}  ({listed})")
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
    for removal in report.get("removal", []):
        lines.append(f"removal:  ON_DELETE=remove-outputs; record {removal['record']}")
        if removal["exists_again"]:
            lines.append("          the key exists again: stale, nothing would be removed")
        elif not removal["outputs"]:
            lines.append("          no recorded outputs: nothing would be removed")
        else:
            lines.append("          would remove, where still as the bridge wrote them:")
            lines += [f"          {key}" for key in removal["outputs"]]
        lines.append("          (the handler would not run)")
    fetched = "fetched with GetObject, sized from the event" if report["scope"] == "events" else ""
    lines.append(f"pull:     {len(report['pull'])} objects" + (f" ({fetched})" if fetched else ""))
    for p in report["pull"]:
        size = "" if p["size"] is None else f" ({p['size']} B)"
        lines.append(f"          {p['key']} -> $ROOT_FOLDER/{p['path']}{size}")
    lines.append(f"skip:     {len(report['skip'])} objects")
    lines += [f"          {s['key']}: {s['reason']}" for s in report["skip"]]
    chain = report["chain_depth"]
    if chain["decision"] == "unknown":
        lines.append(f"depth:    unknown: {chain['error']}")
    elif chain["decision"] == "fail":
        lines.append(f"depth:    {chain['depth']}: FAIL: {chain['reason']}")
    else:
        limit = chain["limit"] or "none"
        lines.append(f"depth:    {chain['depth']} (MAX_CHAIN_DEPTH {limit}): run")
    lines.append(f"target:   s3://{target['bucket']}/{target['key_prefix']}<output path>")
    if target.get("exists") is False:
        lines.append(
            f"          MISSING: bucket {target['bucket']} does not exist: the handler would run, "
            "then the upload would fail (check TARGET_BUCKET)"
        )
    elif target.get("exists") is None and "exists" in target:
        lines.append(
            f"          bucket {target['bucket']}: access denied to HeadBucket, not checked"
        )
    return "\n".join([*lines, *_render_configuration(report.get("configuration", {}))])


def _render_configuration(configuration: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """``NAME  value`` as set (control characters escaped), or ``NAME  (unset: meaning)``."""
    if not configuration:
        return []
    width = max(len(name) for name in configuration)
    lines = ["configuration:"]
    for name, entry in configuration.items():
        value = entry["value"]
        shown = printable(value) if value is not None else f"(unset: {entry['unset']})"
        lines.append(f"  {name:<{width}}  {shown}")
    return lines
