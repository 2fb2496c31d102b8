"""Word-count map step: one ``counts/<name>.json`` per new ``input/<name>.txt``.

Runs under s3-event-bridge with the group prefix ``jobs/<job>/`` (see map.env), so the
root folder mirrors the job folder: inputs are pulled to ``$ROOT_FOLDER/input/`` and the
counts written to ``$ROOT_FOLDER/counts/`` land at ``jobs/<job>/counts/`` in the bucket.

With ``PULL_SCOPE=events`` the bridge pulls only the texts that triggered the run (those
named in ``$BRIDGE_EVENTS_FILE``), and lists nothing; only those are counted, so the
handler stays correct in prefix scope too, where every text of the job is pulled.

A count file maps each word to its number of occurrences, keys sorted, so the same input
always gives byte-identical output (re-runs upload nothing: SKIP_UNCHANGED).
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections import Counter
from pathlib import Path, PurePosixPath

WORD = re.compile(r"[a-z']+")


def count_words(text: str) -> Counter[str]:
    """Lower-case words (letters a-z and apostrophes); quotes around a word are dropped."""
    words = (match.strip("'") for match in WORD.findall(text.lower()))
    return Counter(word for word in words if word)


def main() -> int:
    root = Path(os.environ["ROOT_FOLDER"])
    events = json.loads(Path(os.environ["BRIDGE_EVENTS_FILE"]).read_text(encoding="utf-8"))
    for event in events:
        path = event["path"]
        if path is None:  # not pulled (e.g. deleted since): nothing to count
            print(f"skipping {event['key']}: not pulled", file=sys.stderr)
            continue
        relative = PurePosixPath(path)
        if relative.parent != PurePosixPath("input") or relative.suffix != ".txt":
            print(f"skipping {event['key']}: not an input text", file=sys.stderr)
            continue
        text = (root / relative).read_text(encoding="utf-8", errors="replace")
        counts = count_words(text)
        target = root / "counts" / f"{relative.stem}.json"
        target.parent.mkdir(exist_ok=True)
        target.write_text(json.dumps(counts, sort_keys=True, indent=1) + "\n", encoding="utf-8")
        print(f"counted {relative}: {counts.total()} words, {len(counts)} distinct")
    return 0


if __name__ == "__main__":
    sys.exit(main())
