# SPDX-License-Identifier: GPL-2.0-or-later
"""Tile and block planning and the blending window: pure functions of sizes, no GDAL or torch."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cofusion.core.errors import InputError
from cofusion.core.tiling import (
    WEIGHT_FLOOR,
    blend_weights,
    block_size,
    check_tiling,
    default_tiling,
    plan_strips,
    plan_tiles,
    tile_count,
)
from cofusion.core.window import Window


def _coverage(windows: list[Window], width: int, height: int) -> np.ndarray:
    """How many windows cover each pixel of a width x height raster (parts outside are ignored)."""
    count = np.zeros((height, width), int)
    for w in windows:
        count[max(w.row, 0):w.row_end, max(w.col, 0):w.col_end] += 1
    return count


@pytest.mark.parametrize(
    ("tile", "overlap", "align", "words"),
    [
        (40, 8, 16, ["multiple of 16", "--tile 48"]),
        (16, 0, 16, ["at least 32"]),
        (64, 40, 8, ["half the tile (32)", "--overlap 32"]),
        (64, 12, 8, ["multiple of 8"]),
        (64, -8, 8, ["between 0 and"]),
    ],
)
def test_bad_tiling_is_refused_with_the_fix(tile, overlap, align, words):
    with pytest.raises(InputError) as info:
        check_tiling(tile, overlap, align)
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize(("tile", "overlap"), [(32, 0), (32, 16), (64, 16), (48, 24)])
def test_a_whole_raster_plan_covers_it_minimally_on_the_global_grid(tile, overlap):
    step = tile - overlap
    for width, height in [(1, 1), (31, 33), (tile, tile + 1), (173, 95)]:
        tiles = plan_tiles(Window(0, 0, width, height), width, height, tile, overlap, align=8)
        assert len(tiles) == tile_count(width, tile, overlap) * tile_count(height, tile, overlap)
        assert all(t.col % step == 0 and t.row % step == 0 and t.width == t.height == tile for t in tiles)
        assert (_coverage(tiles, width, height) >= 1).all()
        # minimal: without the last tile column (row) the right (bottom) edge would be uncovered
        last_col = max(t.col for t in tiles)
        assert last_col + tile >= width and (last_col == 0 or last_col - step + tile < width)
        # row by row, left to right
        assert tiles == sorted(tiles, key=lambda t: (t.row, t.col))


@settings(max_examples=60, deadline=None)
@given(
    width=st.integers(1, 300),
    height=st.integers(1, 300),
    geometry=st.sampled_from([(32, 0), (32, 16), (64, 16), (96, 32)]),
    corners=st.tuples(st.floats(0, 1), st.floats(0, 1), st.floats(0, 1), st.floats(0, 1)),
)
def test_a_sub_window_uses_exactly_the_whole_plan_tiles_over_it(width, height, geometry, corners):
    tile, overlap = geometry
    c0, c1 = sorted(round(f * width) for f in corners[:2])
    r0, r1 = sorted(round(f * height) for f in corners[2:])
    region = Window(c0, r0, max(c1 - c0, 1), max(r1 - r0, 1))
    region = Window(min(region.col, width - region.width), min(region.row, height - region.height),
                    region.width, region.height)
    whole = plan_tiles(Window(0, 0, width, height), width, height, tile, overlap, align=16)
    sub = plan_tiles(region, width, height, tile, overlap, align=16)
    assert sub == [t for t in whole if t.intersection(region) is not None]


@pytest.mark.parametrize("region", [Window(0, 0, 0, 5), Window(-1, 0, 5, 5), Window(10, 10, 91, 5)])
def test_a_region_outside_the_raster_is_refused(region):
    with pytest.raises(InputError, match="COL0,ROW0,COL1,ROW1"):
        plan_tiles(region, 100, 50, 32, 16, 16)


def test_block_size_is_rounded_down_to_whole_steps():
    assert block_size(1024, 288, 32) == 1024
    assert block_size(1024, 256, 32) == 896
    assert block_size(256, 256, 0) == 256
    with pytest.raises(InputError, match="at least 256"):
        block_size(200, 256, 32)


@pytest.mark.parametrize("region", [Window(0, 0, 250, 190), Window(37, 21, 201, 150), Window(5, 5, 1, 1)])
def test_blocks_are_full_height_strips_on_a_grid_anchored_at_the_origin(region):
    blocks = plan_strips(region, 48)
    count = _coverage(blocks, region.col_end, region.row_end)
    assert (count[region.row:, region.col:] == 1).all() and count.sum() == region.width * region.height
    assert all(b.width <= 48 and (b.row, b.height) == (region.row, region.height) for b in blocks)
    assert all(b.col % 48 == 0 or b.col == region.col for b in blocks)
    assert blocks == sorted(blocks, key=lambda b: b.col)


@pytest.mark.parametrize(("tile", "overlap"), [(32, 8), (32, 16), (48, 16), (32, 0)])
def test_each_block_border_recomputes_at_most_one_tile_column(tile, overlap):
    width, height = 301, 203
    whole = Window(0, 0, width, height)
    blocks = plan_strips(whole, block_size(100, tile, overlap))
    per_block = [plan_tiles(b, width, height, tile, overlap, 8) for b in blocks]
    runs = Counter(t for tiles in per_block for t in tiles)
    assert set(runs) == set(plan_tiles(whole, width, height, tile, overlap, 8))
    borders = sorted({b.col for b in blocks} - {0})
    assert borders
    for t, n in runs.items():
        # a tile runs once per block it touches: once, plus once per border it straddles (at most one)
        straddled = [b for b in borders if t.col < b < t.col_end]
        assert len(straddled) <= 1 and n == 1 + len(straddled)
    # and at every border exactly one tile column straddles it (none without overlap)
    tile_cols = {t.col for t in runs}
    for border in borders:
        assert sum(c < border < c + tile for c in tile_cols) == (1 if overlap else 0)


@pytest.mark.parametrize(("tile", "overlap"), [(32, 0), (32, 8), (64, 16), (32, 16)])
def test_blend_weights_are_smooth_floored_and_sum_to_one_across_overlaps(tile, overlap):
    w = blend_weights(tile, overlap)
    assert w.shape == (tile, tile) and w.dtype == np.float32
    assert w.min() == np.float32(WEIGHT_FLOOR**2) if overlap else w.min() == 1.0
    assert w.max() == 1.0
    np.testing.assert_array_equal(w, w.T)
    np.testing.assert_array_equal(w, w[::-1, ::-1])
    np.testing.assert_array_equal(w[overlap:tile - overlap, overlap:tile - overlap], 1.0)
    ramp = w[tile // 2, :overlap]
    assert (np.diff(ramp) > 0).all()
    if overlap:
        assert ramp[0] == np.float32(WEIGHT_FLOOR)
    # a row of tiles on the global grid: away from the outer edges the weights add up to one
    step, n = tile - overlap, 4
    total = np.zeros((tile, step * (n - 1) + tile))
    for k in range(n):
        total[:, k * step:k * step + tile] += w
    inner = total[overlap:tile - overlap, tile:step * (n - 1)]
    np.testing.assert_allclose(inner, 1.0, atol=2 * WEIGHT_FLOOR)


def test_default_tiling_keeps_a_256_pixel_step():
    assert default_tiling(16) == (288, 32)
    assert default_tiling(8) == (288, 32)
    tile, overlap = default_tiling(48)
    assert (tile % 48, overlap % 48, tile - overlap >= 256) == (0, 0, True)
    check_tiling(tile, overlap, 48)
