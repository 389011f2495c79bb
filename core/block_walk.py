# SPDX-License-Identifier: GPL-2.0-or-later
"""Block walks with a margin for whole-array algorithms (classical fusion, Wald's simulation) on large rasters.

An algorithm that works on whole arrays runs block by block: each block reads its window grown by a margin
(clipped to the raster), runs, and keeps only the pixels of its own window. Where the algorithm's reach (its
filter support) is within the margin, the kept pixels equal those of a whole-raster run; statistics fitted on the
block (e.g. regression weights) become local to the block.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .errors import Canceled
from .progress import Cancel, Progress
from .window import Window


@dataclass(frozen=True)
class Block:
    """``keep``: the window whose results are kept; ``read``: the window read for it (``keep`` plus margin)."""

    keep: Window
    read: Window

    def inner(self, factor: int = 1) -> tuple[slice, slice]:
        """(rows, cols) slices of ``keep`` in an array of ``read``, on a grid ``factor`` times finer."""
        row, col = (self.keep.row - self.read.row) * factor, (self.keep.col - self.read.col) * factor
        return slice(row, row + self.keep.height * factor), slice(col, col + self.keep.width * factor)


def plan_blocks(width: int, height: int, block: int, margin: int, area: Window | None = None) -> list[Block]:
    """Blocks of at most ``block`` x ``block`` pixels covering ``area`` (default: all) of a ``width`` x ``height``
    grid row by row, each read with ``margin`` pixels more on every side that the grid has (beyond ``area``
    too)."""
    bounds = Window(0, 0, width, height)
    area = bounds if area is None else area
    blocks = []
    for row in range(area.row, area.row_end, block):
        for col in range(area.col, area.col_end, block):
            keep = Window(col, row, min(block, area.col_end - col), min(block, area.row_end - row))
            grown = Window(col - margin, row - margin, keep.width + 2 * margin, keep.height + 2 * margin)
            blocks.append(Block(keep, grown.intersection(bounds)))
    return blocks


def walk(blocks: list[Block], what: str, progress: Progress | None, cancel: Cancel | None) -> Iterator[Block]:
    """Yield the blocks, reporting ``progress(fraction, message)`` after each and raising Canceled before
    each when ``cancel()`` returns True (the caller's writers then discard their files)."""
    report = progress or (lambda _fraction, _message: None)
    report(0.0, f"{what}: {len(blocks)} blocks")
    for k, blk in enumerate(blocks):
        if cancel is not None and cancel():
            raise Canceled(f"{what} canceled; no output file was written.")
        yield blk
        report((k + 1) / len(blocks), f"{what}: block {k + 1} of {len(blocks)}")


def coarse_valid(valid: np.ndarray, scale: int) -> np.ndarray:
    """Validity on a grid ``scale`` times coarser: ``(H, W)`` bool -> ``(H / scale, W / scale)``, a coarse pixel
    valid when all its ``scale`` x ``scale`` fine pixels are (H and W multiples of ``scale``)."""
    rows, cols = valid.shape
    return valid.reshape(rows // scale, scale, cols // scale, scale).all(axis=(1, 3))


def fill_invalid(data: np.ndarray, valid: np.ndarray) -> None:
    """Set the invalid pixels of ``data`` (C, H, W) in place to the band means of the valid ones (``valid``
    (H, W) bool, at least one True): whole-array algorithms then see no nodata values."""
    if not valid.all():
        data[:, ~valid] = data[:, valid].mean(axis=1, keepdims=True)
