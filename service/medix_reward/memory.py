"""Giving freed memory back to the system, on glibc.

A big request (thousands of 32k-character answers) allocates hundreds of MB for a few seconds: the body, its
parsed items, prompts, token arrays. Python frees them when the request ends, but glibc keeps freed chunks in
its heaps (one arena per thread that allocated, up to 8 per core), and a heap is only shrunk from its top: a
live object above the freed ones holds the pages. So the process stayed at several times the caches' budgets
while idle. Two remedies, both here:

- fewer arenas (`M_ARENA_MAX`, 2 unless `MALLOC_ARENA_MAX` says otherwise), set when the service starts;
- `malloc_trim(0)` once the service is idle after scoring, which returns the free pages inside every heap.

Neither changes what is computed. Elsewhere than glibc (musl, macOS) both are no-ops.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import os
from collections.abc import Callable

log = logging.getLogger(__name__)

_M_ARENA_MAX = -8  # glibc malloc.h
ARENA_MAX = 2


def _glibc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.malloc_trim  # noqa: B018  (glibc only)
        libc.mallopt  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _glibc()


def limit_arenas() -> None:
    """At most `ARENA_MAX` malloc arenas for the threads created from now on, unless MALLOC_ARENA_MAX is set."""
    if _LIBC is not None and "MALLOC_ARENA_MAX" not in os.environ:
        _LIBC.mallopt(_M_ARENA_MAX, ARENA_MAX)


def release_free_memory() -> bool:
    """Returns the free pages of every malloc heap to the system; True if any were."""
    return _LIBC is not None and bool(_LIBC.malloc_trim(0))


async def release_when_idle(busy: Callable[[], bool], work_done: Callable[[], int], interval_s: float = 1.0) -> None:
    """Runs for the service's life: every `interval_s`, if work was done since the last release and none is in
    progress now, releases free memory (on a thread: trimming a large heap takes milliseconds)."""
    released_at = work_done()
    while True:
        await asyncio.sleep(interval_s)
        done = work_done()
        if done != released_at and not busy():
            released_at = done
            await asyncio.to_thread(release_free_memory)
