"""The bridge bounds glibc's malloc arenas for its own process only (bridge.memory)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

import bridge.cli
from tests.conftest import subprocess_env

GLIBC = (
    bool(os.confstr("CS_GNU_LIBC_VERSION")) if "CS_GNU_LIBC_VERSION" in os.confstr_names else False
)

# Eight threads allocate at once (contention makes glibc hand out arenas), then glibc's
# malloc_info reports one <heap> element per arena in use.
PROBE = textwrap.dedent(
    """
    import ctypes, os, sys, threading, tempfile
    from bridge.memory import bound_malloc_arenas
    if sys.argv[1] == "bound":
        assert bound_malloc_arenas()
    start = threading.Barrier(8)
    def churn():
        start.wait()
        for _ in range(200):
            blocks = [bytearray(256) for _ in range(2000)]
            del blocks
    threads = [threading.Thread(target=churn) for _ in range(8)]
    for t in threads: t.start()
    for t in threads: t.join()
    libc = ctypes.CDLL(None)
    libc.fopen.restype = ctypes.c_void_p
    libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
    libc.fclose.argtypes = [ctypes.c_void_p]
    path = tempfile.mktemp()
    stream = libc.fopen(path.encode(), b"w")
    libc.malloc_info(0, stream)
    libc.fclose(stream)
    text = open(path).read()
    os.unlink(path)
    print(text.count("<heap nr="))
    """
)


def arenas(mode: str) -> int:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, mode],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return int(result.stdout)


@pytest.mark.skipif(not GLIBC, reason="malloc arenas are glibc's")
def test_threads_share_at_most_two_arenas_once_bounded() -> None:
    assert arenas("bound") <= 2


@pytest.mark.skipif(not GLIBC, reason="malloc arenas are glibc's")
def test_every_cli_run_bounds_the_arenas_and_leaves_the_environment_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []

    def bound() -> bool:
        calls.append(1)
        return True

    monkeypatch.setattr(bridge.cli, "bound_malloc_arenas", bound)
    assert bridge.cli.main(["--version"]) == 0
    assert calls == [1]
    assert "MALLOC_ARENA_MAX" not in os.environ  # the handler inherits os.environ
