"""The parts of s3transfer the bridge relies on (bridge/multipart.py, bridge/pull.py).

s3transfer says its API is not GA and may change between minor versions: pyproject.toml pins
the minor version, and each test below names the API it checks, so an upgrade that changes
one fails here, loudly, before it fails in production.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import re
import socket
import tomllib
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from s3transfer.exceptions import S3DownloadFailedError
from s3transfer.futures import TransferMeta
from s3transfer.manager import TransferConfig, TransferManager
from s3transfer.subscribers import BaseSubscriber
from s3transfer.utils import S3_RETRYABLE_DOWNLOAD_ERRORS

from bridge.multipart import LargeTransfers
from bridge.paths import ListedObject
from bridge.storage import MULTIPART_THRESHOLD, RETRYABLE_STREAMING_ERRORS, s3_client
from tests.conftest import REPO, MotoServer


def pinned_range() -> str:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    [spec] = [d for d in project["project"]["dependencies"] if d.startswith("s3transfer")]
    return str(spec)


def test_the_installed_s3transfer_is_the_pinned_minor_version() -> None:
    spec = pinned_range()
    match = re.fullmatch(r"s3transfer>=(\d+)\.(\d+),<(\d+)\.(\d+)", spec)
    assert match, f"pyproject.toml must pin s3transfer to one minor version, not {spec!r}"
    installed = importlib.metadata.version("s3transfer")
    major, minor = (int(part) for part in installed.split(".")[:2])
    assert (major, minor) == (int(match[1]), int(match[2])), (
        f"s3transfer {installed} is installed, {spec} is pinned: re-check every "
        "API in this file against the new version before moving the pin"
    )


def parameters(function: Any) -> list[str]:
    return list(inspect.signature(function).parameters)


def test_transfer_manager_construction_and_methods() -> None:
    assert parameters(TransferManager.__init__)[:3] == ["self", "client", "config"], (
        "s3transfer.manager.TransferManager(client, config) changed"
    )
    download = ["self", "bucket", "key", "fileobj", "extra_args", "subscribers"]
    assert parameters(TransferManager.download)[:6] == download, (
        "TransferManager.download(bucket, key, fileobj, extra_args, subscribers) changed"
    )
    upload = ["self", "fileobj", "bucket", "key", "extra_args"]
    assert parameters(TransferManager.upload)[:5] == upload, (
        "TransferManager.upload(fileobj, bucket, key, extra_args) changed"
    )
    for name in ("ContentType", "Metadata"):
        assert name in TransferManager.ALLOWED_UPLOAD_ARGS, (
            f"TransferManager.ALLOWED_UPLOAD_ARGS no longer allows {name}"
        )


def test_transfer_config_takes_the_settings_the_bridge_passes() -> None:
    config = TransferConfig(
        max_request_concurrency=3, multipart_threshold=MULTIPART_THRESHOLD, max_io_queue_size=100
    )
    assert (config.max_request_concurrency, config.max_io_queue_size) == (3, 100), (
        "TransferConfig(max_request_concurrency, multipart_threshold, max_io_queue_size) changed"
    )


def test_subscribers_can_provide_size_and_etag_when_queued() -> None:
    assert callable(getattr(BaseSubscriber, "on_queued", None)), "BaseSubscriber.on_queued is gone"
    for name in ("provide_transfer_size", "provide_object_etag"):
        assert callable(getattr(TransferMeta, name, None)), f"TransferMeta.{name} is gone"
    meta = TransferMeta()
    meta.provide_transfer_size(5)
    meta.provide_object_etag('"abc"')
    assert (meta.size, meta.etag) == (5, '"abc"'), "TransferMeta.size / .etag changed"


def test_streaming_errors_retried_match_what_s3transfer_retries() -> None:
    """The bridge retries a broken small GET as s3transfer retries a broken range; it narrows
    s3transfer's ``socket.error`` (any OSError, disk errors included) to network errors."""
    ours = set(RETRYABLE_STREAMING_ERRORS)
    for error in S3_RETRYABLE_DOWNLOAD_ERRORS:
        if error is socket.error:
            assert {ConnectionError, TimeoutError} <= ours
        else:
            assert error in ours, f"s3transfer.utils.S3_RETRYABLE_DOWNLOAD_ERRORS gained {error}"


def test_a_ranged_get_whose_if_match_fails_surfaces_as_the_client_error(
    aws: MotoServer, s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """s3transfer wraps a 412 in S3DownloadFailedError raised while handling the ClientError:
    bridge.multipart unwraps it (events-scope pulls retry an object replaced since its event)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws.endpoint)
    s3.create_bucket(Bucket="bkt")
    size = MULTIPART_THRESHOLD + 1
    s3.put_object(Bucket="bkt", Key="big", Body=b"x" * size)
    stale = ListedObject("big", size, "0" * 32, 0, {})
    transfers = LargeTransfers(s3_client(2), 2, MULTIPART_THRESHOLD)

    with (tmp_path / "big").open("wb") as stream, pytest.raises(ClientError) as raised:
        transfers.download("bkt", stale, "big", stream)

    assert raised.value.response["Error"]["Code"] in ("412", "PreconditionFailed")
    assert isinstance(raised.value.__cause__, S3DownloadFailedError), (
        "s3transfer no longer raises S3DownloadFailedError for a failed ranged GET"
    )
