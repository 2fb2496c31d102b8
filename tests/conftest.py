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

from local_aws import MotoServer, free_port  # noqa: E402

__all__ = ["EXAMPLES", "REPO", "MotoServer", "free_port"]


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    server = MotoServer()
    try:
        yield server
    finally:
        server.stop()


AWS_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
}

# Configuration variables of the bridge: cleared so the developer's shell cannot leak in.
BRIDGE_VARIABLES = [
    "MATCH_KEY", "MATCH_EVENTS", "PULL_PARENT_DIRS", "PULL_MATCH_KEYS",
    "EXECUTION_FILTER_EXPR", "EXECUTION_FILTER_FILE", "TARGET_BUCKET", "HANDLER_COMMAND",
    "ROOT_FOLDER_VAR", "BUCKET_VAR", "KEY_PREFIX_VAR", "HANDLER_TIMEOUT",
    "TRANSFER_CONCURRENCY", "SKIP_UNCHANGED", "MAX_CHAIN_DEPTH", "LOG_FORMAT", "LOG_LEVEL",
    "AWS_LAMBDA_LOG_FORMAT", "AWS_LAMBDA_RUNTIME_API", "AWS_LAMBDA_MAX_CONCURRENCY",
    "AWS_PROFILE", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_SQS",
]  # fmt: skip


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
