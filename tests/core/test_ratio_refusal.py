# SPDX-License-Identifier: GPL-2.0-or-later
"""Pixel size ratios that are not an integer from 2 to 8: core.grid refuses them naming cofusion:align_to_grid with
the nearest scale in range, and core.align.align_to_grid turns such a pair into one that fuses."""
from __future__ import annotations

import numpy as np
import pytest
from osgeo import osr

from cofusion.core.align import align_to_grid
from cofusion.core.classic_raster import fuse_classic_raster
from cofusion.core.errors import GridError, InputError
from cofusion.core.grid import check_coregistration, nearest_scale
from cofusion.core.raster import PIXEL_GEOTRANSFORM, RasterInfo, read_info, read_raster

X0, Y0 = 500000.0, 5000000.0
HSI_NM = (450.0, 550.0, 650.0, 750.0, 850.0)
MSI_NM = (490.0, 560.0, 665.0, 842.0)


def _wkt(epsg: int) -> str:
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    return srs.ExportToWkt()


def _info(width: int, height: int, pixel: float | None, path: str, epsg: int | None = 32632) -> RasterInfo:
    """A one-band raster's description: `pixel` m pixels in UTM (`epsg`), or a bare pixel grid (None, None)."""
    gt = PIXEL_GEOTRANSFORM if pixel is None else (X0, pixel, 0.0, Y0, 0.0, -pixel)
    return RasterInfo(path=path, width=width, height=height, band_count=1, geotransform=gt,
                      crs_wkt="" if epsg is None else _wkt(epsg), dtype="float32", nodata=(None,),
                      wavelengths_nm=None, fwhm_nm=None, band_names=("band 1",))


@pytest.mark.parametrize(("ratio", "scale"), [(1.5, 2), (2.5, 3), (2.98, 3), (3.75, 4), (8.33, 8), (12.5, 8),
                                              (30.0, 8), (1.01, 2)])
def test_nearest_scale_is_in_range(ratio, scale):
    assert nearest_scale(ratio) == scale


def test_sentinel2_20m_with_a_30m_lrhsi_names_align_to_grid_with_scale_2():
    with pytest.raises(GridError) as caught:
        check_coregistration(_info(10, 10, 30.0, "lr.tif"), _info(15, 15, 20.0, "s2_20m.tif"))
    message = str(caught.value)
    assert "\n" not in message
    assert "not in an integer ratio: LRHSI pixels 30 x 30, HRMSI pixels 20 x 20 (ratio 1.5 x 1.5)" in message
    assert ("Resample the HRMSI onto the LRHSI grid refined by 2 (15 x 15 pixels) with cofusion:align_to_grid "
            "(SCALE=2) or gdalwarp -t_srs EPSG:32632 -tr 15 15 -te 500000 4999700 500300 5000000 -r cubic "
            "s2_20m.tif hrmsi_aligned.tif.") in message


def test_airborne_3_6m_with_a_30m_lrhsi_names_scale_8():
    with pytest.raises(GridError, match=r"ratio 8\.333 x 8\.333.*refined by 8 \(3\.75 x 3\.75 pixels\) with "
                                        r"cofusion:align_to_grid \(SCALE=8\) or gdalwarp .*-tr 3\.75 3\.75 "):
        check_coregistration(_info(10, 10, 30.0, "lr.tif"), _info(83, 83, 3.6, "hr.tif"))


def test_integer_ratio_above_8_is_refused_with_scale_8():
    with pytest.raises(GridError, match=r"ratio 10 is above 8, the largest scale CoFusion fuses: LRHSI pixels 30 "
                                        r"x 30, HRMSI pixels 3 x 3.*align_to_grid \(SCALE=8\).*-tr 3\.75 3\.75"):
        check_coregistration(_info(10, 10, 30.0, "lr.tif"), _info(100, 100, 3.0, "hr.tif"))


def test_ratio_below_2_is_refused():
    with pytest.raises(GridError, match=r"not finer than the LRHSI.*ratio 1 x 1.*integer from 2 to 8"):
        check_coregistration(_info(10, 10, 30.0, "lr.tif"), _info(10, 10, 30.0, "hr.tif"))
    with pytest.raises(GridError, match=r"ratio 1\.2 x 1\.2.*refined by 2 .*SCALE=2"):
        check_coregistration(_info(10, 10, 30.0, "lr.tif"), _info(12, 12, 25.0, "hr.tif"))


def test_different_crs_hint_leaves_the_scale_to_the_user():
    hr = _info(30, 30, 10.0, "hr.tif", epsg=32633)
    with pytest.raises(GridError, match=r"refined by an integer s from 2 to 8 .*\(SCALE=s\) or gdalwarp -t_srs "
                                        r"EPSG:32632 -tr 30/s 30/s"):
        check_coregistration(_info(10, 10, 30.0, "lr.tif"), hr)


def test_pixel_grids_with_a_ratio_above_8_suggest_resampling():
    lr, hr = _info(10, 10, None, "lr.tif", None), _info(100, 100, None, "hr.tif", None)
    with pytest.raises(GridError, match=r"not one integer from 2 to 8.*= 10 x 10\. Make the HRMSI 80 x 80 pixels "
                                        r"\(8 times the LRHSI\): crop it .*-srcwin 0 0 80 80.*-outsize 80 80"):
        check_coregistration(lr, hr)
    small = _info(15, 15, None, "hr.tif", None)
    with pytest.raises(GridError, match=r"= 1\.5 x 1\.5\. Make the HRMSI 20 x 20 pixels \(2 times the LRHSI\): "
                                        r"resample it if both cover the same ground \(gdal_translate -outsize 20 20"):
        check_coregistration(lr, small)


# ------------------------------------------------------------------------------------- aligning, then fusing


EXTENT = 360.0  # metres: 12 LR pixels of 30 m


def _field(size: int, bands: int, shift: float = 0.4) -> np.ndarray:
    """A smooth reflectance-like scene `(bands, size, size)` float32 on `size` pixels across EXTENT, sampled at
    the pixel centres (smooth, so that resampling keeps it close to the truth)."""
    centres = (np.arange(size) + 0.5) * EXTENT / size
    x, y = np.meshgrid(centres, centres)
    return np.stack([0.2 + 0.1 * np.sin(x / 90.0 + b * shift) * np.cos(y / 120.0)
                     for b in range(bands)]).astype(np.float32)


def _pair(make_raster, hr_pixel: float, hr_size: int):
    """An LRHSI of 12 x 12 30 m pixels and an HRMSI of `hr_size`^2 `hr_pixel` m pixels over the same ground."""
    lr = make_raster(data=_field(12, len(HSI_NM), 0.3), wavelengths_nm=HSI_NM,
                     geotransform=(X0, 30.0, 0.0, Y0, 0.0, -30.0), name="lr.tif")
    hr = make_raster(data=_field(hr_size, len(MSI_NM)), wavelengths_nm=MSI_NM,
                     geotransform=(X0, hr_pixel, 0.0, Y0, 0.0, -hr_pixel), name="hr.tif")
    return lr, hr


@pytest.mark.parametrize(("hr_pixel", "hr_size", "scale", "expected"),
                         [(20.0, 18, None, 2), (20.0, 18, 3, 3), (3.6, 100, None, 8)])
def test_align_to_grid_makes_a_non_integer_ratio_fusable(make_raster, tmp_path, hr_pixel, hr_size, scale, expected):
    lr, hr = _pair(make_raster, hr_pixel, hr_size)
    with pytest.raises(GridError, match=f"not in an integer ratio.*SCALE={nearest_scale(30.0 / hr_pixel)}"):
        check_coregistration(read_info(lr), read_info(hr))
    aligned = align_to_grid(lr, hr, tmp_path / "aligned.tif", scale, resampling="bilinear")
    grid = check_coregistration(read_info(lr), read_info(aligned))
    assert grid.scale == expected
    assert grid.hr_window.width == grid.hr_window.height == 12 * expected
    inner = slice(expected, -expected)  # away from the edges, where the warp has no source pixel beyond
    truth = _field(12 * expected, len(MSI_NM))
    np.testing.assert_allclose(read_raster(aligned)[:, inner, inner], truth[:, inner, inner], atol=0.01)
    fused = fuse_classic_raster(lr, aligned, tmp_path / "fused.tif", "gsa")
    info, values = read_info(fused), read_raster(fused)
    assert (info.width, info.band_count) == (12 * expected, len(HSI_NM))
    assert np.isfinite(values).all() and 0.05 < values.mean() < 0.35


def test_align_to_grid_refuses_a_scale_out_of_range(make_raster, tmp_path):
    lr, hr = _pair(make_raster, 20.0, 18)
    for scale in (1, 9):
        with pytest.raises(InputError, match=rf"integer from 2 to 8 .*got {scale}"):
            align_to_grid(lr, hr, tmp_path / "aligned.tif", scale)
