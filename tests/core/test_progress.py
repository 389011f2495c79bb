# SPDX-License-Identifier: GPL-2.0-or-later
"""The command lines' progress bar: one line redrawn in place, throttled, ended once however its block ends."""
from __future__ import annotations

import io

import pytest

from cofusion.core.progress import ProgressBar


def test_the_bar_redraws_one_line_in_place_and_always_draws_the_end():
    stream = io.StringIO()
    bar = ProgressBar(stream, interval=3600.0)
    bar(0.0, "reading")
    bar(0.5, "tile 1")  # within the interval: skipped
    bar(1.0, "done")  # the end is always drawn
    bar.close()
    text = stream.getvalue()
    assert text.count("\r") == 2 and text.endswith("\n") and "\n" not in text[:-1]
    assert "  0%" in text and "100%" in text and "done" in text and "tile 1" not in text


def test_close_ends_the_line_only_when_something_was_drawn():
    stream = io.StringIO()
    ProgressBar(stream).close()
    assert stream.getvalue() == ""


def test_leaving_the_block_ends_the_line_also_on_an_error():
    stream = io.StringIO()
    with pytest.raises(KeyboardInterrupt), ProgressBar(stream) as bar:
        bar(0.25, "step 1")
        raise KeyboardInterrupt
    assert stream.getvalue().startswith("\r[") and stream.getvalue().endswith("\n")
