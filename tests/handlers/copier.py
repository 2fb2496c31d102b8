"""Test handler: copy every triggering (pulled) file to out/<its path>; record the run.

Deterministic: the same inputs always give the same outputs. When $COUNTER_FILE is set, one
line with the triggering keys is appended to it per run (the file lives outside the root).
When $FAIL_ON is set and a triggering key contains it, exit 3 after recording the run.
"""

import json
import os
import shutil
from pathlib import Path

root = Path(os.environ["ROOT_FOLDER"])
events = json.loads(Path(os.environ["BRIDGE_EVENTS_FILE"]).read_text(encoding="utf-8"))
if os.environ.get("COUNTER_FILE"):
    with open(os.environ["COUNTER_FILE"], "a", encoding="utf-8") as counter:
        counter.write(json.dumps(sorted(e["key"] for e in events)) + "\n")
if os.environ.get("FAIL_ON") and any(os.environ["FAIL_ON"] in e["key"] for e in events):
    raise SystemExit(3)
for event in events:
    if event["path"] and not event["path"].startswith("out/"):
        target = root / "out" / event["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / event["path"], target)
