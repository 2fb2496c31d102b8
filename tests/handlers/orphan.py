"""Test handler: leave behind a child that escapes every marker, then exit 0.

The child empties its environment, leaves the session and lets go of the output pipes.
Once the handler is gone it writes its pid and its new parent's pid to $PID_FILE, then
exits by itself $ORPHAN_SECONDS later. Only a subreaper bridge can then reap it.
"""

import os
import sys

CHILD = """
import os, sys, time
handler, path, seconds = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
while os.getppid() == handler:
    time.sleep(0.01)
with open(path + ".tmp", "w") as stream:
    stream.write(f"{os.getpid()} {os.getppid()}\\n")
os.rename(path + ".tmp", path)
time.sleep(seconds)
"""

handler = os.getpid()
ready, exec_done = os.pipe()  # close-on-exec: end of file once the child has exec'd
if os.fork() == 0:
    os.close(ready)
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDWR)
    for stream in (0, 1, 2):
        os.dup2(devnull, stream)
    arguments = [str(handler), os.environ["PID_FILE"], os.environ.get("ORPHAN_SECONDS", "2")]
    os.execve(sys.executable, [sys.executable, "-c", CHILD, *arguments], {})
os.close(exec_done)
os.read(ready, 1)  # exit only once the child no longer carries the marker
