"""The operator's C heap: glibc malloc tuned at start-up, its free pages handed back to the kernel.

Measured with `bench/scale.py` (a 400-task sprint): the Python objects alive grow by a few MB while the
operator's anonymous memory grows by tens, and one `malloc_trim(0)` through gdb gave 42 MB back at once.
The cause is glibc's, not ours: watch events and API replies of a large Sprint are JSON texts of
hundreds of KB, allocated and freed by the event loop and the worker threads (`asyncio.to_thread`, the
Podman and Kubernetes clients), each thread in its own malloc arena, and glibc raises its mmap
threshold to the largest block freed, so those texts come from arenas whose freed pages stay resident.

`tune()` (before any thread starts) caps the arenas at two and fixes the mmap threshold at 128 KiB (a
large block is mapped and unmapped, never left in an arena); `trim()` gives the arenas' free pages back
(the operator calls it every TRIM_EVERY_S). Both do nothing where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from functools import cache
from typing import Any

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
ARENAS = 2
MMAP_THRESHOLD = 128 << 10
TRIM_EVERY_S = 30.0


@cache
def _libc() -> Any:
    """glibc, or None (musl and others have neither mallopt's arenas nor malloc_trim)."""
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
    except (OSError, AttributeError):
        return None
    return libc


def tune() -> bool:
    """Cap malloc's arenas and fix its mmap threshold; True if the C library took both settings."""
    libc = _libc()
    if libc is None:
        return False
    return bool(libc.mallopt(M_ARENA_MAX, ARENAS)) and bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))


def trim() -> bool:
    """Hand the heap's free pages back to the kernel; True if some were."""
    libc = _libc()
    return bool(libc is not None and libc.malloc_trim(0))
