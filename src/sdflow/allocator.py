"""glibc's allocator, told to keep freed memory: the lever for large-image inference.

By default glibc serves every allocation above 32 MiB-ish with its own ``mmap`` and returns
it to the kernel on ``free``, so each large activation of a big image is faulted in page by
page again on the next use (half of a large SR's time went to system time and page faults
where this was first measured). :func:`keep_freed_memory` turns that off for the rest of
the process (``mallopt``: no mmap'd chunks, no trimming, a 1 GiB top pad): the freed blocks
stay in the heap for reuse, at the price of a resident set that does not shrink after a
peak. It does nothing where the C library is not glibc. ``benchmarks/allocator.py``
measures both ways in fresh processes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_MAX = -4
#: the largest values mallopt takes (an int): trimming only above 2 GiB of free top
_TRIM = 2**31 - 1
_TOP_PAD = 1 << 30


def _glibc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name or "libc.so.6")
    except OSError:
        return None


def keep_freed_memory() -> bool:
    """Make glibc keep freed memory in the process; True if it was applied."""
    libc = _glibc()
    if libc is None or not hasattr(libc, "mallopt"):
        return False
    ok = (libc.mallopt(M_MMAP_MAX, 0) == 1) & (libc.mallopt(M_TRIM_THRESHOLD, _TRIM) == 1) \
        & (libc.mallopt(M_TOP_PAD, _TOP_PAD) == 1)
    return bool(ok)
