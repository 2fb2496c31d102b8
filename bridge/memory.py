"""Memory of the bridge's own process: glibc's per-thread malloc arenas (docs/design.md §13).

glibc gives threads that contend for ``malloc`` arenas of their own, up to eight per core,
and each keeps what it once held: with a pool of transfer threads streaming bodies, that is
tens of MB of peak RSS that a single process does not need. ``bound_malloc_arenas`` caps the
count with ``mallopt(M_ARENA_MAX)`` for this process only, at start-up. An environment
variable (``MALLOC_ARENA_MAX``) would do the same but would also reach the handler, whose
memory behaviour is not the bridge's to change.
"""

from __future__ import annotations

import os

M_ARENA_MAX = -8  # from glibc's <malloc.h>
MALLOC_ARENAS = 2


def bound_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Cap this process's malloc arenas at ``arenas``; False where libc is not glibc."""
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):
            return False
    except (ValueError, OSError):  # not glibc: musl, macOS
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None)
        return bool(libc.mallopt(ctypes.c_int(M_ARENA_MAX), ctypes.c_int(arenas)))
    except (OSError, AttributeError):
        return False
