# SPDX-License-Identifier: GPL-2.0-or-later
"""Spectra at map points of raster files, for inspection: read one pixel, compare two curves, export curves.

- ``spectrum_at(path, x, y)`` reads the pixel of a raster file that covers the point (``x``, ``y``) in the
  raster's own CRS (one-pixel window through ``RasterReader``) and returns its values with the band positions
  (centre wavelengths in nm, band numbers when the file has none), which bands are usable there (not nodata at
  the pixel, not flagged bad), what the values are (``value_unit``: reflectance, the raster's unit, unknown)
  and the raster's grid (for the pixel's footprint, ``pixel_footprint``). A point outside the raster or on a
  pixel that is nodata in every band raises ``NoSpectrum`` with a message a user can read.
- ``plot_arrays(spectrum)`` gives the x / y a plot draws: NaN where a band is not usable and between two bands
  whose wavelengths jump (the water-vapour windows an EnMAP or PRISMA product leaves out), so that a line drawn
  with "finite" connection breaks there instead of running straight across.
- ``profile_dict(spectrum)`` is the spectrum as EnMAP-Box writes a spectral profile (x, y, xUnit, yUnit, bbl).
- ``nearest_bands(wavelengths_nm, targets_nm)`` picks the bands nearest given wavelengths (true colour:
  640/550/460 nm).
- ``compare(reference, estimate)`` gives SAM (degrees) and RMSE of one curve against another.
- ``write_csv(path, curves)`` writes curves in long format (one row per curve and band).
"""
from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from osgeo import gdal

from .band_metadata import envi_header
from .errors import InputError
from .raster import RasterReader, spectral_band_numbers
from .window import Window

#: Centre wavelengths (nm) of the red, green and blue bands of a true-colour display.
TRUE_COLOR_NM = (640.0, 550.0, 460.0)
#: ``Spectrum.unit`` of values in reflectance (0..1), and of values in reflectance times 10000.
REFLECTANCE, REFLECTANCE_10000 = "reflectance", "reflectance × 10000"
#: A gap between two neighbouring band centres larger than this many times the median gap breaks the curve.
JUMP_FACTOR = 3.0


class NoSpectrum(InputError):
    """The point has no spectrum in the raster: it is outside the raster or on a nodata pixel."""


@dataclass(frozen=True)
class Spectrum:
    """The values of one pixel, ``values`` ``(C,)`` float32 in the raster's units, at ``positions`` ``(C,)``:
    centre wavelengths in nm when ``in_nm``, else 1-based band numbers. ``col``/``row``: the pixel (0-based).

    ``valid`` ``(C,)`` bool: the band is usable at this pixel (not nodata there, not flagged bad by the file's
    bad band list); None: every band is. ``unit``: what the values are, ``value_unit``'s answer ('' when not
    known). ``geotransform``: the raster's grid (GDAL order), None when not known."""

    values: np.ndarray
    positions: np.ndarray
    in_nm: bool
    col: int
    row: int
    valid: np.ndarray | None = None
    unit: str = ""
    geotransform: tuple[float, ...] | None = None

    @property
    def usable(self) -> np.ndarray:
        """``valid``, all True when None: bool ``(C,)``."""
        return np.ones(len(self.values), dtype=bool) if self.valid is None else np.asarray(self.valid, dtype=bool)


def pixel_of(geotransform: Sequence[float], x: float, y: float) -> tuple[int, int]:
    """The (col, row) of the pixel covering (``x``, ``y``) in the CRS of ``geotransform`` (GDAL order)."""
    inverse = gdal.InvGeoTransform(tuple(geotransform))
    if inverse is None:
        raise InputError(f"The geotransform {tuple(geotransform)} cannot be inverted (a degenerate grid).")
    col = inverse[0] + inverse[1] * x + inverse[2] * y
    row = inverse[3] + inverse[4] * x + inverse[5] * y
    return int(np.floor(col)), int(np.floor(row))


def spectrum_at(path: str | os.PathLike, x: float, y: float) -> Spectrum:
    """The spectrum of the pixel of raster ``path`` covering (``x``, ``y``), given in the raster's CRS.

    A band is usable (``Spectrum.valid``) where it is valid at the pixel (``RasterReader.read_masked``: not
    nodata, not masked, finite) and the file does not flag it bad (``RasterInfo.bad_band_flags``, True = bad).
    Raises NoSpectrum when the point is outside the raster or the pixel is nodata in every band, InputError when
    the file cannot be read.
    """
    with RasterReader(path) as reader:
        info = reader.info
        col, row = pixel_of(info.geotransform, x, y)
        name = Path(info.path).name
        if not (0 <= col < info.width and 0 <= row < info.height):
            raise NoSpectrum(f"The point is outside {name}.")
        data, band_valid = reader.read_masked(Window(col, row, 1, 1))
        unit_types, reflectance_scale = _unit_metadata(reader)
    at_pixel = band_valid[:, 0, 0]
    if not at_pixel.any():
        raise NoSpectrum(f"The pixel (column {col + 1}, row {row + 1}) of {name} is nodata.")
    bad = np.asarray(info.bad_band_flags, dtype=bool) if info.bad_band_flags is not None else False
    valid = at_pixel & ~bad
    in_nm = info.wavelengths_nm is not None
    positions = np.asarray(info.wavelengths_nm if in_nm else range(1, info.band_count + 1), dtype=np.float64)
    values = data[:, 0, 0]
    unit = value_unit(unit_types, reflectance_scale, info.scale, info.dtype, values[valid])
    return Spectrum(values, positions, in_nm, col, row, valid=valid, unit=unit, geotransform=info.geotransform)


def _unit_metadata(reader: RasterReader) -> tuple[list[str], float | None]:
    """The unit strings of the spectral bands (GDAL's band unit type, distinct, non-empty) and the ENVI /
    EnMAP-Box 'reflectance scale factor' (None when the file has none) of an open reader's raster."""
    ds = reader._ds  # the reader's open dataset: core.raster stays the one place that opens rasters
    if ds is None:
        return [], None
    numbers = spectral_band_numbers(ds)
    units = list(dict.fromkeys(u for u in (ds.GetRasterBand(n).GetUnitType() for n in numbers) if u and u.strip()))
    candidates: list[object] = []
    try:
        header = envi_header(ds, reader.info.path)
    except InputError:  # an unparsable header was reported when the raster was opened
        header = None
    if header is not None:
        candidates.append(header.get("reflectance scale factor"))
    for domain in ("ENVI", ""):  # GDAL's ENVI driver (and EnMAP-Box's GeoTIFFs) keep header items in 'ENVI'
        metadata = ds.GetMetadata(domain) or {}
        candidates += [metadata.get("reflectance_scale_factor"), metadata.get("reflectance scale factor")]
    for candidate in candidates:
        try:
            factor = float(str(candidate).strip().strip("{}"))
        except (TypeError, ValueError):
            continue
        if math.isfinite(factor) and factor > 0:
            return units, factor
    return units, None


def value_unit(unit_types: Sequence[str], reflectance_scale: float | None, scale: Sequence[float], dtype: str,
               values: np.ndarray) -> str:
    """What the values of a raster are, for an axis label and a spectral library: ``REFLECTANCE`` (0..1),
    ``REFLECTANCE_10000``, 'reflectance × <factor>', the raster's own unit string, or '' (not known).

    In this order: (1) the bands' unit (GDAL's ``GetUnitType()``; several distinct units are joined with ', '):
    one that names reflectance gives ``REFLECTANCE`` (or the scaled form, with a reflectance scale factor), any
    other is returned as it is (e.g. 'W m-2 sr-1 um-1'); (2) an ENVI / EnMAP-Box 'reflectance scale factor'
    ``reflectance_scale``: reflectance times that factor (1: ``REFLECTANCE``); (3) the range of ``values`` (the
    valid values read, GDAL's scale and offset already applied by the reader): all within -0.05..1.5 is
    reflectance 0..1 (e.g. EnMAP L2A Int16 with scale 0.0001, or float reflectance); integers of an integer file
    without scale (``scale`` all 1) within 0..10000 are reflectance times 10000 (Sentinel-2 L2A, EnMAP without
    its scale); (4) otherwise ''. (3) is a guess from one pixel: metadata, when there is any, decides.
    """
    def scaled(factor: float | None) -> str:
        if factor is None or factor == 1.0:
            return REFLECTANCE
        return REFLECTANCE_10000 if factor == 10000.0 else f"reflectance × {factor:g}"

    if unit_types:
        if any("reflect" in u.lower() for u in unit_types):
            return scaled(reflectance_scale)
        return ", ".join(u.strip() for u in unit_types)
    if reflectance_scale is not None:
        return scaled(reflectance_scale)
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return ""
    low, high = float(finite.min()), float(finite.max())
    if -0.05 <= low and high <= 1.5:
        return REFLECTANCE
    if np.dtype(dtype).kind in "iu" and all(s == 1.0 for s in scale) and 0 <= low and high <= 10000:
        return REFLECTANCE_10000
    return ""


def plot_arrays(spectrum: Spectrum, jump_factor: float = JUMP_FACTOR) -> tuple[np.ndarray, np.ndarray]:
    """The x and y of ``spectrum`` for a line plot that breaks at NaN (pyqtgraph's ``connect="finite"``):
    float64, bands in order of position; y is NaN at the bands that are not usable (``Spectrum.valid``), and a
    point (x halfway, y NaN) is inserted between two neighbouring wavelengths further apart than
    ``jump_factor`` times the median spacing (bands left out of the file, e.g. the water-vapour windows near
    1400 and 1900 nm). Band numbers never jump. Without breaks x and y are the positions and values."""
    x = np.asarray(spectrum.positions, dtype=np.float64)
    y = np.where(spectrum.usable, np.asarray(spectrum.values, dtype=np.float64), np.nan)
    if not spectrum.in_nm or len(x) < 3:
        return x, y
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    steps = np.diff(x)
    median = float(np.median(steps))
    jumps = np.flatnonzero(steps > jump_factor * median) if median > 0 else np.array([], dtype=int)
    if jumps.size:
        x = np.insert(x, jumps + 1, (x[jumps] + x[jumps + 1]) / 2)
        y = np.insert(y, jumps + 1, np.nan)
    return x, y


def pixel_footprint(geotransform: Sequence[float], col: int, row: int) -> list[tuple[float, float]]:
    """The corners of pixel (``col``, ``row``) of the grid ``geotransform`` (GDAL order), in its CRS: top left,
    top right, bottom right, bottom left (rotated grids included)."""
    gt = tuple(geotransform)

    def at(c: float, r: float) -> tuple[float, float]:
        return gt[0] + c * gt[1] + r * gt[2], gt[3] + c * gt[4] + r * gt[5]

    return [at(col, row), at(col + 1, row), at(col + 1, row + 1), at(col, row + 1)]


#: EnMAP-Box's x unit of band numbers (its unit model's 'Band Number').
BAND_NUMBER_UNIT = "Band Number"


def profile_dict(spectrum: Spectrum) -> dict:
    """``spectrum`` as an EnMAP-Box spectral profile: {"x": positions, "y": values, "xUnit": "nm" (or
    'Band Number'), "yUnit": ``Spectrum.unit`` (None when not known), "bbl": 1 for a usable band, 0 else}.
    y values that are not finite (a NaN nodata band) are null, so that the JSON stays valid."""
    return {
        "x": [float(v) for v in spectrum.positions],
        "y": [float(v) if math.isfinite(float(v)) else None for v in spectrum.values],
        "xUnit": "nm" if spectrum.in_nm else BAND_NUMBER_UNIT,
        "yUnit": spectrum.unit or None,
        "bbl": [int(v) for v in spectrum.usable],
    }


def nearest_bands(wavelengths_nm: Sequence[float] | None,
                  targets_nm: Sequence[float] = TRUE_COLOR_NM) -> tuple[int, ...] | None:
    """1-based numbers of the bands whose centre wavelengths are nearest ``targets_nm`` (in that order); None
    when the raster has no wavelengths or fewer than three bands."""
    if wavelengths_nm is None or len(wavelengths_nm) < 3:
        return None
    centres = np.asarray(wavelengths_nm, dtype=np.float64)
    return tuple(int(np.argmin(np.abs(centres - target))) + 1 for target in targets_nm)


def compare(reference: np.ndarray, estimate: np.ndarray) -> tuple[float, float]:
    """SAM in degrees and RMSE (data units) of the curve ``estimate`` ``(C,)`` against ``reference`` ``(C,)``."""
    from .metrics import rmse, sam  # torch: only when curves are compared

    ref, est = (np.asarray(a, dtype=np.float64).reshape(-1, 1, 1) for a in (reference, estimate))
    if ref.shape != est.shape:
        raise InputError(f"Curves of {ref.shape[0]} and {est.shape[0]} bands cannot be compared.")
    return sam(ref, est), rmse(ref, est)


@dataclass(frozen=True)
class Curve:
    """A spectrum with a name for display and export, e.g. 'fused @ 560010, 4142990'."""

    label: str
    spectrum: Spectrum


def write_csv(path: str | os.PathLike, curves: Iterable[Curve]) -> Path:
    """Write ``curves`` to a CSV file with columns curve, band, wavelength_nm (empty without wavelengths),
    value (empty where the band is not usable: nodata at the pixel or flagged bad); one row per curve and band.
    Returns the path."""
    out = Path(path)
    with out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["curve", "band", "wavelength_nm", "value"])
        for curve in curves:
            spectrum = curve.spectrum
            for band, (position, value, usable) in enumerate(
                    zip(spectrum.positions, spectrum.values, spectrum.usable), 1):
                writer.writerow([curve.label, band, f"{position:g}" if spectrum.in_nm else "",
                                 f"{value:.9g}" if usable else ""])
    return out
