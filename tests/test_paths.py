"""Unit tests for bridge.paths: object keys <-> safe local paths (docs/design.md §11)."""

from __future__ import annotations

import re

import pytest

from bridge.events import ObjectEvent
from bridge.paths import (
    ListedObject,
    PullItem,
    PullPlan,
    SkippedObject,
    UnsafeKey,
    is_folder_marker,
    object_key,
    plan_event_pull,
    plan_pull,
    relative_path,
)


def listed(key: str, size: int = 1) -> ListedObject:
    return ListedObject(key, size, "etag", 0, {"Key": key, "Size": size})


def pulled(plan: PullPlan) -> list[tuple[str, str]]:
    return [(item.obj.key, item.path) for item in plan.pull]


def skipped(plan: PullPlan) -> dict[str, tuple[str, bool]]:
    return {s.key: (s.reason, s.warn) for s in plan.skipped}


# --------------------------------------------------------------------------- relative_path


@pytest.mark.parametrize(
    ("key", "prefix", "path"),
    [
        ("in/photo.jpg", "in/", "photo.jpg"),
        ("in/sub/dir/photo.jpg", "in/", "sub/dir/photo.jpg"),
        ("photo.jpg", "", "photo.jpg"),
        ("a/b", "", "a/b"),
        ("in/red flower+1.jpg", "in/", "red flower+1.jpg"),
        ("日本/ファイル.txt", "日本/", "ファイル.txt"),
        ("in/émoji-😀.bin", "in/", "émoji-😀.bin"),
        ("in/...", "in/", "..."),
        ("in/..x", "in/", "..x"),
        ("in/.hidden", "in/", ".hidden"),
        ("in/a\\b", "in/", "a\\b"),
        ("in/" + "x" * 255, "in/", "x" * 255),
        ("in/" + "é" * 127, "in/", "é" * 127),  # 254 bytes
    ],
)
def test_relative_path_accepts(key: str, prefix: str, path: str) -> None:
    assert relative_path(key, prefix) == path
    assert object_key(prefix, path) == key


@pytest.mark.parametrize(
    ("key", "prefix", "reason"),
    [
        ("in/../x", "in/", "path part '..' is not allowed"),
        ("in/../../x", "in/", "path part '..' is not allowed"),
        ("in/a/../../x", "in/", "path part '..' is not allowed"),
        ("in/..", "in/", "path part '..' is not allowed"),
        ("../x", "", "path part '..' is not allowed"),
        ("in/./x", "in/", "path part '.' is not allowed"),
        ("in/.", "in/", "path part '.' is not allowed"),
        ("in/a//x", "in/", "path part '' is not allowed"),
        ("in//x", "in/", "absolute path"),
        ("/etc/passwd", "", "absolute path"),
        ("in/a\x00b", "in/", "contains a NUL character"),
        ("in/", "in/", "empty path after removing the prefix"),
        ("", "", "empty path after removing the prefix"),
        ("out/x", "in/", "not under the prefix 'in/'"),
        ("inx", "in/", "not under the prefix 'in/'"),
        ("in/" + "x" * 256, "in/", "path part longer than 255 bytes"),
        ("in/" + "é" * 128 + "/f", "in/", "path part longer than 255 bytes"),  # 256 bytes
    ],
)
def test_relative_path_rejects(key: str, prefix: str, reason: str) -> None:
    with pytest.raises(UnsafeKey) as info:
        relative_path(key, prefix)
    assert str(info.value) == reason


def test_unsafe_key_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        relative_path("in/../x", "in/")


@pytest.mark.parametrize(
    ("key", "marker"),
    [("in/", True), ("a/b/", True), ("/", True), ("in/x", False), ("in", False), ("", False)],
)
def test_folder_markers(key: str, marker: bool) -> None:
    assert is_folder_marker(key) is marker


def test_object_key() -> None:
    assert object_key("out/", "a/b.txt") == "out/a/b.txt"
    assert object_key("", "b.txt") == "b.txt"


# --------------------------------------------------------------------------- plan_pull


def test_plan_pulls_everything_by_default() -> None:
    objects = [listed("in/a.txt", 3), listed("in/sub/b.txt", 5)]
    plan = plan_pull(objects, "in/", ())
    assert pulled(plan) == [("in/a.txt", "a.txt"), ("in/sub/b.txt", "sub/b.txt")]
    assert plan.pull[0] == PullItem(objects[0], "a.txt")
    assert plan.skipped == ()
    assert plan.total_bytes == 8


def test_plan_pull_match_keys_any_regex_on_full_key() -> None:
    objects = [listed("in/a.jpg"), listed("in/b.png"), listed("in/c.txt"), listed("in/jpg/d")]
    plan = plan_pull(objects, "in/", (re.compile(r"\.jpg$"), re.compile(r"^in/b")))
    assert pulled(plan) == [("in/a.jpg", "a.jpg"), ("in/b.png", "b.png")]
    assert skipped(plan) == {
        "in/c.txt": ("does not match PULL_MATCH_KEYS", False),
        "in/jpg/d": ("does not match PULL_MATCH_KEYS", False),
    }


def test_plan_pull_match_keys_are_searched_not_anchored() -> None:
    plan = plan_pull([listed("in/sub/data.csv")], "in/", (re.compile("sub"),))
    assert pulled(plan) == [("in/sub/data.csv", "sub/data.csv")]


def test_plan_skips_folder_markers_silently() -> None:
    plan = plan_pull([listed("in/sub/"), listed("in/sub/x")], "in/", ())
    assert pulled(plan) == [("in/sub/x", "sub/x")]
    assert plan.skipped == (SkippedObject("in/sub/", "folder marker", warn=False),)


def test_plan_skips_unsafe_keys_with_warning() -> None:
    objects = [listed("in/ok"), listed("in/../x"), listed("in/a//b"), listed("in/n\x00ul")]
    plan = plan_pull(objects, "in/", ())
    assert pulled(plan) == [("in/ok", "ok")]
    assert skipped(plan) == {
        "in/../x": ("unsafe key: path part '..' is not allowed", True),
        "in/a//b": ("unsafe key: path part '' is not allowed", True),
        "in/n\x00ul": ("unsafe key: contains a NUL character", True),
    }


def test_plan_collision_file_and_folder() -> None:
    plan = plan_pull([listed("p/a", 100), listed("p/a/b", 7)], "p/", ())
    assert pulled(plan) == [("p/a/b", "a/b")]
    assert skipped(plan) == {
        "p/a": ("collides with a folder of the same name holding other objects", True)
    }
    assert plan.total_bytes == 7


def test_plan_collision_order_does_not_matter() -> None:
    plan = plan_pull([listed("a/b"), listed("a")], "", ())
    assert pulled(plan) == [("a/b", "a/b")]
    assert [s.key for s in plan.skipped] == ["a"]
    assert plan.skipped[0].warn is True


def test_plan_nested_collisions_keep_the_deepest() -> None:
    plan = plan_pull([listed("a"), listed("a/b"), listed("a/b/c"), listed("a/x")], "", ())
    assert pulled(plan) == [("a/b/c", "a/b/c"), ("a/x", "a/x")]
    assert sorted(s.key for s in plan.skipped) == ["a", "a/b"]
    assert all(s.warn for s in plan.skipped)


def test_plan_similar_names_do_not_collide() -> None:
    plan = plan_pull([listed("a"), listed("ab/c"), listed("a.txt"), listed("b/a")], "", ())
    assert [path for _, path in pulled(plan)] == ["a", "ab/c", "a.txt", "b/a"]
    assert plan.skipped == ()


def test_plan_collision_only_with_pulled_objects() -> None:
    # a/b is not pulled (PULL_MATCH_KEYS), so the file a does not need to be a folder.
    plan = plan_pull([listed("a"), listed("a/b")], "", (re.compile("^a$"),))
    assert pulled(plan) == [("a", "a")]
    assert skipped(plan) == {"a/b": ("does not match PULL_MATCH_KEYS", False)}


def test_plan_objects_outside_prefix_are_unsafe() -> None:
    plan = plan_pull([listed("elsewhere/x")], "in/", ())
    assert plan.pull == ()
    assert skipped(plan) == {"elsewhere/x": ("unsafe key: not under the prefix 'in/'", True)}


def test_plan_total_bytes_of_empty_plan() -> None:
    assert plan_pull([], "", ()).total_bytes == 0
    assert plan_pull([listed("x/")], "", ()).total_bytes == 0


# --------------------------------------------------------------------------- plan_event_pull


def event(key: str, name: str = "ObjectCreated:Put", size: int | None = 5) -> ObjectEvent:
    return ObjectEvent("b", key, name, size, "e" if size is not None else None, None)


def test_event_pull_takes_each_triggering_key_once_with_its_event_size() -> None:
    plan = plan_event_pull([event("in/a", size=3), event("in/b"), event("in/a", size=7)], "in/", ())
    assert pulled(plan) == [("in/b", "b"), ("in/a", "a")]
    assert [item.obj.size for item in plan.pull] == [5, 7]  # the last event of a key counts
    assert plan.total_bytes == 12


def test_event_pull_skips_removals_and_applies_every_pull_rule() -> None:
    events = [
        event("in/gone", "ObjectRemoved:Delete", size=None),
        event("in/old", "LifecycleExpiration:Delete", size=None),
        event("in/x.csv"),
        event("in/../up"),
        event("in/dir/"),
        event("in/f"),
        event("in/f/g"),
    ]
    plan = plan_event_pull(events, "in/", (re.compile("^in/[^x]"),))
    assert pulled(plan) == [("in/f/g", "f/g")]
    reasons = skipped(plan)
    assert reasons["in/gone"] == ("removed (ObjectRemoved:Delete): nothing to pull", False)
    assert reasons["in/old"][0].startswith("removed (LifecycleExpiration:Delete)")
    assert reasons["in/x.csv"] == ("does not match PULL_MATCH_KEYS", False)
    assert reasons["in/../up"][0].startswith("unsafe key") and reasons["in/../up"][1]
    assert reasons["in/dir/"] == ("folder marker", False)
    assert reasons["in/f"][0].startswith("collides")


def test_event_pull_without_size_or_etag_leaves_them_unknown() -> None:
    [item] = plan_event_pull([event("k", size=None)], "", ()).pull
    assert (item.obj.size, item.obj.etag) == (0, "")
