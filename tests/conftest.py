"""Shared fixtures: a moto server in its own process, AWS environment, clients, helpers."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
sys.path.insert(0, str(EXAMPLES))

from local_aws import FAKE_AWS_ENV, LEAKY_VARIABLES, MotoServer, free_port  # noqa: E402

__all__ = ["EXAMPLES", "REPO", "MotoServer", "free_port"]


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    server = MotoServer()
    try:
        yield server
    finally:
        server.stop()


AWS_TEST_ENV = FAKE_AWS_ENV
# Cleared for every test, so the developer's shell cannot leak in.
BRIDGE_VARIABLES = LEAKY_VARIABLES


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts from fake credentials and no bridge configuration."""
    for name in BRIDGE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in AWS_TEST_ENV.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def aws(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[MotoServer]:
    """Point boto3 (in this process and in subprocesses) at a freshly reset moto server."""
    moto_server.reset()
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.endpoint)
    yield moto_server


@pytest.fixture
def s3(aws: MotoServer) -> Any:
    """A plain boto3 S3 client on the moto server (the test's own view of S3)."""
    return boto3.client("s3", endpoint_url=aws.endpoint)


@pytest.fixture
def sqs(aws: MotoServer) -> Any:
    """A plain boto3 SQS client on the moto server."""
    return boto3.client("sqs", endpoint_url=aws.endpoint)


def subprocess_env(**extra: str) -> dict[str, str]:
    """The current (test) environment plus ``extra``, for running the CLI as a subprocess."""
    env = dict(os.environ)
    env.update(extra)
    return env


def bridge_command() -> list[str]:
    """The installed ``s3-event-bridge`` console script of this virtual environment."""
    script = Path(sys.executable).parent / "s3-event-bridge"
    assert script.exists(), f"{script} is missing: install the package (make test does)"
    return [str(script)]
