"""Multi-tenant bronze -> silver: every new ``raw/<file>.csv`` becomes ``silver/<file>.json``.

Runs under s3-event-bridge with the group prefix ``tenant-N/`` (``PULL_PARENT_DIRS=1``, see
tenants.env) and ``PULL_SCOPE=events``: an upload ``tenant-N/raw/<file>.csv`` is pulled to
``$ROOT_FOLDER/raw/<file>.csv``, and ``$ROOT_FOLDER/silver/<file>.json`` lands at
``tenant-N/silver/<file>.json``, in the same tenant's folder, by construction.

The CSV's first row names the columns; each further row becomes one JSON object. A file
that is not UTF-8, has no header, or has a row with more or fewer fields than the header is
malformed: the handler exits 1 naming the file and the line, so the run fails, nothing of
it is uploaded, and its message goes back to the queue (and to the DLQ after
maxReceiveCount). Other tenants' runs are separate groups and are not affected.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path, PurePosixPath


class Malformed(Exception):
    """The CSV cannot be converted; the message says where and why."""


def convert(source: Path) -> list[dict[str, str]]:
    """The rows of ``source`` as objects keyed by the header's column names."""
    try:
        text = source.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise Malformed(f"not UTF-8: {exc}") from exc
    rows = csv.reader(text.splitlines())
    header = next(rows, None)
    if not header or not all(name.strip() for name in header):
        raise Malformed("line 1: a header naming every column is required")
    records = []
    for line, row in enumerate(rows, start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise Malformed(f"line {line}: {len(row)} fields, the header has {len(header)}")
        records.append(dict(zip(header, row, strict=True)))
    return records


def main() -> int:
    root = Path(os.environ["ROOT_FOLDER"])
    events = json.loads(Path(os.environ["BRIDGE_EVENTS_FILE"]).read_text(encoding="utf-8"))
    failed = False
    for event in events:
        if event["path"] is None:  # deleted since its event: nothing to convert
            print(f"skipping {event['key']}: not pulled", file=sys.stderr)
            continue
        path = PurePosixPath(event["path"])
        if path.parent != PurePosixPath("raw") or path.suffix.lower() != ".csv":
            continue
        try:
            records = convert(root / path)
        except Malformed as exc:
            print(f"{event['key']}: malformed CSV: {exc}", file=sys.stderr)
            failed = True
            continue
        target = root / "silver" / f"{path.stem}.json"
        target.parent.mkdir(exist_ok=True)
        target.write_text(json.dumps(records, indent=1) + "\n", encoding="utf-8")
        print(f"converted {event['key']}: {len(records)} records")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
