"""GROUP_CONCURRENCY (docs/design.md §3, §13 P8): independent groups of one invocation run
side by side, each in its own temporary folder, with the same outcomes as one by one.

Concurrency is proven without timing: the handlers of the groups wait for each other
(``tests/handlers/meet.py``), so the invocation succeeds only if they all run at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bridge.settings import ConfigurationError, load_settings
from tests.helpers import handler, make_app, objects, put, s3_notification, sqs_payload

BUCKET = "jobs"


def test_ten_groups_meet_with_group_concurrency_10(
    s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3.create_bucket(Bucket=BUCKET)
    keys = [f"job{i}/input.txt" for i in range(10)]
    for key in keys:
        put(s3, BUCKET, key, "data")
    meet = tmp_path / "meet"
    meet.mkdir()
    monkeypatch.setenv("MEET_DIR", str(meet))
    monkeypatch.setenv("MEET_COUNT", "10")
    app = make_app(handler("meet"), group_concurrency=10)
    payload, _ = sqs_payload([s3_notification(BUCKET, [key]) for key in keys])

    answer = app.handle_payload(payload)

    assert answer.body == {"batchItemFailures": []}
    outputs = objects(s3, BUCKET)
    roots = set()
    for i in range(10):
        present, root = outputs[f"job{i}/met.txt"].decode().splitlines()
        assert present.split() == sorted(f"job{n}" for n in range(10))
        roots.add(root)
    assert len(roots) == 10  # each group had its own folder
    assert all(not Path(root).exists() for root in roots)  # and each was removed


def test_a_failing_group_fails_only_its_message_under_concurrency(
    s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3.create_bucket(Bucket=BUCKET)
    for prefix in "abc":
        put(s3, BUCKET, f"{prefix}/in.txt", "data")
    meet = tmp_path / "meet"
    meet.mkdir()
    monkeypatch.setenv("MEET_DIR", str(meet))
    monkeypatch.setenv("MEET_COUNT", "3")
    monkeypatch.setenv("FAIL_PREFIX", "b")
    app = make_app(handler("meet"), group_concurrency=3)
    payload, ids = sqs_payload([s3_notification(BUCKET, [f"{p}/in.txt"]) for p in "abc"])

    answer = app.handle_payload(payload)

    assert answer.body == {"batchItemFailures": [{"itemIdentifier": ids[1]}]}
    assert sorted(k for k in objects(s3, BUCKET) if k.endswith("met.txt")) == [
        "a/met.txt",
        "c/met.txt",
    ]


@pytest.mark.parametrize("raw", ["0", "-1", "x", "101"])
def test_group_concurrency_is_validated(raw: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GROUP_CONCURRENCY", raw)
    with pytest.raises(ConfigurationError, match="GROUP_CONCURRENCY"):
        load_settings()


def test_group_concurrency_defaults_to_one(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().group_concurrency == 1
    monkeypatch.setenv("GROUP_CONCURRENCY", "8")
    assert load_settings().group_concurrency == 8
