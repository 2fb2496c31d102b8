"""P9's bridge side: ``s3-event-bridge backfill ARGS`` as the console script runs it, in this
process, with its SendMessageBatch calls counted by a botocore hook on the session every
client of the bridge is made from. Prints ``{"status": <exit status>, "calls": <count>}``
on stdout (the backfill's own lines go to stderr)."""

from __future__ import annotations

import json
import sys
from typing import Any

from bridge import clients
from bridge.cli import main

calls = 0


def count(**_: Any) -> None:
    global calls
    calls += 1


clients._session().register("before-call.sqs.SendMessageBatch", count)
status = main(["backfill", *sys.argv[1:]])
print(json.dumps({"status": status, "calls": calls}))
