"""Test handler: write big.bin, $BIG_SIZE bytes (default 9 MiB), past the multipart threshold."""

import os
from pathlib import Path

size = int(os.environ.get("BIG_SIZE", str(9 * 1024 * 1024)))
block = bytes(range(256)) * 4096  # 1 MiB, not all zeros
with Path(os.environ["ROOT_FOLDER"], "big.bin").open("wb") as stream:
    while size > 0:
        stream.write(block[: min(size, len(block))])
        size -= len(block)
