"""Test handler: leave a daemon behind (double fork + setsid), then exit 0 or wait forever.

The daemon keeps the inherited stdout and stderr open, writes its pid and its new parent's pid
to $PID_FILE, and,
$LATE_AFTER seconds after the handler is gone, keeps writing ``late.txt`` into the root
folder. $HANDLER_WAITS keeps the handler running after the daemon started (its pid goes to
$HANDLER_PID_FILE).
"""

import os
import time
from pathlib import Path

pid_file = Path(os.environ["PID_FILE"])
root = Path(os.environ["ROOT_FOLDER"])
late_after = float(os.environ.get("LATE_AFTER", "3"))
handler_pid = os.getpid()

if os.fork() == 0:  # the intermediate child
    os.setsid()
    intermediate = os.getpid()
    if os.fork() != 0:
        os._exit(0)
    # The daemon: it has its own session; once its parent has exited, it records its pid and
    # the process it was re-parented to.
    while os.getppid() == intermediate:
        time.sleep(0.005)
    pid_file.write_text(f"{os.getpid()} {os.getppid()}\n", encoding="utf-8")
    while True:
        try:
            os.kill(handler_pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.02)
    time.sleep(late_after)
    while True:
        (root / "late.txt").write_text(f"written by the daemon at {time.time()}\n")
        print("daemon still running", flush=True)
        time.sleep(0.05)

os.wait()  # the intermediate child exits at once
while not pid_file.exists() or not pid_file.read_text(encoding="utf-8").endswith("\n"):
    time.sleep(0.01)
(root / "output.txt").write_text("written by the handler\n", encoding="utf-8")
print("handler done", flush=True)
if os.environ.get("HANDLER_WAITS"):
    Path(os.environ["HANDLER_PID_FILE"]).write_text(f"{handler_pid}\n", encoding="utf-8")
    while True:
        time.sleep(1)
