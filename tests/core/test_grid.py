# SPDX-License-Identifier: GPL-2.0-or-later
"""core.grid: which LRHSI/HRMSI pairs are co-registered for fusion, the common window, and the errors."""
from __future__ import annotations

import pytest
from osgeo import osr

from cofusion.core.errors import GridError
from cofusion.core.grid import FusionGrid, check_coregistration
from cofusion.core.raster import PIXEL_GEOTRANSFORM, RasterInfo, read_info
from cofusion.core.window import Window

X0, Y0 = 500000.0, 5000000.0


def _wkt(epsg: int | None = 32632, wkt2: bool = False) -> str:
    if epsg is None:
        return ""
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    return srs.ExportToWkt(["FORMAT=WKT2_2018"] if wkt2 else [])


def _info(width: int, height: int, geotransform, crs_wkt: str | None = None, path: str = "x.tif") -> RasterInfo:
    return RasterInfo(path=path, width=width, height=height, band_count=1, geotransform=tuple(geotransform),
                      crs_wkt=_wkt() if crs_wkt is None else crs_wkt, dtype="float32", nodata=(None,),
                      wavelengths_nm=None, fwhm_nm=None, band_names=("band 1",))


def _lr(width=10, height=8, x0=X0, y0=Y0, pixel=30.0, **kwargs) -> RasterInfo:
    return _info(width, height, (x0, pixel, 0.0, y0, 0.0, -pixel), path="lr.tif", **kwargs)


def _hr(width=30, height=24, x0=X0, y0=Y0, pixel=10.0, **kwargs) -> RasterInfo:
    return _info(width, height, (x0, pixel, 0.0, y0, 0.0, -pixel), path="hr.tif", **kwargs)


# ------------------------------------------------------------------------------------------------ valid pairs


def test_identical_extents_use_everything():
    grid = check_coregistration(_lr(), _hr())
    assert grid == FusionGrid(3, Window(0, 0, 10, 8), Window(0, 0, 30, 24), (X0, 10.0, 0.0, Y0, 0.0, -10.0),
                              _wkt())


def test_hr_covering_more_than_the_lr():
    # HRMSI starts 2 LR pixels (6 HR pixels) left of and 1 LR pixel above the LRHSI and extends beyond it
    hr = _hr(width=60, height=50, x0=X0 - 60.0, y0=Y0 + 30.0)
    grid = check_coregistration(_lr(), hr)
    assert grid.scale == 3
    assert grid.lr_window == Window(0, 0, 10, 8)
    assert grid.hr_window == Window(6, 3, 30, 24)
    assert grid.geotransform == (X0, 10.0, 0.0, Y0, 0.0, -10.0)


def test_lr_covering_more_than_the_hr():
    # HRMSI covers LR pixels cols 2..5, rows 3..6 exactly
    hr = _hr(width=12, height=12, x0=X0 + 60.0, y0=Y0 - 90.0)
    grid = check_coregistration(_lr(), hr)
    assert grid.lr_window == Window(2, 3, 4, 4)
    assert grid.hr_window == Window(0, 0, 12, 12)
    assert grid.geotransform == (X0 + 60.0, 10.0, 0.0, Y0 - 90.0, 0.0, -10.0)


def test_offset_origin_is_snapped_inward_to_whole_lr_pixels():
    # HRMSI starts 1 HR pixel into LR column 1 and 2 HR pixels into LR row 2; it ends inside LR column 8
    hr = _hr(width=25, height=19, x0=X0 + 40.0, y0=Y0 - 80.0)
    grid = check_coregistration(_lr(), hr)
    # columns: HR spans LR-frame [4, 29) -> snapped [6, 27) -> LR cols 2..8, HR cols 2..22
    # rows: HR spans [8, 27) -> snapped [9, 24) (the LRHSI ends at 24) -> LR rows 3..7, HR rows 1..15
    assert grid.lr_window == Window(2, 3, 7, 5)
    assert grid.hr_window == Window(2, 1, 21, 15)
    assert grid.geotransform == (X0 + 60.0, 10.0, 0.0, Y0 - 90.0, 0.0, -10.0)


def test_float_noise_within_the_tolerance_is_accepted():
    hr = _hr(pixel=10.0000004, x0=X0 + 1e-4, y0=Y0 - 1e-4)
    grid = check_coregistration(_lr(), hr)
    assert grid.scale == 3 and grid.lr_window == Window(0, 0, 10, 8)


def test_the_same_crs_written_differently_is_the_same():
    grid = check_coregistration(_lr(crs_wkt=_wkt()), _hr(crs_wkt=_wkt(wkt2=True)))
    assert grid.scale == 3


def test_rasters_without_crs_are_lab_data():
    grid = check_coregistration(_lr(crs_wkt=""), _hr(crs_wkt="", width=33))
    assert grid.crs_wkt == "" and grid.lr_window == Window(0, 0, 10, 8) and grid.hr_window.width == 30


def test_pixel_grids_without_any_georeference_take_the_scale_from_the_sizes():
    lr = _info(16, 16, PIXEL_GEOTRANSFORM, crs_wkt="")
    hr = _info(64, 65, PIXEL_GEOTRANSFORM, crs_wkt="")  # one HR row too many: not part of any LR pixel
    grid = check_coregistration(lr, hr, tolerance=0.1)
    assert grid == FusionGrid(4, Window(0, 0, 16, 16), Window(0, 0, 64, 64), PIXEL_GEOTRANSFORM, "")


def test_south_up_pixel_grids_with_a_scaled_lr_geotransform():
    lr = _info(8, 8, (0.0, 4.0, 0.0, 0.0, 0.0, 4.0), crs_wkt="")
    hr = _info(32, 32, PIXEL_GEOTRANSFORM, crs_wkt="")
    grid = check_coregistration(lr, hr)
    assert grid.scale == 4 and grid.hr_window == Window(0, 0, 32, 32)


def test_real_files_with_a_real_crs(make_raster):
    lr = read_info(make_raster(4, 6, 6, geotransform=(X0, 20.0, 0.0, Y0, 0.0, -20.0)))
    hr = read_info(make_raster(2, 24, 24, geotransform=(X0, 5.0, 0.0, Y0, 0.0, -5.0)))
    grid = check_coregistration(lr, hr)
    assert grid.scale == 4 and grid.hr_window == Window(0, 0, 24, 24)


# ----------------------------------------------------------------------------------------------------- errors


def test_different_crs():
    with pytest.raises(GridError, match=r"CRS differ.*UTM zone 32N.*EPSG:32632.*UTM zone 33N.*gdalwarp -t_srs "
                                        r"EPSG:32632"):
        check_coregistration(_lr(), _hr(crs_wkt=_wkt(32633)))


@pytest.mark.parametrize(("lr_crs", "hr_crs", "message"), [(None, "", "LRHSI has a CRS but the HRMSI has none"),
                                                            ("", None, "HRMSI has a CRS but the LRHSI has none")])
def test_one_crs_missing(lr_crs, hr_crs, message):
    with pytest.raises(GridError, match=message):
        check_coregistration(_lr(crs_wkt=lr_crs), _hr(crs_wkt=hr_crs))


def test_rotated_grid():
    hr = _info(30, 24, (X0, 10.0, 0.5, Y0, 0.5, -10.0), path="hr.tif")
    with pytest.raises(GridError, match=r"HRMSI grid is not north-up.*0\.5, 0\.5"):
        check_coregistration(_lr(), hr)


def test_non_integer_pixel_ratio_names_the_sizes_and_a_fix():
    with pytest.raises(GridError, match=r"not in an integer ratio: LRHSI pixels 30 x 30, HRMSI pixels 8 x 8 "
                                        r"\(ratio 3\.75 x 3\.75\)\. Resample the HRMSI onto the LRHSI grid refined "
                                        r"by 4 \(7\.5 x 7\.5 pixels\) with cofusion:align_to_grid \(SCALE=4\) or "
                                        r"gdalwarp -t_srs EPSG:32632 -tr 7\.5 7\.5 -te 500000 4999760 500300 5000000 "
                                        r"-r cubic hr\.tif hrmsi_aligned\.tif\.$"):
        check_coregistration(_lr(), _hr(pixel=8.0))


def test_different_ratio_in_x_and_y():
    hr = _info(30, 48, (X0, 10.0, 0.0, Y0, 0.0, -5.0), path="hr.tif")
    with pytest.raises(GridError, match=r"differs in x and y.*ratio 3 x 6"):
        check_coregistration(_lr(), hr)


def test_same_pixel_size_is_not_a_fusion():
    with pytest.raises(GridError, match="not finer than the LRHSI.*integer from 2 to 8"):
        check_coregistration(_lr(), _hr(pixel=30.0, width=10, height=8))


def test_swapped_inputs():
    with pytest.raises(GridError, match="larger pixels than the LRHSI.*swap"):
        check_coregistration(_hr(), _lr())


def test_flipped_grid():
    hr = _info(30, 24, (X0, 10.0, 0.0, Y0 - 240.0, 0.0, 10.0), path="hr.tif")
    with pytest.raises(GridError, match="flipped"):
        check_coregistration(_lr(), hr)


def test_misaligned_origin_names_the_shift():
    with pytest.raises(GridError, match=r"not aligned.*0\.5, 0 HR pixels.*gdalwarp"):
        check_coregistration(_lr(), _hr(x0=X0 + 5.0))
    with pytest.raises(GridError, match=r"not aligned.*-0\.02"):
        check_coregistration(_lr(), _hr(y0=Y0 + 0.2), tolerance=0.01)
    assert check_coregistration(_lr(), _hr(y0=Y0 + 0.2), tolerance=0.05).lr_window == Window(0, 0, 10, 8)


def test_disjoint_extents():
    with pytest.raises(GridError, match="do not share a whole LR pixel"):
        check_coregistration(_lr(), _hr(x0=X0 + 300.0))


def test_overlap_smaller_than_one_lr_pixel():
    # the HRMSI covers only 2 HR columns of LR column 9 (the LRHSI's last): less than one LR pixel
    with pytest.raises(GridError, match="do not share a whole LR pixel"):
        check_coregistration(_lr(), _hr(x0=X0 + 280.0))


def test_pixel_grids_with_a_non_integer_size_ratio():
    lr = _info(16, 16, PIXEL_GEOTRANSFORM, crs_wkt="")
    hr = _info(50, 50, PIXEL_GEOTRANSFORM, crs_wkt="")
    with pytest.raises(GridError, match=r"ratio of their sizes.*3\.125.*gdal_translate -srcwin 0 0 48 48"):
        check_coregistration(lr, hr)
