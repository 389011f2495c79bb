# SPDX-License-Identifier: GPL-2.0-or-later
"""Quality of a fused raster, from files: reference metrics (with a SAM error map) and the no-reference QNR.

The metrics (``core.metrics``) work on whole arrays, so the rasters are read whole: assessment is meant for
evaluation scenes and crops, not for whole mosaics (a 1000 x 1000 x 200 float32 scene takes 0.8 GB per image).
Pixels that are nodata in any input are left out (reference metrics) or filled with the band means (QNR, whose
windowed statistics need a full image).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .blocks import fill_invalid
from .errors import InputError
from .grid import check_coregistration
from .metrics import qnr, reference_metrics, sam_map
from .raster import RasterReader, RasterWriter, check_output_path, read_info

#: Units of the reference metrics, for tables and reports.
UNITS = {"PSNR": "dB", "SSIM": "", "SAM": "degrees", "ERGAS": "", "RMSE": "data units / data range",
         "D_lambda": "", "D_s": "", "QNR": ""}


@dataclass(frozen=True)
class Assessment:
    """Reference metrics of one fused raster: ``metrics`` (PSNR dB, SSIM, SAM degrees, ERGAS, RMSE on data
    divided by ``data_range``), the number of valid pixels, and the SAM map file when one was written."""

    metrics: dict
    data_range: float
    valid_pixels: int
    sam_map: Path | None


def assess_reference(fused_path: str | os.PathLike, reference_path: str | os.PathLike, scale: int, *,
                     data_range: float | None = None, sam_map_path: str | os.PathLike | None = None) -> Assessment:
    """PSNR, SSIM, SAM, ERGAS and RMSE of a fused raster against a reference raster of the same size and bands.

    Both are divided by ``data_range`` (default: the reference's largest valid value) so the metrics see data on
    [0, 1]; ``scale`` (the LR/HR resolution ratio) enters ERGAS only. With ``sam_map_path`` the per-pixel
    spectral angle (degrees, float32, NaN where a pixel is nodata) is written there on the fused raster's grid.
    """
    sam_out = None if sam_map_path is None else check_output_path(sam_map_path, (fused_path, reference_path))
    with RasterReader(fused_path) as fused_reader, RasterReader(reference_path) as ref_reader:
        f_info, r_info = fused_reader.info, ref_reader.info
        if (f_info.band_count, f_info.height, f_info.width) != (r_info.band_count, r_info.height, r_info.width):
            raise InputError(
                f"The fused raster {f_info.path} ({f_info.band_count} bands, {f_info.width} x {f_info.height} "
                f"pixels) and the reference {r_info.path} ({r_info.band_count} bands, {r_info.width} x "
                f"{r_info.height}) must have the same bands and size; compare the fusion of a simulated pair "
                "with the reference it was simulated from.")
        fused, fused_valid = fused_reader.read_valid(f_info.window)
        ref, ref_valid = ref_reader.read_valid(r_info.window)
    valid = fused_valid & ref_valid
    if not valid.any():
        raise InputError(f"No pixel is valid in both {f_info.path} and {r_info.path}; nothing to assess.")
    span = float(ref[:, valid].max()) if data_range is None else float(data_range)
    if not span > 0:
        raise InputError(f"The data range must be positive (the reference's largest value is {span}); give the "
                         "data range of the reference (e.g. 10000 for reflectance scaled by 10000).")
    ref, fused = ref / span, fused / span
    ref[:, ~valid] = 0.0
    fused[:, ~valid] = 0.0
    mask = None if valid.all() else valid
    metrics = reference_metrics(ref, fused, scale, mask)
    if sam_out is not None:
        angles = sam_map(ref, fused).astype(np.float32)
        angles[~valid] = np.nan
        with RasterWriter(sam_out, width=f_info.width, height=f_info.height, band_count=1,
                          geotransform=f_info.geotransform, crs_wkt=f_info.crs_wkt, nodata=math.nan,
                          band_names=("spectral angle (degrees)",)) as writer:
            writer.write(angles[None], 0, 0)
    return Assessment(metrics, span, int(valid.sum()), sam_out)


def assess_no_reference(fused_path: str | os.PathLike, lrhsi_path: str | os.PathLike,
                        hrmsi_path: str | os.PathLike) -> dict:
    """``{'D_lambda', 'D_s', 'QNR'}`` of a fused raster made from an LRHSI and an HRMSI (``core.metrics.qnr``).

    The fused raster must cover the pixels the pair shares (what ``fuse`` writes): the HRMSI's part of the
    fusion grid, and as many bands as the LRHSI.
    """
    lr_info, hr_info = read_info(lrhsi_path), read_info(hrmsi_path)
    grid = check_coregistration(lr_info, hr_info)
    with RasterReader(fused_path) as reader:
        f_info = reader.info
        size = (grid.hr_window.width, grid.hr_window.height)
        if (f_info.width, f_info.height) != size or f_info.band_count != lr_info.band_count:
            raise InputError(
                f"The fused raster {f_info.path} ({f_info.band_count} bands, {f_info.width} x {f_info.height} "
                f"pixels) is not the fusion of this pair, which gives {lr_info.band_count} bands on {size[0]} x "
                f"{size[1]} pixels; give the LRHSI and HRMSI it was fused from.")
        fused = _filled(*reader.read_valid(f_info.window))
    with RasterReader(lr_info.path) as reader:
        lr = _filled(*reader.read_valid(grid.lr_window))
    with RasterReader(hr_info.path) as reader:
        hr = _filled(*reader.read_valid(grid.hr_window))
    return qnr(fused, lr, hr, grid.scale)


def _filled(data: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``(C, H, W)`` with invalid pixels set to the band means of the valid ones; InputError if none is valid."""
    if not valid.any():
        raise InputError("A raster of the assessment holds no valid pixel in the area the pair shares.")
    fill_invalid(data, valid)
    return data
