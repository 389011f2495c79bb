# SPDX-License-Identifier: GPL-2.0-or-later
"""The two callables every long operation of the core takes, its only coupling to the faces (CLI, Processing, the
dock's tasks): ``progress(fraction, message)`` with a fraction from 0 to 1 and a short text, and ``cancel()``,
asked between units of work, True to stop (the operation then raises ``core.errors.Canceled`` and leaves nothing
behind). ``ProgressBar`` is the command lines' ``progress``."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

Progress = Callable[[float, str], None]
Cancel = Callable[[], bool]


class ProgressBar:
    """A one-line progress bar on a text stream, redrawn in place with a carriage return.

    Called as ``progress(fraction, message)``; redraws at most every ``interval`` seconds (and always at 1). As a
    context manager it ends its line on leaving, however the block ends.
    """

    def __init__(self, stream: TextIO, width: int = 30, interval: float = 0.2) -> None:
        self.stream, self.width, self.interval = stream, width, interval
        self.started = time.monotonic()
        self._drawn_at: float | None = None

    def __call__(self, fraction: float, message: str) -> None:
        now = time.monotonic()
        if fraction < 1.0 and self._drawn_at is not None and now - self._drawn_at < self.interval:
            return
        filled = round(self.width * fraction)
        elapsed = int(now - self.started)
        line = (f"\r[{'#' * filled}{'.' * (self.width - filled)}] {100 * fraction:3.0f}%  "
                f"{elapsed // 60}:{elapsed % 60:02d}  {message}")
        self.stream.write(f"{line:<79}")
        self.stream.flush()
        self._drawn_at = now

    def close(self) -> None:
        """End the bar's line (if anything was drawn)."""
        if self._drawn_at is not None:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn_at = None

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()
