"""Chaos campaign handler: ``input.bin`` at the top of the root -> ``result.txt``.

Deterministic under ``in/`` (its own output re-triggers it and changes nothing: the loop
reaches a fixed point); under ``loop/`` it writes something new every time, a loop that only
the chain depth limit stops.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path


def expected(data: bytes) -> str:
    """What ``result.txt`` must hold for an input."""
    return f"sha256 {hashlib.sha256(data).hexdigest()} bytes {len(data)}\n"


def main() -> None:
    root = Path(os.environ["ROOT_FOLDER"])
    source = root / "input.bin"
    if not source.is_file():
        return
    if os.environ["KEY_PREFIX"].startswith("loop/"):
        text = f"{time.time_ns()}\n"
    else:
        text = expected(source.read_bytes())
    (root / "result.txt").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
