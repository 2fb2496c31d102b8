"""Benchmark handler (P2): copy each file at the top of $ROOT_FOLDER to ``copy-<name>``.

Run the same way by the bridge and by the boto3 baseline, so both pay the same process start.
"""

import os
import shutil
from pathlib import Path

root = Path(os.environ["ROOT_FOLDER"])
inputs = [p for p in root.iterdir() if p.is_file() and not p.name.startswith("copy-")]
for path in sorted(inputs):
    shutil.copyfile(path, root / f"copy-{path.name}")
