"""The README's local loop works as written: its shell block runs against a moto server."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, MotoServer, subprocess_env

SECTION = "## Local loop: a local S3 and a handler"


def local_loop_script() -> str:
    """The first ``sh`` block of the local-loop section."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split(SECTION, 1)[1]
    match = re.search(r"```sh\n(.*?)```", section, flags=re.S)
    assert match, "no sh block in the local loop section"
    return match.group(1)


def test_the_local_loop_runs_as_written(aws: MotoServer) -> None:
    script = local_loop_script()
    port = aws.endpoint.rsplit(":", 1)[1]
    # The test provides the installed bridge and a moto server of its own: skip those steps.
    lines = [
        line
        for line in script.splitlines()
        if not line.startswith(("make ", "source ")) and "moto.server" not in line
    ]
    assert len(lines) < len(script.splitlines())
    runnable = "\n".join(lines).replace("127.0.0.1:5000", f"127.0.0.1:{port}")
    env = subprocess_env()
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    result = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", runnable],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert '"batchItemFailures": []' in result.stdout
    assert result.stdout.rstrip().endswith("b'ROSES ARE RED'")
    assert "trigger:  s3://bkt/in/red flower+1.txt" in result.stdout
