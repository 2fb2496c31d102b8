"""Test handler: leave behind a child that escapes every marker, then exit 0.

The child empties its environment, leaves the session, lets go of the output pipes and
exits by itself after $ORPHAN_SECONDS; its pid goes to $PID_FILE. Once the handler is gone,
only a subreaper bridge can reap it.
"""

import os
import sys
from pathlib import Path

seconds = os.environ.get("ORPHAN_SECONDS", "1")
pid = os.fork()
if pid == 0:
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDWR)
    for stream in (0, 1, 2):
        os.dup2(devnull, stream)
    os.execve(sys.executable, [sys.executable, "-c", f"import time; time.sleep({seconds})"], {})
Path(os.environ["PID_FILE"]).write_text(f"{pid}\n", encoding="utf-8")
