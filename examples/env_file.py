"""The examples' configuration files, read as ``docker run --env-file`` reads them.

Used by the demo and the tests, so the shipped ``*.env`` files are exactly what they run.
"""

from __future__ import annotations

from pathlib import Path


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines as ``docker run --env-file`` reads them.

    Leading whitespace is dropped; blank lines and lines starting with ``#`` are skipped;
    the value is everything after the first ``=``, literally (no quotes, no comments).
    A line docker would read differently from what it seems to say is a ``ValueError``.
    """
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.lstrip()
        if not line or line.startswith("#"):
            continue
        name, equals, value = line.partition("=")
        where = f"{path.name}:{number}"
        if not equals:
            raise ValueError(f"{where}: no '=' (docker would import {name!r} from the host)")
        if not name or any(c.isspace() for c in name):
            raise ValueError(f"{where}: bad name {name!r}")
        if value != value.rstrip():
            raise ValueError(f"{where}: trailing whitespace would be in the value")
        if value.startswith(("'", '"')):
            raise ValueError(f"{where}: docker keeps quotes in the value")
        if " #" in value:
            raise ValueError(f"{where}: docker keeps a trailing comment in the value")
        values[name] = value
    return values
