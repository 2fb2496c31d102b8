"""Test handler: write an output, mark itself started in $COUNTER_FILE, then sleep forever."""

import os
import time
from pathlib import Path

Path(os.environ["ROOT_FOLDER"], "early.txt").write_text("too early", encoding="utf-8")
if os.environ.get("COUNTER_FILE"):
    Path(os.environ["COUNTER_FILE"]).write_text("started", encoding="utf-8")
while True:
    time.sleep(1)
