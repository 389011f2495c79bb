# SPDX-License-Identifier: GPL-2.0-or-later
"""The C allocator's settings for the processes the commands own: large arrays reused, not mapped anew.

The engine allocates the same large arrays for every tile: the network's activations (a 224-band 336 x 336 tile
is 101 MB a tensor), the blended sums, the bands written. glibc's malloc serves every allocation above its
threshold by a fresh memory map, which the kernel zeroes page by page, and unmaps it when freed. The threshold
adapts to the sizes freed, but only up to 32 MB, so each of those arrays was mapped, zeroed and unmapped again
for every tile: a 4-tile fusion of 224 bands at x3 spent 15 s of its 30 s in the kernel (22 s with the settings
here, 2 s of them in the kernel; ``bench/results/scene_throughput.md`` has the whole scene).

:func:`reuse_large_allocations` raises glibc's thresholds, so that those arrays come from the heap and what is
freed stays there for the next tile. The peak memory may grow (arrays of different sizes fragment the heap;
measured: 2.0 -> 2.3 GB on a 16-tile fusion under ``qgis_process``, 2.02 -> 1.90 GB on a 36-tile one by the
command line), and what the heap keeps is returned to the system when the process ends. It is for processes that
exist to run a command (``python -m cofusion``, ``python -m cofusion.training``, the workers of a local Dask
cluster): the QGIS plugin never calls it, because the allocator is the host's; the README says how to set the same
for ``qgis_process`` (glibc's ``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_``). Other C libraries
(Windows, macOS, musl) are left as they are.
"""
from __future__ import annotations

import ctypes
import os

#: Allocations up to this many bytes come from the heap (glibc's ``M_MMAP_THRESHOLD``).
MMAP_THRESHOLD = 1 << 30
#: Free memory at the heap's top is returned to the system beyond this many bytes (``M_TRIM_THRESHOLD``): the
#: largest value ``mallopt`` takes.
TRIM_THRESHOLD = (1 << 31) - 1
#: The same settings as glibc's environment variables, for the processes a command starts (e.g. Dask's workers).
ENVIRONMENT = {"MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD), "MALLOC_TRIM_THRESHOLD_": str(TRIM_THRESHOLD)}
# mallopt's parameter numbers (glibc's malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def is_glibc() -> bool:
    """Whether this process runs on GNU's C library (Linux, mostly), where the settings apply."""
    try:
        return os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")
    except (AttributeError, ValueError, OSError):  # no confstr (Windows), or no such name (macOS, musl)
        return False


def reuse_large_allocations() -> bool:
    """Set glibc's thresholds (``MMAP_THRESHOLD``, ``TRIM_THRESHOLD``) for this process and put them in its
    environment (``ENVIRONMENT``: the processes it starts inherit them, and a Dask worker in this process reports
    them); True when they were set, False elsewhere (another C library, or a glibc that refused them). Call it at
    the start of a process that runs a command, never in a host application's process (module docstring)."""
    if not is_glibc():
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    # both are tried: a refusal of one leaves the other worth having
    mapped = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    trimmed = mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    if mapped and trimmed:
        os.environ.update(ENVIRONMENT)
    return mapped and trimmed
