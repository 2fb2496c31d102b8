"""The bridge's botocore session: botocore's model loader minus two start-up costs."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import botocore
import botocore.session
import pytest
from botocore.exceptions import UnknownServiceError
from botocore.loaders import JSONFileLoader, Loader, create_loader
from botocore.utils import parse_timestamp as botocore_parse_timestamp

from bridge import clients
from bridge.clients import ModelLoader, PlainJsonFileLoader, parse_timestamp


@pytest.fixture
def fresh_session(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    clients._session.cache_clear()
    yield
    clients._session.cache_clear()


def test_clients_are_made_without_listing_every_installed_service(
    fresh_session: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    listed: list[str] = []
    real = Loader.list_available_services

    def recording(self: Loader, type_name: str) -> list[str]:
        listed.append(type_name)
        return real(self, type_name)

    monkeypatch.setattr(Loader, "list_available_services", recording)
    s3 = clients.s3_client()
    sqs = clients.sqs_client()
    assert s3.meta.service_model.service_name == "s3"
    assert sqs.meta.service_model.service_name == "sqs"
    assert listed == []  # only the folders of s3 and sqs were looked at
    # Without the bridge's loader, botocore lists them all for the same client.
    botocore.session.get_session().create_client("s3", region_name="us-east-1")
    assert "service-2" in listed


def test_an_unknown_service_still_fails_with_the_list_of_known_ones(fresh_session: None) -> None:
    with pytest.raises(UnknownServiceError) as failure:
        clients._session().create_client("no-such-service", region_name="us-east-1")
    assert "no-such-service" in str(failure.value)
    assert "s3" in str(failure.value).split("Valid service names are:")[-1]


def test_the_loader_reads_the_same_models_from_the_same_paths() -> None:
    botocore_loader = create_loader()
    loader = ModelLoader.like(botocore_loader)
    assert loader.search_paths == botocore_loader.search_paths
    for service in ("s3", "sqs"):
        assert loader.load_service_model(service, "service-2") == (
            botocore_loader.load_service_model(service, "service-2")
        )


def test_the_lazy_service_list_is_the_full_list_when_read_whole() -> None:
    loader = ModelLoader.like(create_loader())
    services = loader.list_available_services("paginators-1")
    assert "s3" in services and "sqs" in services
    assert "no-such-service" not in services
    full = Loader.list_available_services(create_loader(), "paginators-1")
    assert list(services) == full
    assert len(services) == len(full) and services[0] == full[0]
    assert ", ".join(services) == ", ".join(full)


def test_model_files_decode_to_plain_dicts_equal_to_botocores(tmp_path: os.PathLike[str]) -> None:
    data = os.path.join(os.path.dirname(botocore.__file__), "data")
    ours, theirs = PlainJsonFileLoader(), JSONFileLoader()
    for name in ("endpoints", "s3/2006-03-01/service-2", "sqs/2012-11-05/service-2"):
        path = os.path.join(data, name)  # .json, .json.gz
        model = ours.load_file(path)
        assert model == theirs.load_file(path) and model is not None
        assert type(model) is dict and list(model) == list(theirs.load_file(path))
    assert ours.load_file(os.path.join(tmp_path, "absent")) is None


@pytest.mark.parametrize(
    "text",
    [
        "2026-12-03T15:12:54.000Z",  # ListObjectsV2's LastModified
        "2026-12-03T15:12:54Z",
        "2026-12-03T15:12:54.123456+02:00",
        "Thu, 03 Dec 2026 15:12:54 GMT",  # GetObject's and HeadObject's Last-Modified
        "Sun, 06 Nov 1994 08:49:37 GMT",
    ],
)
def test_timestamps_read_as_botocore_reads_them(text: str) -> None:
    ours, theirs = parse_timestamp(text), botocore_parse_timestamp(text)
    assert ours == theirs and ours.utcoffset() == theirs.utcoffset()
    assert ours.isoformat() == theirs.isoformat()


@pytest.mark.parametrize(
    "value", ["2026-12-03T15:12:54", "1764774774", 1764774774, "3 Dec 2026 15:12:54 -0000"]
)
def test_other_timestamps_go_to_botocores_parser(value: Any) -> None:
    # No zone, epoch seconds, other forms: exactly what botocore makes of them.
    ours = parse_timestamp(value)
    assert ours == botocore_parse_timestamp(value) and type(ours.tzinfo) is type(
        botocore_parse_timestamp(value).tzinfo
    )
