"""Unit tests for bridge.groups: selection and grouping of object events (docs/design.md §2)."""

from __future__ import annotations

import re

import pytest

from bridge.events import ObjectEvent
from bridge.groups import ExecutionGroup, group_events, group_prefix, select_events


def event(
    key: str,
    bucket: str = "bkt",
    name: str = "ObjectCreated:Put",
    message_id: str | None = None,
) -> ObjectEvent:
    return ObjectEvent(bucket, key, name, 10, "etag", message_id)


# --------------------------------------------------------------------------- select_events


def test_none_matches_everything() -> None:
    events = [event("a"), event("b/c.txt", name="ObjectRemoved:Delete")]
    selection = select_events(events, None, None)
    assert selection.kept == tuple(events)
    assert selection.ignored == ()


def test_match_key_uses_search_semantics() -> None:
    events = [event("in/photo.jpg"), event("in/photo.jpg.txt"), event("deep/x/photo.jpg")]
    selection = select_events(events, re.compile(r"photo\.jpg"), None)
    # Unanchored: matches anywhere in the key, not only at the start.
    assert [e.key for e in selection.kept] == [
        "in/photo.jpg",
        "in/photo.jpg.txt",
        "deep/x/photo.jpg",
    ]


def test_match_key_anchors_are_honoured() -> None:
    events = [event("in/a.jpg"), event("in/a.jpg.txt"), event("out/in/a.jpg")]
    selection = select_events(events, re.compile(r"^in/.*\.jpg$"), None)
    assert [e.key for e in selection.kept] == ["in/a.jpg"]
    assert [(e.key, why) for e, why in selection.ignored] == [
        ("in/a.jpg.txt", "key does not match MATCH_KEY"),
        ("out/in/a.jpg", "key does not match MATCH_KEY"),
    ]


def test_match_events() -> None:
    put = event("a", name="ObjectCreated:Put")
    copy = event("b", name="ObjectCreated:Copy")
    delete = event("c", name="ObjectRemoved:Delete")
    selection = select_events([put, delete, copy], None, re.compile("ObjectCreated:.*"))
    assert selection.kept == (put, copy)
    assert selection.ignored == ((delete, "event name does not match MATCH_EVENTS"),)


def test_match_events_is_unanchored() -> None:
    put = event("a", name="ObjectCreated:Put")
    selection = select_events([put], None, re.compile("Put"))
    assert selection.kept == (put,)


def test_both_filters_and_reasons() -> None:
    good = event("in/a.jpg")
    bad_key = event("in/a.png")
    bad_name = event("in/b.jpg", name="ObjectRemoved:Delete")
    bad_both = event("in/c.png", name="ObjectRemoved:Delete")
    selection = select_events(
        [good, bad_key, bad_name, bad_both], re.compile(r"\.jpg$"), re.compile("^ObjectCreated:")
    )
    assert selection.kept == (good,)
    assert selection.ignored == (
        (bad_key, "key does not match MATCH_KEY"),
        (bad_name, "event name does not match MATCH_EVENTS"),
        (bad_both, "key does not match MATCH_KEY"),
    )


def test_select_accepts_any_iterable_and_empty() -> None:
    selection = select_events(iter([event("x")]), re.compile("x"), None)
    assert [e.key for e in selection.kept] == ["x"]
    empty = select_events([], re.compile("x"), None)
    assert empty.kept == () and empty.ignored == ()


def test_match_key_sees_decoded_key() -> None:
    selection = select_events([event("red flower.jpg")], re.compile("red flower"), None)
    assert len(selection.kept) == 1


# --------------------------------------------------------------------------- group_prefix


@pytest.mark.parametrize(
    ("key", "dirs", "prefix"),
    [
        ("a/b/c/file.txt", 0, "a/b/c/"),
        ("a/b/c/file.txt", 1, "a/b/"),
        ("a/b/c/file.txt", 2, "a/"),
        ("a/b/c/file.txt", 3, ""),
        ("a/b/c/file.txt", 4, ""),
        ("a/b/c/file.txt", 100, ""),
        ("a/b/c/file.txt", -1, ""),
        ("a/b/c/file.txt", -5, ""),
        # keys at the bucket root
        ("file.txt", 0, ""),
        ("file.txt", 1, ""),
        ("file.txt", -1, ""),
        # leading slash: the first part is empty
        ("/a/file.txt", 0, "/a/"),
        # the literal rule: joining [""] gives "", and "" gets no "/" (the whole bucket)
        ("/file.txt", 0, ""),
        ("/a/file.txt", 1, ""),
        # double slashes: empty parts count as parts
        ("a//file.txt", 0, "a//"),
        ("a//file.txt", 1, "a/"),
        ("a//b//file.txt", 2, "a//"),
        # a folder marker
        ("a/b/", 0, "a/b/"),
        ("a/b/", 1, "a/"),
        # unicode
        ("日本/ファイル.txt", 0, "日本/"),
    ],
)
def test_group_prefix(key: str, dirs: int, prefix: str) -> None:
    assert group_prefix(key, dirs) == prefix


@pytest.mark.parametrize("dirs", [-1, 0, 1, 2, 3, 5])
@pytest.mark.parametrize("key", ["a/b/c/d.txt", "x", "/lead/x", "a//b", "p/q/"])
def test_group_prefix_is_a_prefix_of_the_key(key: str, dirs: int) -> None:
    prefix = group_prefix(key, dirs)
    assert key.startswith(prefix)
    assert prefix == "" or prefix.endswith("/")


# --------------------------------------------------------------------------- group_events


def test_one_group_per_bucket_and_prefix_in_order_of_first_appearance() -> None:
    events = [
        event("b/2.txt", message_id="m1"),
        event("a/1.txt", message_id="m1"),
        event("b/3.txt", message_id="m2"),
        event("b/4.txt", bucket="other", message_id="m2"),
        event("a/5.txt", message_id="m3"),
    ]
    groups = group_events(events, 0)
    assert [(g.bucket, g.prefix) for g in groups] == [
        ("bkt", "b/"),
        ("bkt", "a/"),
        ("other", "b/"),
    ]
    assert groups[0].events == (events[0], events[2])
    assert groups[1].events == (events[1], events[4])
    assert groups[2].events == (events[3],)


def test_group_message_ids() -> None:
    events = [
        event("p/1", message_id="m1"),
        event("p/2", message_id="m2"),
        event("p/3", message_id="m1"),
        event("q/1", message_id="m3"),
    ]
    groups = group_events(events, 0)
    assert groups[0].message_ids == frozenset({"m1", "m2"})
    assert groups[1].message_ids == frozenset({"m3"})


def test_direct_events_have_no_message_ids() -> None:
    (group,) = group_events([event("p/1"), event("p/2")], 0)
    assert group.message_ids == frozenset()
    assert len(group.events) == 2


def test_pull_parent_dirs_merges_groups() -> None:
    events = [event("job/a/1.txt"), event("job/b/2.txt"), event("other/c/3.txt")]
    assert [g.prefix for g in group_events(events, 0)] == ["job/a/", "job/b/", "other/c/"]
    assert [g.prefix for g in group_events(events, 1)] == ["job/", "other/"]
    whole = group_events(events, 2)
    assert [(g.bucket, g.prefix, len(g.events)) for g in whole] == [("bkt", "", 3)]
    assert [g.prefix for g in group_events(events, -1)] == [""]


def test_group_events_empty() -> None:
    assert group_events([], 0) == []


def test_group_label() -> None:
    assert ExecutionGroup("bkt", "a/b/", ()).label == "s3://bkt/a/b/"
    assert ExecutionGroup("bkt", "", ()).label == "s3://bkt/"


def test_groups_are_hashable_values() -> None:
    first = group_events([event("a/1", message_id="m")], 0)[0]
    second = group_events([event("a/1", message_id="m")], 0)[0]
    assert first == second
    assert hash(first) == hash(second)
