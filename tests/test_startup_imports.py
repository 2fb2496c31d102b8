"""Lambda start-up loads only what the configuration needs (docs/design.md §8, §13 P1).

Each case runs, in a fresh interpreter, the console command's own entry
(``bridge.startup.main``, what ``s3-event-bridge`` runs) in lambda mode, and stops it at its
first ``GET next``: the probe replaces the Runtime API client's ``next_invocation`` with one
that reports which heavy modules are loaded at that moment, whether an argument parser was
built, and the garbage collector's state, then exits.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys

import pytest

from bridge import startup
from bridge.cli import UsageError, lambda_command_line, parse_command_line
from tests.conftest import subprocess_env

# Not needed before the first event in lambda mode: jq without a filter; s3transfer (and
# boto3, which imports it) before a large object; pipeline files, their YAML and rendering;
# the other modes' code; sample payloads; lineage records without LINEAGE.
HEAVY = (
    "jq",
    "yaml",
    "boto3",
    "s3transfer",
    "bridge.multipart",
    "bridge.pipeline",
    "bridge.planning",
    "bridge.samples",
    "bridge.consumer",
    "bridge.local_aws",
    "bridge.follow",
    "bridge.lineage_store",
)

PROBE = f"""
import argparse, gc, json, os, sys

built = []
original_init = argparse.ArgumentParser.__init__

def recording_init(self, *args, **kwargs):
    built.append(kwargs.get("prog"))
    original_init(self, *args, **kwargs)

argparse.ArgumentParser.__init__ = recording_init

import bridge.runtime_client

def first_next(self):
    print(json.dumps({{
        "loaded": sorted(name for name in {HEAVY!r} if name in sys.modules),
        "parsers": built,
        "gc_enabled": gc.isenabled(),
        "frozen": gc.get_freeze_count(),
    }}), flush=True)
    os._exit(0)

bridge.runtime_client.RuntimeApiClient.next_invocation = first_next
sys.argv = ["s3-event-bridge", *sys.argv[1:]]
from bridge.startup import main
sys.exit(main())
"""


def state_at_first_next(*arguments: str, **env: str) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *arguments],
        env=subprocess_env(AWS_LAMBDA_RUNTIME_API="127.0.0.1:9", **env),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    state: dict[str, object] = json.loads(result.stdout.splitlines()[-1])
    return state


def test_lambda_start_up_without_a_filter_loads_nothing_heavy() -> None:
    state = state_at_first_next("true")
    assert state["loaded"] == []
    assert state["parsers"] == []  # no argparse help machinery on the Lambda path
    # Start-up ran with the collector paused; it collects again, start-up's objects frozen.
    assert state["gc_enabled"] is True
    assert isinstance(state["frozen"], int) and state["frozen"] > 10_000


@pytest.mark.parametrize("program", [".", "length > 0"])
def test_an_execution_filter_loads_jq_before_the_first_event(program: str) -> None:
    assert state_at_first_next("true", EXECUTION_FILTER_EXPR=program)["loaded"] == ["jq"]


@pytest.mark.parametrize("env", [{"LINEAGE": "on"}, {"ON_DELETE": "remove-outputs"}])
def test_lineage_code_loads_with_a_configuration_that_records_lineage(env: dict[str, str]) -> None:
    loaded = state_at_first_next("true", STEP_NAME="step", **env)["loaded"]
    assert loaded == ["bridge.follow", "bridge.lineage_store"]


@pytest.mark.parametrize("arguments", [(), ("lambda", "--", "true", "-x")])
def test_the_lambda_path_builds_no_argument_parser(arguments: tuple[str, ...]) -> None:
    state = state_at_first_next(*arguments, HANDLER_COMMAND="true")
    assert state["parsers"] == []


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--"],
        ["--", "python", "handler.py"],
        ["python", "handler.py", "-v"],
        ["lambda"],
        ["lambda", "python", "handler.py"],
        ["lambda", "--", "a", "--", "b"],
        ["lambda", "python", "--", "-x"],
        ["python", "--", "-x"],
    ],
)
def test_the_lambda_command_line_reads_as_the_parser_reads_it(argv: list[str]) -> None:
    address = "127.0.0.1:9"
    assert lambda_command_line(argv, address) == parse_command_line(argv, address)


def test_an_option_of_lambda_mode_still_goes_to_the_parser() -> None:
    with pytest.raises(UsageError, match="unrecognized arguments: --bogus"):
        lambda_command_line(["lambda", "--bogus"], "127.0.0.1:9")


def test_started_without_the_entry_leaves_the_collector_alone() -> None:
    frozen = gc.get_freeze_count()
    startup.started()
    assert gc.isenabled() and gc.get_freeze_count() == frozen
