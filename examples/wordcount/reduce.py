"""Word-count reduce step: sum every ``counts/<name>.json`` of a job into its result.

Runs under s3-event-bridge with the group prefix ``jobs/<job>/`` (see reduce.env), only
once the gate ``reduce-filter.jq`` has seen the job complete. The root folder holds the
manifest ``manifest-<N>.json`` (``{"inputs": ["a.txt", ...]}``) and ``counts/*.json``;
the inputs themselves are not pulled. Writes:

- ``result/total.json``: ``{"inputs", "total_words", "distinct_words", "counts"}``, with
  ``counts`` ordered by count (descending), then word;
- ``result/top.txt``: the ``TOP_WORDS`` (default 10) most frequent words, one per line.

It re-checks the manifest against the pulled counts and fails (exit 1, nothing uploaded)
if they disagree, so a malformed manifest can never produce a partial total.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections import Counter
from pathlib import Path, PurePosixPath

MANIFEST = re.compile(r"manifest-(?P<n>[0-9]+)\.json")


class JobError(Exception):
    """The job's files are inconsistent: no result must be written."""


def expected_inputs(root: Path) -> list[str]:
    """The input names the job's single manifest declares, checked against its key."""
    manifests = [(p, m) for p in root.iterdir() if (m := MANIFEST.fullmatch(p.name))]
    if len(manifests) != 1:
        raise JobError(f"expected exactly one manifest-<N>.json, found {len(manifests)}")
    manifest, match = manifests[0]
    declared = int(match.group("n"))
    try:
        inputs = json.loads(manifest.read_text(encoding="utf-8"))["inputs"]
    except (ValueError, KeyError, TypeError) as exc:
        raise JobError(f"{manifest.name}: not a JSON object with an 'inputs' list") from exc
    names = sorted(set(inputs)) if isinstance(inputs, list) else None
    if names is None or not all(isinstance(n, str) and n.endswith(".txt") for n in names):
        raise JobError(f"{manifest.name}: 'inputs' must list .txt file names")
    if len(names) != declared:
        raise JobError(f"{manifest.name} declares {declared} inputs but lists {len(names)}")
    return names


def total_counts(root: Path, inputs: list[str]) -> Counter[str]:
    """The sum of the counts of ``inputs``; every one must have its counts file."""
    total: Counter[str] = Counter()
    for name in inputs:
        counts_file = root / "counts" / f"{PurePosixPath(name).stem}.json"
        if not counts_file.is_file():
            raise JobError(f"{name} is in the manifest but counts/{counts_file.name} is missing")
        total.update(json.loads(counts_file.read_text(encoding="utf-8")))
    return total


def ranked(counts: Counter[str]) -> list[tuple[str, int]]:
    """Words by count descending, then alphabetically: a stable, deterministic order."""
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


def main() -> int:
    root = Path(os.environ["ROOT_FOLDER"])
    top = int(os.environ.get("TOP_WORDS", "10"))
    try:
        inputs = expected_inputs(root)
        counts = total_counts(root, inputs)
    except JobError as exc:
        print(f"reduce: {os.environ.get('KEY_PREFIX', '')}: {exc}", file=sys.stderr)
        return 1
    words = ranked(counts)
    result = root / "result"
    result.mkdir(exist_ok=True)
    total = {
        "inputs": inputs,
        "total_words": counts.total(),
        "distinct_words": len(counts),
        "counts": dict(words),
    }
    (result / "total.json").write_text(json.dumps(total, indent=1) + "\n", encoding="utf-8")
    lines = [f"{count}\t{word}\n" for word, count in words[:top]]
    (result / "top.txt").write_text("".join(lines), encoding="utf-8")
    print(f"reduced {len(inputs)} inputs: {counts.total()} words, {len(counts)} distinct")
    return 0


if __name__ == "__main__":
    sys.exit(main())
