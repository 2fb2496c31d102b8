"""Test handler: dump its environment and the BRIDGE_EVENTS_FILE contents to env.json.

The dump lands in the root folder (so it is uploaded) and, when $DUMP_FILE is set, also there
(outside the root, so the test can read it even when nothing is uploaded).
"""

import json
import os
from pathlib import Path

events_file = os.environ["BRIDGE_EVENTS_FILE"]
document = {
    "env": dict(os.environ),
    "events_file": events_file,
    "events": json.loads(Path(events_file).read_text(encoding="utf-8")),
    "cwd": os.getcwd(),
}
root_var = os.environ.get("ROOT_VAR_NAME", "ROOT_FOLDER")
text = json.dumps(document, ensure_ascii=False)
Path(os.environ[root_var], "env.json").write_text(text, encoding="utf-8")
if os.environ.get("DUMP_FILE"):
    Path(os.environ["DUMP_FILE"]).write_text(text, encoding="utf-8")
