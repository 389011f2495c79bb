# SPDX-License-Identifier: GPL-2.0-or-later
"""What a raster's metadata says about its bands' spectra, in every form it comes in, and how outputs say it.

Reading (``spectral_metadata``, ``bad_band_flags``): centre wavelengths and FWHM in nanometres, and the bad-band list,
from the first source that has them: (1) GDAL band metadata in the EnMAP-Box form (``wavelength``,
``wavelength_units``, ``fwhm``; also written by the ENVI and netCDF drivers), (2) an ENVI header (``wavelength``,
``fwhm``, ``wavelength units``, ``bbl``: a file of GDAL's ENVI driver has its .hdr parsed with SPy, the
``spectral`` package, imported only when such a file is read; other formats keep ENVI fields in GDAL's 'ENVI'
metadata domain), (3) GDAL's IMAGERY domain (``CENTRAL_WAVELENGTH_UM``, ``FWHM_UM``). Units are converted to nm;
inconsistent or partial lists are treated as unknown with a warning, never guessed.

SPy reads the .hdr of ENVI files because it is the better reader of that format: GDAL's 'ENVI' domain is
case-sensitive, so a header written by another tool with 'FWHM = {...}' or 'Wavelength = {...}' loses those
fields there (GDAL 3.6, checked by a test), while SPy reads ENVI's keys case-insensitively, as ENVI does.

Writing (``set_band_spectral_metadata``): the EnMAP-Box items and GDAL's IMAGERY items, so QGIS, EnMAP-Box and
GDAL all read them.

Band numbers are 1-based file band numbers of the spectral bands (alpha bands left out: ``core.raster``).
"""
from __future__ import annotations

import logging
import math
import os
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Optional

from osgeo import gdal

from .errors import InputError

log = logging.getLogger(__name__)

# Multipliers from a wavelength unit (lower case, as written in metadata) to nanometres.
_UNIT_TO_NM: dict[str, float] = {
    **dict.fromkeys(("nanometers", "nanometer", "nanometres", "nanometre", "nm"), 1.0),
    **dict.fromkeys(
        ("micrometers", "micrometer", "micrometres", "micrometre", "microns", "micron", "um",
         "\u00b5m", "\u03bcm"),  # micro sign and Greek mu: both occur in the wild
        1000.0,
    ),
    **dict.fromkeys(("millimeters", "millimeter", "millimetres", "millimetre", "mm"), 1.0e6),
}
_ACCEPTED_UNITS = "Nanometers (nm), Micrometers (um, \u00b5m, microns), Millimeters (mm)"
_MISSING_UNITS = ("", "unknown")  # ENVI writes 'Unknown' when the unit was never set: inferred from values


def _floats(values: Iterable[str | float], what: str, path: str) -> list[float]:
    try:
        return [float(v) for v in values]
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"{path}: the {what} metadata holds a value that is not a number ({exc}); "
            "fix or remove it in the file's metadata (e.g. with gdal_edit.py -mo or the ENVI header)."
        ) from exc


def _unit_to_nm(unit: str | None, wavelengths: Sequence[float], where: str, path: str) -> float | None:
    """Nanometres per unit of `unit`; None when the values are band indices rather than wavelengths.

    A missing unit (or ENVI's 'Unknown') is inferred from the largest wavelength: 100 or more means
    nanometres, 0.1 up to 100 micrometres, below 0.1 millimetres (sensors from the UV to the thermal
    infrared, 0.3 to 15 um, fall in exactly one of these ranges in every unit).
    """
    key = (unit or "").strip().lower()
    if key in _MISSING_UNITS:
        largest = max(wavelengths)
        factor = 1.0 if largest >= 100.0 else 1000.0 if largest >= 0.1 else 1.0e6
        log.info("%s: no wavelength unit in %s; inferred %s from the values (largest %g)", path, where,
                 {1.0: "nanometres", 1000.0: "micrometres"}.get(factor, "millimetres"), largest)
        return factor
    if key == "index":
        log.warning("%s: the %s wavelengths are band indices (unit 'Index'), not wavelengths; ignored",
                    path, where)
        return None
    if key not in _UNIT_TO_NM:
        raise InputError(
            f"{path}: unknown wavelength unit {unit!r} in {where}; accepted units are {_ACCEPTED_UNITS}. "
            "Set the unit in the metadata (e.g. gdal_edit.py -mo wavelength_units=Nanometers)."
        )
    return _UNIT_TO_NM[key]


def _to_nm(
    values: list[float] | None, factors: list[float] | float, what: str, path: str
) -> tuple[float, ...] | None:
    """Values times their unit factors, or None (with a warning) when any is not a positive number."""
    if values is None:
        return None
    per_value = factors if isinstance(factors, list) else [factors] * len(values)
    nm = tuple(v * f for v, f in zip(values, per_value))
    if not all(math.isfinite(v) and v > 0 for v in nm):
        log.warning("%s: %s has values that are not positive numbers; treated as unknown", path, what)
        return None
    return nm


def _complete(values: list[str | None], band_count: int, what: str, path: str) -> list[str] | None:
    """The values when every band has one; None (warning when only some have one)."""
    present = [v for v in values if v not in (None, "")]
    if len(present) == band_count and band_count == len(values):
        return present
    if present:
        log.warning("%s: %s is given for %d of %d bands; treated as unknown", path, what, len(present),
                    band_count)
    return None


_Spectral = tuple[Optional[tuple[float, ...]], Optional[tuple[float, ...]]]  # evaluated: no X | Y (3.9)


def spectral_bands(ds: gdal.Dataset, numbers: Sequence[int]) -> list[gdal.Band]:
    """The bands numbered `numbers` (1-based: the spectral bands, alpha left out)."""
    return [ds.GetRasterBand(n) for n in numbers]


def _of_spectral_bands(items: list[str], numbers: Sequence[int], total: int) -> list[str] | None:
    """A file-level list (the ENVI header's) for the spectral bands `numbers` (1-based) of a file of `total`
    bands: the list itself when it has one item per spectral band, the items of those bands when it has one
    per band of the file (alpha included), else None."""
    if len(items) == len(numbers):
        return list(items)
    if len(items) == total:
        return [items[n - 1] for n in numbers]
    return None


def _from_band_metadata(ds: gdal.Dataset, numbers: Sequence[int], path: str) -> _Spectral:
    """(1) EnMAP-Box convention: band items `wavelength`, `wavelength_units`, `fwhm` (default domain), of the
    spectral bands `numbers`.

    A band without `wavelength_units` uses the dataset's item of that name, then the inferred unit.
    """
    bands = spectral_bands(ds, numbers)
    raw = _complete([b.GetMetadataItem("wavelength") for b in bands], len(bands),
                    "band metadata 'wavelength'", path)
    if raw is None:
        return None, None
    wavelengths = _floats(raw, "band 'wavelength'", path)
    default_unit = ds.GetMetadataItem("wavelength_units")
    units = [b.GetMetadataItem("wavelength_units") or default_unit for b in bands]
    unit_factor = {u: _unit_to_nm(u, wavelengths, "the band metadata", path) for u in dict.fromkeys(units)}
    factors = [unit_factor[u] for u in units]
    if any(f is None for f in factors):
        return None, None
    raw_fwhm = _complete([b.GetMetadataItem("fwhm") for b in bands], len(bands), "band metadata 'fwhm'", path)
    fwhm = None if raw_fwhm is None else _floats(raw_fwhm, "band 'fwhm'", path)
    return (_to_nm(wavelengths, factors, "band metadata 'wavelength'", path),
            _to_nm(fwhm, factors, "band metadata 'fwhm'", path))


def _envi_list(text: str | None) -> list[str] | None:
    """An ENVI list as GDAL's 'ENVI' domain holds it, '{ a, b, c }', as its items."""
    if not text:
        return None
    items = [item.strip() for item in text.strip().strip("{}").split(",")]
    return [item for item in items if item]


def _from_envi(ds: gdal.Dataset, numbers: Sequence[int], path: str, header: dict | None) -> _Spectral:
    """(2) ENVI header: `wavelength`, `fwhm`, `wavelength units`, for the spectral bands `numbers`.

    For a file of GDAL's ENVI driver the .hdr itself is parsed with SPy (`spectral`); for other formats
    the dataset's 'ENVI' metadata domain is read (GDAL keeps ENVI header fields there as '{ a, b, c }').
    `header`: `envi_header`'s result. A list may have one value per spectral band or per band of the file.
    """
    if header is not None:
        raw_wl, raw_fwhm, unit = header.get("wavelength"), header.get("fwhm"), header.get("wavelength units")
    else:
        domain = ds.GetMetadata("ENVI") or {}
        raw_wl, raw_fwhm = _envi_list(domain.get("wavelength")), _envi_list(domain.get("fwhm"))
        unit = domain.get("wavelength_units")
    count, total = len(numbers), ds.RasterCount
    if not raw_wl:
        return None, None
    spectral_wl = _of_spectral_bands(list(raw_wl), numbers, total)
    if spectral_wl is None:
        log.warning("%s: the ENVI header lists %d wavelengths for %d bands; treated as unknown", path,
                    len(raw_wl), count)
        return None, None
    wavelengths = _floats(spectral_wl, "ENVI 'wavelength'", path)
    factor = _unit_to_nm(unit, wavelengths, "the ENVI header", path)
    if factor is None:
        return None, None
    fwhm = None
    spectral_fwhm = _of_spectral_bands(list(raw_fwhm), numbers, total) if raw_fwhm else None
    if spectral_fwhm is not None:
        fwhm = _floats(spectral_fwhm, "ENVI 'fwhm'", path)
    elif raw_fwhm:
        log.warning("%s: the ENVI header lists %d FWHM values for %d bands; ignored", path, len(raw_fwhm),
                    count)
    return _to_nm(wavelengths, factor, "ENVI 'wavelength'", path), _to_nm(fwhm, factor, "ENVI 'fwhm'", path)


def envi_header(ds: gdal.Dataset, path: str) -> dict | None:
    """The parsed .hdr of a dataset opened by GDAL's ENVI driver, else None."""
    if ds.GetDriver().ShortName != "ENVI":
        return None
    headers = [f for f in ds.GetFileList() or [] if f.lower().endswith(".hdr") and os.path.exists(f)]
    if not headers:
        return None
    try:  # imported here, not at the top: the CoFusion panel opens (and GeoTIFFs are read) without SPy
        import spectral
    except ImportError as exc:
        raise InputError(f"{path}: reading its ENVI header needs the Python package 'spectral' (SPy), which is "
                         "not installed; install the CoFusion dependencies.") from exc
    try:
        with warnings.catch_warnings():  # SPy warns that it lower-cased keys: what ENVI itself does, not news
            warnings.simplefilter("ignore", UserWarning)
            return spectral.envi.read_envi_header(headers[0])
    except Exception as exc:  # SPy raises its own error classes for malformed headers
        raise InputError(f"{path}: its ENVI header {headers[0]} cannot be parsed ({exc}); fix the header.") \
            from exc


def _from_imagery_domain(ds: gdal.Dataset, numbers: Sequence[int], path: str) -> _Spectral:
    """(3) GDAL's IMAGERY domain per spectral band: `CENTRAL_WAVELENGTH_UM`, `FWHM_UM` (micrometres)."""
    bands = spectral_bands(ds, numbers)
    raw_wl = _complete([b.GetMetadataItem("CENTRAL_WAVELENGTH_UM", "IMAGERY") for b in bands], len(bands),
                       "IMAGERY 'CENTRAL_WAVELENGTH_UM'", path)
    raw_fwhm = _complete([b.GetMetadataItem("FWHM_UM", "IMAGERY") for b in bands], len(bands),
                         "IMAGERY 'FWHM_UM'", path)
    wavelengths = None if raw_wl is None else _floats(raw_wl, "IMAGERY 'CENTRAL_WAVELENGTH_UM'", path)
    fwhm = None if raw_fwhm is None else _floats(raw_fwhm, "IMAGERY 'FWHM_UM'", path)
    return (_to_nm(wavelengths, 1000.0, "IMAGERY 'CENTRAL_WAVELENGTH_UM'", path),
            _to_nm(fwhm, 1000.0, "IMAGERY 'FWHM_UM'", path))


def spectral_metadata(ds: gdal.Dataset, numbers: Sequence[int], path: str, header: dict | None) -> _Spectral:
    """Centre wavelengths and FWHM of every spectral band (`numbers`, 1-based) in nm, from the first source that
    gives them for all of them.

    Sources in order of precedence: (1) band metadata `wavelength` / `wavelength_units` / `fwhm`
    (EnMAP-Box), (2) the ENVI header, (3) the IMAGERY domain's `CENTRAL_WAVELENGTH_UM` / `FWHM_UM`.
    Wavelengths and FWHM are chosen independently (GDAL's ENVI driver exposes the wavelengths as band
    metadata but not the FWHM, which then comes from the header). FWHM values share their source's
    wavelength unit. A source that covers only some bands counts as absent (a warning is logged).
    Raises InputError for a unit that is not one of `_ACCEPTED_UNITS` or a value that is not a number
    (in a source consulted only for the FWHM, such a problem is logged and the FWHM left unknown).
    """
    wavelengths = fwhm = None
    sources: tuple[Callable[[], _Spectral], ...] = (
        lambda: _from_band_metadata(ds, numbers, path), lambda: _from_envi(ds, numbers, path, header),
        lambda: _from_imagery_domain(ds, numbers, path))
    for source in sources:
        try:
            src_wl, src_fwhm = source()
        except InputError as exc:
            if wavelengths is None:
                raise
            log.warning("%s (the FWHM stay unknown)", exc)
            break
        wavelengths = wavelengths or src_wl
        fwhm = fwhm or src_fwhm
        if wavelengths and fwhm:
            break
    return wavelengths, fwhm


def bad_band_flags(ds: gdal.Dataset, numbers: Sequence[int], path: str, header: dict | None
                    ) -> tuple[bool, ...] | None:
    """Per spectral band (`numbers`, 1-based), True when the file flags it bad: `bbl` = 0 in its band metadata
    (EnMAP-Box), else in the ENVI header's (or GDAL's 'ENVI' domain's) bad band list; None when the file has no
    such list.

    A list that does not cover every band, or holds other values than 0 and 1, is ignored with a warning; the
    ENVI list may have one value per spectral band or per band of the file. `header`: `envi_header`'s result.
    """
    bands = spectral_bands(ds, numbers)
    raw = [b.GetMetadataItem("bbl") for b in bands]
    where = "band metadata 'bbl'"
    if all(v in (None, "") for v in raw):
        raw = header.get("bbl") if header is not None else _envi_list((ds.GetMetadata("ENVI") or {}).get("bbl"))
        where = "the ENVI bad band list 'bbl'"
        if not raw:
            return None
        raw = _of_spectral_bands(list(raw), numbers, ds.RasterCount) or list(raw)
    values = _complete(list(raw), len(bands), where, path)
    if values is None:
        return None
    try:
        flags = [float(v) for v in values]
    except (TypeError, ValueError):
        flags = []
    if len(flags) != len(bands) or not set(flags) <= {0.0, 1.0}:
        log.warning("%s: %s holds other values than 0 and 1; ignored", path, where)
        return None
    return tuple(f == 0.0 for f in flags)


def _fmt(value: float) -> str:
    return f"{float(value):.10g}"


def set_band_spectral_metadata(band: gdal.Band, wavelength_nm: float | None, fwhm_nm: float | None) -> None:
    """Write a band's centre wavelength and FWHM (nm; None: not written) the way every output carries them: the
    EnMAP-Box items `wavelength`, `wavelength_units`=Nanometers, `fwhm` (nm) and GDAL's IMAGERY items
    `CENTRAL_WAVELENGTH_UM`, `FWHM_UM` (um)."""
    if wavelength_nm is not None:
        band.SetMetadataItem("wavelength", _fmt(wavelength_nm))
        band.SetMetadataItem("wavelength_units", "Nanometers")
        band.SetMetadataItem("CENTRAL_WAVELENGTH_UM", _fmt(wavelength_nm / 1000.0), "IMAGERY")
    if fwhm_nm is not None:
        band.SetMetadataItem("fwhm", _fmt(fwhm_nm))
        band.SetMetadataItem("FWHM_UM", _fmt(fwhm_nm / 1000.0), "IMAGERY")
