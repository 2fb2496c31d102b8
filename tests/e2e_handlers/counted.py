"""Test handler: records each run in $RUNS_FILE, optionally sleeps, then acts per $BEHAVIOUR.

With $GATE set it then waits until that file exists (at most 120 s, then exits 1): a test
opens the gate once what must happen while the handler runs has happened.

BEHAVIOUR:
  upper      write out/<name> = upper-cased copy of each triggering file (default)
  fail-bad   exit 1 when a triggering key contains "bad", else like upper
  summary    write summary.txt = sorted names of the other .txt files (deterministic)
  random     write random.txt with fresh random content (non-deterministic)
"""

import json
import os
import time
import uuid
from pathlib import Path

root = Path(os.environ["ROOT_FOLDER"])
events = json.loads(Path(os.environ["BRIDGE_EVENTS_FILE"]).read_text(encoding="utf-8"))
with open(os.environ["RUNS_FILE"], "a", encoding="utf-8") as runs:
    runs.write(json.dumps([e["key"] for e in events]) + "\n")
time.sleep(float(os.environ.get("SLEEP", "0")))
if os.environ.get("GATE"):
    give_up = time.monotonic() + 120
    while not os.path.exists(os.environ["GATE"]):
        if time.monotonic() > give_up:
            raise SystemExit(1)
        time.sleep(0.02)

behaviour = os.environ.get("BEHAVIOUR", "upper")
if behaviour == "fail-bad" and any("bad" in e["key"] for e in events):
    raise SystemExit(1)
if behaviour in ("upper", "fail-bad"):
    for event in events:
        if event["path"]:
            source = root / event["path"]
            target = root / "out" / source.name
            target.parent.mkdir(exist_ok=True)
            target.write_text(source.read_text(encoding="utf-8").upper(), encoding="utf-8")
elif behaviour == "summary":
    names = sorted(p.name for p in root.glob("*.txt") if p.name != "summary.txt")
    (root / "summary.txt").write_text("\n".join(names) + "\n", encoding="utf-8")
elif behaviour == "random":
    (root / "random.txt").write_text(uuid.uuid4().hex, encoding="utf-8")
