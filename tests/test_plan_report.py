"""`plan` tells what the configuration is and whether the target exists (docs/design.md §5)."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from bridge.planning import effective_configuration
from bridge.settings import VARIABLES
from tests.conftest import MotoServer, bridge_command, subprocess_env
from tests.helpers import put

BUCKET = "plan-src"
WRITES_ONE = ["sh", "-c", 'echo out > "$ROOT_FOLDER/new.txt"']


def plan(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*bridge_command(), "plan", "--bucket", BUCKET, "--key", "in/a.txt", *args],
        capture_output=True,
        text=True,
        env=subprocess_env(**env),
        timeout=60,
    )


@pytest.fixture
def src(aws: MotoServer, s3: Any) -> Any:
    s3.create_bucket(Bucket=BUCKET)
    put(s3, BUCKET, "in/a.txt")
    return s3


def test_effective_configuration_names_every_variable() -> None:
    configuration = effective_configuration(
        {"match_events": "^ObjectCreated:", "TARGET_BUCKET": "", "MATCH_KYE": "x", "PATH": "/"}
    )
    assert list(configuration) == list(VARIABLES)
    assert configuration["MATCH_EVENTS"] == {"value": "^ObjectCreated:"}
    assert configuration["MATCH_KEY"] == {"value": None, "unset": "every key matches"}
    # Empty counts as unset, as the settings read it.
    assert configuration["TARGET_BUCKET"]["unset"] == "outputs go to the group's own bucket"


def test_plan_prints_the_effective_configuration_and_the_typo_warning(src: Any) -> None:
    result = plan(MATCH_KYE="^in/", PULL_PARENT_DIRS="0", MATCH_EVENTS=r"^ObjectCreated:.*\.txt$")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    start = lines.index("configuration:")
    config = {line.split()[0]: line.split(None, 1)[1] for line in lines[start + 1 :]}
    assert config["MATCH_KEY"] == "(unset: every key matches)"
    assert config["PULL_PARENT_DIRS"] == "0"
    assert config["MATCH_EVENTS"] == r"^ObjectCreated:.*\.txt$"  # as set, not JSON-escaped
    assert set(config) == set(VARIABLES)
    assert "did you mean MATCH_KEY?" in result.stderr


def test_plan_names_a_missing_target_bucket(src: Any) -> None:
    text = plan(TARGET_BUCKET="no-such-target")
    assert text.returncode == 0, text.stderr
    assert (
        "MISSING: bucket no-such-target does not exist: the handler would run, then the upload "
        "would fail (check TARGET_BUCKET)"
    ) in text.stdout
    report = json.loads(plan("--json", TARGET_BUCKET="no-such-target").stdout)
    assert report["target"] == {"bucket": "no-such-target", "key_prefix": "in/", "exists": False}
    assert report["configuration"]["TARGET_BUCKET"] == {"value": "no-such-target"}


def test_plan_of_an_existing_target_says_nothing_more(src: Any) -> None:
    result = plan()
    assert "MISSING" not in result.stdout
    assert json.loads(plan("--json").stdout)["target"]["exists"] is True


def test_plan_cannot_list_is_a_json_line_with_json_logs(aws: MotoServer) -> None:
    result = plan(LOG_FORMAT="json")
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert json.loads(line)["message"].startswith(
        f"s3-event-bridge: plan: cannot list s3://{BUCKET}/"
    )


def test_run_names_a_missing_target_bucket(src: Any) -> None:
    result = subprocess.run(
        [*bridge_command(), "run", "--bucket", BUCKET, "--prefix", "in/", "--", *WRITES_ONE],
        capture_output=True,
        text=True,
        env=subprocess_env(TARGET_BUCKET="no-such-target", LOG_FORMAT="json"),
        timeout=60,
    )
    assert result.returncode == 1
    [summary] = [
        line
        for line in map(json.loads, result.stderr.splitlines())
        if line["message"] == "group summary"
    ]
    # The target's ETags are read first (SKIP_UNCHANGED): that is where it is found missing.
    where = "read stored ETags s3://no-such-target/in/"
    assert (
        summary["reason"]
        == f"bucket no-such-target does not exist ({where}): NoSuchBucket: check TARGET_BUCKET"
    )


def test_plan_of_a_removal_shows_the_outputs_it_would_remove(src: Any) -> None:
    env = {"PULL_SCOPE": "events", "ON_DELETE": "remove-outputs"}
    record = ".s3-event-bridge/lineage/default/plan-src/objects/in/gone.txt.json"
    document = {
        "version": 1,
        "step": "default",
        "bucket": BUCKET,
        "kind": "object",
        "name": "in/gone.txt",
        "target": BUCKET,
        "inputs": {"in/gone.txt": "e"},
        "outputs": {"in/out/gone.txt": "e2"},
    }
    put(src, BUCKET, record, json.dumps(document))
    args = ("--key", "in/gone.txt", "--event-name", "ObjectRemoved:Delete")
    text = plan(*args, **env).stdout
    assert f"removal:  ON_DELETE=remove-outputs; record s3://{BUCKET}/{record}" in text
    assert "          in/out/gone.txt" in text
    assert "(the handler would not run)" in text
    # a key that exists again: the removal is stale
    stale = plan("--event-name", "ObjectRemoved:Delete", **env).stdout
    assert "the key exists again: stale, nothing would be removed" in stale
