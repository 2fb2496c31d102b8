"""Key sets as automata: regexes with search semantics, filters, group prefixes."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.pipeline.keysets import KeySet


def accepts(keys: KeySet, key: str) -> bool:
    return not keys.intersect(KeySet.exactly(key)).is_empty()


PATTERNS = [
    r"^jobs/[^/]+/input/[^/]+\.txt$",
    r"(?i)^uploads/[^/]+\.(jpe?g|png)$",
    r"counts/",
    r"^a{2,3}b?$",
    r"\d+\.csv$",
    r"^[^\d]x",
    r"^(in|out)/.*?\.json$",
    r"x|^$",
    r"(?i:ab)c",
    r"\bword\b",
]
KEYS = st.text(alphabet="abcjoJPGsxu/.0123456789_-", max_size=16)


@pytest.mark.parametrize("pattern", PATTERNS)
@settings(max_examples=150, deadline=None)
@given(key=KEYS)
def test_searched_agrees_with_re_search(pattern: str, key: str) -> None:
    """Exact on these constructs (\\b is widened: only 'more keys' is allowed there)."""
    keys = KeySet.searched(pattern)
    found = re.search(pattern, key) is not None
    if pattern == r"\bword\b":
        assert accepts(keys, key) or not found
    else:
        assert accepts(keys, key) == found


@pytest.mark.parametrize("pattern", PATTERNS)
def test_examples_match_their_pattern(pattern: str) -> None:
    example = KeySet.searched(pattern).example()
    assert example is not None and re.search(pattern, example)


def test_contradictions_are_empty() -> None:
    assert KeySet.searched("a$b").is_empty()
    assert KeySet.starting_with("a/").intersect(KeySet.searched("^b/")).is_empty()
    assert not KeySet.ending_with(".jpg").intersect(KeySet.searched("(?i)JPG$")).is_empty()


def test_look_arounds_and_back_references_widen_and_say_so() -> None:
    keys = KeySet.searched(r"^(?!ab)(a)\1")
    assert keys.approximate
    # Wider than the regex ("ab" and "ax" do not match it), never narrower; ^ still holds.
    assert accepts(keys, "aa") and accepts(keys, "ab") and accepts(keys, "ax")
    assert not accepts(keys, "ba")
    assert not KeySet.searched("^abc").approximate


@pytest.mark.parametrize(
    ("parent_dirs", "prefixes", "not_prefixes"),
    [
        (0, ["jobs/a/input/"], ["jobs/a/", ""]),
        (1, ["jobs/a/"], ["jobs/a/input/", "jobs/"]),
        (2, ["jobs/"], ["jobs/a/"]),
        (3, [""], ["jobs/"]),
        (7, [""], ["jobs/"]),
        (-1, [""], ["jobs/"]),
    ],
)
def test_group_prefixes_drop_the_last_parts(
    parent_dirs: int, prefixes: list[str], not_prefixes: list[str]
) -> None:
    groups = KeySet.searched(r"^jobs/[^/]+/input/[^/]+\.txt$").group_prefixes(parent_dirs)
    for prefix in prefixes:
        assert accepts(groups, prefix), prefix
    for prefix in not_prefixes:
        assert not accepts(groups, prefix), prefix


def test_group_prefixes_of_keys_of_any_depth() -> None:
    groups = KeySet.searched(r"\.txt$").group_prefixes(0)
    assert accepts(groups, "") and accepts(groups, "a/") and accepts(groups, "a/b/")
    assert not accepts(groups, "a")
