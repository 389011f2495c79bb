# SPDX-License-Identifier: GPL-2.0-or-later
"""Classical fusion (``core.classic``) of two rasters, streamed in blocks: the baselines on scenes of any size.

The methods work on arrays, so the output is walked in blocks of ``block`` x ``block`` LR pixels, each read with
a margin of ``margin`` LR pixels (``core.block_walk``): the bicubic kernel and the sensor blur reach less than 3 LR
pixels, so with the default margin of 4 only the fitted regression weights (GSA's intensities and gains, the
synthetic pans of SFIM and MTF-GLP-HPM) differ from a whole-raster run: they are fitted per block, i.e. locally
adaptive. A scene of at most one block (256 x 256 LR pixels by default) is fused exactly as a whole.

An area of the output grid (``region``, HR pixels) is fused into its own file: its blocks cover the LR pixels
under it and read their margins from the rest of the pair, so its pixels equal those of a whole run when the
scene is one block, and are fitted on the blocks under the area otherwise.

Nodata: an output pixel is nodata when its HR pixel or the LR pixel covering it is nodata in a good band (as in
``core.fuse``); nodata input pixels are replaced by their block's band means before the method runs. Bad bands
of the LRHSI (``core.bands``) are left out of every fit and written as nodata with ``bbl`` = 0.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .band_support import fusion_support
from .bands import BandView, plan_good_bands, screen_bands
from .block_walk import fill_invalid, plan_blocks, walk
from .classic import METHODS
from .errors import InputError
from .grid import check_inputs
from .producer import method_producer
from .progress import Cancel, Progress
from .raster import RasterReader, RasterWriter, output_nodata
from .srf import SpectralResponse
from .window import Window

#: Edge of a block in LR pixels, and the margin each block reads around it.
CLASSIC_BLOCK = 256
CLASSIC_MARGIN = 16  # LR pixels: llr reaches 8 (two 5 x 5 windows, the blur, bicubic), blend 8 more (2 x 4)


def fuse_classic_raster(lrhsi_path: str | os.PathLike, hrmsi_path: str | os.PathLike, out_path: str | os.PathLike,
                        method: str, *, srf: str | SpectralResponse | None = None, block: int = CLASSIC_BLOCK,
                        margin: int = CLASSIC_MARGIN, region: Window | None = None,
                        progress: Progress | None = None, cancel: Cancel | None = None) -> Path:
    """Fuse with the classical ``method`` (a key of ``core.classic.METHODS``) into a float32 GeoTIFF.

    The output has the fusion grid of ``core.grid.check_coregistration`` (the HRMSI's pixels both rasters
    cover), all the LRHSI's bands (bad ones nodata), wavelengths and names, ``core.raster.output_nodata``, and per
    band whether its detail is measured or extrapolated (``core.band_support.fusion_support``: by ``srf``, the
    HRMSI's response, a preset or CSV spec or a SpectralResponse; None: by the HRMSI's band metadata, else unmarked),
    and the method that made it (``core.producer``).
    Raises InputError, GridError, OutputError with the fix, Canceled when ``cancel()`` returns True; no output is
    left on error.
    """
    if method not in METHODS:
        raise InputError(f"Unknown classical fusion method {method!r}: choose one of {', '.join(METHODS)}.")
    lr_info, hr_info, grid, out = check_inputs(lrhsi_path, hrmsi_path, out_path)
    support = fusion_support(lr_info, hr_info, srf=srf)
    s, lr_area, hr_area = grid.scale, grid.lr_window, grid.hr_window
    region = grid.output_region(region)
    nodata = output_nodata(lr_info)
    blocks = plan_blocks(lr_area.width, lr_area.height, block, margin, area=region.covering(s))
    geotransform = grid.region_geotransform(region)
    with RasterReader(lrhsi_path) as lr_file, RasterReader(hrmsi_path) as hr_reader:
        bands = plan_good_bands(screen_bands(lr_file, lr_area, cancel=cancel), lr_info.wavelengths_nm)
        lr_reader = BandView(lr_file, bands)
        with RasterWriter(out, width=region.width, height=region.height, band_count=lr_info.band_count,
                          geotransform=geotransform, crs_wkt=grid.crs_wkt, nodata=nodata,
                          wavelengths_nm=lr_info.wavelengths_nm, fwhm_nm=lr_info.fwhm_nm,
                          band_names=lr_info.band_names, bbl=bands.bbl,
                          metadata={**support.dataset_metadata(), **method_producer(method).metadata()},
                          band_metadata=support.band_metadata(), cancel=cancel) as writer:
            for blk in walk(blocks, f"{method} fusion", progress, cancel):
                lr, lr_valid = lr_reader.read_valid(blk.read.within(lr_area))
                hr, hr_valid = hr_reader.read_valid(blk.read.scaled(s).within(hr_area))
                valid = hr_valid & lr_valid.repeat(s, 0).repeat(s, 1)
                rows, cols = blk.inner(s)
                result = np.full((bands.working_bands, blk.keep.height * s, blk.keep.width * s), nodata,
                                 np.float32)
                if valid[rows, cols].any():
                    fill_invalid(lr, lr_valid)
                    fill_invalid(hr, hr_valid)
                    fused = METHODS[method](lr, hr, s)[:, rows, cols]
                    keep = valid[rows, cols]
                    result[:, keep] = fused[:, keep]
                kept = blk.keep.scaled(s)
                inside = kept.intersection(region)
                rows, cols = slice(inside.row - kept.row, inside.row_end - kept.row), \
                    slice(inside.col - kept.col, inside.col_end - kept.col)
                writer.write(bands.expand(result[:, rows, cols], nodata), inside.col - region.col,
                             inside.row - region.row)
    return out
