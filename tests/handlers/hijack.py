"""Test handler: replace the root folder itself by a symlink to $OUTSIDE_DIR."""

import os
import shutil
from pathlib import Path

root = Path(os.environ["ROOT_FOLDER"])
shutil.rmtree(root)
root.symlink_to(os.environ["OUTSIDE_DIR"], target_is_directory=True)
