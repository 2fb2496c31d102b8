"""Test handler: record in $REPORT_FILE every path under the root and under $TMPDIR.

Also writes types.json (a regular output) naming the files written by the test
(content-type checks) when $WRITE_TYPED is set.
"""

import json
import os
import tempfile
from pathlib import Path

root = Path(os.environ["ROOT_FOLDER"])
tmp = Path(tempfile.gettempdir())


def walk(base: Path) -> list[str]:
    return sorted(str(p.relative_to(base)) for p in base.rglob("*"))


report = {"root": walk(root), "tmpdir": walk(tmp), "tmpdir_path": str(tmp)}
Path(os.environ["REPORT_FILE"]).write_text(json.dumps(report), encoding="utf-8")
