"""A validator for CloudWatch Embedded Metric Format documents, written from the specification.

AWS's "Specification: Embedded metric format" (CloudWatch User Guide): the log event is one
JSON object with nothing before or after it; its root member ``_aws`` is a metadata object
holding ``Timestamp`` (milliseconds since the epoch; CloudWatch refuses events more than
14 days old or 2 hours ahead) and ``CloudWatchMetrics``, an array of MetricDirective objects.
A MetricDirective has ``Namespace`` (string, 1-255 characters), ``Dimensions`` (an array of
DimensionSets, each an array of at most 30 strings naming root members whose values are
strings) and ``Metrics`` (at most 100 MetricDefinitions). A MetricDefinition has ``Name``
(1-255 characters, naming a root member whose value is a number or an array of at most 100
numbers), optional ``Unit`` (a CloudWatch unit) and optional ``StorageResolution`` (1 or 60).
Objects defined by the specification contain no other members.
"""

from __future__ import annotations

import json
import time
from typing import Any

UNITS = frozenset(
    {
        "Seconds", "Microseconds", "Milliseconds",
        "Bytes", "Kilobytes", "Megabytes", "Gigabytes", "Terabytes",
        "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits",
        "Percent", "Count",
        "Bytes/Second", "Kilobytes/Second", "Megabytes/Second", "Gigabytes/Second",
        "Terabytes/Second", "Bits/Second", "Kilobits/Second", "Megabits/Second",
        "Gigabits/Second", "Terabits/Second", "Count/Second", "None",
    }
)  # fmt: skip
MAX_PAST_MS = 14 * 24 * 3600 * 1000
MAX_FUTURE_MS = 2 * 3600 * 1000


class EmfError(AssertionError):
    """The document breaks the specification."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise EmfError(message)


def _only(obj: dict[str, Any], allowed: set[str], what: str) -> None:
    extra = set(obj) - allowed
    _require(not extra, f"{what} has members the specification does not define: {extra}")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def validate_emf_line(line: str, now_ms: int | None = None) -> dict[str, Any]:
    """Parse ``line`` as an EMF log event and check it; returns the document."""
    try:
        document = json.loads(line)
    except ValueError as exc:
        raise EmfError(f"not one JSON value: {exc}") from exc
    _require(isinstance(document, dict), "the root is not a JSON object")
    _require(line == line.strip(), "data before or after the JSON object")
    metadata = document.get("_aws")
    _require(isinstance(metadata, dict), "no _aws metadata object")
    assert isinstance(metadata, dict)
    _require("Timestamp" in metadata and "CloudWatchMetrics" in metadata, "_aws is incomplete")
    stamp = metadata["Timestamp"]
    _require(isinstance(stamp, int) and not isinstance(stamp, bool), "Timestamp not an integer")
    now = int(time.time() * 1000) if now_ms is None else now_ms
    _require(now - MAX_PAST_MS <= stamp <= now + MAX_FUTURE_MS, "Timestamp out of range")
    directives = metadata["CloudWatchMetrics"]
    _require(isinstance(directives, list), "CloudWatchMetrics is not an array")
    for directive in directives:
        _validate_directive(directive, document)
    checked: dict[str, Any] = document
    return checked


def _validate_directive(directive: Any, root: dict[str, Any]) -> None:
    _require(isinstance(directive, dict), "a MetricDirective is not an object")
    _only(directive, {"Namespace", "Dimensions", "Metrics"}, "MetricDirective")
    namespace = directive.get("Namespace")
    _require(isinstance(namespace, str) and 1 <= len(namespace) <= 255, "bad Namespace")
    dimension_sets = directive.get("Dimensions")
    _require(isinstance(dimension_sets, list), "Dimensions is not an array")
    for dimension_set in dimension_sets:
        _require(isinstance(dimension_set, list), "a DimensionSet is not an array")
        _require(len(dimension_set) <= 30, "a DimensionSet has more than 30 dimensions")
        for name in dimension_set:
            _require(isinstance(name, str) and name in root, f"dimension {name!r} not in root")
            _require(isinstance(root[name], str), f"dimension {name!r} value is not a string")
    metrics = directive.get("Metrics")
    _require(isinstance(metrics, list) and len(metrics) <= 100, "Metrics: not an array <= 100")
    for definition in metrics:
        _require(isinstance(definition, dict), "a MetricDefinition is not an object")
        _only(definition, {"Name", "Unit", "StorageResolution"}, "MetricDefinition")
        name = definition.get("Name")
        _require(isinstance(name, str) and 1 <= len(name) <= 255, "bad metric Name")
        _require(name in root, f"metric {name!r} has no value in the root")
        value = root[name]
        values = value if isinstance(value, list) else [value]
        _require(len(values) <= 100, f"metric {name!r} has more than 100 values")
        _require(all(_is_number(v) for v in values), f"metric {name!r} value is not numeric")
        if "Unit" in definition:
            _require(definition["Unit"] in UNITS, f"unknown Unit {definition['Unit']!r}")
        if "StorageResolution" in definition:
            _require(definition["StorageResolution"] in (1, 60), "StorageResolution not 1/60")


def emf_lines(text: str) -> list[dict[str, Any]]:
    """Every EMF document among the lines of ``text``, each validated."""
    found = []
    for line in text.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            found.append(validate_emf_line(line))
    return found
