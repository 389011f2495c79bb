# SPDX-License-Identifier: GPL-2.0-or-later
"""The two callables every long operation of the core takes, its only coupling to the faces (CLI, Processing, the
dock's tasks): ``progress(fraction, message)`` with a fraction from 0 to 1 and a short text, and ``cancel()``,
asked between units of work, True to stop (the operation then raises ``core.errors.Canceled`` and leaves nothing
behind)."""
from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[float, str], None]
Cancel = Callable[[], bool]
