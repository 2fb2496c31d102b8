"""Test handler: rewrite $TARGET_PATH (relative to the root) in place.

MODE=same-size: new bytes of the same length (upper-cased), written through the same inode.
MODE=identical: the very same bytes written again.
"""

import os
from pathlib import Path

path = Path(os.environ["ROOT_FOLDER"], os.environ["TARGET_PATH"])
before = os.stat(path)
data = path.read_bytes()
new = data.upper() if os.environ["MODE"] == "same-size" else data
assert len(new) == len(data)
with open(path, "r+b") as stream:
    stream.write(new)
after = os.stat(path)
assert (after.st_ino, after.st_size) == (before.st_ino, before.st_size)
