"""The fault-injection proxy itself: it forwards faithfully, and injects exactly what it counts."""

from __future__ import annotations

import collections
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import BotoCoreError

from tests.conftest import MotoServer
from tests.faultproxy import FAULTS, FaultProxy, Faults, Request

BODY = bytes(range(256)) * 64


def object_gets(request: Request) -> bool:
    """GetObject requests only (not listings, puts or bucket calls)."""
    return request.method == "GET" and request.target.startswith("/bkt/")


@pytest.fixture
def stored(aws: MotoServer, s3: Any) -> Any:
    s3.create_bucket(Bucket="bkt")
    s3.put_object(Bucket="bkt", Key="obj.bin", Body=BODY)
    return s3


@pytest.fixture
def proxied() -> Iterator[Any]:
    """A factory of (proxy, client through it); every proxy is stopped afterwards."""
    proxies: list[FaultProxy] = []

    def make(endpoint: str, faults: Faults) -> tuple[FaultProxy, Any]:
        proxy = FaultProxy(endpoint, faults, eligible=object_gets)
        proxies.append(proxy)
        # No retries and no checksum validation: the test sees exactly what the proxy sent.
        config = Config(
            retries={"mode": "standard", "max_attempts": 1},
            response_checksum_validation="when_required",
        )
        return proxy, boto3.client("s3", endpoint_url=proxy.endpoint, config=config)

    yield make
    for proxy in proxies:
        proxy.stop()


def test_draws_are_deterministic_by_position_and_follow_the_rates() -> None:
    faults = Faults(reset=0.1, truncate=0.05, stall=0.05, flip=0.2, seed=7)
    first = [faults.draw("body", n, 100) for n in range(10_000)]
    assert first == [faults.draw("body", n, 100) for n in range(10_000)]
    kinds = collections.Counter(kind for kind, _ in first)
    for kind, rate in (("reset", 0.1), ("truncate", 0.05), ("stall", 0.05), ("flip", 0.2)):
        assert abs(kinds[kind] / 10_000 - rate) < 0.02, (kind, kinds)
    empty = collections.Counter(
        kind for kind, _ in (faults.draw("empty", n, 0) for n in range(1000))
    )
    assert set(empty) <= {None, "reset", "stall"}


def test_without_faults_everything_passes_intact(
    moto_server: MotoServer, stored: Any, proxied: Any
) -> None:
    proxy, client = proxied(moto_server.endpoint, Faults())
    client.put_object(Bucket="bkt", Key="up.bin", Body=BODY[::-1])
    assert client.get_object(Bucket="bkt", Key="obj.bin")["Body"].read() == BODY
    assert client.head_object(Bucket="bkt", Key="up.bin")["ContentLength"] == len(BODY)
    assert stored.get_object(Bucket="bkt", Key="up.bin")["Body"].read() == BODY[::-1]
    assert proxy.injected() == dict.fromkeys(FAULTS, 0)
    assert proxy.counts["responses"] == 3 and proxy.counts["passed"] == 2


def test_flip_inverts_exactly_one_byte(moto_server: MotoServer, stored: Any, proxied: Any) -> None:
    proxy, client = proxied(moto_server.endpoint, Faults(flip=1.0, seed=3))
    received = client.get_object(Bucket="bkt", Key="obj.bin")["Body"].read()
    assert len(received) == len(BODY)
    assert sum(a != b for a, b in zip(received, BODY, strict=True)) == 1
    assert proxy.injected()["flip"] == 1


def test_truncate_and_reset_break_the_response(
    moto_server: MotoServer, stored: Any, proxied: Any
) -> None:
    for kind, faults in (("truncate", Faults(truncate=1.0)), ("reset", Faults(reset=1.0))):
        proxy, client = proxied(moto_server.endpoint, faults)
        with pytest.raises(BotoCoreError):
            client.get_object(Bucket="bkt", Key="obj.bin")["Body"].read()
        assert proxy.injected()[kind] == 1, kind


def test_stall_delays_but_delivers(moto_server: MotoServer, stored: Any, proxied: Any) -> None:
    proxy, client = proxied(moto_server.endpoint, Faults(stall=1.0, stall_seconds=0.05))
    assert client.get_object(Bucket="bkt", Key="obj.bin")["Body"].read() == BODY
    assert proxy.injected()["stall"] == 1
