# SPDX-License-Identifier: GPL-2.0-or-later
"""The command lines' one signal policy: an interruption stops the work at its next safe point, leaves nothing
half-written behind and exits with the signal's code.

``Interrupts`` catches SIGINT (Ctrl-C), SIGTERM (``kill``, a job scheduler, ``timeout``), SIGHUP (the terminal
closed; POSIX only) and SIGBREAK (Ctrl-Break; Windows only). The first one is a request: the handler only
records it, and the work sees it at its next check (the fusion engine before every batch of tiles and before
it renames its finished output into place, the trainer before every step), stops there and deletes its
temporary files. A second signal stops at once: it raises KeyboardInterrupt wherever the program is, and the
``with`` blocks of the writers delete their temporary files on the way out. Either way the command exits with
``exit_code``: 128 + the first signal's number (130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP).

The handlers exist only inside the ``with`` block, only in the main thread (signals reach no other), and the
previous ones come back on leaving it, so a program that runs a command line in-process (tests, scripts) keeps
its own. The QGIS plugin never installs them: QGIS's tasks cancel through their own button.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import warnings
from collections.abc import Callable
from typing import TextIO

from .allocator import reuse_large_allocations

#: The signals an interruption may come by on this platform, by name.
SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGBREAK")
                if hasattr(signal, name))


class Interrupts:
    """A context manager turning the first interrupting signal into a stop request and a second into an
    immediate stop (KeyboardInterrupt); callable as the ``cancel() -> bool`` check of the core's functions."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.signum: int | None = None  # the first signal received, None while there was none
        self._stream = stream
        self._previous: dict[int, object] = {}

    def __call__(self) -> bool:
        """True once a signal came: the cancel check to hand to the core."""
        return self.signum is not None

    def stop_if_requested(self) -> bool:
        """The check for work whose interrupted state is its resume point (training): raises KeyboardInterrupt
        once a signal came, so the work stops the way an immediate interruption stops it, but at this check;
        returns False otherwise."""
        if self.signum is not None:
            raise KeyboardInterrupt
        return False

    @property
    def exit_code(self) -> int:
        """The command's exit status after an interruption: 128 + the signal number (130 when none is known)."""
        return 128 + (signal.SIGINT if self.signum is None else self.signum)

    def _handle(self, signum: int, _frame: object) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum
        stream = self._stream or sys.stderr
        name = signal.Signals(signum).name
        again = "Ctrl-C again" if signum == signal.SIGINT else f"{name} again"
        stream.write(f"\n{name}: stopping at the next safe point, nothing half-written is kept ({again} to stop "
                     "at once)\n")
        stream.flush()

    def __enter__(self) -> Interrupts:
        if threading.current_thread() is threading.main_thread():
            for signum in SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *_exc: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, signal.SIG_DFL if previous is None else previous)  # None: set outside Python
        self._previous.clear()


def run_command(load_main: Callable[[], Callable[..., int]], stopped: str) -> int:
    """Run a command line's ``main`` under the signal policy from its first line: the policy is in force before
    ``load_main()`` imports the command's modules (PyTorch among them), so a signal during start-up ends the run
    like one during the work. Returns the exit code; ``stopped`` is what a second signal before ``main`` prints.

    The process is the command's own, so it also says which GDAL error mode it uses (GDAL >= 3.9 prints a warning
    until a program does; the core works in either mode, ``core.raster``), and keeps SIGHUP from UCX: the
    communication library some PyTorch builds load (Debian's) installs its own SIGHUP handler for a debug action
    when it loads, which replaced the policy's, so a closed terminal did not stop the work; ``UCX_DEBUG_SIGNO=0``
    (unless the user set it) turns that off before PyTorch is imported. It also tunes glibc's allocator for the
    engine's large arrays (``core.allocator``)."""
    os.environ.setdefault("UCX_DEBUG_SIGNO", "0")
    reuse_large_allocations()
    with Interrupts() as interrupts:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                from osgeo import gdal
            gdal.DontUseExceptions()
            return load_main()(interrupts=interrupts)
        except KeyboardInterrupt:  # a second signal before main() took over
            sys.stderr.write(f"interrupted; {stopped}\n")
            return interrupts.exit_code
