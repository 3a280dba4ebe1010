"""Give freed heap memory back to the operating system between the ranker's large steps.

Fitting the related-reading model allocates and frees some hundred MB of arrays of many sizes; glibc
keeps most of what was freed in the process's heap, so that the next large allocation (the stored
index's bytes, the ranking pass) comes on top of it. `trim` asks glibc to release it (malloc_trim); it
measured 98 MB less resident memory after fitting 22,250 articles. A no-op where there is no glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to call
        return None
    return trim


def trim() -> None:
    """Return the heap's free memory to the system, where the C library can (glibc); else nothing."""
    release = _malloc_trim()
    if release is not None:
        release(0)
