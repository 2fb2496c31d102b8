"""`consume` start-up problems: one line, the right exit status, no retry where none can help.

Real HTTP throughout: the moto server for a missing queue and for the `--once` exit status,
a closed port for an endpoint that is down, and a minimal SQS endpoint that answers every
request as AWS answers a principal without permission.
"""

from __future__ import annotations

import http.server
import json
import logging
import subprocess
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from bridge import consumer as consumer_module
from bridge.consumer import Consumer, ConsumerOptions
from tests.conftest import MotoServer, bridge_command, free_port, subprocess_env
from tests.helpers import handler, put, s3_notification

TIMEOUT = 120


def consume(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*bridge_command(), "consume", *args],
        capture_output=True,
        text=True,
        env=subprocess_env(**env),
        timeout=TIMEOUT,
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The single stderr line of a failed start: no traceback."""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_no_region_is_a_configuration_error(
    aws: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    result = consume("--queue-url", f"{aws.endpoint}/123456789012/q", "--once", "--", "true")
    assert result.returncode == 2
    line = one_line(result)
    assert line.startswith("s3-event-bridge: consume: cannot start: no AWS region configured")
    assert "AWS_REGION" in line


@pytest.mark.parametrize("visibility", [[], ["--visibility-timeout", "30"]], ids=["queue", "flag"])
def test_missing_queue_is_fatal_not_retried(aws: MotoServer, visibility: list[str]) -> None:
    url = f"{aws.endpoint}/123456789012/no-such-queue"
    # Without --once: a retried error would keep the consumer up until the timeout.
    result = consume("--queue-url", url, *visibility, "--wait-time", "1", "--", "true")
    assert result.returncode == 2
    line = one_line(result)
    assert f"queue {url} does not exist" in line
    assert "--queue-url" in line


def test_endpoint_down_is_one_line_exit_1(monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    result = consume(
        "--queue-url", f"{endpoint}/123456789012/q", "--visibility-timeout", "5", "--", "true"
    )
    assert result.returncode == 1
    line = one_line(result)
    assert f"cannot reach {endpoint}" in line and "AWS_ENDPOINT_URL" in line


class _DenyingSqs(http.server.BaseHTTPRequestHandler):
    """Answers every request as SQS answers a caller without permission (JSON protocol)."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.dumps(
            {
                "__type": "com.amazon.coral.service#AccessDeniedException",
                "message": "User: arn:aws:iam::123456789012:user/bob is not authorized to "
                "perform: sqs:getqueueattributes on resource: arn:aws:sqs:us-east-1:"
                "123456789012:q because no identity-based policy allows it",
            }
        ).encode()
        self.send_response(403)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("x-amzn-query-error", "AccessDenied;Sender")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def denying_endpoint() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _DenyingSqs)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("visibility", [[], ["--visibility-timeout", "30"]], ids=["queue", "flag"])
def test_access_denied_is_fatal_not_retried(
    denying_endpoint: str, monkeypatch: pytest.MonkeyPatch, visibility: list[str]
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", denying_endpoint)
    url = f"{denying_endpoint}/123456789012/q"
    result = consume("--queue-url", url, *visibility, "--wait-time", "1", "--", "true")
    assert result.returncode == 1
    line = one_line(result)
    assert "access denied (AccessDenied)" in line
    assert "sqs:GetQueueAttributes" in line and "not authorized" in line


def test_once_exits_1_when_a_message_failed(aws: MotoServer, s3: Any, sqs: Any) -> None:
    s3.create_bucket(Bucket="once")
    put(s3, "once", "in/a.txt")
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody=s3_notification("once", ["in/a.txt"]))

    failed = consume("--queue-url", url, "--once", "--wait-time", "5", "--", *handler("fail"))
    assert failed.returncode == 1, failed.stderr

    sqs.send_message(QueueUrl=url, MessageBody=s3_notification("once", ["in/a.txt"]))
    copied = consume("--queue-url", url, "--once", "--wait-time", "5", "--", *handler("copier"))
    assert copied.returncode == 0, copied.stderr


class _FlakySqs:
    """An SQS client whose receives are throttled twice, then stop the consumer."""

    def __init__(self, stop: threading.Event) -> None:
        self.receives = 0
        self._stop = stop

    def get_queue_attributes(self, **kwargs: Any) -> dict[str, Any]:
        return {"Attributes": {"VisibilityTimeout": "30"}}

    def receive_message(self, **kwargs: Any) -> dict[str, Any]:
        self.receives += 1
        if self.receives <= 2:
            raise ClientError(
                {"Error": {"Code": "ThrottlingException", "Message": "slow down"}},
                "ReceiveMessage",
            )
        self._stop.set()
        return {}


def test_transient_errors_after_start_back_off_and_retry(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(consumer_module, "BACKOFF_START", 0.01)
    holder: dict[str, _FlakySqs] = {}

    def make_sqs() -> Any:
        return holder["sqs"]

    options = ConsumerOptions(queue_url="http://127.0.0.1:9/123456789012/q", wait_time=0)
    consumer = Consumer(options, make_app=lambda: None, make_sqs=make_sqs)  # type: ignore[arg-type,return-value]
    holder["sqs"] = _FlakySqs(consumer.stopping)

    with caplog.at_level(logging.ERROR, logger="bridge.consumer"):
        assert consumer.run() == 0

    assert holder["sqs"].receives == 3
    backoffs = [r for r in caplog.records if r.getMessage() == "SQS error, backing off"]
    assert [r.fields["seconds"] for r in backoffs] == [0.01, 0.02]  # type: ignore[attr-defined]
