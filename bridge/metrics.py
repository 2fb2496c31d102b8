"""CloudWatch Embedded Metric Format lines, one per execution group (docs/design.md §3, §7).

With ``METRICS=emf`` every group ends with one JSON line on stderr that CloudWatch Logs turns
into metrics, with no agent and no API call: alarms on failed groups need no code. Under
Lambda both output streams reach CloudWatch Logs, which extracts the metrics; elsewhere
(``consume`` on ECS with the awslogs driver, or the CloudWatch agent) the same line works.

Metrics, in namespace ``S3EventBridge`` with the one dimension ``FunctionName`` (the Lambda
function's name, else ``s3-event-bridge``): ``GroupsSucceeded``, ``GroupsSkipped``,
``GroupsFailed`` (Count, 0 or 1 per group: sum them), ``HandlerDuration`` (Milliseconds,
when the handler ran), ``BytesIn``, ``BytesOut`` (Bytes), ``OutputsUploaded``,
``OutputsUnchanged`` (Count). Bucket, prefix and outcome ride along as plain properties,
searchable in Logs Insights but not dimensions: a dimension per prefix would create a metric
per folder, and bill for each.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, TextIO

NAMESPACE = "S3EventBridge"
DIMENSION = "FunctionName"
DEFAULT_FUNCTION_NAME = "s3-event-bridge"
FUNCTION_NAME_VAR = "AWS_LAMBDA_FUNCTION_NAME"

# name -> CloudWatch unit, in the order they appear in the directive.
UNITS = {
    "GroupsSucceeded": "Count",
    "GroupsSkipped": "Count",
    "GroupsFailed": "Count",
    "HandlerDuration": "Milliseconds",
    "BytesIn": "Bytes",
    "BytesOut": "Bytes",
    "OutputsUploaded": "Count",
    "OutputsUnchanged": "Count",
}


@dataclass(frozen=True)
class GroupMetrics:
    """What one execution group contributes to the metrics."""

    bucket: str
    prefix: str
    outcome: str  # succeeded, skipped, failed (or not_run)
    handler_ms: float | None
    bytes_in: int
    bytes_out: int
    uploaded: int
    unchanged: int


def emf_document(
    group: GroupMetrics, function_name: str, timestamp_ms: int | None = None
) -> dict[str, Any]:
    """The EMF document for one group (pure)."""
    values: dict[str, float] = {
        "GroupsSucceeded": int(group.outcome == "succeeded"),
        "GroupsSkipped": int(group.outcome == "skipped"),
        "GroupsFailed": int(group.outcome == "failed"),
        "BytesIn": group.bytes_in,
        "BytesOut": group.bytes_out,
        "OutputsUploaded": group.uploaded,
        "OutputsUnchanged": group.unchanged,
    }
    if group.handler_ms is not None:
        values["HandlerDuration"] = round(group.handler_ms, 3)
    directive = {
        "Namespace": NAMESPACE,
        "Dimensions": [[DIMENSION]],
        "Metrics": [{"Name": name, "Unit": unit} for name, unit in UNITS.items() if name in values],
    }
    return {
        "_aws": {
            "Timestamp": int(time.time() * 1000) if timestamp_ms is None else timestamp_ms,
            "CloudWatchMetrics": [directive],
        },
        DIMENSION: function_name,
        **values,
        "bucket": group.bucket,
        "prefix": group.prefix,
        "outcome": group.outcome,
    }


class _Sink:
    """Where the lines go; ``None`` stream means metrics are off."""

    def __init__(self) -> None:
        self.stream: TextIO | None = None
        self.function_name = DEFAULT_FUNCTION_NAME
        self.lock = threading.Lock()


_sink = _Sink()


def configure_metrics(mode: str, stream: TextIO | None = None) -> None:
    """``emf``: write one EMF line per group to ``stream`` (stderr); ``off``: nothing."""
    _sink.stream = (stream or sys.stderr) if mode == "emf" else None
    _sink.function_name = os.environ.get(FUNCTION_NAME_VAR) or DEFAULT_FUNCTION_NAME


def record_group(group: GroupMetrics) -> None:
    """Emit the group's EMF line, if metrics are on."""
    stream = _sink.stream
    if stream is None:
        return
    line = json.dumps(emf_document(group, _sink.function_name), ensure_ascii=False)
    with _sink.lock:
        stream.write(line + "\n")
        stream.flush()
