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

Memory
    :func:`engine_memory` estimates the engine's peak memory from the tiling, the band counts and the scale (and
    the predictor's activations per tile pixel, :func:`network_bytes_per_pixel` for a CoFusion network);
    :func:`check_engine_memory` refuses settings whose estimate exceeds the memory available, with smaller
    settings that fit (:func:`fitting_tiling`).

Blending
    Overlapping tile predictions are averaged with the separable window of :func:`blend_weights`, whose
    ramps over the overlap sum to one between neighbours and vanish (down to a positive floor) at a tile's
    outermost pixel, where a prediction lacks context.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .bands import SCREEN_CHUNK_VALUES
from .errors import InputError
from .resources import format_bytes
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


def check_region(region: Window, raster_width: int, raster_height: int) -> None:
    """InputError unless ``region`` is a non-empty window inside the ``raster_width`` x ``raster_height``
    output grid."""
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
    check_region(region, raster_width, raster_height)
    rows = _axis_starts(region.row, region.row_end, raster_height, tile, overlap)
    cols = _axis_starts(region.col, region.col_end, raster_width, tile, overlap)
    return [Window(col, row, tile, tile) for row in rows for col in cols]


def block_size(block: int, tile: int, overlap: int) -> int:
    """The block width (HR pixels) actually used: ``block`` rounded down to a multiple of the tile step.

    Raises InputError when ``block`` is smaller than ``tile``.
    """
    if block < tile:
        raise InputError(
            f"Block size {block} is smaller than the tile size {tile}: pass a block of at least {tile} pixels "
            f"(--block {tile}) or a smaller --tile (larger blocks recompute fewer tiles at block borders but need "
            "more memory)."
        )
    step = tile - overlap
    return block // step * step


def plan_strips(region: Window, block: int) -> list[Window]:
    """Split ``region`` into full-height strips (the fusion engine's blocks) at most ``block`` columns wide, left to
    right. (``core.block_walk.plan_blocks`` is the other planner: square blocks with a margin, for whole-array
    algorithms.)

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


# ------------------------------------------------------------------------------------------------------ memory

#: Activations of a CoFusion network's forward (``core.inference.NetworkPredictor``) per HR pixel of a tile and per
#: tile of a batch, on the CPU in float32. Measured as the peak RSS of ``fuse_raster`` above the RSS after loading
#: the model (Linux VmHWM reset before the run; bundled sample resources/sample, one tile; 2 CPU threads), the
#: difference between tiles 288 and 576 giving the part per pixel: 198 bands with widths 16 / 64 / 128 (saliency
#: stride 4): 5.8 / 5.6-6.2 / 12.5 KB per pixel; 66 bands at width 64: 4.6 KB. The forward's peak is the larger of
#: its band stage (the classical base, the back-projection, the output: about 30 bytes per band) and its feature
#: stage (48 bytes per channel and 8 per entry of the D x D interaction matrix of spectral coordinate mixing, one
#: per saliency cell of stride^2 pixels), not their sum: width 16 costs what width 64 does at 198 bands.
#: (``core.model.config.tile_bytes``, which sizes untrusted cards, sums them: 10.9 KB per pixel at the default.)
NET_BYTES_PER_BAND, NET_BYTES_PER_CHANNEL, NET_BYTES_PER_INTERACTION = 30, 48, 8
#: What a network run needs beyond its tiles: PyTorch's workspaces, the allocator's slack and the scene-statistics
#: pass (``NetworkPredictor.prepare``). Measured: 170-570 MiB above the per-pixel part (the most on a 384 x 768
#: scene of six tiles), rounded up.
NETWORK_OVERHEAD = 576 * 2 ** 20
#: The band screening pass before the first tile (``core.bands.screen_bands``): a strip of SCREEN_CHUNK_VALUES
#: float32 values, its validity and its masked copy (about 10 bytes a value). It ends before the tiles start.
PREPASS_BYTES = 10 * SCREEN_CHUNK_VALUES


def network_bytes_per_pixel(hsi_bands: int, width: int, saliency_stride: int) -> float:
    """Activation bytes of a CoFusion network's forward per HR pixel of a tile and per tile of a batch (CPU,
    float32): the larger of its band and feature stages (see NET_BYTES_PER_BAND)."""
    bands = NET_BYTES_PER_BAND * hsi_bands
    features = NET_BYTES_PER_CHANNEL * width + NET_BYTES_PER_INTERACTION * width ** 2 / saliency_stride ** 2
    return float(max(bands, features))


def engine_memory(tile: int, overlap: int, batch: int, block: int, hsi_bands: int, msi_bands: int, scale: int,
                  network_bytes_per_pixel: float = 0.0, out_bands: int | None = None) -> int:
    """Estimated peak memory (bytes) of the fusion engine (``core.fuse.fuse_raster``) beyond what is loaded.

    tile, overlap, batch: the tiling; block: the width (HR pixels) of the blocks actually walked (``block_size``,
    at most the region's width); hsi_bands: the working bands C the predictor sees and returns; msi_bands: C_m;
    scale: s; out_bands: the bands written (default C); network_bytes_per_pixel: the predictor's activations per
    tile pixel and batch tile (0: a predictor whose only memory is its output). Float32 everywhere:

    - the merger's carries, ``(C + 1) x overlap x (block + tile)`` (top and left, ``TileMerger``), and GDAL's read
      cache of one tile row of a block's inputs, ``tile x block x (C / s^2 + C_m)``;
    - per batch tile: its inputs three times (read, stacked, normalised by the predictor), ``3 x T^2 x (C / s^2 +
      C_m)``, and a prediction ``C x T^2`` (the previous batch's stay alive during the next predictor call);
    - the larger of the forward (``batch x T^2 x network_bytes_per_pixel``) and the blending of one tile
      (accumulator ``C + 1``, the divided result ``C``, the written bands ``out_bands``, the finiteness check
      ``1.25 C`` planes of ``T^2``);
    - with a network, NETWORK_OVERHEAD; the band screening before the tiles (PREPASS_BYTES) when it is larger.

    Measured against the peak RSS of runs on the CPU (the bundled sample and an 8 x enlarged copy, the default model
    and widths 16 and 128, 66 and 198 bands): 0.99-1.6 x the measured peak at tiles of 288-720 pixels and batches
    of 1-4, 2.3-2.6 x at tile 144, where the fixed overhead dominates (tests/reliability/test_huge_inputs.py lists
    the figures).
    """
    c, out = hsi_bands, hsi_bands if out_bands is None else out_bands
    pixels = tile * tile
    inputs = c / scale ** 2 + msi_bands
    carries = 4 * (c + 1) * overlap * (block + tile) + 4 * tile * block * inputs
    per_tile = 4 * pixels * (3 * inputs + c)
    forward = batch * pixels * network_bytes_per_pixel
    blend = 4 * pixels * (c + 1 + c + out + 1.25 * c)
    loop = carries + batch * per_tile + max(forward, blend)
    return int(max(loop, PREPASS_BYTES) + (NETWORK_OVERHEAD if network_bytes_per_pixel > 0 else 0))


@dataclass(frozen=True)
class EngineLoad:
    """What the engine's memory depends on besides the tiling: the band counts, the scale, the predictor's
    activations per tile pixel and the width of the region fused (blocks are never wider)."""

    hsi_bands: int
    msi_bands: int
    scale: int
    network_bytes_per_pixel: float = 0.0
    out_bands: int | None = None
    region_width: int | None = None

    def memory(self, tile: int, overlap: int, batch: int, block: int) -> int:
        """:func:`engine_memory` for the options ``--tile``, ``--overlap``, ``--batch`` and ``--block`` (a block
        below the tile counts as the tile: ``block_size`` refuses it with its own message)."""
        width = block_size(max(block, tile), tile, overlap)
        if self.region_width is not None:
            width = min(width, max(1, self.region_width))
        return engine_memory(tile, overlap, batch, width, self.hsi_bands, self.msi_bands, self.scale,
                             self.network_bytes_per_pixel, self.out_bands)


def _largest(low: int, high: int, fits: Callable[[int], bool]) -> int | None:
    """The largest ``v`` in ``[low, high]`` with ``fits(v)`` for a ``fits`` true below some value; None if not
    even ``low`` fits."""
    if high < low or not fits(low):
        return None
    while low < high:
        middle = (low + high + 1) // 2
        if fits(middle):
            low = middle
        else:
            high = middle - 1
    return low


def fitting_tiling(load: EngineLoad, tile: int, overlap: int, batch: int, block: int, align: int,
                   available: int) -> tuple[int, int, int, int] | None:
    """Settings ``(tile, overlap, batch, block)`` no larger than the given ones whose estimate fits in
    ``available`` bytes, the first found of: fewer tiles per batch; batch 1 and a narrower block; batch 1 and the
    largest tile (a multiple of ``align``) that fits, with the widest block up to the larger of the tile and
    DEFAULT_BLOCK; the same with half the overlap, repeatedly. None when nothing fits."""
    def fits(t: int, o: int, b: int, k: int) -> bool:
        return load.memory(t, o, b, k) <= available

    if batch > 1:
        fewer = _largest(1, batch - 1, lambda b: fits(tile, overlap, b, block))
        if fewer is not None:
            return tile, overlap, fewer, block
    if block > tile:
        narrower = _largest(tile, block - 1, lambda k: fits(tile, overlap, 1, k))
        if narrower is not None:
            return tile, overlap, 1, max(tile, block_size(narrower, tile, overlap))
    shares = overlap
    while True:
        smallest = max(2, -(-2 * shares // align)) * align
        last = (tile - 1) // align if shares == overlap else tile // align
        found = _largest(smallest // align, last, lambda n, o=shares: fits(n * align, o, 1, n * align))
        if found is not None:
            t = found * align
            widest = _largest(t, max(t, min(block, DEFAULT_BLOCK)), lambda k, t=t, o=shares: fits(t, o, 1, k))
            return t, shares, 1, max(t, block_size(widest, t, shares))
        if shares == 0:
            return None
        shares = shares // 2 // align * align


def check_engine_memory(load: EngineLoad, tile: int, overlap: int, batch: int, block: int, align: int,
                        available: int | None) -> int:
    """The estimated memory (bytes) of fusing with these options; InputError when it exceeds ``available`` (None:
    unknown, no check), naming both and options that fit (:func:`fitting_tiling`), in half of ``available`` where
    possible."""
    need = load.memory(tile, overlap, batch, block)
    if available is None or need <= available:
        return need
    what = (f"Fusing with tile {tile}, overlap {overlap}, batch {batch} and block {block} needs about "
            f"{format_bytes(need)} of memory but {format_bytes(available)} are available")
    # advice that fits in half the memory available leaves room for what else runs (and the estimate's spread)
    advice = fitting_tiling(load, tile, overlap, batch, block, align, available // 2) or \
        fitting_tiling(load, tile, overlap, batch, block, align, available)
    if advice is None:
        smallest = load.memory(2 * align, 0, 1, 2 * align)
        raise InputError(f"{what}; even the smallest tiling (--tile {2 * align} --overlap 0 --batch 1) needs about "
                         f"{format_bytes(smallest)}: close other programs or use a machine with more memory.")
    t, o, b, k = advice
    options = f"--tile {t}" + (f" --overlap {o}" if o != overlap else "") + f" --block {k} --batch {b}"
    raise InputError(f"{what}; pass for example {options} (about {format_bytes(load.memory(t, o, b, k))}), or "
                     "close other programs.")
