# SPDX-License-Identifier: GPL-2.0-or-later
"""What the machine can give a run: the physical memory available now, portably (Windows, macOS, Linux).

Commands that would need more memory than is available refuse up front with the numbers and smaller settings
(``core.tiling.check_engine_memory`` for fusion, ``training.api`` for training), instead of dying with a
MemoryError traceback, being killed by the system or swapping for hours. When the available memory cannot be
found out, :func:`available_memory` returns None and no such check is made.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

#: Where Linux reports its memory (MemAvailable: free memory plus what the kernel can reclaim, e.g. file caches).
MEMINFO = "/proc/meminfo"
#: The memory limit and use of this process's control group (containers, systemd slices): cgroup v2, then v1.
CGROUP_LIMITS = (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                 ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"))


def available_memory() -> int | None:
    """Bytes of physical memory a new allocation can use now, or None when the system does not say.

    Windows: ``GlobalMemoryStatusEx``'s available physical memory. Linux: ``MemAvailable`` of /proc/meminfo (which
    counts reclaimable caches; ``SC_AVPHYS_PAGES``, free pages only, where it is missing), capped by the
    control group's limit. Other POSIX systems: ``SC_AVPHYS_PAGES``. macOS, which reports no available memory
    through ``sysconf``: the total physical memory (``SC_PHYS_PAGES``, else ``sysctl hw.memsize``), a weaker
    bound that still refuses what could never fit.
    """
    platform = _platform()
    if platform == "win32":
        found = _windows_available()
    else:
        found = _meminfo_available()
        if found is None:
            found = _sysconf_pages("SC_AVPHYS_PAGES")
        if found is None and platform == "darwin":
            found = _sysconf_pages("SC_PHYS_PAGES")
            if found is None:
                found = _sysctl_memsize()
        limit = _cgroup_room()
        if limit is not None:
            found = limit if found is None else min(found, limit)
    return found if isinstance(found, int) and found > 0 else None


def _platform() -> str:
    """``sys.platform``, behind a function the tests can replace."""
    return sys.platform


def _meminfo_available(path: str | None = None) -> int | None:
    """``MemAvailable`` of a Linux meminfo file (default MEMINFO), in bytes; None without one."""
    try:
        with open(path or MEMINFO, encoding="ascii", errors="replace") as lines:
            for line in lines:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024  # the kernel writes it in kB
    except (OSError, ValueError, IndexError):
        return None
    return None


def _sysconf_pages(name: str) -> int | None:
    """``os.sysconf(name)`` pages times the page size, in bytes; None where the system lacks either."""
    names = getattr(os, "sysconf_names", {})
    if name not in names or "SC_PAGE_SIZE" not in names:
        return None
    try:
        pages, size = os.sysconf(name), os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return None
    return pages * size if pages > 0 and size > 0 else None


def _sysctl_memsize() -> int | None:
    """macOS's ``hw.memsize`` (total physical memory, bytes) through libc's ``sysctlbyname``; None elsewhere."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        value, size = ctypes.c_uint64(0), ctypes.c_size_t(ctypes.sizeof(ctypes.c_uint64))
        if libc.sysctlbyname(b"hw.memsize", ctypes.byref(value), ctypes.byref(size), None, ctypes.c_size_t(0)):
            return None
    except (OSError, AttributeError, TypeError):
        return None
    return int(value.value) or None


class _MemoryStatusEx(ctypes.Structure):
    _fields_ = [("dwLength", ctypes.c_ulong), ("dwMemoryLoad", ctypes.c_ulong),
                ("ullTotalPhys", ctypes.c_ulonglong), ("ullAvailPhys", ctypes.c_ulonglong),
                ("ullTotalPageFile", ctypes.c_ulonglong), ("ullAvailPageFile", ctypes.c_ulonglong),
                ("ullTotalVirtual", ctypes.c_ulonglong), ("ullAvailVirtual", ctypes.c_ulonglong),
                ("ullAvailExtendedVirtual", ctypes.c_ulonglong)]


def _windows_available() -> int | None:
    """Windows' available physical memory (``GlobalMemoryStatusEx``), in bytes; None when the call fails."""
    try:
        status = _MemoryStatusEx()
        status.dwLength = ctypes.sizeof(_MemoryStatusEx)
        if not ctypes.windll.kernel32.GlobalMemoryStatusEx(ctypes.byref(status)):
            return None
    except (OSError, AttributeError):
        return None
    return int(status.ullAvailPhys) or None


def _cgroup_room(files: tuple[tuple[str, str], ...] | None = None) -> int | None:
    """What this process's control group may still allocate, in bytes: its limit less its use, the inactive file
    cache (which the kernel reclaims first) not counted as use; None without a limit (no cgroup, 'max', or a v1
    limit of the 'unlimited' magnitude)."""
    for limit_file, usage_file in CGROUP_LIMITS if files is None else files:
        try:
            with open(limit_file, encoding="ascii") as handle:
                text = handle.read().strip()
            if text == "max":
                return None
            limit = int(text)
            with open(usage_file, encoding="ascii") as handle:
                usage = int(handle.read().strip())
        except (OSError, ValueError):
            continue
        if limit >= 2 ** 60:  # cgroup v1 writes 'no limit' as a huge page-rounded number
            return None
        cache = _stat_value(os.path.join(os.path.dirname(limit_file), "memory.stat"),
                            ("inactive_file", "total_inactive_file"))
        return max(1, limit - max(0, usage - cache))
    return None


def _stat_value(path: str, keys: tuple[str, ...]) -> int:
    """The first of ``keys`` found in a cgroup ``memory.stat`` file (``key value`` lines); 0 when none is."""
    try:
        with open(path, encoding="ascii") as lines:
            values = dict(line.split()[:2] for line in lines if len(line.split()) >= 2)
    except (OSError, ValueError):
        return 0
    for key in keys:
        if key in values and values[key].isdigit():
            return int(values[key])
    return 0


def format_bytes(count: float) -> str:
    """``1.25 GiB``, ``12.3 GiB``, ``340 MiB``: a size for messages, precise enough that two different sizes near
    each other read differently."""
    if count >= 1024 ** 4:
        return f"{count / 1024 ** 4:.1f} TiB"
    if count >= 10 * 1024 ** 3:
        return f"{count / 1024 ** 3:.1f} GiB"
    if count >= 1024 ** 3:
        return f"{count / 1024 ** 3:.2f} GiB"
    return f"{count / 1024 ** 2:.0f} MiB"
