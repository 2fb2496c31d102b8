"""0 lost, 0 corrupt through a faulty network: every S3 transfer of the bridge goes through
a proxy that resets, truncates, stalls and flips bytes; groups whose transfers were damaged
fail and are run again, and every output ends byte for byte equal to its input."""

from __future__ import annotations

import collections
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config

from bridge.events import ObjectEvent
from bridge.groups import ExecutionGroup
from bridge.outcomes import Status
from tests.conftest import MotoServer
from tests.faultproxy import FAULTS, FaultProxy, Faults, Request
from tests.helpers import handler, make_engine, objects
from tests.test_storage import LARGE, full_object_upload, pattern

# Seed 9 draws a flip for the first response with a body, and every kind of fault within
# the first 25: enough responses go through for each to be injected whatever the order.
FAULT_PLAN = Faults(reset=0.05, truncate=0.05, stall=0.05, flip=0.08, stall_seconds=0.1, seed=9)
MAX_ATTEMPTS = 30


def transfers(request: Request) -> bool:
    """Object transfers (GET, PUT, HEAD, multipart calls), not listings."""
    return "list-type=" not in request.target


@pytest.fixture
def proxy(aws: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    with FaultProxy(aws.endpoint, FAULT_PLAN, eligible=transfers) as faulty:
        monkeypatch.setenv("AWS_ENDPOINT_URL", faulty.endpoint)  # the bridge's client only
        yield faulty


def seed_inputs(s3: Any, endpoint: str) -> dict[str, list[str]]:
    """36 small objects in 12 folders (CRC32, SHA-256, or only an MD5 ETag) and two large
    ones (MD5 ETag; multipart with a full-object CRC32). Returns the keys by folder."""
    bare = boto3.client(
        "s3", endpoint_url=endpoint, config=Config(request_checksum_calculation="when_required")
    )
    s3.create_bucket(Bucket="bkt")
    s3.create_bucket(Bucket="dst")
    folders: dict[str, list[str]] = collections.defaultdict(list)
    for n in range(12):
        for i in range(3):
            key = f"job{n:02d}/in-{i}.bin"
            body = pattern(1000 + 997 * (n * 3 + i), seed=n * 3 + i)
            if n % 3 == 0:
                bare.put_object(Bucket="bkt", Key=key, Body=body)
            elif n % 3 == 1:
                s3.put_object(Bucket="bkt", Key=key, Body=body, ChecksumAlgorithm="SHA256")
            else:
                s3.put_object(Bucket="bkt", Key=key, Body=body)  # boto3's default: CRC32
            folders[f"job{n:02d}/"].append(key)
    bare.put_object(Bucket="bkt", Key="big0/in.bin", Body=pattern(LARGE, seed=100))
    full_object_upload(bare, "big1/in.bin", pattern(LARGE, seed=101))
    folders["big0/"].append("big0/in.bin")
    folders["big1/"].append("big1/in.bin")
    return folders


def test_no_input_is_lost_and_no_output_corrupt_through_a_faulty_network(
    aws: MotoServer, s3: Any, proxy: FaultProxy
) -> None:
    folders = seed_inputs(s3, aws.endpoint)
    engine = make_engine(handler("copier"), target_bucket="dst")
    failures: list[str] = []

    for prefix, keys in folders.items():
        events = tuple(ObjectEvent("bkt", k, "ObjectCreated:Put", None, None, None) for k in keys)
        group = ExecutionGroup("bkt", prefix, events)
        for _ in range(MAX_ATTEMPTS):  # what redelivery does: run the group until it succeeds
            outcome = engine.run_group(group)
            if outcome.status is Status.SUCCEEDED:
                break
            failures.append(f"{prefix}: {outcome.reason}")
        assert outcome.status is Status.SUCCEEDED, failures[-3:]

    inputs = objects(s3, "bkt")
    outputs = objects(s3, "dst")
    expected = {f"{key.split('/')[0]}/out/{key.split('/', 1)[1]}": inputs[key] for key in inputs}
    assert sorted(outputs) == sorted(expected), "lost or unexpected outputs"
    corrupt = [key for key, body in outputs.items() if body != expected[key]]
    assert corrupt == []
    injected = proxy.injected()
    assert all(injected[kind] >= 1 for kind in FAULTS), injected
    assert failures, "damaged transfers went unnoticed"
    assert any(
        "MD5 of the downloaded bytes" in f or "CRC32" in f or "SHA256" in f for f in failures
    )
