# SPDX-License-Identifier: GPL-2.0-or-later
"""Spectra at map points of raster files, for inspection: read one pixel, compare two curves, export curves.

- ``spectrum_at(path, x, y)`` reads the pixel of a raster file that covers the point (``x``, ``y``) in the
  raster's own CRS (one-pixel window through ``RasterReader``) and returns its values with the band positions
  (centre wavelengths in nm, band numbers when the file has none). A point outside the raster or on a nodata
  pixel raises ``NoSpectrum`` with a message a user can read.
- ``nearest_bands(wavelengths_nm, targets_nm)`` picks the bands nearest given wavelengths (true colour:
  640/550/460 nm).
- ``compare(reference, estimate)`` gives SAM (degrees) and RMSE of one curve against another.
- ``write_csv(path, curves)`` writes curves in long format (one row per curve and band).
"""
from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from osgeo import gdal

from .errors import InputError
from .raster import RasterReader
from .window import Window

#: Centre wavelengths (nm) of the red, green and blue bands of a true-colour display.
TRUE_COLOR_NM = (640.0, 550.0, 460.0)


class NoSpectrum(InputError):
    """The point has no spectrum in the raster: it is outside the raster or on a nodata pixel."""


@dataclass(frozen=True)
class Spectrum:
    """The values of one pixel, ``values`` ``(C,)`` float32 in the raster's units, at ``positions`` ``(C,)``:
    centre wavelengths in nm when ``in_nm``, else 1-based band numbers. ``col``/``row``: the pixel (0-based)."""

    values: np.ndarray
    positions: np.ndarray
    in_nm: bool
    col: int
    row: int


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

    Raises NoSpectrum when the point is outside the raster or the pixel is nodata (any band equal to its nodata
    value or not finite), InputError when the file cannot be read.
    """
    with RasterReader(path) as reader:
        info = reader.info
        col, row = pixel_of(info.geotransform, x, y)
        name = Path(info.path).name
        if not (0 <= col < info.width and 0 <= row < info.height):
            raise NoSpectrum(f"The point is outside {name}.")
        data, valid = reader.read_valid(Window(col, row, 1, 1))
    if not valid[0, 0]:
        raise NoSpectrum(f"The pixel (column {col + 1}, row {row + 1}) of {name} is nodata.")
    in_nm = info.wavelengths_nm is not None
    positions = np.asarray(info.wavelengths_nm if in_nm else range(1, info.band_count + 1), dtype=np.float64)
    return Spectrum(data[:, 0, 0], positions, in_nm, col, row)


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
    value; one row per curve and band. Returns the path."""
    out = Path(path)
    with out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["curve", "band", "wavelength_nm", "value"])
        for curve in curves:
            spectrum = curve.spectrum
            for band, (position, value) in enumerate(zip(spectrum.positions, spectrum.values), 1):
                writer.writerow([curve.label, band, f"{position:g}" if spectrum.in_nm else "", f"{value:.9g}"])
    return out
