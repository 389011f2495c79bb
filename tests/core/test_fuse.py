# SPDX-License-Identifier: GPL-2.0-or-later
"""The streaming fusion engine with analytic predictors (no network): tiled output equals whole-image output.

Each predictor is applied once to the whole image (the reference) and once through fuse_raster over many
tile / overlap / batch / block settings; pointwise predictors must agree exactly (up to float32 rounding
of the blend), the neighbourhood predictor up to the blending floor at tile edges.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal, osr

from cofusion.core.errors import Canceled, CheckpointError, GridError, InputError, OutputError
from cofusion.core.fuse import TileMerger, fuse_raster
from cofusion.core.grid import check_coregistration
from cofusion.core.raster import RasterReader, read_info, read_raster
from cofusion.core.tiling import blend_weights, plan_tiles
from cofusion.core.window import Window

HR_PIXEL = 10.0
ORIGIN = (500000.0, 5000000.0)
WAVELENGTHS = (450.0, 550.0, 650.0, 750.0, 850.0)
FWHM = (10.0, 12.0, 14.0, 16.0, 18.0)


def _upsample(lr: np.ndarray, scale: int) -> np.ndarray:
    return lr.repeat(scale, axis=-2).repeat(scale, axis=-1)


def _box3(image: np.ndarray) -> np.ndarray:
    """3 x 3 mean of (B, H, W), the image mirrored (half-sample symmetric) at its edges."""
    padded = np.pad(image, ((0, 0), (1, 1), (1, 1)), mode="symmetric")
    h, w = image.shape[1:]
    return sum(padded[:, i:i + h, j:j + w] for i in range(3) for j in range(3)) / np.float32(9)


@dataclass
class Analytic:
    """A predictor of the engine's protocol computed by ``rule(lr, hr, scale)``; counts its calls."""

    rule: Callable[[np.ndarray, np.ndarray, int], np.ndarray]
    scale: int
    hsi_bands: int = 5
    msi_bands: int = 3
    align: int = 0
    hsi_fill: np.ndarray = field(default_factory=lambda: np.full(5, 0.5, np.float32))
    msi_fill: np.ndarray = field(default_factory=lambda: np.full(3, 0.25, np.float32))
    calls: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.align = self.align or self.scale

    def __call__(self, lr: np.ndarray, hr: np.ndarray) -> np.ndarray:
        assert lr.dtype == hr.dtype == np.float32
        assert lr.shape[2] * self.scale == hr.shape[2] and lr.shape[3] * self.scale == hr.shape[3]
        self.calls.append(len(lr))
        return self.rule(lr, hr, self.scale).astype(np.float32)


def upsampled_lr(lr, hr, s):
    return _upsample(lr, s) + 0 * hr[:, :1]


def hr_mean(lr, hr, s):
    return np.broadcast_to(hr.mean(axis=1, keepdims=True), (len(hr), lr.shape[1], *hr.shape[2:])) + 0 * lr[:, :, :1, :1]


def local(lr, hr, s):
    return _upsample(lr, s) + _box3(hr.mean(axis=1))[:, None]


RULES = {"upsampled_lr": upsampled_lr, "hr_mean": hr_mean, "local": local}


def _pair(make_raster, scale: int, *, lr_size=(11, 13), hr_shift=(0, 0), hr_extra=(3, 1), lr_nodata=None,
          hr_nodata=None, lr_data=None, hr_data=None, hsi=5, msi=3) -> tuple[Path, Path]:
    """An LRHSI (hsi bands) and an HRMSI (msi bands) scale times finer, in UTM 32N; the HRMSI starts
    hr_shift (cols, rows) HR pixels right/down of the LRHSI and extends hr_extra pixels further."""
    rng = np.random.default_rng(scale)
    rows, cols = lr_size
    if lr_data is None:
        lr_data = rng.random((hsi, rows, cols), np.float32)
    if hr_data is None:
        hr_data = rng.random((msi, rows * scale + hr_extra[1], cols * scale + hr_extra[0]), np.float32)
    lr = make_raster(data=lr_data, nodata=lr_nodata, name="lr.tif", wavelengths_nm=WAVELENGTHS[:hsi],
                     fwhm_nm=FWHM[:hsi],
                     geotransform=(*ORIGIN[:1], HR_PIXEL * scale, 0.0, ORIGIN[1], 0.0, -HR_PIXEL * scale))
    hr = make_raster(data=hr_data, nodata=hr_nodata, name="hr.tif",
                     geotransform=(ORIGIN[0] + hr_shift[0] * HR_PIXEL, HR_PIXEL, 0.0,
                                   ORIGIN[1] - hr_shift[1] * HR_PIXEL, 0.0, -HR_PIXEL))
    return lr, hr


def _reference(predictor: Analytic, lr_path: Path, hr_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The predictor on the whole common window at once, nodata filled as the engine does: (C, H, W), valid."""
    grid = check_coregistration(read_info(lr_path), read_info(hr_path))
    with RasterReader(lr_path) as lr_reader, RasterReader(hr_path) as hr_reader:
        lr, lr_valid = lr_reader.read_valid(grid.lr_window)
        hr, hr_valid = hr_reader.read_valid(grid.hr_window)
    lr[:, ~lr_valid] = predictor.hsi_fill[:, None]
    hr[:, ~hr_valid] = predictor.msi_fill[:, None]
    return predictor(lr[None], hr[None])[0], hr_valid & _upsample(lr_valid, grid.scale)


SETTINGS = [  # scale, tile, overlap, batch, block
    (2, 8, 2, 1, 8),
    (2, 8, 4, 3, 12),
    (2, 12, 0, 2, 16),
    (3, 12, 3, 4, 18),
    (3, 18, 6, 7, 1024),
    (3, 6, 3, 5, 6),
    (5, 10, 5, 2, 20),
    (5, 20, 10, 3, 40),
]


# a neighbourhood predictor needs overlapping tiles: the blend hides its wrong tile-edge pixels
CASES = [(rule, *setting) for rule in RULES for setting in SETTINGS if rule != "local" or setting[2] > 0]


@pytest.mark.parametrize(("rule", "scale", "tile", "overlap", "batch", "block"), CASES)
def test_tiled_fusion_equals_the_whole_image_computation(make_raster, tmp_path, rule, scale, tile, overlap,
                                                         batch, block):
    lr, hr = _pair(make_raster, scale, hr_shift=(scale, 2 * scale))
    predictor = Analytic(RULES[rule], scale)
    expected, valid = _reference(predictor, lr, hr)
    assert valid.all() and expected.shape[1:] == ((11 - 2) * scale, (13 - 1) * scale)
    result = fuse_raster(lr, hr, tmp_path / "out.tif", predictor, tile=tile, overlap=overlap, batch=batch,
                         block=block)
    fused = read_raster(result.out_path)
    assert (result.width, result.height, result.scale) == (expected.shape[2], expected.shape[1], scale)
    assert max(predictor.calls) <= batch
    # pointwise predictors: float32 rounding of (sum w p) / (sum w); local: + the floor weight of tile edges
    np.testing.assert_allclose(fused, expected, rtol=1e-6, atol=1e-6)


def test_the_output_is_stored_in_internal_tiles_of_the_tile_step(make_raster, tmp_path):
    """Tile 48 with overlap 16 (step 32, not a divisor of 256): the GeoTIFF's internal tiles are 32 pixels, so each
    is compressed and stored once. On 256-pixel tiles every internal tile was written in parts, read back and stored
    again at the end of the file: on random values (incompressible) the file then grows past its raw size."""
    lr, hr = _pair(make_raster, 2, lr_size=(48, 48), hr_extra=(0, 0))
    result = fuse_raster(lr, hr, tmp_path / "out.tif", Analytic(upsampled_lr, 2), tile=48, overlap=16, block=96)
    assert gdal.Open(str(result.out_path)).GetRasterBand(1).GetBlockSize() == [32, 32]
    raw = 5 * result.width * result.height * 4
    assert result.out_path.stat().st_size < 1.1 * raw


@pytest.mark.parametrize("rule", ["hr_mean", "local"])
def test_a_sub_window_equals_the_same_pixels_of_the_whole_run(make_raster, tmp_path, rule):
    lr, hr = _pair(make_raster, 2, lr_size=(17, 19))
    predictor = Analytic(RULES[rule], 2)
    whole = read_raster(fuse_raster(lr, hr, tmp_path / "whole.tif", predictor, tile=8, overlap=4,
                                    block=12).out_path)
    for region, block in [(Window(5, 3, 17, 20), 12), (Window(0, 9, 38, 1), 8), (Window(30, 30, 8, 4), 64)]:
        out = fuse_raster(lr, hr, tmp_path / "part.tif", predictor, tile=8, overlap=4, block=block,
                          region=region)
        assert (out.width, out.height) == (region.width, region.height)
        np.testing.assert_array_equal(
            read_raster(out.out_path), whole[:, region.row:region.row_end, region.col:region.col_end])


def test_the_output_carries_the_hr_grid_crs_wavelengths_and_nodata(make_raster, tmp_path):
    lr, hr = _pair(make_raster, 2, hr_shift=(2, 4), lr_nodata=-1.0)
    fuse_raster(lr, hr, tmp_path / "out.tif", Analytic(upsampled_lr, 2), tile=8, overlap=2)
    fuse_raster(lr, hr, tmp_path / "part.tif", Analytic(upsampled_lr, 2), tile=8, overlap=2,
                region=Window(3, 5, 7, 6))
    ds, part = gdal.Open(str(tmp_path / "out.tif")), gdal.Open(str(tmp_path / "part.tif"))
    # the common window starts where the HRMSI does: 2 HR pixels right, 4 down of the LRHSI origin
    x0, y0 = ORIGIN[0] + 2 * HR_PIXEL, ORIGIN[1] - 4 * HR_PIXEL
    assert ds.GetGeoTransform() == pytest.approx((x0, HR_PIXEL, 0.0, y0, 0.0, -HR_PIXEL))
    assert part.GetGeoTransform() == pytest.approx((x0 + 3 * HR_PIXEL, HR_PIXEL, 0.0, y0 - 5 * HR_PIXEL, 0.0,
                                                    -HR_PIXEL))
    assert (ds.RasterXSize, ds.RasterYSize, ds.RasterCount) == (13 * 2 - 2, 11 * 2 - 4, 5)
    srs = osr.SpatialReference(wkt=ds.GetProjection())
    srs.AutoIdentifyEPSG()
    assert srs.GetAuthorityCode(None) == "32632"
    band = ds.GetRasterBand(1)
    assert band.DataType == gdal.GDT_Float32 and band.GetNoDataValue() == -1.0
    info = read_info(tmp_path / "out.tif")
    assert info.wavelengths_nm == WAVELENGTHS and info.fwhm_nm == FWHM
    assert info.band_names == read_info(lr).band_names
    ds = part = None


def test_without_lrhsi_nodata_the_output_nodata_is_nan(make_raster, tmp_path):
    lr, hr = _pair(make_raster, 2, hr_nodata=7.0)
    out = fuse_raster(lr, hr, tmp_path / "out.tif", Analytic(upsampled_lr, 2), tile=8, overlap=2).out_path
    assert math.isnan(read_info(out).nodata[0])
    fused = read_raster(out)
    assert np.isnan(fused[:, 0, 0]).all() and np.isfinite(fused[:, 0, 1]).all()


@pytest.mark.parametrize("rule", ["upsampled_lr", "hr_mean"])
def test_nodata_masks_its_pixels_and_leaves_neighbours_untouched(make_raster, tmp_path, rule):
    rng = np.random.default_rng(7)
    lr_data = rng.random((5, 11, 13), np.float32)
    hr_data = rng.random((3, 24, 27), np.float32)
    clean_lr, clean_hr = _pair(make_raster, 2, lr_data=lr_data, hr_data=hr_data)
    clean = read_raster(fuse_raster(clean_lr, clean_hr, tmp_path / "clean.tif", Analytic(RULES[rule], 2),
                                    tile=8, overlap=2).out_path)
    lr_data[2, 4, 6] = -1.0  # one band of one LR pixel: the whole pixel is nodata
    hr_data[:, 9, 3] = -1.0
    hr_data[1, 15:, 20:] = -1.0
    (tmp_path / "lr.tif").unlink()
    (tmp_path / "hr.tif").unlink()
    lr, hr = _pair(make_raster, 2, lr_data=lr_data, hr_data=hr_data, lr_nodata=-1.0, hr_nodata=-1.0)
    predictor = Analytic(RULES[rule], 2)
    fused = read_raster(fuse_raster(lr, hr, tmp_path / "out.tif", predictor, tile=8, overlap=2).out_path)
    invalid = np.zeros(fused.shape[1:], bool)
    invalid[0:2, 0:2] = invalid[8:10, 12:14] = True  # LR (0, 0) from make_raster's nodata, and LR (4, 6)
    invalid[0, 0] = invalid[9, 3] = True
    invalid[15:, 20:] = True
    np.testing.assert_array_equal(fused == -1.0, np.broadcast_to(invalid, fused.shape))
    np.testing.assert_array_equal(fused[:, ~invalid], clean[:, ~invalid])


def test_tiles_without_a_valid_pixel_are_not_predicted(make_raster, tmp_path):
    hr_data = np.random.default_rng(1).random((3, 22, 26), np.float32)
    hr_data[:, :, 8:] = -5.0
    lr, hr = _pair(make_raster, 2, hr_data=hr_data, hr_nodata=-5.0)
    predictor = Analytic(hr_mean, 2)
    result = fuse_raster(lr, hr, tmp_path / "out.tif", predictor, tile=8, overlap=0, batch=1)
    assert result.tiles == sum(predictor.calls) == 3  # only the first of 4 tile columns, 3 tile rows
    assert np.isnan(read_raster(result.out_path)[:, :, 8:]).all()


def test_all_nodata_inputs_are_an_input_error_and_leave_no_file(make_raster, tmp_path):
    lr, hr = _pair(make_raster, 2, hr_data=np.full((3, 22, 26), 9.0, np.float32), hr_nodata=9.0)
    with pytest.raises(InputError, match="Every output pixel is nodata"):
        fuse_raster(lr, hr, tmp_path / "out.tif", Analytic(hr_mean, 2), tile=8, overlap=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hr.tif", "lr.tif"]


def test_a_cancel_after_the_first_batch_leaves_nothing(make_raster, tmp_path):
    lr, hr = _pair(make_raster, 2)
    checks: list[int] = []

    def cancel() -> bool:
        checks.append(1)
        return len(checks) > 1

    predictor = Analytic(hr_mean, 2)
    with pytest.raises(Canceled):
        fuse_raster(lr, hr, tmp_path / "out.tif", predictor, tile=8, overlap=2, batch=2, cancel=cancel)
    assert predictor.calls == [2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hr.tif", "lr.tif"]


def test_progress_is_monotone_and_ends_at_one(make_raster, tmp_path):
    lr, hr = _pair(make_raster, 2)
    seen: list[tuple[float, str]] = []
    fuse_raster(lr, hr, tmp_path / "out.tif", Analytic(hr_mean, 2), tile=8, overlap=2, batch=3, block=12,
                progress=lambda f, m: seen.append((f, m)))
    fractions = [f for f, _ in seen]
    assert fractions[0] == 0.0 and fractions[-1] == 1.0 and len(fractions) > 3
    assert all(b >= a for a, b in zip(fractions, fractions[1:]))
    assert all(isinstance(m, str) and m for _, m in seen)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"hsi_bands": 7}, ["7 hyperspectral bands", "has 5", "lr.tif"]),
        ({"msi_bands": 4}, ["4 multispectral bands", "has 3", "hr.tif"]),
        ({"scale": 4}, ["scale 4", "2 times finer", "lr.tif", "hr.tif"]),
    ],
)
def test_a_predictor_that_does_not_fit_is_refused(make_raster, tmp_path, change, words):
    lr, hr = _pair(make_raster, 2)
    predictor = Analytic(upsampled_lr, 2)
    for name, value in change.items():
        setattr(predictor, name, value)
    with pytest.raises(CheckpointError) as info:
        fuse_raster(lr, hr, tmp_path / "out.tif", predictor)
    for word in words:
        assert word in str(info.value)
    assert predictor.calls == []


def test_bad_outputs_grids_and_tilings_are_refused_before_any_work(make_raster, tmp_path):
    lr, hr = _pair(make_raster, 2)
    predictor = Analytic(upsampled_lr, 2, align=4)
    with pytest.raises(OutputError, match="also an input"):
        fuse_raster(lr, hr, lr, predictor)
    with pytest.raises(InputError, match="multiple of 4"):
        fuse_raster(lr, hr, tmp_path / "out.tif", predictor, tile=10)
    with pytest.raises(InputError, match="Batch size 0"):
        fuse_raster(lr, hr, tmp_path / "out.tif", predictor, batch=0)
    other = make_raster(3, 20, 20, geotransform=(ORIGIN[0] + 3.0, HR_PIXEL, 0.0, ORIGIN[1], 0.0, -HR_PIXEL))
    with pytest.raises(GridError):
        fuse_raster(lr, other, tmp_path / "out.tif", predictor)
    with pytest.raises(CheckpointError, match="shape"):
        fuse_raster(lr, hr, tmp_path / "out.tif", Analytic(lambda lr_, hr_, s: hr_, 2), tile=8, overlap=2)
    assert predictor.calls == [] and not (tmp_path / "out.tif").exists()


class _Canvas:
    """A merger's sink: the written pixels of a width x height file and every write's (col, row, cols, rows)."""

    def __init__(self, bands: int, width: int, height: int) -> None:
        self.pixels = np.full((bands, height, width), np.inf, np.float32)
        self.count = np.zeros((height, width), int)
        self.writes: list[tuple[int, int, int, int]] = []

    def __call__(self, array: np.ndarray, col: int, row: int) -> None:
        rows, cols = array.shape[1:]
        self.writes.append((col, row, cols, rows))
        self.pixels[:, row:row + rows, col:col + cols] = array
        self.count[row:row + rows, col:col + cols] += 1


@pytest.mark.parametrize("region", [False, True], ids=["block_in_the_raster", "region_file"])
def test_the_merger_equals_the_weighted_average_of_all_tiles(region):
    """Several tile rows and columns, overlap, a block starting in the middle of the tile grid (in raster
    pixels, or as the origin of a region's file, where tiles start left of and above it) and a tile without
    a valid pixel: the result is sum(prediction * weights) / sum(weights) on a canvas of all tiles."""
    rng = np.random.default_rng(3)
    bands, tile, overlap, width, height = 3, 8, 2, 38, 38
    # starts inside the right / bottom overlap of the first tile column / row, ends at the raster's end, which
    # the last tile column / row passes by more than the overlap
    block = Window(13, 7, 25, 31)
    tiles = plan_tiles(block, width, height, tile, overlap, 2)
    assert (tiles[0].col, tiles[0].row, tiles[-1].col, tiles[-1].row) == (6, 0, 30, 30)
    extent = max(t.col_end for t in tiles), max(t.row_end for t in tiles)
    valid = rng.random((extent[1], extent[0])) > 0.1
    empty = tiles[len(tiles) // 2 + 1]  # a tile inside the block without a valid pixel
    valid[empty.row:empty.row_end, empty.col:empty.col_end] = False
    sums, weight_sums = np.zeros((bands, extent[1], extent[0])), np.zeros((extent[1], extent[0]))
    offset = Window(block.col, block.row, 0, 0) if region else Window(0, 0, 0, 0)
    canvas = _Canvas(bands, block.col_end - offset.col, block.row_end - offset.row)
    merger = TileMerger(Window(block.col - offset.col, block.row - offset.row, block.width, block.height),
                        Window(tiles[-1].col - offset.col, tiles[-1].row - offset.row, tile, tile), bands,
                        overlap, math.nan, canvas)
    for t in tiles:
        area = (slice(t.row, t.row_end), slice(t.col, t.col_end))
        weights = (rng.random((tile, tile)) + 0.1).astype(np.float32)
        prediction = None if t == empty else rng.random((bands, tile, tile)).astype(np.float32)
        if prediction is not None:
            sums[(slice(None), *area)] += prediction * weights
            weight_sums[area] += weights
        merger.add(Window(t.col - offset.col, t.row - offset.row, tile, tile), weights, prediction, valid[area])
    inside = (slice(block.row, block.row_end), slice(block.col, block.col_end))
    expected = np.where(valid[inside], sums[(slice(None), *inside)] / np.maximum(weight_sums[inside], 1e-30),
                        np.nan)
    fused = canvas.pixels[:, block.row - offset.row:, block.col - offset.col:]
    assert (canvas.count[block.row - offset.row:, block.col - offset.col:] == 1).all()
    assert canvas.count.sum() == block.width * block.height
    np.testing.assert_allclose(fused, expected, rtol=1e-5)
    assert np.isnan(fused[:, empty.row - block.row:empty.row_end - block.row,
                          empty.col - block.col:empty.col_end - block.col]).all()
    assert merger.valid_pixels == np.count_nonzero(valid[inside])


def test_the_merger_writes_each_pixel_once_in_aligned_chunks():
    """Default tiling (288, overlap 32) on 600 x 600 pixels: every write is a 256 x 256 GeoTIFF tile, but for the
    last ones, and the merger's state does not grow with the block's height."""
    canvas = _Canvas(1, 600, 600)
    block = Window(0, 0, 600, 600)
    tiles = plan_tiles(block, 600, 600, 288, 32, 16)
    merger = TileMerger(block, tiles[-1], bands=1, overlap=32, nodata=0.0, sink=canvas)
    assert sum(a.nbytes for a in (*merger._top, *merger._left)) == 2 * (32 * 600 + 288 * 32) * 4
    weights = blend_weights(288, 32)
    for t in tiles:
        merger.add(t, weights, np.zeros((1, 288, 288), np.float32), np.ones((288, 288), bool))
    assert (canvas.count == 1).all()
    assert len(canvas.writes) == len(tiles) == 9
    for col, row, cols, rows in canvas.writes:
        assert col % 256 == row % 256 == 0
        assert cols == 256 or col + cols == 600
        assert rows == 256 or row + rows == 600
    # a valid 0 stays distinguishable from the nodata value 0
    assert (canvas.pixels > 0).all() and (canvas.pixels < 1e-30).all()
    assert merger.valid_pixels == 600 * 600


def test_a_network_marks_its_bands_by_the_response_in_its_model_card(make_raster, tmp_path):
    from types import SimpleNamespace

    from cofusion.core.srf import parse_srf

    lr, hr = _pair(make_raster, 2)  # 450-850 nm; an HRMSI without band metadata
    predictor = Analytic(upsampled_lr, 2)
    out = fuse_raster(lr, hr, tmp_path / "plain.tif", predictor, tile=8, overlap=2).out_path
    ds = gdal.Open(str(out))
    assert [ds.GetRasterBand(b + 1).GetMetadataItem("COFUSION_DETAIL") for b in range(5)] == [None] * 5
    assert ds.GetMetadataItem("COFUSION_DETAIL_RULE").startswith("No band is marked")
    card = SimpleNamespace(srf=parse_srf("rgb").matrix(WAVELENGTHS), msi_band_names=("blue", "green", "red"),
                           provenance={"srf": "rgb"})
    predictor.checkpoint = SimpleNamespace(card=card)
    out = fuse_raster(lr, hr, tmp_path / "card.tif", predictor, tile=8, overlap=2).out_path
    ds = gdal.Open(str(out))
    bands = [ds.GetRasterBand(b + 1) for b in range(5)]
    # the RGB's weight lies at 450, 550 and 650 nm: 750 and 850 nm are extrapolated
    assert [b.GetMetadataItem("COFUSION_DETAIL") for b in bands] == ["measured"] * 3 + ["extrapolated"] * 2
    assert "red's weight" in bands[2].GetMetadataItem("COFUSION_DETAIL_REASON")
    assert "the model card's, rgb" in ds.GetMetadataItem("COFUSION_DETAIL_RULE")
    ds = bands = None
