"""A function image running under AWS's Lambda Runtime Interface Emulator (the RIE).

The RIE is the program AWS ships to test images locally: started as the image's entrypoint
with the runtime's command after it, it serves Lambda's invoke API on
``/2015-03-31/functions/function/invocations`` and plays the Runtime API for the runtime it
starts. It is found through ``AWS_LAMBDA_RIE`` or on ``PATH``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.local_aws import FAKE_AWS_ENV, free_port
from tests.helpers import GUARD_SECONDS, wait_for
from tests.image.engines import Engine, MissingTool, RunSpec

INVOKE_PATH = "/2015-03-31/functions/function/invocations"
FUNCTION_TIMEOUT_SECONDS = 60  # AWS_LAMBDA_FUNCTION_TIMEOUT, unless a test sets its own
_INIT_REPORT = re.compile(r"INIT REPORT\(durationMs: ([0-9.]+)\)")
RIE_MISSING = (
    "no AWS Lambda Runtime Interface Emulator: set AWS_LAMBDA_RIE to the aws-lambda-rie "
    "binary, or put it on PATH (docs/lambda.md, 'Test the image locally')"
)


def function_env(endpoint: str, timeout_seconds: int, **config: str) -> dict[str, str]:
    """What the function runs with: credentials, the local S3 at ``endpoint``, the function's
    timeout (``AWS_LAMBDA_FUNCTION_TIMEOUT``, which the RIE reads) and its ``config``."""
    return {
        **FAKE_AWS_ENV,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_LAMBDA_FUNCTION_TIMEOUT": str(timeout_seconds),
        **config,
    }


def find_rie(environ: Mapping[str, str] = os.environ) -> Path:
    """The RIE binary: ``AWS_LAMBDA_RIE``, else ``aws-lambda-rie`` on ``PATH``."""
    configured = environ.get("AWS_LAMBDA_RIE")
    if configured:
        path = Path(configured)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise MissingTool(f"AWS_LAMBDA_RIE={configured} is not an executable file")
        return path.resolve()
    found = shutil.which("aws-lambda-rie", path=environ.get("PATH"))
    if found is None:
        raise MissingTool(RIE_MISSING)
    return Path(found).resolve()


def init_duration_ms(log: str) -> float | None:
    """The runtime's init duration the RIE logged (``INIT REPORT(durationMs: ...)``)."""
    match = _INIT_REPORT.search(log)
    return float(match[1]) if match else None


@dataclass(frozen=True)
class Answer:
    """The RIE's answer to one invocation."""

    status: int
    raw: bytes

    @property
    def body(self) -> Any:
        return json.loads(self.raw)


@dataclass(frozen=True)
class Function:
    """An image running under the RIE, invocable on ``127.0.0.1:port``."""

    port: int
    log_path: Path

    def invoke(self, payload: object) -> Answer:
        """Invoke the function with ``payload`` as Lambda would; the RIE's answer."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{INVOKE_PATH}", data=json.dumps(payload).encode()
        )
        try:
            with urllib.request.urlopen(request, timeout=GUARD_SECONDS) as response:
                return Answer(response.status, response.read())
        except urllib.error.HTTPError as error:
            return Answer(error.code, error.read())

    def log(self) -> str:
        """What the RIE and the runtime have written so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def listening(port: int) -> bool:
    """True when something accepts TCP connections on ``127.0.0.1:port``."""
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def rie_spec(
    image: str, command: Sequence[str], env: Mapping[str, str], rie: Path, address: str
) -> RunSpec:
    """``image`` under the RIE serving on ``address``, starting ``command``."""
    return RunSpec(
        image=image,
        command=["--runtime-interface-emulator-address", address, *command],
        env=dict(env),
        rie=rie,
    )


@contextmanager
def under_rie(
    engine: Engine,
    image: str,
    command: Sequence[str],
    env: Mapping[str, str],
    rie: Path,
    log_path: Path,
) -> Iterator[Function]:
    """``image`` running ``command`` (its ENTRYPOINT + CMD, or another) under the RIE."""
    port = free_port()
    spec = rie_spec(image, command, env, rie, f"127.0.0.1:{port}")
    with engine.running(spec, log_path) as process:

        def ready() -> bool:
            if process.poll() is not None:
                log = log_path.read_text(errors="replace")
                raise AssertionError(f"the RIE exited with {process.returncode}:\n{log}")
            return listening(port)

        wait_for(ready, f"the RIE listening on 127.0.0.1:{port}")
        yield Function(port, log_path)
