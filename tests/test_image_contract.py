"""The base image's contract, checked without a container engine (none runs here).

The Dockerfile builds a wheel from ``pyproject.toml``, ``README.md`` and ``bridge/``, installs
it into a slim Python, and sets ``ENTRYPOINT ["s3-event-bridge"]`` with no CMD: the user's
image adds ``COPY handler.py .`` and ``CMD ["python", "handler.py"]``. Lambda then runs
``s3-event-bridge python handler.py`` in ``/var/task``, as a user that is not root, with a
file system that is read-only but for ``/tmp``, and ``AWS_LAMBDA_RUNTIME_API`` set.

This test does the same by hand: it builds the wheel from exactly what the Dockerfile copies,
installs it into a brand-new virtual environment (with its dependencies, from the package
index as ``pip`` is configured), and runs the installed ``s3-event-bridge`` as the image
would, against the local Runtime API and the moto server in its own process. Under root it
runs the runtime as ``nobody``, so only the temporary folder is writable, as on Lambda.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bridge.samples import sample_payload
from tests.conftest import REPO, MotoServer
from tests.image.dockerfiles import expand, global_args
from tests.runtime_api import FakeRuntimeApi

NOBODY = 65534
BUCKET = "photos"

# The user's handler, as in the README ("Deploying on AWS Lambda"): uppercase each text file.
USER_HANDLER = r"""
import json, os, pathlib, sys

root = pathlib.Path(os.environ["ROOT_FOLDER"])
for event in json.loads(pathlib.Path(os.environ["BRIDGE_EVENTS_FILE"]).read_text()):
    if "bad" in event["key"]:
        print(f"cannot process {event['key']}", file=sys.stderr)
        sys.exit(1)
    source = root / event["path"]
    source.with_name(source.stem + ".upper.txt").write_text(source.read_text().upper())
(root / "whoami.json").write_text(json.dumps({
    "uid": os.getuid(),
    "cwd": os.getcwd(),
    "cwd_writable": os.access(".", os.W_OK),
    "prefix": sys.prefix,
}))
"""


@dataclass(frozen=True)
class Dockerfile:
    """What the test needs from the Dockerfile's final stage and its build stage."""

    bases: list[str]
    copied: list[str]  # sources of COPY instructions from the build context
    entrypoint: list[str]
    has_cmd: bool
    users: list[str]
    env: dict[str, str]
    workdir: str


def parse_dockerfile(path: Path) -> Dockerfile:
    """A small parser: enough for FROM (with the global ARGs' defaults), COPY, ENTRYPOINT,
    CMD, USER, ENV and WORKDIR."""
    text = path.read_text(encoding="utf-8").replace("\\\n", " ")
    args = global_args(text)
    bases, copied, users = [], [], []
    entrypoint: list[str] = []
    has_cmd, workdir = False, "/"
    env: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, rest = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            bases.append(expand(rest.split()[0], args))
            env, entrypoint, has_cmd, workdir = {}, [], False, "/"  # a new stage
        elif instruction == "COPY" and "--from" not in rest:
            copied += shlex.split(rest)[:-1]
        elif instruction == "ENTRYPOINT":
            entrypoint = json.loads(rest)
        elif instruction == "CMD":
            has_cmd = True
        elif instruction == "USER":
            users.append(rest.strip())
        elif instruction == "ENV":
            for assignment in shlex.split(rest):
                name, _, value = assignment.partition("=")
                env[name] = value
        elif instruction == "WORKDIR":
            workdir = rest.strip()
    return Dockerfile(bases, copied, entrypoint, has_cmd, users, env, workdir)


@dataclass(frozen=True)
class Image:
    """The image's contents, laid out on this machine."""

    root: Path
    venv: Path
    task: Path
    tmp: Path
    dockerfile: Dockerfile
    user: int | None  # run the runtime as this user (None: as ourselves)
    timings: dict[str, float]


def unprivileged_python() -> str:
    """An interpreter (3.11+) that user ``nobody`` can run: the image's Python stand-in."""
    candidates = [getattr(sys, "_base_executable", sys.executable), "/usr/bin/python3"]
    for candidate in candidates:
        try:
            probe = subprocess.run(
                [candidate, "-c", "import sys; assert sys.version_info >= (3, 11)"],
                user=NOBODY,
                group=NOBODY,
                capture_output=True,
                cwd="/",
            )
        except OSError:  # e.g. an interpreter under a home folder only root may enter
            continue
        if probe.returncode == 0:
            return candidate
    raise AssertionError(f"none of {candidates} can be run by an unprivileged user")


@pytest.fixture(scope="module")
def image() -> Iterator[Image]:
    dockerfile = parse_dockerfile(REPO / "Dockerfile")
    as_root = os.geteuid() == 0
    python = unprivileged_python() if as_root else sys.executable
    root = Path(tempfile.mkdtemp(prefix="s3-event-bridge-image-"))
    timings: dict[str, float] = {}
    try:
        root.chmod(0o755)
        # COPY: exactly what the Dockerfile copies from the build context.
        source = root / "src"
        source.mkdir()
        for name in dockerfile.copied:
            origin = REPO / name
            if origin.is_dir():
                shutil.copytree(origin, source / name, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(origin, source / name)
        started = time.monotonic()
        build = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps"]
        subprocess.run([*build, "-w", str(root / "dist"), str(source)], check=True)
        timings["build wheel"] = time.monotonic() - started
        venv = root / "venv"
        started = time.monotonic()
        subprocess.run([python, "-m", "venv", str(venv)], check=True)
        timings["create venv"] = time.monotonic() - started
        wheels = list((root / "dist").glob("s3_event_bridge-*.whl"))
        assert len(wheels) == 1, wheels
        started = time.monotonic()
        subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheels[0])],
            check=True,
        )
        timings["pip install wheel + dependencies"] = time.monotonic() - started
        task = root / "task"  # WORKDIR /var/task: the user's COPY handler.py .
        task.mkdir()
        (task / "handler.py").write_text(USER_HANDLER, encoding="utf-8")
        tmp = root / "tmp"  # the only writable place, like Lambda's /tmp
        tmp.mkdir()
        tmp.chmod(0o1777)
        if not as_root:  # without root, take write permission away instead
            for path in (task, venv, root):
                path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
        yield Image(root, venv, task, tmp, dockerfile, NOBODY if as_root else None, timings)
    finally:
        for path in (root, root / "task", root / "venv"):
            if path.exists():
                path.chmod(0o755)
        shutil.rmtree(root, ignore_errors=True)
        print(
            "\nimage contract timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items())
        )


def test_dockerfile_is_a_base_image_to_build_from() -> None:
    dockerfile = parse_dockerfile(REPO / "Dockerfile")

    assert dockerfile.bases and all(
        base.startswith("python:") and base.endswith("-slim") for base in dockerfile.bases
    ), dockerfile.bases
    assert dockerfile.entrypoint == ["s3-event-bridge"]
    assert not dockerfile.has_cmd  # the user's image sets CMD: the handler command
    assert "root" not in dockerfile.users
    assert sorted(dockerfile.copied) == ["README.md", "bridge", "pyproject.toml"]
    assert dockerfile.env.get("TMPDIR") == "/tmp"
    ignored = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert ignored[0] == "*"
    assert {f"!{name}" for name in ("pyproject.toml", "README.md", "bridge/")} <= set(ignored)


def lambda_env(image: Image, api: FakeRuntimeApi, aws: MotoServer, **config: str) -> dict[str, str]:
    """The image's environment under Lambda: what Lambda sets, plus the function's ``config``."""
    return {
        "PATH": f"{image.venv / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "HOME": "/nonexistent",
        **image.dockerfile.env,
        "TMPDIR": str(image.tmp),
        "LAMBDA_TASK_ROOT": str(image.task),
        "AWS_LAMBDA_RUNTIME_API": api.address,
        "AWS_LAMBDA_LOG_FORMAT": "JSON",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": aws.endpoint,
        **config,
    }


def start_image(
    image: Image, cmd: list[str], env: dict[str, str], log_path: Path
) -> subprocess.Popen[bytes]:
    """ENTRYPOINT + ``cmd`` (empty: an image without CMD), in WORKDIR, as the image's user."""
    with open(log_path, "wb") as log_file:
        return subprocess.Popen(
            [*image.dockerfile.entrypoint, *cmd],
            cwd=image.task,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            user=image.user,
            group=image.user,
        )


def test_installed_wheel_runs_as_the_image_would(image: Image, aws: MotoServer, s3: Any) -> None:
    venv_bin = image.venv / "bin"
    assert (venv_bin / "s3-event-bridge").exists()
    # A clean environment: the runtime's dependencies, nothing of the test tooling.
    check = subprocess.run(
        [str(venv_bin / "python"), "-c", "import bridge, boto3, jq, pydantic_settings, moto"],
        capture_output=True,
        text=True,
    )
    assert "No module named 'moto'" in check.stderr

    s3.create_bucket(Bucket=BUCKET)
    for key in ("in/cat.txt", "in2/bad.txt", "in3/readme.md", "direct/dog.txt"):
        s3.put_object(Bucket=BUCKET, Key=key, Body=f"content of {key}".encode())

    with FakeRuntimeApi() as api:
        log_path = image.tmp / "runtime.log"
        # ENTRYPOINT + CMD, in WORKDIR, as the image's user.
        env = lambda_env(image, api, aws, MATCH_KEY=r"\.txt$")
        process = start_image(image, ["python", "handler.py"], env, log_path)
        try:
            batch: dict[str, Any] = {"Records": []}
            for key in ("in/cat.txt", "in2/bad.txt", "in3/readme.md"):
                records = sample_payload("sqs", BUCKET, key)["Records"]
                assert isinstance(records, list)
                batch["Records"] += records
            failing_id = batch["Records"][1]["messageId"]
            sqs_answer = api.wait_answer(api.enqueue(batch))
            direct_answer = api.wait_answer(
                api.enqueue(sample_payload("s3", BUCKET, "direct/dog.txt"))
            )
            api.wait_waiting(1)
        finally:
            process.send_signal(signal.SIGTERM)
            exit_status = process.wait(timeout=30)
        lines = log_path.read_text(encoding="utf-8").splitlines()
        log_path.unlink()

    assert sqs_answer.body == {"batchItemFailures": [{"itemIdentifier": failing_id}]}
    assert direct_answer.body == {}
    assert exit_status == 0
    assert s3.get_object(Bucket=BUCKET, Key="in/cat.upper.txt")["Body"].read() == (
        b"CONTENT OF IN/CAT.TXT"
    )
    assert s3.get_object(Bucket=BUCKET, Key="direct/dog.upper.txt")["Body"].read() == (
        b"CONTENT OF DIRECT/DOG.TXT"
    )
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert not any(key.startswith(("in2/", "in3/")) and key.count(".") > 1 for key in keys)
    whoami = json.loads(s3.get_object(Bucket=BUCKET, Key="direct/whoami.json")["Body"].read())
    assert whoami["prefix"] == str(image.venv)  # "python" is the image's interpreter
    assert whoami["cwd"] == str(image.task)
    assert whoami["cwd_writable"] is False  # only TMPDIR is writable
    if image.user is not None:
        assert whoami["uid"] == image.user != 0
    entries = [json.loads(line) for line in lines]  # AWS_LAMBDA_LOG_FORMAT=JSON: all JSON
    assert any(e["message"] == "cannot process in2/bad.txt" for e in entries)
    assert [p.name for p in image.tmp.iterdir()] == []  # nothing left behind


def test_installed_wheel_runs_bare_with_handler_command_as_an_image_without_cmd(
    image: Image, aws: MotoServer, s3: Any
) -> None:
    """``ENTRYPOINT ["s3-event-bridge"]``, no CMD, ``HANDLER_COMMAND`` set: lambda mode."""
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="bare/cat.txt", Body=b"meow")
    log_path = image.tmp / "bare.log"
    with FakeRuntimeApi() as api:
        env = lambda_env(image, api, aws, HANDLER_COMMAND="python handler.py")
        process = start_image(image, [], env, log_path)
        try:
            answer = api.wait_answer(api.enqueue(sample_payload("s3", BUCKET, "bare/cat.txt")))
            api.wait_waiting(1)
        finally:
            process.send_signal(signal.SIGTERM)
            exit_status = process.wait(timeout=30)
        log_path.unlink()

    assert answer.kind == "response" and answer.body == {}
    assert exit_status == 0
    assert s3.get_object(Bucket=BUCKET, Key="bare/cat.upper.txt")["Body"].read() == b"MEOW"


def test_installed_wheel_bare_posts_a_start_up_failure_to_init_error(
    image: Image, aws: MotoServer
) -> None:
    log_path = image.tmp / "bare-failure.log"
    with FakeRuntimeApi() as api:
        env = lambda_env(image, api, aws, HANDLER_COMMAND="python handler.py", MATCH_KEY="[")
        process = start_image(image, [], env, log_path)
        exit_status = process.wait(timeout=60)
        init_error = api.wait_init_error()
        log_path.unlink()

    assert exit_status == 2
    assert init_error.body["errorType"] == "Runtime.ConfigurationError"
    assert "MATCH_KEY: invalid regular expression" in init_error.body["errorMessage"]
