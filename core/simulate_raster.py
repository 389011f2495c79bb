# SPDX-License-Identifier: GPL-2.0-or-later
"""Wald's protocol (``core.degrade.simulate``) on a reference raster, streamed in blocks: an (LRHSI, HRMSI) pair
of GeoTIFFs.

The reference is walked in blocks of LR pixels read with a margin that covers the blur kernel (``core.block_walk``),
so the result equals a whole-raster simulation. The reference is cropped at its right and bottom edges to a
multiple of the scale. Outputs: the LRHSI on the reference grid coarsened ``scale`` times (same origin, pixels
``scale`` times larger, the reference's wavelengths), and the HRMSI on the reference grid with one band per MSI
band (named after it, at its response-weighted centre wavelength). An LR pixel is nodata when a reference pixel
under it is; an HRMSI pixel when its reference pixel is. Both outputs are float32 in the reference's physical units
(its band scale and offset applied on reading, e.g. reflectance for an EnMAP Int16 x 10000 file with scale 0.0001),
written without scale or offset, with the reference's nodata value (``core.raster.output_nodata``).

Bad bands of the reference (``core.bands``: flagged bbl = 0, nodata everywhere or constant over the area simulated)
hold no signal: the LRHSI keeps every band, the bad ones written as nodata with ``bbl`` = 0 so band numbers match
the reference's, and the HRMSI is simulated from the good bands only (the response matrix's bad columns zeroed and
each row renormalised, :func:`good_band_matrix`). A pixel is nodata where a *good* band is nodata.
"""
from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import numpy as np

from .bands import BandView, plan_good_bands, screen_bands
from .block_walk import coarse_valid, fill_invalid, plan_blocks, walk
from .degrade import _check_scale, blur_kernel, simulate
from .errors import InputError, OutputError
from .outputs import check_output_path
from .progress import Cancel, Progress
from .raster import RasterReader, RasterWriter, output_nodata
from .srf import SpectralResponse, parse_srf
from .window import Window

log = logging.getLogger(__name__)

#: Edge of a block in LR pixels.
SIMULATE_BLOCK = 256
def centre_wavelengths(response: SpectralResponse) -> tuple[float, ...]:
    """The response-weighted mean wavelength (nm) of every MSI band."""
    weights = response.responses
    return tuple(float(v) for v in (weights @ response.wavelengths_nm) / weights.sum(axis=1))


def simulate_raster(reference_path: str | os.PathLike, srf: str | SpectralResponse, scale: int,
                    lrhsi_path: str | os.PathLike, hrmsi_path: str | os.PathLike, *, block: int = SIMULATE_BLOCK,
                    progress: Progress | None = None, cancel: Cancel | None = None) -> tuple[Path, Path]:
    """Simulate the LRHSI and the HRMSI of a high-resolution hyperspectral reference raster.

    ``srf``: the MSI response, a preset ('sentinel2a:B2,B3,B4,B8'), a CSV path or a SpectralResponse; it is
    sampled at the reference's wavelengths (its band metadata must give them). Bad bands of the reference are
    written as nodata in the LRHSI (``bbl`` = 0) and left out of the HRMSI's response (sampled at the good bands
    only, so a response over bad bands is refused as one over a gap in the coverage: ``SpectralResponse.matrix``).
    Returns the two output paths. Raises InputError / OutputError with the fix, Canceled when ``cancel()``
    returns True (no file is left).
    """
    s = _check_scale(scale)
    lr_out = check_output_path(lrhsi_path, (reference_path,))
    hr_out = check_output_path(hrmsi_path, (reference_path,))
    if lr_out == hr_out:
        raise OutputError(f"{lr_out} is given for both outputs; give the LRHSI and the HRMSI different names.")
    with RasterReader(reference_path) as reader:
        info = reader.info
        if info.wavelengths_nm is None:
            raise InputError(f"{info.path} carries no band wavelengths, so the MSI response cannot be sampled at "
                             "its bands; add 'wavelength' band metadata (nm) to the file.")
        response = srf if isinstance(srf, SpectralResponse) else parse_srf(srf)
        lr_width, lr_height = info.width // s, info.height // s
        if lr_width < 1 or lr_height < 1:
            raise InputError(f"{info.path} ({info.width} x {info.height} pixels) is smaller than one LR pixel of "
                             f"scale {s}.")
        screen = screen_bands(reader, Window(0, 0, lr_width * s, lr_height * s), cancel=cancel)
        good = BandView(reader, plan_good_bands(screen, info.wavelengths_nm))
        bands = good.plan
        matrix = response.matrix(good.info.wavelengths_nm, good.info.fwhm_nm).astype(np.float32)
        if (lr_width * s, lr_height * s) != (info.width, info.height):
            log.warning("%s: cropped to %d x %d pixels, a multiple of the scale %d", info.path, lr_width * s,
                        lr_height * s, s)
        margin = math.ceil((len(blur_kernel(s)) - s) / 2 / s)
        x0, dx, rx, y0, ry, dy = info.geotransform
        nodata = output_nodata(info)
        with RasterWriter(lr_out, width=lr_width, height=lr_height, band_count=info.band_count,
                          geotransform=(x0, dx * s, rx * s, y0, ry * s, dy * s), crs_wkt=info.crs_wkt,
                          nodata=nodata, wavelengths_nm=info.wavelengths_nm, fwhm_nm=info.fwhm_nm,
                          band_names=info.band_names, bbl=bands.bbl) as lr_writer, RasterWriter(
                hr_out, width=lr_width * s, height=lr_height * s, band_count=len(response.band_names),
                geotransform=info.geotransform, crs_wkt=info.crs_wkt, nodata=nodata,
                wavelengths_nm=centre_wavelengths(response), band_names=response.band_names,
                cancel=cancel) as hr_writer:
            for blk in walk(plan_blocks(lr_width, lr_height, block, margin), "simulation", progress, cancel):
                data, valid = good.read_valid(blk.read.scaled(s))
                rows, cols = blk.inner(s)
                lr_rows, lr_cols = blk.inner()
                lr_valid = coarse_valid(valid, s)
                if valid.any():
                    fill_invalid(data, valid)
                lr, hr = simulate(data, matrix, s)
                lr, hr = lr[:, lr_rows, lr_cols], hr[:, rows, cols]
                lr[:, ~lr_valid[lr_rows, lr_cols]] = nodata
                hr[:, ~valid[rows, cols]] = nodata
                lr_writer.write(bands.expand(lr, nodata), blk.keep.col, blk.keep.row)
                hr_writer.write(hr, blk.keep.col * s, blk.keep.row * s)
    if screen.bad:
        log.info("%s: bands written as nodata (bbl = 0) and left out of the HRMSI %s: %s", lr_out, hr_out,
                 bands.describe(info.wavelengths_nm))
    return lr_out, hr_out
