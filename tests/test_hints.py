"""Misconfiguration caught before it costs a run: near-miss names, s3: prefixes, globs."""

from __future__ import annotations

import re
import subprocess

import pytest

from bridge.hints import event_name_hint, glob_as_regex, looks_like_glob, near_miss
from bridge.settings import (
    VARIABLES,
    ConfigurationError,
    configuration_warnings,
    load_settings,
    unset_meaning,
)
from tests.conftest import bridge_command, subprocess_env


@pytest.mark.parametrize(
    ("typo", "intended"),
    [
        ("MATCH_KYE", "MATCH_KEY"),
        ("MATCH_EVENT", "MATCH_EVENTS"),
        ("PULL_PARENT_DIR", "PULL_PARENT_DIRS"),
        ("TARGET_BUKET", "TARGET_BUCKET"),
        ("HANDLER_COMMANDS", "HANDLER_COMMAND"),
        ("match_kye", "MATCH_KEY"),
    ],
)
def test_near_miss_names_the_intended_variable(typo: str, intended: str) -> None:
    assert near_miss(typo, VARIABLES) == intended


@pytest.mark.parametrize(
    "name", ["MATCH_KEY", "match_key", "PATH", "HOME", "AWS_REGION", "BUCKET", "LANG", "KEY"]
)
def test_no_near_miss_for_real_or_unrelated_names(name: str) -> None:
    assert near_miss(name, VARIABLES) is None


def warnings_for(environ: dict[str, str], **settings: str) -> list[str]:
    return configuration_warnings(load_settings(**settings), environ)


def test_a_misspelt_variable_is_named_with_what_its_absence_means() -> None:
    [warning] = warnings_for({"MATCH_KYE": "x", "PATH": "/bin", "HOME": "/root"})
    assert warning == (
        "environment variable MATCH_KYE is not one of the bridge's: did you mean MATCH_KEY? "
        "(MATCH_KYE is ignored; MATCH_KEY is unset: every key matches)"
    )


def test_handler_variables_are_not_typos() -> None:
    environ = {"KEY_PREFIX": "in/", "BUCKET": "b", "ROOT_FOLDER": "/x", "OUT_BUCKET": "b"}
    assert warnings_for(environ, bucket_var="OUT_BUCKET") == []


def test_s3_prefix_in_match_events_gets_a_hint() -> None:
    [warning] = warnings_for({}, match_events="s3:ObjectCreated:*")
    assert "event names in records have no such prefix" in warning
    assert "did you mean 'ObjectCreated:.*'?" in warning
    assert event_name_hint("^ObjectCreated:") is None


def test_glob_where_a_regex_is_expected_gets_a_hint() -> None:
    warnings = warnings_for({}, match_key="uploads/*", pull_match_keys="data/*.csv,\\.txt$")
    assert warnings == [
        "MATCH_KEY 'uploads/*' looks like a glob, but it is a regular expression (unanchored "
        "search): did you mean '^uploads/.*$'?",
        "PULL_MATCH_KEYS 'data/*.csv' looks like a glob, but it is a regular expression "
        "(unanchored search): did you mean '^data/.*\\.csv$'?",
    ]


def test_an_invalid_glob_is_a_configuration_error_with_the_regex_to_use() -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_settings(match_key="*.csv")
    [problem] = caught.value.problems
    assert problem == (
        "MATCH_KEY: invalid regular expression: nothing to repeat at position 0 "
        "(this looks like a glob; as a regex it would be '\\.csv$')"
    )


@pytest.mark.parametrize(
    ("glob", "matching", "other"),
    [("*.csv", "in/a.csv", "in/a.csv.bak"), ("in/*.txt", "in/x/y.txt", "out/in/a.txt")],
)
def test_suggested_regexes_do_what_the_glob_meant(glob: str, matching: str, other: str) -> None:
    assert looks_like_glob(glob)
    regex = re.compile(glob_as_regex(glob))
    assert regex.search(matching) and not regex.search(other)


@pytest.mark.parametrize("regex", [r"\.csv$", "^in/[^/]+$", "a*b", r"(x|y)*"])
def test_real_regexes_are_not_globs(regex: str) -> None:
    assert not looks_like_glob(regex)


def test_every_variable_has_an_unset_meaning() -> None:
    for variable in VARIABLES:
        assert unset_meaning(variable) != "not a setting", variable


def test_the_warning_is_logged_once_at_start_up() -> None:
    result = subprocess.run(
        [*bridge_command(), "event", "s3", "--bucket", "b", "--key", "k"],
        capture_output=True,
        text=True,
        env=subprocess_env(MATCH_KYE="x"),
        timeout=60,
    )
    assert result.returncode == 0
    # `event` reads no configuration: nothing to warn about there.
    assert "MATCH_KYE" not in result.stderr
    plan = subprocess.run(
        [*bridge_command(), "plan", "--bucket", "b", "--key", "k", "--event-name", "x"],
        capture_output=True,
        text=True,
        env=subprocess_env(MATCH_KYE="x", MATCH_EVENTS="^ObjectCreated:"),
        timeout=60,
    )
    assert plan.stderr.count("did you mean MATCH_KEY?") == 1, plan.stderr
