"""The boto3 clients every driver and storage module share, and S3's error codes.

One session per process: its clients stay separate, but service models load once (several
Lambda pollers or consume workers would otherwise each pay for it). It is botocore's own
session, on the same credential and configuration chain as boto3's: ``import boto3`` would
load s3transfer (about 50 ms of start-up), which only large objects need
(``bridge.multipart``), and the bridge uses none of what boto3 adds to a client.
"""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING, cast

import botocore.session
from botocore.config import Config
from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

MISSING = frozenset({"404", "NoSuchKey", "NotFound"})
STALE = frozenset({"412", "PreconditionFailed"})
DENIED = frozenset({"403", "AccessDenied", "Forbidden"})
NO_BUCKET = frozenset({"404", "NoSuchBucket", "NotFound"})


def s3_client(concurrency: int = 16) -> S3Client:
    """An S3 client on the standard boto3 chain, standard retries, a pool wide enough."""
    config = Config(retries={"mode": "standard"}, max_pool_connections=max(10, concurrency + 4))
    return cast("S3Client", _session().create_client("s3", config=config))


def sqs_client() -> SQSClient:
    """An SQS client on the standard boto3 chain with standard retries."""
    config = Config(retries={"mode": "standard"})
    return cast("SQSClient", _session().create_client("sqs", config=config))


@functools.cache
def _session() -> botocore.session.Session:
    # botocore reads only AWS_DEFAULT_REGION; Lambda and most tools also set AWS_REGION.
    session = botocore.session.get_session()
    if session.get_config_variable("region") is None and os.environ.get("AWS_REGION"):
        session.set_config_variable("region", os.environ["AWS_REGION"])
    return session


def error_code(exc: ClientError) -> str:
    """The error code of an S3 error response (``NoSuchKey``, ``403``...)."""
    return str(exc.response.get("Error", {}).get("Code", ""))
