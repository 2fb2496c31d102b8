"""Test handler: for every pulled file outside out/, write out/<its path> with its content.

Deterministic, and it regenerates all of its outputs on every run (a reduce-like step in
prefix scope). $WRITE_ALSO names one extra relative path to write (e.g. under the reserved
prefix). When $COUNTER_FILE is set, one line per run lists the files it saw.
"""

import json
import os
import shutil
from pathlib import Path

root = Path(os.environ["ROOT_FOLDER"])
seen = sorted(
    str(path.relative_to(root))
    for path in root.rglob("*")
    if path.is_file() and not str(path.relative_to(root)).startswith("out/")
)
if os.environ.get("COUNTER_FILE"):
    with open(os.environ["COUNTER_FILE"], "a", encoding="utf-8") as counter:
        counter.write(json.dumps(seen) + "\n")
for relative in seen:
    target = root / "out" / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(root / relative, target)
if os.environ.get("WRITE_ALSO"):
    extra = root / os.environ["WRITE_ALSO"]
    extra.parent.mkdir(parents=True, exist_ok=True)
    extra.write_text("extra", encoding="utf-8")
