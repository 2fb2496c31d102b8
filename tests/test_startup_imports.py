"""Lambda start-up loads only what the configuration needs (docs/design.md §8, §13 P1).

Each case runs in a fresh interpreter what lambda mode runs before its first ``GET next``
(the CLI and runtime modules, the configuration, the engine with its S3 client) and lists
which optional modules ended up loaded.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import subprocess_env

OPTIONAL = ("jq", "yaml", "bridge.consumer", "bridge.planning", "bridge.samples", "bridge.pipeline")

PROBE = f"""
import json, sys
import bridge.cli, bridge.runtime
from bridge.app import App, load_configuration
settings, command = load_configuration(["true"])
App.create(settings, command)
print(json.dumps(sorted(name for name in {OPTIONAL!r} if name in sys.modules)))
"""


def loaded_after_start_up(**env: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        env=subprocess_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    loaded: list[str] = json.loads(result.stdout)
    return loaded


def test_lambda_start_up_without_a_filter_loads_nothing_optional() -> None:
    assert loaded_after_start_up() == []


@pytest.mark.parametrize("program", [".", "length > 0"])
def test_an_execution_filter_loads_jq_before_the_first_event(program: str) -> None:
    assert loaded_after_start_up(EXECUTION_FILTER_EXPR=program) == ["jq"]
