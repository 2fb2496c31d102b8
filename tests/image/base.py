"""The image the Dockerfile builds on: its default, or a stand-in from Debian's packages.

Where the default ``BASE_IMAGE`` (``python:3.11-slim``) cannot be pulled (no registry but
the package registries is reachable, say), a stand-in is made as that image is: Debian
bookworm (debootstrap's minimal variant) with its Python 3.11, ``python`` and pip, pip
allowed to install system-wide, no package caches. It is kept in the engine's storage under
``STAND_IN``, so only the first run on a machine pays for it.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tests.image.engines import Engine, MissingTool

SUITE = "bookworm"
PACKAGES = ("python3", "python3-pip", "python-is-python3")
ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
RECIPE = 1  # raise when build_stand_in changes what it makes
# The tag names the recipe, so a stand-in kept from an older recipe is not reused.
_DIGEST = hashlib.sha256(repr((SUITE, PACKAGES, ENV, RECIPE)).encode()).hexdigest()[:12]
STAND_IN = f"localhost/s3-event-bridge-stand-in-base:{SUITE}-{_DIGEST}"
DEBOOTSTRAP_TIMEOUT = 900.0


def base_image(engine: Engine, default: str, say: list[str]) -> str:
    """The ``BASE_IMAGE`` to build with: ``default`` if it is here or can be pulled, else
    the stand-in (made if missing). What was chosen, and why, is appended to ``say``."""
    if engine.exists(default) or engine.pull(default):
        say.append(f"base: {default}")
        return default
    if engine.exists(STAND_IN):
        say.append(f"base: {default} cannot be pulled; the stand-in {STAND_IN} (kept from before)")
        return STAND_IN
    say.append(
        f"base: {default} cannot be pulled; building the stand-in {STAND_IN} from Debian's "
        f"packages (debootstrap {SUITE}: {', '.join(PACKAGES)})"
    )
    print(say[-1], flush=True)
    started = time.monotonic()
    build_stand_in(engine)
    say.append(f"build the stand-in base: {time.monotonic() - started:.1f} s")
    return STAND_IN


def build_stand_in(engine: Engine) -> None:
    """Make ``STAND_IN``: Debian ``SUITE`` with ``PACKAGES``, laid out as python:3.11-slim."""
    debootstrap = shutil.which("debootstrap")
    if debootstrap is None:
        raise MissingTool(
            "debootstrap (apt-get install debootstrap): the default base image cannot be "
            "pulled, and the stand-in is built with it"
        )
    with tempfile.TemporaryDirectory(prefix="s3-event-bridge-stand-in-") as scratch:
        rootfs = Path(scratch) / "rootfs"
        done = subprocess.run(
            [debootstrap, "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, rootfs],
            capture_output=True,
            text=True,
            timeout=DEBOOTSTRAP_TIMEOUT,
        )
        if done.returncode != 0:
            raise RuntimeError(f"debootstrap exited with {done.returncode}:\n{done.stdout[-4000:]}")
        # As in python:3.11-slim: pip may install into the system's Python, no apt caches.
        for marker in rootfs.glob("usr/lib/python3*/EXTERNALLY-MANAGED"):
            marker.unlink()
        for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (rootfs / cache).glob("*"):
                if entry.is_file():
                    entry.unlink()
        engine.import_rootfs(rootfs, STAND_IN, ENV, "python3")
