"""P7 (docs/design.md §13): a per-object step in a flat folder, ``PULL_SCOPE=events``.

One SQS-wrapped event, a handler writing one output, SKIP_UNCHANGED on: in a folder of
10,000 objects against the same step in a folder of 10. Every S3 request the bridge sends is
counted with a botocore event hook on its own client; in events scope both folders must
cost exactly one GetObject, one HeadObject and one PutObject per event. The same step in
prefix scope is measured beside it, for contrast (one run each: it pulls the whole folder).
"""

from __future__ import annotations

import itertools
import os
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from harness import BENCH, Row, interleaved

from bridge.app import App
from bridge.samples import sample_payload
from bridge.settings import load_settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

HANDLER = (sys.executable, str(BENCH / "event_copy_handler.py"))
EXPECTED = Counter({"GetObject": 1, "HeadObject": 1, "PutObject": 1})
BODY_BYTES = 1024


class RequestCounter:
    """Every S3 operation an app's own client sends, by name, since the last ``take``."""

    def __init__(self, app: App) -> None:
        self.calls: Counter[str] = Counter()
        app.engine.storage.client.meta.events.register("before-call.s3", self._record)

    def _record(self, model: Any, **_: Any) -> None:
        self.calls[model.name] += 1

    def take(self) -> Counter[str]:
        taken, self.calls = self.calls, Counter()
        return taken


def describe(calls: Counter[str]) -> str:
    return " + ".join(f"{n} {name}" for name, n in sorted(calls.items())) or "none"


def p7_per_object(s3: S3Client, big_folder: int, runs: int) -> list[Row]:
    """One event in a folder of ``big_folder`` objects vs in a folder of 10."""
    bucket = "bench-p7"
    s3.create_bucket(Bucket=bucket)
    body = os.urandom(BODY_BYTES)
    folders = {"big": ("big/", big_folder), "small": ("small/", 10)}
    keys = [
        f"{prefix}object-{n:05d}.bin" for prefix, count in folders.values() for n in range(count)
    ]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda key: s3.put_object(Bucket=bucket, Key=key, Body=body), keys))
    numbers = itertools.count()

    def step(scope: str) -> tuple[App, RequestCounter]:
        app = App.create(load_settings(pull_scope=scope), HANDLER)  # once: a warm environment
        return app, RequestCounter(app)

    def one_event(
        app: App, counter: RequestCounter, folder: str, seen: list[Counter[str]]
    ) -> float:
        prefix = folders[folder][0]
        key = f"{prefix}new-{next(numbers):05d}.bin"  # a new object: its output is new too
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        payload = sample_payload("sqs", bucket, key, size=len(body))
        counter.take()
        started = time.perf_counter()
        answer = app.handle_payload(payload)
        elapsed = time.perf_counter() - started
        seen.append(counter.take())
        if answer.is_error or answer.body != {"batchItemFailures": []}:
            raise RuntimeError(f"P7: the bridge answered {answer.body}")
        copy = key.replace("/new-", "/copy-new-")
        if s3.get_object(Bucket=bucket, Key=copy)["Body"].read() != body:
            raise RuntimeError(f"P7: wrong output at {copy}")
        for done in (key, copy):  # untimed: the folder keeps its size for the next run
            s3.delete_object(Bucket=bucket, Key=done)
        return elapsed

    # Prefix scope first, one run each: the contrast (it pulls the whole folder).
    prefix_app, prefix_counter = step("prefix")
    prefix_big: list[Counter[str]] = []
    prefix_small: list[Counter[str]] = []
    contrast_big = one_event(prefix_app, prefix_counter, "big", prefix_big)
    contrast_small = one_event(prefix_app, prefix_counter, "small", prefix_small)

    events_app, events_counter = step("events")
    big_calls: list[Counter[str]] = []
    small_calls: list[Counter[str]] = []
    big, small = interleaved(
        [
            lambda: one_event(events_app, events_counter, "big", big_calls),
            lambda: one_event(events_app, events_counter, "small", small_calls),
        ],
        runs,
    )
    wrong = [c for c in big_calls + small_calls if c != EXPECTED]
    requests = f"S3 requests per event, both folders, every run: {describe(EXPECTED)}"
    if wrong:
        requests = f"S3 requests per event NOT as expected: {sorted(map(describe, wrong))}"
    what = f"per-object step (events scope): 1 event, folder of {big_folder:,} vs of 10"
    rows = [Row("P7", what, "s", big, small, "<= 1.10x", 1.10, note=requests, crashed=bool(wrong))]

    rows.append(
        Row(
            "P7p",
            f"the same step in prefix scope (contrast): folder of {big_folder:,} vs of 10",
            "s",
            [contrast_big],
            [contrast_small],
            "(contrast)",
            0.0,
            info=True,
            note=(
                f"prefix scope, S3 requests per event: folder of {big_folder:,}: "
                f"{describe(prefix_big[0])}; folder of 10: {describe(prefix_small[0])}"
            ),
        )
    )
    return rows
