"""Test handler: write outputs with known, JSON and unknown extensions."""

import os
from pathlib import Path

root = Path(os.environ["ROOT_FOLDER"])
(root / "result.txt").write_text("text", encoding="utf-8")
(root / "result.json").write_text('{"ok": true}', encoding="utf-8")
(root / "result.zzqx").write_bytes(b"\x00\x01")
(root / "noextension").write_bytes(b"\x02")
