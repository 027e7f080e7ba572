"""glibc malloc's mmap threshold, fixed, so a monitor's memory does not ratchet up.

glibc serves large allocations (>= 128 KiB) with mmap and returns them on free, but raises that
threshold to the size of each large block freed (up to 32 MiB): from then on, blocks of that size
come from the heap, whose free space is rarely given back. A topic monitor makes such blocks on
every scrape (the text of a thousand topics is megabytes) and in its statistics (a 1 kHz window's
arrays); when their sizes drift (topics forgotten one by one after churn) the heap grew by 16-20 MB
and kept it (`bench/soak.py`: a step after the churn stopped; a 12-minute reproduction grew
120 -> 136 MB as it forgot 300 topics, and stayed flat with the threshold fixed). Setting the
threshold explicitly turns the adjustment off: large blocks are mapped and unmapped, at the cost
of an mmap and page faults per block, a few per second here.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import sys

#: mallopt's parameter number for the mmap threshold (malloc.h: M_MMAP_THRESHOLD).
_M_MMAP_THRESHOLD = -3
#: glibc's default threshold, kept as the fixed value.
MMAP_THRESHOLD = 128 * 1024


def fix_mmap_threshold(threshold: int = MMAP_THRESHOLD) -> bool:
    """Fix glibc's mmap threshold for this process; False where there is no glibc (musl, macOS)."""
    if not sys.platform.startswith('linux'):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return mallopt(_M_MMAP_THRESHOLD, threshold) == 1
