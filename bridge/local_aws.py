"""A local stand-in for AWS: the moto server (S3, SQS, ...) in its own process.

Used by ``pipeline up --local``, the demo, the tests and the benchmarks. Needs the
``moto[server]`` package (the ``demo`` extra: ``pip install 's3-event-bridge[demo]'``),
not an AWS account.
"""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence

from bridge.settings import VARIABLES

# Fake credentials and a region: the moto server accepts anything, boto3 needs something.
FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
}

# What a caller's shell must not leak into a local run: the bridge's configuration, and the
# AWS and Lambda settings that would point it somewhere else.
LEAKY_VARIABLES = (
    *VARIABLES,
    "AWS_LAMBDA_LOG_FORMAT", "AWS_LAMBDA_RUNTIME_API", "AWS_LAMBDA_MAX_CONCURRENCY",
    "AWS_PROFILE", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_SQS", "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
)  # fmt: skip

MOTO_MISSING = (
    "the moto server (a local S3 and SQS) is not installed: "
    "pip install 's3-event-bridge[demo]' (or give AWS_ENDPOINT_URL of another S3/SQS endpoint)"
)


def moto_available() -> bool:
    """True when ``python -m moto.server`` can run here (moto with its server extra)."""
    return all(importlib.util.find_spec(name) is not None for name in ("moto", "flask"))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class MotoServer:
    """A moto server running in its own process on a free local port.

    It runs in its own session, so a Ctrl-C meant for the caller does not stop it while the
    caller still needs it to drain.
    """

    def __init__(self, start_timeout: float = 30.0, server: Sequence[str] = ("-m", "moto.server")):
        """Start ``python <server> -H 127.0.0.1 -p <port>``: moto's own server by default."""
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, *server, "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + start_timeout
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=1).close()
                return
            except OSError:
                if self.process.poll() is not None:
                    break
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"moto server did not start on {self.endpoint}")

    def reset(self) -> None:
        """Forget every bucket, object and queue."""
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")
        urllib.request.urlopen(request, timeout=10).close()

    def stop(self) -> None:
        """Stop the server process."""
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> MotoServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
