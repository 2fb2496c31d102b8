"""The clean environments every process-level side runs in, installed by the bench itself.

- **bridge**: a wheel built from exactly what the Dockerfile copies (``pyproject.toml``,
  ``README.md``, ``bridge/``), installed with its dependencies into a virtual environment of
  its own, as the image installs it. The runtime and boto3 baseline (a) run from it.
- **awslambdaric**: ``awslambdaric`` and ``boto3`` from the package index, in their own venv
  (baseline (b) of P1/P1' and P6).
- **aws CLI**: ``awscli`` from the package index, in its own venv (P3 (b)).

They live under ``.bench/`` in the repository (ignored by git) and are reused across runs: the
baselines are installed once; the bridge's wheel is rebuilt every run and reinstalled without
touching its dependencies. A baseline that cannot be installed is reported, not fatal: its
rows say ``n/a`` with the reason.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from harness import REPO

CACHE = REPO / ".bench"
# What the Dockerfile's build stage copies into the wheel.
WHEEL_SOURCES = ("pyproject.toml", "README.md", "bridge")


@dataclass(frozen=True)
class Environment:
    """An installed side: its interpreter and entry point, or why there is none."""

    python: Path | None
    command: Path | None = None  # a console script (s3-event-bridge, aws)
    problem: str | None = None


@dataclass(frozen=True)
class Environments:
    """Every side's environment for one run."""

    bridge: Environment
    ric: Environment
    aws_cli: Environment


def prepare(
    ric_python: str | None = None, aws_cli: str | None = None, log: bool = True
) -> Environments:
    """Install (or refresh) the three environments; given paths are used as they are."""
    CACHE.mkdir(exist_ok=True)
    bridge = _bridge(log)
    ric = (
        Environment(Path(ric_python))
        if ric_python
        else _baseline("ric-venv", ["awslambdaric", "boto3"], "awslambdaric", None, log)
    )
    cli = (
        Environment(None, Path(aws_cli))
        if aws_cli
        else _baseline("awscli-venv", ["awscli"], "awscli", "aws", log)
    )
    return Environments(bridge, ric, cli)


def _bridge(log: bool) -> Environment:
    venv = CACHE / "bridge-venv"
    python = venv / "bin" / "python"
    try:
        with tempfile.TemporaryDirectory(prefix="bench-wheel-") as work:
            source = Path(work, "src")
            source.mkdir()
            for name in WHEEL_SOURCES:
                origin = REPO / name
                if origin.is_dir():
                    ignore = shutil.ignore_patterns("__pycache__")
                    shutil.copytree(origin, source / name, ignore=ignore)
                else:
                    shutil.copy2(origin, source / name)
            dist = Path(work, "dist")
            _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", dist, source])
            [wheel] = dist.glob("s3_event_bridge-*.whl")
            if not (venv / ".installed").exists():
                _say(log, "bench: installing the bridge's wheel into a clean venv (once)...")
                shutil.rmtree(venv, ignore_errors=True)
                _run([sys.executable, "-m", "venv", venv])
                _run([python, "-m", "pip", "install", "-q", wheel])
                (venv / ".installed").touch()
            else:  # dependencies stay; the bridge itself is this run's code
                _run(
                    [python, "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", wheel]
                )
    except (subprocess.CalledProcessError, OSError, ValueError) as exc:
        return Environment(None, problem=f"cannot install the bridge's wheel: {_reason(exc)}")
    return Environment(python, venv / "bin" / "s3-event-bridge")


def _baseline(
    name: str, packages: list[str], what: str, script: str | None, log: bool
) -> Environment:
    venv = CACHE / name
    python = venv / "bin" / "python"
    command = venv / "bin" / script if script else None
    if not (venv / ".installed").exists():
        _say(log, f"bench: installing {' and '.join(packages)} into a clean venv (once)...")
        try:
            shutil.rmtree(venv, ignore_errors=True)
            _run([sys.executable, "-m", "venv", venv])
            _run([python, "-m", "pip", "install", "-q", *packages])
            (venv / ".installed").touch()
        except (subprocess.CalledProcessError, OSError) as exc:
            return Environment(None, problem=f"cannot install {what}: {_reason(exc)}")
    return Environment(python, command)


def _run(command: list[object]) -> None:
    subprocess.run([str(part) for part in command], check=True, capture_output=True, text=True)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, subprocess.CalledProcessError):
        lines = (exc.stderr or exc.stdout or "").strip().splitlines()
        return lines[-1] if lines else f"exit status {exc.returncode}"
    return str(exc)


def _say(log: bool, text: str) -> None:
    if log:
        print(text, file=sys.stderr, flush=True)
