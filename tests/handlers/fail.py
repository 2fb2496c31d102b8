"""Test handler: write an output, then exit with status 3 (a failure)."""

import os
from pathlib import Path

Path(os.environ["ROOT_FOLDER"], "partial.txt").write_text("half done", encoding="utf-8")
raise SystemExit(3)
