# SPDX-License-Identifier: GPL-2.0-or-later
"""Tile planning for the streaming fusion engine: pure functions of sizes (no GDAL, no torch).

All sizes and windows are in HR pixels of the output grid (the fusion grid of ``core.grid``).

The global tile grid
    Tiles are ``tile`` x ``tile`` squares whose origins lie on a grid anchored at the raster origin with a step
    of ``tile - overlap`` in both directions. Along an axis of ``n`` pixels the grid holds the ``K`` tiles
    ``k * step`` (``k < K``) where ``K`` is the smallest count whose last tile reaches ``n``. Tiles may end
    past the raster edge; the engine pads them. Any window of the raster is fused by exactly the tiles of
    this grid that intersect it, so fusing a sub-window gives the same pixels as fusing the whole raster:
    the overlap context is read from outside the sub-window.

Blocks
    The engine walks the output in blocks, full-height strips of at most ``block`` columns, each an
    independent sub-window fusion. Its memory grows with the block width (the merger's top carry, see
    ``core.fuse``) but not with the height, so it does not grow with the scene. The block size is rounded
    down to a whole number of steps and the strip grid is anchored at the raster origin: every block border
    then lies at a tile origin ``b = m * step``, which is where tile ``m - 1``'s overlap begins. The block
    before the border ends with tile ``m - 1``; the block after it needs tile ``m - 1`` too (it reaches
    ``overlap`` pixels past ``b``) but not tile ``m - 2`` (it ends at ``b + overlap - step <= b``). So exactly
    one tile column is computed twice per border when ``overlap > 0``, none when ``overlap == 0`` (a border
    anywhere else inside the overlap would cost two), and none at all in a scene at most one block wide.

Blending
    Overlapping tile predictions are averaged with the separable window of :func:`blend_weights`, whose
    ramps over the overlap sum to one between neighbours and vanish (down to a positive floor) at a tile's
    outermost pixel, where a prediction lacks context.
"""
from __future__ import annotations

import math

import numpy as np

from .errors import InputError
from .window import Window

#: Smallest blending weight: keeps the weight sum positive where a single tile covers a pixel at its edge.
WEIGHT_FLOOR = 1e-6
#: Default tile step and overlap (HR pixels) before rounding up to a predictor's alignment. A step of 256
#: puts the final part of every tile, which the engine writes at once, on one of the output GeoTIFF's
#: 256 x 256 internal tiles, so every compressed TIFF tile is written once, whole.
DEFAULT_STEP = 256
DEFAULT_OVERLAP = 32
#: Default block width (HR pixels): sixteen default steps; the merger's top carry then holds 104 MB for 198
#: bands and the default overlap, and a tile column is recomputed every 4096 columns.
DEFAULT_BLOCK = 4096


def default_tiling(align: int) -> tuple[int, int]:
    """Default ``(tile, overlap)`` in HR pixels for a predictor aligned to ``align``: 288 and 32 for 16."""
    overlap = -(-DEFAULT_OVERLAP // align) * align
    step = -(-DEFAULT_STEP // align) * align
    return step + overlap, overlap


def check_tiling(tile: int, overlap: int, align: int) -> None:
    """Raise InputError unless ``tile`` and ``overlap`` (HR pixels) suit a predictor aligned to ``align``.

    Both must be multiples of ``align``, ``0 <= overlap <= tile / 2`` and ``tile >= 2 * align``.
    """
    if align < 1:
        raise InputError(f"The tile alignment must be a positive number of pixels, got {align}.")
    if tile < 2 * align or tile % align:
        raise InputError(
            f"Tile size {tile} is not usable: it must be a multiple of {align} pixels and at least "
            f"{2 * align}; pass for example --tile {max(2 * align, -(-tile // align) * align)}."
        )
    if overlap < 0 or overlap % align or 2 * overlap > tile:
        usable = min(tile // 2 // align * align, max(0, round(overlap / align) * align))
        raise InputError(
            f"Tile overlap {overlap} is not usable with tile size {tile}: it must be a multiple of {align} "
            f"pixels between 0 and half the tile ({tile // 2}); pass for example --overlap {usable}."
        )


def tile_count(size: int, tile: int, overlap: int) -> int:
    """Number of tiles of the global grid along an axis of ``size`` pixels (the last one reaches the end)."""
    step = tile - overlap
    return 1 if size <= tile else math.ceil((size - tile) / step) + 1


def _axis_starts(start: int, end: int, size: int, tile: int, overlap: int) -> range:
    """Origins of the global grid's tiles that intersect ``[start, end)`` of an axis of ``size`` pixels."""
    step = tile - overlap
    first = max(0, (start - tile) // step + 1)
    last = min(tile_count(size, tile, overlap) - 1, -(-end // step) - 1)
    return range(first * step, last * step + 1, step)


def _check_region(region: Window, raster_width: int, raster_height: int) -> None:
    if region.width < 1 or region.height < 1 or region.intersection(
        Window(0, 0, raster_width, raster_height)
    ) != region:
        raise InputError(
            f"Region (col {region.col}, row {region.row}, {region.width} x {region.height} pixels) is not "
            f"a non-empty window inside the {raster_width} x {raster_height} output grid: give "
            f"COL0,ROW0,COL1,ROW1 with 0 <= COL0 < COL1 <= {raster_width} and 0 <= ROW0 < ROW1 <= "
            f"{raster_height}."
        )


def plan_tiles(
    region: Window, raster_width: int, raster_height: int, tile: int, overlap: int, align: int
) -> list[Window]:
    """The tiles of the global grid that intersect ``region``, row by row (top to bottom, left to right).

    region: window of the output grid (HR pixels) inside ``raster_width`` x ``raster_height``.
    Returns ``tile`` x ``tile`` windows whose origins are multiples of ``tile - overlap`` (hence of
    ``align``); the last ones may extend past the raster's right and bottom edges.
    Raises InputError for unusable tile sizes or a region outside the raster.
    """
    check_tiling(tile, overlap, align)
    _check_region(region, raster_width, raster_height)
    rows = _axis_starts(region.row, region.row_end, raster_height, tile, overlap)
    cols = _axis_starts(region.col, region.col_end, raster_width, tile, overlap)
    return [Window(col, row, tile, tile) for row in rows for col in cols]


def block_size(block: int, tile: int, overlap: int) -> int:
    """The block width (HR pixels) actually used: ``block`` rounded down to a multiple of the tile step.

    Raises InputError when ``block`` is smaller than ``tile``.
    """
    if block < tile:
        raise InputError(
            f"Block size {block} is smaller than the tile size {tile}: pass a block of at least {tile} "
            f"pixels (larger blocks recompute fewer tiles at block borders but need more memory)."
        )
    step = tile - overlap
    return block // step * step


def plan_blocks(region: Window, block: int) -> list[Window]:
    """Split ``region`` into full-height blocks at most ``block`` columns wide, left to right.

    The block grid is anchored at the raster origin (columns ``[j * block, (j + 1) * block)``), so block
    borders fall on the tile grid when ``block`` comes from :func:`block_size`.
    """
    edges = [region.col, *range((region.col // block + 1) * block, region.col_end, block), region.col_end]
    return [Window(c0, region.row, c1 - c0, region.height) for c0, c1 in zip(edges[:-1], edges[1:])]


def blend_weights(tile: int, overlap: int) -> np.ndarray:
    """Separable blending window ``(tile, tile)`` float32: 1 in the middle, a raised-cosine ramp over the
    ``overlap`` pixels at each edge.

    Along an axis the left ramp is ``w(i) = (1 - cos(pi * i / (overlap - 1))) / 2`` for ``i < overlap``
    (0 at the tile's first pixel, 1 at the last pixel of the overlap) and the right ramp is its mirror, so
    the ramps of two neighbouring tiles sum to exactly one across their shared overlap. Each axis' weights
    are raised to at least :data:`WEIGHT_FLOOR` before the outer product (so the window is never below
    ``WEIGHT_FLOOR ** 2``): flooring per axis keeps a tile's edge pixel ``WEIGHT_FLOOR`` times lighter than
    the neighbour that covers it from inside, also along the raster's edges where only one tile row runs.
    """
    ramp = np.ones(tile, dtype=np.float64)
    if overlap == 1:
        ramp[[0, -1]] = 0.0
    elif overlap > 1:
        rise = 0.5 - 0.5 * np.cos(np.pi * np.arange(overlap) / (overlap - 1))
        ramp[:overlap] = rise
        ramp[tile - overlap:] = rise[::-1]
    ramp = np.maximum(ramp, WEIGHT_FLOOR)
    return np.outer(ramp, ramp).astype(np.float32)
