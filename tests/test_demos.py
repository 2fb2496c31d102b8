"""The demos run as users run them (`make demo` and the small invoke demo) and succeed."""

from __future__ import annotations

import re
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
    """The full demo: the example pipeline files through `pipeline up --until-idle`."""
    result = run_demo("demo.py", timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "demo succeeded" in result.stdout
    assert "word count over 3 texts" in result.stdout
    for example in ("wordcount", "thumbnails", "tenants"):
        assert f"pipeline up examples/{example}/pipeline.yaml" in result.stdout
        assert f"  {example}: exit 0" in result.stdout
    assert re.search(r"^  tenant-2/silver/customers\.json +3 records", result.stdout, re.M)
    # The classic layout: thumbnails/<name> at the top of the processed bucket, at most
    # 200 px wide; the small icon is not enlarged.
    assert re.search(r"^  thumbnails/sunset\.jpg +200x150 JPEG", result.stdout, re.M)
    assert re.search(r"^  thumbnails/icon\+small\.png +120x90 PNG", result.stdout, re.M)
    # Per step: scope, objects listed and pulled. The map and the thumbnails list nothing
    # and pull each new object once; the reduce lists its job folder.
    rows = {
        match["step"]: match
        for match in re.finditer(
            r"^  (?P<step>[\w-]+) +(?P<scope>events|prefix) +.+?(?P<listed>\d+) +(?P<pulled>\d+)"
            r" +\d+/\d+ ",
            result.stdout,
            re.M,
        )
    }
    assert set(rows) == {"wordcount-map", "wordcount-reduce", "thumbnails", "tenants"}, (
        result.stdout
    )
    # The map pulls the demo job's 3 texts and the 2 the backfill fed it.
    for step, pulled in (("wordcount-map", "5"), ("thumbnails", "3"), ("tenants", "3")):
        assert (rows[step]["scope"], rows[step]["listed"], rows[step]["pulled"]) == (
            "events",
            "0",
            pulled,
        ), rows[step][0]
    assert rows["wordcount-reduce"]["scope"] == "prefix"
    assert int(rows["wordcount-reduce"]["listed"]) > 0


def test_invoke_demo_succeeds() -> None:
    """`event sqs | invoke` on keys with spaces and `+`; outputs land and are printed."""
    result = run_demo("demo_invoke.py", timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "'inbox/out/red flower+1.txt' [text/plain, bridge-depth 1]: 'ROSES ARE RED'" in (
        result.stdout
    )
    assert "demo succeeded" in result.stdout
    # Outputs follow inputs: a job there before the pipeline, then a deletion.
    assert "`pipeline up --backfill` counted its 2 texts" in result.stdout
    assert (
        "map removed jobs/demo/counts/sonnet18.json: yes; reduce recomputed "
        "result/total.json over 2 texts" in result.stdout
    )
    assert "pipeline status examples/wordcount/pipeline.yaml (exit 0)" in result.stdout
