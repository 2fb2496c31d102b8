"""Lineage records, their keys and the configuration that turns them on (pure: no AWS)."""

from __future__ import annotations

import pytest

from bridge.events import ObjectEvent
from bridge.groups import RESERVED_REASON, group_events, select_events
from bridge.lineage import (
    LINEAGE_PREFIX,
    MAX_KEY_BYTES,
    LineageRecord,
    Unit,
    is_reserved,
    stale_outputs,
    unit_of_record_key,
)
from bridge.settings import ConfigurationError, configuration_warnings, load_settings


def test_record_keys_name_the_step_the_bucket_and_the_unit() -> None:
    assert Unit("map", "data", "object", "jobs/1/in/a b.txt").record_key == (
        ".s3-event-bridge/lineage/map/data/objects/jobs/1/in/a b.txt.json"
    )
    assert Unit("reduce", "data", "group", "jobs/1/").record_key == (
        ".s3-event-bridge/lineage/reduce/data/groups/jobs/1/.group.json"
    )
    assert Unit("reduce", "data", "group", "").record_key == (
        ".s3-event-bridge/lineage/reduce/data/groups/.group.json"
    )


@pytest.mark.parametrize(
    "unit",
    [
        Unit("map", "data", "object", "jobs/1/in/a.txt"),
        Unit("map", "data", "object", "a.group"),  # not mistaken for a group record
        Unit("reduce", "data", "group", "jobs/1/"),
        Unit("reduce", "data", "group", ""),
    ],
)
def test_a_record_key_names_its_unit_back(unit: Unit) -> None:
    assert unit_of_record_key(unit.step, unit.bucket, unit.record_key) == unit


def test_a_key_too_long_for_s3_is_hashed_and_the_record_keeps_the_unit() -> None:
    unit = Unit("map", "data", "object", "k" * 1000)
    key = unit.record_key
    assert len(key.encode()) <= MAX_KEY_BYTES
    assert key.startswith(LINEAGE_PREFIX + "map/data/hashed/object/")
    assert unit_of_record_key("map", "data", key) is None  # read the record to know it
    record = LineageRecord(unit, "data", {unit.name: "e1"}, {"out/x": "e2"})
    assert LineageRecord.from_json(record.to_json(), "x").unit == unit


def test_records_round_trip_and_bad_ones_are_named() -> None:
    record = LineageRecord(
        Unit("map", "data", "object", "in/ü.txt"), "out", {"in/ü.txt": "e1"}, {"o/ü": "e2"}
    )
    assert LineageRecord.from_json(record.to_json(), "s3://out/r") == record
    with pytest.raises(ValueError, match=r"s3://out/r: unreadable lineage record"):
        LineageRecord.from_json(b'{"version": 1, "kind": "folder"}', "s3://out/r")
    with pytest.raises(ValueError, match="not a version 1"):
        LineageRecord.from_json(b"[]", "s3://out/r")


def test_stale_outputs_are_the_recorded_ones_no_longer_left() -> None:
    unit = Unit("s", "b", "group", "p/")
    previous = LineageRecord(unit, "b", {}, {"p/a": "1", "p/b": "2"})
    assert stale_outputs(previous, {"p/a": "9"}) == {"p/b": "2"}
    assert stale_outputs(previous, {}) == {"p/a": "1", "p/b": "2"}
    assert stale_outputs(None, {}) == {}


def event(key: str, name: str = "ObjectCreated:Put") -> ObjectEvent:
    return ObjectEvent("b", key, name, None, None, "m1")


def test_the_reserved_prefix_is_never_selected() -> None:
    record = LINEAGE_PREFIX + "s/b/objects/a.json"
    assert is_reserved(record) and not is_reserved("a/.s3-event-bridge/x")
    selection = select_events([event(record), event("a.txt")], None, None)
    assert [e.key for e in selection.kept] == ["a.txt"]
    assert selection.ignored == ((event(record), RESERVED_REASON),)


def test_per_object_groups_keep_the_folder_prefix_and_each_keys_events() -> None:
    events = [event("in/a"), event("in/b"), event("in/a", "ObjectRemoved:Delete")]
    groups = group_events(events, 0, per_object=True)
    assert [(g.prefix, [e.key for e in g.events]) for g in groups] == [
        ("in/", ["in/a", "in/a"]),
        ("in/", ["in/b"]),
    ]
    assert len(group_events(events, 0)) == 1


def test_lineage_follows_on_delete_unless_set() -> None:
    assert not load_settings().records_lineage
    assert load_settings(on_delete="remove-outputs").records_lineage
    assert load_settings(lineage="on").records_lineage
    assert not load_settings(lineage="off").records_lineage
    assert load_settings(on_delete="REMOVE-OUTPUTS").removes_outputs


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"on_delete": "delete"}, "ON_DELETE: Input should be 'keep' or 'remove-outputs'"),
        ({"on_delete": "remove-outputs", "lineage": "off"}, "LINEAGE: cannot be off"),
        ({"step_name": "a/b"}, "STEP_NAME: String should match pattern"),
    ],
)
def test_bad_lineage_settings_name_the_variable(values: dict[str, str], problem: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_settings(**values)
    assert any(p.startswith(problem) for p in caught.value.problems), caught.value.problems


def test_remove_outputs_with_match_events_missing_removals_is_warned() -> None:
    settings = load_settings(on_delete="remove-outputs", match_events="^ObjectCreated:")
    (warning,) = configuration_warnings(settings, {})
    assert "deletions are ignored" in warning
    assert configuration_warnings(load_settings(on_delete="remove-outputs"), {}) == []
