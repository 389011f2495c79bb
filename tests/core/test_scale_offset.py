# SPDX-License-Identifier: GPL-2.0-or-later
"""GDAL band scale and offset: read as physical values (nodata compared on the raw values), and the fused, simulated
and aligned outputs written as float32 physical values without a scale or offset of their own.

The encodings: EnMAP L2A (Int16 reflectance x 10000, nodata -32768, scale 0.0001 or none), PRISMA L2D (UInt16 with a
scale and an offset from the product's reflectance range), Sentinel-2 L2A (UInt16, scale 0.0001, offset -0.1).
Every output is checked against the same run on a float32 twin of the input that holds the physical values."""
from __future__ import annotations

import numpy as np
import pytest
from osgeo import gdal

from cofusion.core.align import align_to_grid
from cofusion.core.classic_raster import fuse_classic_raster
from cofusion.core.raster import PIXEL_GEOTRANSFORM, RasterInfo, RasterReader, read_info, read_raster
from cofusion.core.simulate_raster import simulate_raster
from cofusion.core.window import Window

X0, Y0 = 500000.0, 5000000.0
HSI_NM = tuple(float(w) for w in np.linspace(420.0, 900.0, 12))
MSI_NM = (490.0, 560.0, 665.0, 842.0)
ENMAP = {"dtype": "int16", "scale": 1e-4, "offset": 0.0, "nodata": -32768}
PRISMA = {"dtype": "uint16", "scale": 1.2 / 65535, "offset": -0.01, "nodata": 65535}
SENTINEL2 = {"dtype": "uint16", "scale": 1e-4, "offset": -0.1, "nodata": 0}


def _reflectance(bands: int, size: int, seed: int = 0) -> np.ndarray:
    """A smooth, textured reflectance scene `(bands, size, size)` float64 in [0.02, 0.6]."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    base = 0.3 + 0.15 * np.sin(6 * x) * np.cos(5 * y) + 0.05 * rng.random((size, size))
    return np.clip(np.stack([base * (0.6 + 0.08 * b) for b in range(bands)]), 0.02, 0.6)


def _encoded(make_raster, reflectance: np.ndarray, encoding: dict, name: str, pixel: float,
             wavelengths_nm) -> tuple:
    """The scene stored in `encoding` (raw = round((value - offset) / scale), band scale and offset set), and its
    float32 twin holding the physical values raw * scale + offset; both with the nodata at pixel (0, 0)."""
    raw = np.round((reflectance - encoding["offset"]) / encoding["scale"]).astype(encoding["dtype"])
    geotransform = (X0, pixel, 0.0, Y0, 0.0, -pixel)
    path = make_raster(data=raw, nodata=encoding["nodata"], wavelengths_nm=wavelengths_nm, geotransform=geotransform,
                       name=f"{name}.tif")
    ds = gdal.Open(str(path), gdal.GA_Update)
    for b in range(ds.RasterCount):
        ds.GetRasterBand(b + 1).SetScale(encoding["scale"])
        ds.GetRasterBand(b + 1).SetOffset(encoding["offset"])
    ds = None
    physical = (raw * np.float32(encoding["scale"]) + np.float32(encoding["offset"])).astype(np.float32)
    twin = make_raster(data=physical, nodata=encoding["nodata"], wavelengths_nm=wavelengths_nm,
                       geotransform=geotransform, name=f"{name}_physical.tif")
    return path, twin


def _has_no_scale(path) -> bool:
    ds = gdal.Open(str(path))
    bands = [ds.GetRasterBand(b + 1) for b in range(ds.RasterCount)]
    return all(b.GetScale() in (None, 1.0) and b.GetOffset() in (None, 0.0) for b in bands)


# ------------------------------------------------------------------------------------------------------ reading


@pytest.mark.parametrize("encoding", [ENMAP, PRISMA, SENTINEL2], ids=["enmap", "prisma", "sentinel2"])
def test_scaled_integers_read_as_reflectance_with_the_nodata_pixels_invalid(make_raster, encoding):
    truth = _reflectance(3, 8)
    path, _ = _encoded(make_raster, truth, encoding, "scene", 30.0, None)
    info = read_info(path)
    assert info.dtype == encoding["dtype"] and info.nodata == (encoding["nodata"],) * 3
    assert info.scale == (pytest.approx(encoding["scale"]),) * 3
    assert info.offset == (pytest.approx(encoding["offset"]),) * 3
    with RasterReader(path) as reader:
        data, valid = reader.read_valid(info.window)
        subset = reader.read(Window(2, 3, 4, 2), bands=[2, 0])
    assert data.dtype == np.float32 and data.shape == (3, 8, 8)
    assert not valid[0, 0] and valid.sum() == 63
    np.testing.assert_allclose(data[:, valid], truth[:, valid], atol=encoding["scale"])
    np.testing.assert_allclose(subset, data[[2, 0], 3:5, 2:6])


def test_nodata_is_compared_on_the_raw_values(make_raster):
    # raw 0 is nodata; with offset -scale, raw 1 is physical 0.0, which must stay valid
    encoding = {"dtype": "uint16", "scale": 1e-4, "offset": -1e-4, "nodata": 0}
    path, _ = _encoded(make_raster, np.full((2, 4, 4), 0.5), encoding, "scene", 30.0, None)
    ds = gdal.Open(str(path), gdal.GA_Update)
    for b in (1, 2):
        ds.GetRasterBand(b).WriteArray(np.array([[1]], np.uint16), 1, 0)
    ds = None
    with RasterReader(path) as reader:
        data, valid = reader.read_valid(reader.info.window)
    assert data[0, 0, 1] == 0.0 and valid[0, 1]
    assert not valid[0, 0] and data[0, 0, 0] == pytest.approx(-1e-4)


def test_a_file_without_scale_or_offset_is_unchanged(make_raster):
    raw = np.arange(2 * 5 * 5, dtype=np.int16).reshape(2, 5, 5) * 100  # EnMAP's x 10000 with no scale
    path = make_raster(data=raw, nodata=-32768)
    info = read_info(path)
    assert info.scale == (1.0, 1.0) and info.offset == (0.0, 0.0)
    with RasterReader(path) as reader:
        data, valid = reader.read_valid(info.window)
    expected = raw.astype(np.float32)
    expected[:, 0, 0] = -32768
    np.testing.assert_array_equal(data, expected)
    assert not valid[0, 0] and valid.sum() == 24


def test_hand_built_infos_have_no_scale():
    info = RasterInfo(path="x.tif", width=4, height=4, band_count=3, geotransform=PIXEL_GEOTRANSFORM, crs_wkt="",
                      dtype="float32", nodata=(None,) * 3, wavelengths_nm=None, fwhm_nm=None,
                      band_names=("a", "b", "c"))
    assert info.scale == (1.0, 1.0, 1.0) and info.offset == (0.0, 0.0, 0.0)


# ------------------------------------------------------------------------------------------------------ outputs


def test_fused_output_is_physical_float32_without_a_scale(make_raster, tmp_path):
    lr, lr_twin = _encoded(make_raster, _reflectance(len(HSI_NM), 8, 1), ENMAP, "enmap", 30.0, HSI_NM)
    hr, hr_twin = _encoded(make_raster, _reflectance(len(MSI_NM), 24, 2), SENTINEL2, "s2", 10.0, MSI_NM)
    fused = fuse_classic_raster(lr, hr, tmp_path / "fused.tif", "bicubic")
    expected = fuse_classic_raster(lr_twin, hr_twin, tmp_path / "fused_twin.tif", "bicubic")
    info = read_info(fused)
    assert info.dtype == "float32" and _has_no_scale(fused)
    assert info.scale == (1.0,) * len(HSI_NM) and info.nodata == (-32768.0,) * len(HSI_NM)
    values = read_raster(fused)
    np.testing.assert_allclose(values, read_raster(expected), atol=1e-6)
    assert (values[:, :3, :3] == -32768).all()  # the LR nodata pixel and the HR one under it
    assert 0.02 < values[:, 3:, 3:].min() and values.max() < 0.7  # reflectance, not x 10000


def test_simulated_outputs_are_physical_float32_without_a_scale(make_raster, tmp_path):
    reference, twin = _encoded(make_raster, _reflectance(len(HSI_NM), 24, 3), ENMAP, "reference", 10.0, HSI_NM)
    outputs = simulate_raster(reference, "sentinel2a:B2,B3,B4,B8", 3, tmp_path / "lr.tif", tmp_path / "hr.tif")
    expected = simulate_raster(twin, "sentinel2a:B2,B3,B4,B8", 3, tmp_path / "lr_twin.tif", tmp_path / "hr_twin.tif")
    for out, want in ((outputs[0], expected[0]), (outputs[1], expected[1])):
        assert read_info(out).dtype == "float32" and _has_no_scale(out)
        values = read_raster(out)
        np.testing.assert_allclose(values, read_raster(want), atol=1e-6)
        assert values[:, 0, 0].tolist() == [-32768.0] * len(values)
        assert 0.0 < values[:, 1:, 1:].min() and values.max() < 0.7


@pytest.mark.parametrize("resampling", ["nearest", "cubic"])
def test_aligned_hrmsi_keeps_the_physical_values(make_raster, tmp_path, resampling):
    lr, _ = _encoded(make_raster, _reflectance(len(HSI_NM), 8, 4), ENMAP, "enmap", 30.0, HSI_NM)
    hr, hr_twin = _encoded(make_raster, _reflectance(len(MSI_NM), 12, 5), PRISMA, "hr20m", 20.0, MSI_NM)
    aligned = align_to_grid(lr, hr, tmp_path / "aligned.tif", 2, resampling=resampling)
    expected = align_to_grid(lr, hr_twin, tmp_path / "aligned_twin.tif", 2, resampling=resampling)
    info = read_info(aligned)
    assert info.dtype == "float32" and _has_no_scale(aligned) and info.nodata == (65535.0,) * len(MSI_NM)
    assert info.geotransform == (X0, 15.0, 0.0, Y0, 0.0, -15.0)
    with RasterReader(aligned) as reader, RasterReader(expected) as twin_reader:
        values, valid = reader.read_valid(info.window)
        twin_values, twin_valid = twin_reader.read_valid(info.window)
    np.testing.assert_array_equal(valid, twin_valid)
    assert not valid[0, 0] and valid.mean() > 0.9
    # the warp of the raw UInt16 rounds to raw units: at most half a step from the warp of the physical values
    np.testing.assert_allclose(values[:, valid], twin_values[:, valid], atol=0 if resampling == "nearest" else 1e-5)
    assert (values[:, ~valid] == 65535).all()
