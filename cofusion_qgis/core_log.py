# SPDX-License-Identifier: GPL-2.0-or-later
"""The core's log messages (bad bands left out, a cut spectral response, a cropped reference...) shown to the user.

The core logs with :mod:`logging` under the ``cofusion`` logger and knows nothing of QGIS. :func:`forward_log`
attaches, for the duration of a ``with`` block, a handler that passes the records of the calling thread (Processing
runs algorithms in worker threads, several at a time) to two callables: warnings to ``warn``, information to
``info`` (a Processing feedback's ``pushWarning`` and ``pushInfo``).
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

CORE_LOGGER = "cofusion"


class _ThreadHandler(logging.Handler):
    def __init__(self, info: Callable[[str], None], warn: Callable[[str], None]) -> None:
        super().__init__(logging.INFO)
        self.thread = threading.get_ident()
        self.info, self.warn = info, warn

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread != self.thread:
            return
        try:
            (self.warn if record.levelno >= logging.WARNING else self.info)(record.getMessage())
        except Exception:  # a log message must never break the run that logged it
            self.handleError(record)


@contextmanager
def forward_log(info: Callable[[str], None], warn: Callable[[str], None]) -> Iterator[None]:
    """Pass the ``cofusion`` loggers' INFO and WARNING records of this thread to ``info`` / ``warn`` meanwhile."""
    logger = logging.getLogger(CORE_LOGGER)
    handler = _ThreadHandler(info, warn)
    previous = logger.level
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
