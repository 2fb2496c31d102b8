"""The console command's entry: start-up with Python's cyclic garbage collector paused.

Start-up allocates hundreds of thousands of long-lived objects (modules, botocore's service
models, pydantic's validators) and no garbage worth collecting; every generation-2
collection on the way walks all of them again (about a tenth of the bridge's start-up,
BENCHMARKS.md). ``main`` pauses the collector before the bridge's modules load; the mode
calls ``started`` once it is ready to work (lambda: just before the first ``GET next``),
which freezes what start-up built, so later collections skip it, and resumes collecting.
"""

from __future__ import annotations

import gc

_paused = False


def main() -> int:
    """The ``s3-event-bridge`` command: ``bridge.cli.main`` with start-up unhindered."""
    global _paused
    gc.disable()
    _paused = True
    try:
        from bridge.cli import main as cli_main

        return cli_main()
    finally:
        started()


def started() -> None:
    """Start-up is over: freeze the objects it built and collect again. Only undoes what
    ``main`` did (a no-op in a process that did not start through it)."""
    global _paused
    if _paused:
        _paused = False
        gc.freeze()
        gc.enable()
