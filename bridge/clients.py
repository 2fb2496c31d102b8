"""The boto3 clients every driver and storage module share, and S3's error codes.

One session per process: its clients stay separate, but service models load once (several
Lambda pollers or consume workers would otherwise each pay for it). It is botocore's own
session, on the same credential and configuration chain as boto3's: ``import boto3`` would
load s3transfer (about 50 ms of start-up), which only large objects need
(``bridge.multipart``), and the bridge uses none of what boto3 adds to a client. Its model
loader is botocore's minus two start-up costs (``ModelLoader``), and its clients read S3's
timestamps with the standard library (``parse_timestamp``).
"""

from __future__ import annotations

import email.utils
import functools
import gzip
import json
import os
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast, overload

import botocore.session
from botocore.config import Config
from botocore.exceptions import ClientError, DataNotFoundError
from botocore.loaders import JSONFileLoader, Loader, create_loader
from botocore.utils import parse_timestamp as botocore_parse_timestamp

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
    session = botocore.session.get_session()
    session.register_component(
        "data_loader",
        ModelLoader.like(create_loader(session.get_config_variable("data_path"))),
    )
    session.get_component("response_parser_factory").set_parser_defaults(
        timestamp_parser=parse_timestamp
    )
    # botocore reads only AWS_DEFAULT_REGION; Lambda and most tools also set AWS_REGION.
    if session.get_config_variable("region") is None and os.environ.get("AWS_REGION"):
        session.set_config_variable("region", os.environ["AWS_REGION"])
    return session


def parse_timestamp(value: Any) -> datetime:
    """A timestamp of an S3 response, as botocore's own parser reads it, only faster.

    botocore hands every timestamp to dateutil's general parser: about 0.4 ms each, paid for
    every key of a listing (``LastModified``) and every GetObject and HeadObject
    (``Last-Modified``), a fifth of the client's CPU for a folder of small objects. S3 writes
    them in two forms, read here by the standard library: ISO 8601 in XML bodies
    (``2026-12-03T15:12:54.000Z``) and HTTP dates in headers
    (``Thu, 03 Dec 2026 15:12:54 GMT``). Anything else, or a time without a zone, goes to
    botocore's parser, as before.
    """
    if isinstance(value, str):
        try:
            if value[4:5] == "-":
                parsed: datetime | None = datetime.fromisoformat(value)
            elif value.endswith(" GMT"):
                parsed = email.utils.parsedate_to_datetime(value)
            else:
                parsed = None
        except (ValueError, TypeError):
            parsed = None
        if parsed is not None and parsed.tzinfo is not None:
            return parsed
    timestamp: datetime = botocore_parse_timestamp(value)
    return timestamp


def error_code(exc: ClientError) -> str:
    """The error code of an S3 error response (``NoSuchKey``, ``403``...)."""
    return str(exc.response.get("Error", {}).get("Code", ""))


class PlainJsonFileLoader(JSONFileLoader):
    """botocore's JSON file loader, decoding objects into plain dicts. botocore asks for
    ``OrderedDict`` (from before dicts kept their order), which doubles the time to decode
    its models: about 15 ms for one S3 client, most of it its 1.2 MB endpoints file. Nothing
    in botocore uses them as more than ordered mappings."""

    def load_file(self, file_path: str) -> Any:
        """The data of ``file_path`` + ``.json`` (or ``.json.gz``); None if neither exists."""
        for suffix, opener in ((".json", open), (".json.gz", gzip.open)):
            path = file_path + suffix
            if os.path.isfile(path):
                with opener(path, "rb") as stream:
                    return json.loads(stream.read().decode("utf-8"))
        return None


class ModelLoader(Loader):
    """botocore's model loader (same search paths, files, caches and extras), minus two costs
    of a cold start that buy nothing here:

    - before it loads a model, botocore makes sure the service is installed by listing every
      installed service: some 400 folders, twice for one S3 client (its model and its
      endpoint rules), about 20 ms. Here that check looks in the one service's own folders;
      whatever wants the list itself still gets all of it;
    - its JSON files are decoded into plain dicts (``PlainJsonFileLoader``).
    """

    FILE_LOADER_CLASS = PlainJsonFileLoader

    @classmethod
    def like(cls, loader: Loader) -> ModelLoader:
        """A loader with the search paths of ``loader``, in the same order."""
        return cls(extra_search_paths=loader.search_paths, include_default_search_paths=False)

    # botocore's callers only test membership, iterate, join or sort: a lazy Sequence (a list
    # subclass would be read by ", ".join through its empty storage).
    def list_available_services(self, type_name: str) -> Sequence[str]:  # type: ignore[override]
        """The installed services that have ``type_name`` data, listed only when needed."""
        return InstalledServices(self, type_name)


class InstalledServices(Sequence[str]):
    """The answer of ``Loader.list_available_services``, built lazily: ``name in services``
    looks only in that service's folders; iterating, indexing or ``len`` lists them all."""

    def __init__(self, loader: Loader, type_name: str) -> None:
        self._loader = loader
        self._type_name = type_name

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        try:
            return bool(self._loader.list_api_versions(name, self._type_name))
        except DataNotFoundError:
            return False

    @functools.cached_property
    def _all(self) -> list[str]:
        services: list[str] = Loader.list_available_services(self._loader, self._type_name)
        return services

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[str]: ...
    def __getitem__(self, index: int | slice) -> str | Sequence[str]:
        return self._all[index]

    def __len__(self) -> int:
        return len(self._all)
