"""Benchmark handler (P7): copy each triggering file (``$BRIDGE_EVENTS_FILE``) to ``copy-<name>``.

A per-object step: whatever else the root folder holds (prefix scope pulls the whole folder),
only the objects that triggered the run are processed, so both scopes write one output.
"""

import json
import os
import shutil
from pathlib import Path

root = Path(os.environ["ROOT_FOLDER"])
for event in json.loads(Path(os.environ["BRIDGE_EVENTS_FILE"]).read_text(encoding="utf-8")):
    if event["path"] is not None:
        source = root / event["path"]
        shutil.copyfile(source, source.with_name(f"copy-{source.name}"))
