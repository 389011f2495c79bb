# SPDX-License-Identifier: GPL-2.0-or-later
"""Warp an HRMSI onto the grid that refines an LRHSI's grid exactly, for inputs that are not co-registered.

The target grid has the LRHSI's CRS, its origin and extent, and pixels ``scale`` times smaller than the LRHSI's,
so every LRHSI pixel covers exactly ``scale`` x ``scale`` output pixels (what ``core.grid.check_coregistration``
requires): also for pixel sizes in no integer ratio (Sentinel-2's 20 m bands with a 30 m LRHSI: 1.5, refined
by 2 to 15 m; 3.6 m airborne imagery: 8.33, refined by 8 to 3.75 m). GDAL warps into an in-memory virtual raster
(in the HRMSI's data type, with its band scale and offset), which is copied into the GeoTIFF in blocks
(:func:`copy_block`: memory bounded by the block, never by the output's size) by ``RasterWriter`` (atomic, keeps
the HRMSI's band names, wavelengths and nodata). The output is float32 in the HRMSI's physical units (its scale
and offset applied, none written, as for every output of the plugin), and a pixel is nodata in every band when
any band of the warped HRMSI is nodata there.
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path

from osgeo import gdal, osr

from .block_walk import plan_blocks, walk
from .errors import GridError, InputError
from .grid import nearest_scale
from .outputs import check_output_path
from .progress import Cancel, Progress
from .raster import RasterReader, RasterWriter, read_info
from .scale import MAX_SCALE, MIN_SCALE

RESAMPLING = ("nearest", "bilinear", "cubic", "cubicspline", "lanczos", "average")
COPY_BLOCK = 1024
#: Values (pixels x bands) copied at a time, at most: 16 bands of COPY_BLOCK x COPY_BLOCK pixels (64 MB of float32,
#: plus their validity), so that an HRMSI with many bands does not need more memory per block.
COPY_VALUES = 16 * COPY_BLOCK ** 2


def copy_block(bands: int) -> int:
    """The edge (pixels) of the blocks the warped raster is copied in: COPY_BLOCK, halved down to 256 while a block
    of ``bands`` bands holds more than COPY_VALUES values."""
    side = COPY_BLOCK
    while side > 256 and side * side * bands > COPY_VALUES:
        side //= 2
    return side


def _same_crs(a: str, b: str) -> bool:
    if not a or not b:
        return a == b
    first, second = osr.SpatialReference(), osr.SpatialReference()
    return first.ImportFromWkt(a) == 0 and second.ImportFromWkt(b) == 0 and bool(first.IsSame(second))


def align_to_grid(lrhsi_path: str | os.PathLike, hrmsi_path: str | os.PathLike, out_path: str | os.PathLike,
                  scale: int | None = None, *, resampling: str = "cubic", progress: Progress | None = None,
                  cancel: Cancel | None = None) -> Path:
    """Warp the HRMSI onto the LRHSI's grid refined ``scale`` times; returns the output path.

    ``scale``: an integer from 2 to 8 (``core.scale``); None: the ratio of the pixel sizes (LRHSI / HRMSI) rounded
    into that range by ``core.grid.nearest_scale`` (both rasters must then share a CRS). ``resampling``: one of
    RESAMPLING. Raises InputError / GridError / OutputError with the fix, Canceled on ``cancel()``.
    """
    lr, hr = read_info(lrhsi_path), read_info(hrmsi_path)
    out = check_output_path(out_path, (lrhsi_path, hrmsi_path))
    if resampling not in RESAMPLING:
        raise InputError(f"Resampling {resampling!r} is not one of {', '.join(RESAMPLING)}.")
    if not lr.crs_wkt or lr.geotransform[2] or lr.geotransform[4]:
        raise GridError(f"The LRHSI {lr.path} needs a CRS and a north-up grid to align to; assign its CRS "
                        "(gdal_edit.py -a_srs EPSG:<code>) or warp it north-up first.")
    if scale is None:
        if not _same_crs(lr.crs_wkt, hr.crs_wkt):
            raise InputError("The rasters have different CRS, so the scale cannot be read off their pixel sizes; "
                             "give the scale (LRHSI pixel size / wanted HRMSI pixel size, e.g. 3 for 30 m and 10 m).")
        scale = nearest_scale(lr.pixel_size[0] / hr.pixel_size[0])
    if isinstance(scale, bool) or not isinstance(scale, int) or not MIN_SCALE <= scale <= MAX_SCALE:
        raise InputError(f"The scale must be an integer from {MIN_SCALE} to {MAX_SCALE} (LRHSI pixel size / aligned "
                         f"HRMSI pixel size, e.g. 3 for 30 m and 10 m); got {scale!r}.")
    x0, dx, _, y0, _, dy = lr.geotransform
    bounds = (min(x0, x0 + lr.width * dx), min(y0, y0 + lr.height * dy),
              max(x0, x0 + lr.width * dx), max(y0, y0 + lr.height * dy))
    vrt = f"/vsimem/cofusion_align_{uuid.uuid4().hex}.vrt"
    nodata = next((v for v in hr.nodata if v is not None), None)
    options = gdal.WarpOptions(format="VRT", dstSRS=lr.crs_wkt, outputBounds=bounds, xRes=abs(dx) / scale,
                               yRes=abs(dy) / scale, resampleAlg=resampling, srcNodata=nodata, dstNodata=nodata)
    if gdal.Warp(vrt, hr.path, options=options) is None:
        raise InputError(f"GDAL cannot warp {hr.path} onto the LRHSI grid: {gdal.GetLastErrorMsg()}.")
    try:
        with RasterReader(vrt) as reader, RasterWriter(
                out, width=reader.info.width, height=reader.info.height, band_count=hr.band_count,
                geotransform=reader.info.geotransform, crs_wkt=lr.crs_wkt, nodata=nodata,
                wavelengths_nm=hr.wavelengths_nm, fwhm_nm=hr.fwhm_nm, band_names=hr.band_names,
                cancel=cancel) as writer:
            blocks = plan_blocks(reader.info.width, reader.info.height, copy_block(hr.band_count), 0)
            for blk in walk(blocks, "warping", progress, cancel):
                data, valid = reader.read_valid(blk.keep)
                if nodata is not None:
                    data[:, ~valid] = nodata
                writer.write(data, blk.keep.col, blk.keep.row)
    finally:
        gdal.Unlink(vrt)
    return out
