# SPDX-License-Identifier: GPL-2.0-or-later
"""core.window.Window: the coarser window that covers a finer one."""
import pytest

from cofusion.core.window import Window


@pytest.mark.parametrize("fine, factor, coarse", [
    (Window(0, 0, 96, 96), 4, Window(0, 0, 24, 24)),  # on the coarse grid: the same pixels
    (Window(5, 7, 33, 50), 4, Window(1, 1, 9, 14)),  # columns 5-37 lie in 1-9, rows 7-56 in 1-14
    (Window(93, 90, 3, 6), 4, Window(23, 22, 1, 2)),
])
def test_covering_rounds_the_offsets_down_and_the_ends_up(fine, factor, coarse):
    assert fine.covering(factor) == coarse
    assert coarse.scaled(factor).intersection(fine) == fine  # it covers the fine window
