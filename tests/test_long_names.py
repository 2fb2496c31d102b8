"""Key parts of up to 255 bytes, multibyte included, pull into their folder (docs/design.md §11).

A part of 247-255 bytes fits Linux's NAME_MAX, but s3transfer's download-to-a-file-name
writes ``name + ".xxxxxxxx"`` first (nine more bytes): 127 x "é" (254 bytes) then failed the
whole folder with ENAMETOOLONG, forever. Every object is streamed into the file at its own
name, so such keys pull like any other, small or large, in both pull scopes.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from bridge.events import ObjectEvent
from bridge.groups import ExecutionGroup
from bridge.outcomes import Status
from bridge.storage import MULTIPART_THRESHOLD
from tests.conftest import MotoServer
from tests.helpers import handler, make_engine, objects, put

BUCKET = "src"
SMALL_NAME = "é" * 127  # 254 bytes in UTF-8
FULL_NAME = "é" * 127 + "a"  # 255 bytes: NAME_MAX exactly
LARGE_NAME = "ê" * 127  # 254 bytes, pulled with ranged GETs
LARGE_BODY = bytes(range(256)) * (MULTIPART_THRESHOLD // 256 + 1)
# The handler: the names of the files pulled into the root folder, into $REPORT_FILE.
LIST_ROOT = [
    sys.executable,
    "-c",
    "import json, os; root = os.environ['ROOT_FOLDER']; "
    "open(os.environ['REPORT_FILE'], 'w').write(json.dumps(sorted(os.listdir(root))))",
]


@pytest.fixture
def folder(aws: MotoServer, s3: Any) -> Any:
    s3.create_bucket(Bucket=BUCKET)
    put(s3, BUCKET, "in/ok.txt", "ok")
    put(s3, BUCKET, f"in/{SMALL_NAME}", "small")
    put(s3, BUCKET, f"in/{FULL_NAME}", "full")
    put(s3, BUCKET, f"in/{LARGE_NAME}", LARGE_BODY)
    return s3


def event(s3: Any, key: str) -> ObjectEvent:
    head = s3.head_object(Bucket=BUCKET, Key=key)
    return ObjectEvent(
        BUCKET, key, "ObjectCreated:Put", head["ContentLength"], head["ETag"].strip('"'), None
    )


def test_names_of_254_and_255_multibyte_bytes_pull_with_the_rest_of_the_folder(
    folder: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert len(SMALL_NAME.encode()) == 254 and len(FULL_NAME.encode()) == 255
    report = tmp_path / "report.json"
    monkeypatch.setenv("REPORT_FILE", str(report))
    engine = make_engine(LIST_ROOT)

    outcome = engine.run_group(ExecutionGroup(BUCKET, "in/", (event(folder, "in/ok.txt"),)))

    assert outcome.status is Status.SUCCEEDED, outcome.reason
    assert json.loads(report.read_text(encoding="utf-8")) == sorted(
        ["ok.txt", SMALL_NAME, FULL_NAME, LARGE_NAME]
    )


@pytest.mark.parametrize("name", [SMALL_NAME, FULL_NAME, LARGE_NAME])
def test_long_multibyte_names_pull_intact_in_events_scope(folder: Any, name: str) -> None:
    """The triggering object itself, fetched by GetObject, reaches the handler intact."""
    engine = make_engine(handler("copier"), pull_scope="events")
    key = f"in/{name}"

    outcome = engine.run_group(ExecutionGroup(BUCKET, "in/", (event(folder, key),)))

    assert outcome.status is Status.SUCCEEDED, outcome.reason
    copied = objects(folder, BUCKET, f"in/out/{name}")[f"in/out/{name}"]
    original = objects(folder, BUCKET, key)[key]
    assert hashlib.sha256(copied).digest() == hashlib.sha256(original).digest()
