# SPDX-License-Identifier: GPL-2.0-or-later
"""Quality of a fused raster, from files: reference metrics (with a SAM error map) and the no-reference QNR.

The metrics (``core.metrics``) work on whole arrays, so the rasters are read whole: assessment is meant for
evaluation scenes and crops, not for whole mosaics (a 1000 x 1000 x 200 float32 scene takes 0.8 GB per image).
Pixels that are nodata in any input are left out: of the reference metrics' pixels and SSIM windows, and of the
QNR's windows (``core.metrics.qnr`` averages each quality index over the 11 x 11 windows that lie wholly on pixels
valid in the rasters it compares, at both resolutions).

Bad bands (``core.bands``: flagged bbl = 0, nodata everywhere or constant) are skipped: every metric is computed
over the bands good in every raster compared (a constant reference band would give an infinite PSNR, a band the
fusion wrote as nodata nothing at all), a pixel is valid when it is valid in those bands, and the result names the
bands skipped and why.
"""
from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .bands import describe_bands, merge_screens, screen_bands
from .errors import InputError
from .grid import check_coregistration
from .metrics import qnr, reference_metrics, sam_map
from .outputs import check_output_path
from .raster import RasterInfo, RasterReader, RasterWriter, read_info
from .window import Window

log = logging.getLogger(__name__)

#: Units of the reference metrics, for tables and reports.
UNITS = {"PSNR": "dB", "SSIM": "", "SAM": "degrees", "ERGAS": "", "RMSE": "data units / data range",
         "D_lambda": "", "D_s": "", "QNR": ""}


@dataclass(frozen=True)
class Assessment:
    """Reference metrics of one fused raster: ``metrics`` (PSNR dB, SSIM, SAM degrees, ERGAS, RMSE on data
    divided by ``data_range``), the number of valid pixels, and the SAM map file when one was written.

    ``skipped_bands``: ``(band, why)`` of every band left out (1-based, as GIS software numbers them), and
    ``skipped``: the same as one line (``core.bands.describe_bands``, "0 of 5 bands" when none was).
    """

    metrics: dict
    data_range: float
    valid_pixels: int
    sam_map: Path | None
    skipped_bands: tuple[tuple[int, str], ...] = ()
    skipped: str = ""


class NoReferenceAssessment(dict):
    """``{'D_lambda', 'D_s', 'QNR'}`` (a dict like ``core.metrics.qnr``'s) and the bands left out of them:
    ``skipped_bands`` (hyperspectral bands of the fused raster and the LRHSI) and ``skipped_msi_bands`` (bands
    of the HRMSI), each ``(band, why)`` 1-based, and ``skipped``, one line naming both (empty when none was)."""

    def __init__(self, indices: dict, skipped_bands: tuple[tuple[int, str], ...] = (),
                 skipped_msi_bands: tuple[tuple[int, str], ...] = (), skipped: str = "") -> None:
        super().__init__(indices)
        self.skipped_bands, self.skipped_msi_bands, self.skipped = skipped_bands, skipped_msi_bands, skipped


def _skipped(reasons: Sequence[str | None]) -> tuple[tuple[int, str], ...]:
    return tuple((band + 1, reason) for band, reason in enumerate(reasons) if reason is not None)


def _good(reasons: Sequence[str | None], wavelengths_nm: Sequence[float] | None, inputs: str) -> list[int]:
    """0-based bands good everywhere; InputError with the fix when there is none."""
    good = [band for band, reason in enumerate(reasons) if reason is None]
    if not good:
        raise InputError(f"No band is good in all of {inputs} ({describe_bands(reasons, wavelengths_nm)}); nothing "
                         "to assess. Check the rasters' nodata values and bad band lists (bbl), or assess rasters "
                         "that share good bands.")
    return good


def assess_reference(fused_path: str | os.PathLike, reference_path: str | os.PathLike, scale: int, *,
                     data_range: float | None = None, sam_map_path: str | os.PathLike | None = None) -> Assessment:
    """PSNR, SSIM, SAM, ERGAS and RMSE of a fused raster against a reference raster with the same bands, over the
    fused raster's extent: the reference has its size, or covers it on the same grid (a simulation crops the
    reference to a multiple of the scale, so its fusion is a few pixels smaller).

    Both are divided by ``data_range`` (default: the reference's largest valid value) so the metrics see data on
    [0, 1]; ``scale`` (the LR/HR resolution ratio) enters ERGAS only. With ``sam_map_path`` the per-pixel
    spectral angle (degrees, float32, NaN where a pixel is nodata) is written there on the fused raster's grid.
    Bands bad in either raster are skipped (``Assessment.skipped_bands``); the metrics, the data range and the
    SAM map use the other bands.
    """
    sam_out = None if sam_map_path is None else check_output_path(sam_map_path, (fused_path, reference_path))
    with RasterReader(fused_path) as fused_reader, RasterReader(reference_path) as ref_reader:
        f_info, r_info = fused_reader.info, ref_reader.info
        r_window = _covered_window(f_info, r_info)
        wavelengths = r_info.wavelengths_nm or f_info.wavelengths_nm
        reasons = merge_screens((screen_bands(fused_reader), screen_bands(ref_reader, r_window)),
                                ("the fused raster", "the reference")).reasons
        good = _good(reasons, wavelengths, f"the fused raster {f_info.path} and the reference {r_info.path}")
        fused, fused_valid = fused_reader.read_valid(f_info.window, good)
        ref, ref_valid = ref_reader.read_valid(r_window, good)
    skipped = describe_bands(reasons, wavelengths)
    if len(good) < len(reasons):
        log.warning("Assessing %s against %s over %d of %d bands; skipped %s", f_info.path, r_info.path, len(good),
                    len(reasons), skipped)
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
    return Assessment(metrics, span, int(valid.sum()), sam_out, _skipped(reasons), skipped)


def _covered_window(fused: RasterInfo, reference: RasterInfo) -> Window:
    """The window of ``reference`` under ``fused``: all of it when the sizes agree, else the part a fused raster on
    the reference's grid (same pixel size, origin on a pixel corner) covers; InputError otherwise."""
    same_bands = fused.band_count == reference.band_count
    if same_bands and (fused.width, fused.height) == (reference.width, reference.height):
        return reference.window
    f_gt, r_gt = fused.geotransform, reference.geotransform
    col, row = (f_gt[0] - r_gt[0]) / r_gt[1], (f_gt[3] - r_gt[3]) / r_gt[5]
    same_pixels = all(math.isclose(f_gt[k], r_gt[k], rel_tol=1e-9) for k in (1, 2, 4, 5))
    inside = same_pixels and abs(col - round(col)) < 1e-6 and abs(row - round(row)) < 1e-6 and \
        0 <= round(col) and 0 <= round(row) and round(col) + fused.width <= reference.width and \
        round(row) + fused.height <= reference.height
    if not (same_bands and inside):
        raise InputError(
            f"The fused raster {fused.path} ({fused.band_count} bands, {fused.width} x {fused.height} pixels) and the "
            f"reference {reference.path} ({reference.band_count} bands, {reference.width} x {reference.height}) "
            "must have the same bands, and the reference must cover the fused raster on the same grid; compare the "
            "fusion of a simulated pair with the reference it was simulated from.")
    return Window(round(col), round(row), fused.width, fused.height)


def assess_no_reference(fused_path: str | os.PathLike, lrhsi_path: str | os.PathLike,
                        hrmsi_path: str | os.PathLike, area: Window | None = None) -> NoReferenceAssessment:
    """``{'D_lambda', 'D_s', 'QNR'}`` of a fused raster made from an LRHSI and an HRMSI (``core.metrics.qnr``).

    The fused raster must cover the pixels the pair shares (what ``fuse`` writes): the HRMSI's part of the
    fusion grid, and as many bands as the LRHSI. Hyperspectral bands bad in the fused raster or the LRHSI, and
    bad HRMSI bands, are skipped (named by the result's ``skipped_bands``, ``skipped_msi_bands`` and ``skipped``).
    Nodata pixels of each raster (in any band kept) are left out: only windows lying wholly on valid pixels enter
    the indices, and InputError says so when a raster has no 11 x 11 block of valid pixels.

    ``area``: a window of the fused raster's pixels, whole LR pixels (its offsets and sizes multiples of the
    scale), to assess alone (e.g. a fit's validation strip, its card's ``validation_strip``); None: the whole.
    """
    lr_info, hr_info = read_info(lrhsi_path), read_info(hrmsi_path)
    grid = check_coregistration(lr_info, hr_info)
    out_area = grid.output_region(area)
    if area is not None and any(v % grid.scale for v in out_area):
        raise InputError(f"The area {tuple(out_area)} (col, row, width, height) to assess is not made of whole LR "
                         f"pixels: give offsets and sizes that are multiples of the scale {grid.scale}.")
    lr_area, hr_area = out_area.covering(grid.scale).within(grid.lr_window), out_area.within(grid.hr_window)
    with RasterReader(fused_path) as fused_reader, RasterReader(lr_info.path) as lr_reader, \
            RasterReader(hr_info.path) as hr_reader:
        f_info = fused_reader.info
        size = (grid.hr_window.width, grid.hr_window.height)
        if (f_info.width, f_info.height) != size or f_info.band_count != lr_info.band_count:
            raise InputError(
                f"The fused raster {f_info.path} ({f_info.band_count} bands, {f_info.width} x {f_info.height} "
                f"pixels) is not the fusion of this pair, which gives {lr_info.band_count} bands on {size[0]} x "
                f"{size[1]} pixels; give the LRHSI and HRMSI it was fused from.")
        wavelengths = lr_info.wavelengths_nm or f_info.wavelengths_nm
        reasons = merge_screens((screen_bands(fused_reader, out_area), screen_bands(lr_reader, lr_area)),
                                ("the fused raster", "the LRHSI")).reasons
        msi_reasons = merge_screens((screen_bands(hr_reader, hr_area),), ("the HRMSI",)).reasons
        good = _good(reasons, wavelengths, f"the fused raster {f_info.path} and the LRHSI {lr_info.path}")
        msi_good = [band for band, reason in enumerate(msi_reasons) if reason is None]  # screen_bands: not empty
        fused, fused_valid = _some_valid(*fused_reader.read_valid(out_area, good), f_info.path)
        lr, lr_valid = _some_valid(*lr_reader.read_valid(lr_area, good), lr_info.path)
        hr, hr_valid = _some_valid(*hr_reader.read_valid(hr_area, msi_good), hr_info.path)
    parts = []
    if len(good) < len(reasons):
        parts.append(f"hyperspectral {describe_bands(reasons, wavelengths)}")
    if len(msi_good) < len(msi_reasons):
        parts.append(f"HRMSI {describe_bands(msi_reasons, hr_info.wavelengths_nm)}")
    skipped = "; ".join(parts)
    if skipped:
        log.warning("QNR of %s skips %s", f_info.path, skipped)
    indices = qnr(fused, lr, hr, grid.scale, mask=fused_valid, lr_mask=lr_valid, hr_mask=hr_valid)
    return NoReferenceAssessment(indices, _skipped(reasons), _skipped(msi_reasons), skipped)


def _some_valid(data: np.ndarray, valid: np.ndarray, path: str) -> tuple[np.ndarray, np.ndarray]:
    """``data`` and ``valid`` as given; InputError if no pixel is valid."""
    if not valid.any():
        raise InputError(f"{path} holds no valid pixel in the area the pair shares; nothing to assess.")
    return data, valid
