"""Test handler: start a child that ignores SIGTERM (its pid goes to $PID_FILE), sleep forever.

The child keeps writing into the root folder, so only SIGKILL of the whole process group
stops it.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

CHILD = """
import os, signal, sys, time
from pathlib import Path
signal.signal(signal.SIGTERM, signal.SIG_IGN)
Path(sys.argv[1]).write_text(str(os.getpid()), encoding="utf-8")
while True:
    Path(os.environ["ROOT_FOLDER"], "child.txt").write_text(str(time.time()), encoding="utf-8")
    time.sleep(0.05)
"""

pid_file = Path(os.environ["PID_FILE"])
child = subprocess.Popen([sys.executable, "-c", CHILD, str(pid_file)])
while not pid_file.exists() or not pid_file.read_text(encoding="utf-8"):
    time.sleep(0.01)
if os.environ.get("IGNORE_TERM"):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
if os.environ.get("EXIT_AT_ONCE"):
    raise SystemExit(0)  # leaves the child running behind it
while True:
    time.sleep(1)
