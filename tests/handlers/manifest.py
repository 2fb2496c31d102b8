"""Test handler: write manifest.json = sorted relative paths of every file under the root."""

import json
import os
from pathlib import Path

root = Path(os.environ["ROOT_FOLDER"])
files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
(root / "manifest.json").write_text(json.dumps(files), encoding="utf-8")
