"""Test handler: create symlinks (inside and outside the root), a FIFO and one regular file."""

import os
from pathlib import Path

root = Path(os.environ["ROOT_FOLDER"])
(root / "real.txt").write_text("real", encoding="utf-8")
(root / "inside-link.txt").symlink_to(root / "real.txt")
(root / "relative-link.txt").symlink_to("real.txt")
(root / "passwd").symlink_to("/etc/passwd")
(root / "etc").symlink_to("/etc")
os.mkfifo(root / "pipe")
(root / "sub").mkdir()
(root / "sub" / "up").symlink_to("..")
