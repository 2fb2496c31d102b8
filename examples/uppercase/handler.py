"""A tiny example handler: for every new .txt file, write an upper-cased copy under out/.

It knows nothing about S3: it reads files under $ROOT_FOLDER and writes files there.
$BRIDGE_EVENTS_FILE tells it which files triggered this run.
"""

import json
import os
from pathlib import Path

root = Path(os.environ["ROOT_FOLDER"])
events = json.loads(Path(os.environ["BRIDGE_EVENTS_FILE"]).read_text(encoding="utf-8"))

for event in events:
    if event["path"] is None or not event["path"].endswith(".txt"):
        continue
    source = root / event["path"]
    target = root / "out" / source.name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(source.read_text(encoding="utf-8").upper(), encoding="utf-8")
    print(f"wrote out/{source.name} ({target.stat().st_size} bytes)")
