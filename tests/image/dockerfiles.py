"""The Dockerfiles ``make image-test`` builds: the repository's, and the one docs/lambda.md shows.

The function image is built from the Dockerfile printed in docs/lambda.md itself, so the
documented one is the one proven to build and run; nothing is copied that could drift.
"""

from __future__ import annotations

import re
from pathlib import Path

FUNCTION_SECTION = "## 2. Your function's image"
FUNCTION_TAG = "localhost/s3-event-bridge-thumbnails:image-test"
_ARG = re.compile(r"^ARG\s+([A-Za-z_][A-Za-z0-9_]*)(?:=(\S*))?\s*$")
_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def expand(text: str, args: dict[str, str]) -> str:
    """``text`` with ``${NAME}`` and ``$NAME`` replaced by ``args`` (unknown names: empty)."""
    return _REFERENCE.sub(lambda match: args.get(match[1] or match[2], ""), text)


def global_args(dockerfile: str) -> dict[str, str]:
    """The defaults of the ``ARG`` lines before the first ``FROM``, expanded in order."""
    args: dict[str, str] = {}
    for line in dockerfile.splitlines():
        line = line.strip()
        if line.upper().startswith("FROM "):
            break
        match = _ARG.match(line)
        if match:
            args[match[1]] = expand(match[2] or "", args)
    return args


def function_dockerfile(lambda_md: str) -> str:
    """The ``dockerfile`` block of docs/lambda.md's section on the function's image."""
    _, found, section = lambda_md.partition(f"\n{FUNCTION_SECTION}\n")
    if not found:
        raise ValueError(f"docs/lambda.md has no section {FUNCTION_SECTION!r}")
    section = section.split("\n## ", 1)[0]
    blocks = re.findall(r"^```dockerfile\n(.*?)^```", section, re.MULTILINE | re.DOTALL)
    if len(blocks) != 1:
        raise ValueError(f"{FUNCTION_SECTION!r} shows {len(blocks)} dockerfile blocks, not one")
    return str(blocks[0])


def base_reference(dockerfile: str) -> str:
    """The image the ``FROM`` line of ``dockerfile`` (a function's, one stage) builds on."""
    for line in dockerfile.splitlines():
        if line.strip().upper().startswith("FROM "):
            return line.split()[1]
    raise ValueError("the Dockerfile has no FROM line")


def default_base(repo: Path) -> str:
    """The repository Dockerfile's default ``BASE_IMAGE`` (``python:3.11-slim``)."""
    args = global_args((repo / "Dockerfile").read_text(encoding="utf-8"))
    if not args.get("BASE_IMAGE"):
        raise ValueError("the Dockerfile has no default for ARG BASE_IMAGE")
    return args["BASE_IMAGE"]
