"""P4 child: pull one object in a fresh process; print wall time and peak RSS as JSON.

``python bench/pull_one.py {bridge,boto3} BUCKET KEY DEST`` with the AWS environment (and
``AWS_ENDPOINT_URL``) set by the caller. ``bridge`` builds ``Storage`` as ``App.create`` does
and times ``Storage.pull`` of the listed object; ``boto3`` times ``client.download_file``.
Client creation and imports are not timed; the peak RSS covers the whole process, imports
included, as a Lambda function's memory does. It is the kernel's high-water mark of this
process's own memory (``VmHWM``), not ``ru_maxrss``: Linux carries ``ru_maxrss`` over an
``exec``, so a child started by a big parent (the bench, after P1-P3) would report at least
the parent's peak (a 13 MB child of a 300 MB parent reads 313 MB).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import resource
import sys
import time
from pathlib import Path

if importlib.util.find_spec("bridge") is None:  # not installed: the repository's own
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def pull_with_bridge(bucket: str, key: str, dest: Path) -> float:
    """Seconds ``Storage.pull`` takes to bring ``key`` to ``dest``."""
    from bridge.memory import bound_malloc_arenas
    from bridge.paths import PullItem
    from bridge.settings import load_settings
    from bridge.storage import Storage, s3_client

    bound_malloc_arenas()  # as the s3-event-bridge command does first
    width = load_settings().transfer_concurrency
    storage = Storage(s3_client(width), width)
    [listed] = [o for o in storage.list_objects(bucket, key) if o.key == key]
    started = time.perf_counter()
    storage.pull(bucket, [PullItem(listed, dest.name)], dest.parent)
    return time.perf_counter() - started


def pull_with_boto3(bucket: str, key: str, dest: Path) -> float:
    """Seconds ``download_file`` (boto3's defaults) takes to bring ``key`` to ``dest``."""
    import boto3

    client = boto3.client("s3")
    started = time.perf_counter()
    client.download_file(bucket, key, str(dest))
    return time.perf_counter() - started


def peak_rss_kib() -> int:
    """The peak resident memory of this process since it started, in KiB."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, after exec


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=("bridge", "boto3"))
    parser.add_argument("bucket")
    parser.add_argument("key")
    parser.add_argument("dest", type=Path)
    options = parser.parse_args()
    pull = pull_with_bridge if options.kind == "bridge" else pull_with_boto3
    seconds = pull(options.bucket, options.key, options.dest)
    print(json.dumps({"seconds": seconds, "peak_rss_mb": peak_rss_kib() * 1024 / 1e6}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
