"""The demos run as users run them (`make demo` and the small invoke demo) and succeed."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import EXAMPLES, subprocess_env


def run_demo(script: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """Run an examples/ demo as a user would, in this virtual environment."""
    return subprocess.run(
        [sys.executable, str(EXAMPLES / script)],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_make_demo_pipeline_succeeds() -> None:
    """The full demo: map-reduce word count and thumbnails through consume workers."""
    result = run_demo("demo.py", timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "demo succeeded" in result.stdout
    assert "word count over 3 texts" in result.stdout
    # The three thumbnails are at most 200 px wide; the small icon is not enlarged.
    assert "uploads/thumbnails/sunset.jpg        200x150 JPEG" in result.stdout
    assert "uploads/thumbnails/icon+small.png    120x90 PNG" in result.stdout
    for step in ("wordcount-map", "wordcount-reduce", "thumbnails"):
        assert step in result.stdout


def test_invoke_demo_succeeds() -> None:
    """`event sqs | invoke` on keys with spaces and `+`; outputs land and are printed."""
    result = run_demo("demo_invoke.py", timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "'inbox/out/red flower+1.txt' [text/plain, bridge-depth 1]: 'ROSES ARE RED'" in (
        result.stdout
    )
    assert "demo succeeded" in result.stdout
