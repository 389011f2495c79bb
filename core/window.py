# SPDX-License-Identifier: GPL-2.0-or-later
"""A rectangular pixel window of a raster, shared by the reader, the writer and the tile planner."""
from __future__ import annotations

from typing import NamedTuple


class Window(NamedTuple):
    """Pixel window: column/row offset of the top-left pixel and its size, in pixels of its raster."""

    col: int
    row: int
    width: int
    height: int

    @property
    def col_end(self) -> int:
        return self.col + self.width

    @property
    def row_end(self) -> int:
        return self.row + self.height

    def intersection(self, other: Window) -> Window | None:
        """The overlap of two windows of the same raster, or None when they do not overlap."""
        col, row = max(self.col, other.col), max(self.row, other.row)
        col_end, row_end = min(self.col_end, other.col_end), min(self.row_end, other.row_end)
        if col_end <= col or row_end <= row:
            return None
        return Window(col, row, col_end - col, row_end - row)

    def within(self, origin: Window) -> Window:
        """This window, given relative to ``origin``'s corner, in the pixels of the raster ``origin`` is in."""
        return Window(self.col + origin.col, self.row + origin.row, self.width, self.height)

    def scaled(self, factor: int) -> Window:
        """The same window on a grid `factor` times finer (offsets and sizes multiplied)."""
        return Window(self.col * factor, self.row * factor, self.width * factor, self.height * factor)

    def covering(self, factor: int) -> Window:
        """The window of a grid `factor` times coarser that covers this one (offsets rounded down, ends up): e.g.
        the LR pixels under a window of HR pixels."""
        col, row = self.col // factor, self.row // factor
        return Window(col, row, -(-self.col_end // factor) - col, -(-self.row_end // factor) - row)
