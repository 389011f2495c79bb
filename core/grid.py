# SPDX-License-Identifier: GPL-2.0-or-later
"""Co-registration check of an LRHSI and an HRMSI: the grid a fusion writes, or a GridError saying why not.

The fusion needs the HRMSI grid to subdivide the LRHSI grid exactly: same CRS, north-up, an integer pixel
size ratio `scale` from 2 to 8 (`core.scale`) equal in x and y, and HRMSI pixel edges on LRHSI pixel edges.
Every error names the numbers that differ and how to fix them: resample the HRMSI onto the LRHSI grid refined
by an integer scale with cofusion:align_to_grid (`core.align.align_to_grid`) or gdalwarp.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from osgeo import osr

from .errors import GridError
from .outputs import check_output_path
from .raster import PIXEL_GEOTRANSFORM, GeoTransform, RasterInfo, read_info
from .scale import MAX_SCALE, MIN_SCALE
from .window import Window


@dataclass(frozen=True)
class FusionGrid:
    """Where a fusion reads and writes.

    `scale`: HR pixels per LR pixel along each axis. `lr_window` / `hr_window`: the common area in the
    LRHSI's and the HRMSI's pixels (`hr_window == lr_window` scaled by `scale`, offset by the grids' shift).
    `geotransform` / `crs_wkt`: the output grid, the HRMSI's grid with its origin at `hr_window`'s corner.
    """

    scale: int
    lr_window: Window
    hr_window: Window
    geotransform: GeoTransform
    crs_wkt: str

    def output_region(self, region: Window | None) -> Window:
        """``region`` (a window of the output grid, HR pixels) as a Window, the whole output grid when None;
        InputError unless it is a non-empty window inside the grid (``tiling.check_region``)."""
        from .tiling import check_region

        width, height = self.hr_window.width, self.hr_window.height
        area = Window(0, 0, width, height) if region is None else Window(*region)
        check_region(area, width, height)
        return area

    def region_geotransform(self, region: Window) -> GeoTransform:
        """The geotransform of the output file of ``region`` (a window of the output grid): its origin moved to the
        region's corner."""
        gt = self.geotransform
        return (gt[0] + region.col * gt[1] + region.row * gt[2], gt[1], gt[2],
                gt[3] + region.col * gt[4] + region.row * gt[5], gt[4], gt[5])


def bounds_window(geotransform: GeoTransform, width: int, height: int,
                  bounds: tuple[float, float, float, float], what: str) -> Window:
    """The window of a north-up grid (``geotransform``, ``width`` x ``height`` pixels) that map ``bounds`` (xmin,
    ymin, xmax, ymax, in the grid's CRS) cover, pixels partly inside included, clipped to the grid. GridError when
    the grid is rotated or ``bounds`` do not overlap it (``what`` names the grid in the message)."""
    x0, dx, rx, y0, ry, dy = geotransform
    if rx or ry:
        raise GridError(f"{what} has a rotated grid: an area cannot be turned into its pixels; warp it north-up "
                        "first.")
    xmin, ymin, xmax, ymax = bounds
    cols = sorted(((xmin - x0) / dx, (xmax - x0) / dx))
    rows = sorted(((ymin - y0) / dy, (ymax - y0) / dy))
    col0, row0 = max(0, math.floor(cols[0])), max(0, math.floor(rows[0]))
    col1, row1 = min(width, math.ceil(cols[1])), min(height, math.ceil(rows[1]))
    if col1 <= col0 or row1 <= row0:
        raise GridError(f"The area {_fmt(xmin)}, {_fmt(ymin)} - {_fmt(xmax)}, {_fmt(ymax)} does not overlap "
                        f"{what}; choose an area on it.")
    return Window(col0, row0, col1 - col0, row1 - row0)


def _fmt(value: float) -> str:
    return f"{value:.10g}"


def _srs(info: RasterInfo, role: str) -> osr.SpatialReference:
    srs = osr.SpatialReference()
    if srs.ImportFromWkt(info.crs_wkt) != 0:
        raise GridError(f"The {role} {info.path} has a CRS that GDAL cannot interpret; assign a valid CRS "
                        "(e.g. gdal_edit.py -a_srs EPSG:32632 file.tif)")
    return srs


def _crs_label(srs: osr.SpatialReference) -> str:
    srs.AutoIdentifyEPSG()
    code = srs.GetAuthorityCode(None)
    return f"{srs.GetName()} (EPSG:{code})" if code else str(srs.GetName())


def nearest_scale(ratio: float) -> int:
    """The scale from MIN_SCALE to MAX_SCALE nearest a pixel size ratio (LRHSI / HRMSI, e.g. 30 m / 20 m = 1.5
    gives 2, 30 m / 3.6 m = 8.33 gives 8); halves round up, to the finer grid."""
    return min(MAX_SCALE, max(MIN_SCALE, math.floor(ratio + 0.5)))


def _warp_hint(lr: RasterInfo, hr: RasterInfo, scale: int | None) -> str:
    """The fix, one sentence: resample the HRMSI onto the LRHSI grid refined `scale` times (None: unknown, as
    across CRS) with cofusion:align_to_grid or the equivalent gdalwarp command."""
    x0, dx, _, y0, _, dy = lr.geotransform
    xs = sorted((x0, x0 + lr.width * dx))
    ys = sorted((y0, y0 + lr.height * dy))
    t_srs = ""
    if lr.crs_wkt:
        srs = _srs(lr, "LRHSI")
        srs.AutoIdentifyEPSG()
        code = srs.GetAuthorityCode(None)
        t_srs = f"-t_srs EPSG:{code} " if code else "-t_srs <the LRHSI's CRS> "
    if scale is None:
        refined = (f"refined by an integer s from {MIN_SCALE} to {MAX_SCALE} (the pixel size ratio rounded, e.g. 3 "
                   "for 30 m and 10 m pixels)")
        option, tr = "SCALE=s", f"{_fmt(abs(dx))}/s {_fmt(abs(dy))}/s"
    else:
        refined = f"refined by {scale} ({_fmt(abs(dx) / scale)} x {_fmt(abs(dy) / scale)} pixels)"
        option, tr = f"SCALE={scale}", f"{_fmt(abs(dx) / scale)} {_fmt(abs(dy) / scale)}"
    te = f"{_fmt(xs[0])} {_fmt(ys[0])} {_fmt(xs[1])} {_fmt(ys[1])}"
    return (f"Resample the HRMSI onto the LRHSI grid {refined} with cofusion:align_to_grid ({option}) or gdalwarp "
            f"{t_srs}-tr {tr} -te {te} -r cubic {hr.path} hrmsi_aligned.tif.")


def _check_crs(lr: RasterInfo, hr: RasterInfo) -> None:
    if bool(lr.crs_wkt) != bool(hr.crs_wkt):
        has, lacks = ("LRHSI", "HRMSI") if lr.crs_wkt else ("HRMSI", "LRHSI")
        raise GridError(f"The {has} has a CRS but the {lacks} has none; assign the {lacks} its CRS "
                        "(gdal_edit.py -a_srs EPSG:<code> file.tif) if its coordinates are in it, else warp "
                        "it onto the other's grid.")
    if lr.crs_wkt:
        lr_srs, hr_srs = _srs(lr, "LRHSI"), _srs(hr, "HRMSI")
        if not lr_srs.IsSame(hr_srs):
            raise GridError(f"The CRS differ: LRHSI {_crs_label(lr_srs)}, HRMSI {_crs_label(hr_srs)}. "
                            + _warp_hint(lr, hr, None))


def _check_north_up(info: RasterInfo, role: str) -> None:
    gt = info.geotransform
    if abs(gt[2]) > 1e-9 * abs(gt[1]) or abs(gt[4]) > 1e-9 * abs(gt[5]) or gt[1] == 0 or gt[5] == 0:
        raise GridError(f"The {role} grid is not north-up (geotransform {tuple(gt)}: rotation terms "
                        f"{_fmt(gt[2])}, {_fmt(gt[4])} must be 0); warp it north-up first "
                        f"(gdalwarp {info.path} north_up.tif), then align the HRMSI with the LRHSI.")


def _scale_from_sizes(lr: RasterInfo, hr: RasterInfo, tolerance: float) -> int:
    """Scale of two rasters without any georeference: the ratio of their sizes, an integer from 2 to 8."""
    rx, ry = hr.width / lr.width, hr.height / lr.height
    scale = round(rx)
    if abs(rx - scale) <= tolerance and abs(ry - round(ry)) <= tolerance and scale == round(ry) \
            and MIN_SCALE <= scale <= MAX_SCALE:
        return scale
    s = nearest_scale(rx)
    width, height = s * lr.width, s * lr.height
    crop = (f"crop it if it covers more ground than the LRHSI (gdal_translate -srcwin 0 0 {width} {height} "
            f"{hr.path} hrmsi_cropped.tif), or " if width <= hr.width and height <= hr.height else "")
    raise GridError(
        f"Neither raster is georeferenced, so the scale is the ratio of their sizes, which is not one integer "
        f"from {MIN_SCALE} to {MAX_SCALE}: HRMSI {hr.width} x {hr.height} / LRHSI {lr.width} x {lr.height} pixels "
        f"= {rx:.4g} x {ry:.4g}. Make the HRMSI {width} x {height} pixels ({s} times the LRHSI): {crop}resample it "
        f"if both cover the same ground (gdal_translate -outsize {width} {height} -r cubic {hr.path} "
        "hrmsi_resampled.tif); or give both rasters a geotransform"
    )


def _scale_from_grids(lr: RasterInfo, hr: RasterInfo, tolerance: float) -> int:
    """Scale of two georeferenced rasters: the ratio of their pixel sizes, an integer from 2 to 8 in x and y."""
    lr_dx, lr_dy = lr.geotransform[1], lr.geotransform[5]
    hr_dx, hr_dy = hr.geotransform[1], hr.geotransform[5]
    if (lr_dx > 0) != (hr_dx > 0) or (lr_dy > 0) != (hr_dy > 0):
        raise GridError(f"One grid is flipped: pixel sizes LRHSI {_fmt(lr_dx)} x {_fmt(lr_dy)}, HRMSI "
                        f"{_fmt(hr_dx)} x {_fmt(hr_dy)} have different signs. "
                        + _warp_hint(lr, hr, nearest_scale(abs(lr_dx / hr_dx))))
    rx, ry = lr_dx / hr_dx, lr_dy / hr_dy
    sizes = (f"LRHSI pixels {_fmt(abs(lr_dx))} x {_fmt(abs(lr_dy))}, HRMSI pixels {_fmt(abs(hr_dx))} x "
             f"{_fmt(abs(hr_dy))} (ratio {rx:.4g} x {ry:.4g})")
    if max(rx, ry) < 1 - tolerance:
        raise GridError(f"The HRMSI has larger pixels than the LRHSI: {sizes}; did you swap the two inputs?")
    if abs(rx - round(rx)) > tolerance or abs(ry - round(ry)) > tolerance:
        raise GridError(f"The pixel sizes are not in an integer ratio: {sizes}. "
                        + _warp_hint(lr, hr, nearest_scale(rx)))
    if round(rx) != round(ry):
        raise GridError(f"The pixel size ratio differs in x and y: {sizes}. " + _warp_hint(lr, hr, nearest_scale(rx)))
    scale = round(rx)
    if scale < MIN_SCALE:
        raise GridError(f"The HRMSI is not finer than the LRHSI: {sizes}; the scale must be an integer from "
                        f"{MIN_SCALE} to {MAX_SCALE}. Fusion needs a higher-resolution HRMSI.")
    if scale > MAX_SCALE:
        raise GridError(f"The pixel size ratio {scale} is above {MAX_SCALE}, the largest scale CoFusion fuses: "
                        f"{sizes}. " + _warp_hint(lr, hr, MAX_SCALE))
    return scale


def _span(lr_size: int, hr_offset: int, hr_size: int, scale: int) -> tuple[int, int] | None:
    """Common HR-pixel span [start, end) of both rasters along one axis, snapped inward to LR pixels.

    Coordinates are HR pixels counted from the LRHSI's first pixel edge; the HRMSI starts at `hr_offset`.
    """
    start, end = max(0, hr_offset), min(lr_size * scale, hr_offset + hr_size)
    start, end = -(-start // scale) * scale, (end // scale) * scale
    return (start, end) if end > start else None


def check_coregistration(lr: RasterInfo, hr: RasterInfo, tolerance: float = 0.01) -> FusionGrid:
    """The fusion grid of an LRHSI and an HRMSI, or GridError saying what differs and how to fix it.

    Requirements: the same CRS (compared with osr's IsSame; two rasters without CRS are accepted, as lab
    data are), north-up grids, pixel sizes in the same integer ratio `scale` from 2 to 8 in x and y
    (|ratio - round(ratio)| <= `tolerance`; another ratio is refused with the nearest scale in that range to
    resample the HRMSI to, see `nearest_scale`), the HRMSI origin shifted from the LRHSI origin by a whole
    number of HR pixels (within `tolerance` HR pixels), and overlapping extents. The common window is the
    intersection snapped inward to whole LR pixels. Two rasters with neither CRS nor geotransform are pixel
    grids with the same origin: the scale is then the ratio of their sizes.
    """
    _check_crs(lr, hr)
    _check_north_up(lr, "LRHSI")
    _check_north_up(hr, "HRMSI")
    pixel_grids = not lr.crs_wkt and lr.geotransform == PIXEL_GEOTRANSFORM == hr.geotransform
    scale = _scale_from_sizes(lr, hr, tolerance) if pixel_grids else _scale_from_grids(lr, hr, tolerance)
    hr_gt = hr.geotransform
    # HRMSI origin in HR pixels from the LRHSI origin (+ 0.0 turns -0.0 into 0.0 for the messages)
    shift_x = (hr_gt[0] - lr.geotransform[0]) / hr_gt[1] + 0.0
    shift_y = (hr_gt[3] - lr.geotransform[3]) / hr_gt[5] + 0.0
    if abs(shift_x - round(shift_x)) > tolerance or abs(shift_y - round(shift_y)) > tolerance:
        raise GridError(f"The HRMSI grid is not aligned with the LRHSI grid: its origin is {shift_x:.4g}, "
                        f"{shift_y:.4g} HR pixels (x, y) from the LRHSI origin, not a whole number of pixels "
                        f"(tolerance {tolerance:g}). " + _warp_hint(lr, hr, scale))
    off_x, off_y = round(shift_x), round(shift_y)
    cols = _span(lr.width, off_x, hr.width, scale)
    rows = _span(lr.height, off_y, hr.height, scale)
    if cols is None or rows is None:
        raise GridError(f"The rasters do not share a whole LR pixel: the HRMSI ({hr.width} x {hr.height} "
                        f"pixels) starts {off_x}, {off_y} HR pixels from the LRHSI origin, the LRHSI covers "
                        f"{lr.width * scale} x {lr.height * scale} HR pixels; check that you chose the right "
                        f"pair of scenes. " + _warp_hint(lr, hr, scale))
    lr_window = Window(cols[0] // scale, rows[0] // scale, (cols[1] - cols[0]) // scale,
                       (rows[1] - rows[0]) // scale)
    hr_window = Window(cols[0] - off_x, rows[0] - off_y, cols[1] - cols[0], rows[1] - rows[0])
    geotransform = (hr_gt[0] + hr_window.col * hr_gt[1], hr_gt[1], 0.0,
                    hr_gt[3] + hr_window.row * hr_gt[5], 0.0, hr_gt[5])
    return FusionGrid(scale, lr_window, hr_window, geotransform, hr.crs_wkt)


def check_inputs(
    lrhsi_path: str | os.PathLike, hrmsi_path: str | os.PathLike, out_path: str | os.PathLike,
    model_path: str | os.PathLike | None = None,
) -> tuple[RasterInfo, RasterInfo, FusionGrid, Path]:
    """Read both inputs' descriptions, check the output path and the co-registration (no pixels read).

    The output may be neither input, nor a file read to open one (a VRT's sources), nor ``model_path``.
    Returns (LRHSI info, HRMSI info, fusion grid, absolute output path); raises InputError, GridError or
    OutputError with the fix. Cheap: callers may run it before loading a model.
    """
    lr_info, hr_info = read_info(lrhsi_path), read_info(hrmsi_path)
    reads = (lrhsi_path, hrmsi_path) if model_path is None else (lrhsi_path, hrmsi_path, model_path)
    out = check_output_path(out_path, inputs=reads)
    return lr_info, hr_info, check_coregistration(lr_info, hr_info), out
