# SPDX-License-Identifier: GPL-2.0-or-later
"""Give the bands of a hyperspectral raster that lacks them the centre wavelengths and FWHM of a sensor's band table.

Many real files carry no wavelength metadata (an EnMAP or PRISMA product converted by a third-party tool, a PRISMA
HE5 exported to GeoTIFF, a cube cut with gdal_translate); without it nothing can simulate an MSI from them, match a
model's bands or plot spectra in nanometres. ``assign_wavelengths`` writes a copy whose bands carry the centres and
FWHM of one of the imaging spectrometer presets (``enmap``, ``prisma``, ``desis``, ``emit``: their band tables in
``resources/srf``, see ``core.srf.sensor_wavelengths``), optionally of a subset of its bands, in the form every
output of the plugin carries them (``core.band_metadata.set_band_spectral_metadata``). Pixels, data type, georeference,
nodata, band scale and offset, band names and all other metadata are the source's.

The output is a ``.vrt`` (a virtual raster referring to the source by path, relative when it lies beside or below
the VRT: instant, writes nothing big, but only valid while the source stays where it is) or a GeoTIFF copy (tiled
and compressed as every output). Both are written to a hidden temporary file beside the target and renamed over it
when complete. The dataset item ``cofusion_wavelength_source`` says where the wavelengths came from, so nobody takes
them for measured metadata.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from osgeo import gdal

from .band_metadata import set_band_spectral_metadata
from .errors import Canceled, InputError, OutputError
from .outputs import check_free_space, check_output_path, remove_with_sidecar, temporary_path
from .progress import Cancel, Progress
from .raster import _gdal, geotiff_options, read_info, spectral_band_numbers
from .sensors import PRESETS
from .srf import parse_srf, sensor_wavelengths

#: The imaging spectrometer presets whose band tables can be assigned.
SPECTROMETERS: tuple[str, ...] = tuple(name for name, preset in PRESETS.items() if preset.band_table is not None)
#: The dataset metadata item recording where the wavelengths came from.
SOURCE_ITEM = "cofusion_wavelength_source"
OUTPUT_SUFFIXES = (".vrt", ".tif", ".tiff")


@dataclass(frozen=True)
class SensorBands:
    """The bands of a spectrometer preset that a file holds, in the file's band order.

    Attributes:
        sensor: the preset name, lower case (e.g. ``"enmap"``).
        label: the sensor as people write it (e.g. ``"EnMAP"``).
        table: the band table's path relative to the plugin folder (e.g. ``"resources/srf/enmap_bands.csv"``).
        band_names: the table's band names ``B<n>`` of the selected bands.
        centres_nm, fwhm_nm: their centre wavelengths and FWHM in nm.
        subset: the band list as given (e.g. ``"B1-B130"``), None for all bands.
    """

    sensor: str
    label: str
    table: str
    band_names: tuple[str, ...]
    centres_nm: tuple[float, ...]
    fwhm_nm: tuple[float, ...]
    subset: str | None = None

    @property
    def spec(self) -> str:
        """The specification that selects these bands, e.g. ``"enmap:B1-B130"``."""
        return self.sensor if self.subset is None else f"{self.sensor}:{self.subset}"


def sensor_bands(sensor: str, bands: str | None = None) -> SensorBands:
    """The bands ``bands`` of the spectrometer preset ``sensor`` (all when None, empty or ``"all"``).

    ``sensor`` may carry the band list itself, as ``"enmap:B1-B130"``; band lists are those of
    ``core.srf.parse_srf``: names ``B<n>`` and ranges ``B1-B130``, comma-separated, in the file's order.
    Raises InputError for a preset that is not a spectrometer, an unknown band, or a band list given twice.
    """
    name, sep, tail = str(sensor).strip().partition(":")
    name = name.strip().lower()
    if bands is not None and ":" in bands:  # "enmap:B1-B130" given as the band list
        head, _, rest = bands.partition(":")
        if head.strip().lower() != name:
            raise InputError(f"The band list {bands!r} names another sensor than {name!r}; give only the bands, "
                             "e.g. 'B1-B130'.")
        bands = rest
    listed = [text.strip() for text in (tail if sep else None, bands) if text is not None and text.strip()]
    if len(listed) > 1:
        raise InputError(f"The band list is given twice ({sensor!r} and bands {bands!r}); give it once, e.g. "
                         f"'{name}:{listed[0]}'.")
    subset = listed[0] if listed and listed[0].lower() != "all" else None
    if not name:
        raise InputError(f"No sensor given; name one of {', '.join(SPECTROMETERS)}.")
    centres, fwhm = sensor_wavelengths(name)  # InputError naming the spectrometers for any other name
    preset = PRESETS[name]
    every = parse_srf(f"{name}:all").band_names
    picked = every if subset is None else parse_srf(f"{name}:{subset}").band_names
    rows = [every.index(band) for band in picked]
    return SensorBands(sensor=name, label=preset.sensor.split()[0], table=f"resources/srf/{preset.band_table}",
                       band_names=tuple(picked), centres_nm=tuple(float(centres[i]) for i in rows),
                       fwhm_nm=tuple(float(fwhm[i]) for i in rows), subset=subset)


def _count_fix(count: int, table: SensorBands) -> str:
    """The sentence that says how to make the band counts agree for a file of ``count`` bands."""
    full = len(sensor_wavelengths(table.sensor)[0])
    others = [name for name in SPECTROMETERS if name != table.sensor and len(sensor_wavelengths(name)[0]) == count]
    other = f" ({', '.join(others)} has {count} bands: is it that sensor's?)" if others else ""
    if count == full:
        return f"The file has as many bands as {table.label}: give '{table.sensor}' without a band list{other}"
    if count < full:
        return (f"If the file holds only some of the {full} {table.label} bands, name them in the file's band "
                f"order, e.g. '{table.sensor}:B1-B{count}' when it holds the first {count} (a list of bands and "
                f"ranges such as B1-B50,B60-B80 works too){other}")
    return (f"The file has more bands than the {full} of {table.label}: it is not from {table.label}, or it holds "
            f"extra bands to remove first (gdal_translate -b){other}")


def _note(table: SensorBands, replaced: Sequence[float] | None) -> str:
    bands = "" if table.subset is None else f", bands {table.subset}"
    text = f"{table.label} band table ({table.table}){bands}, assigned by CoFusion: not read from the file"
    if replaced is not None:
        text += f"; they replace the file's own wavelengths ({wavelength_range(replaced)})"
    return text


def _label(ds: gdal.Dataset, table: SensorBands, note: str) -> bool:
    """Write the wavelengths, FWHM, missing band descriptions and the note into ``ds``; True when done.

    The band items replace any the copy took from the source (the band metadata and IMAGERY items); an ENVI
    source's header (GDAL's 'ENVI' domain) is not copied by gdal.Translate, so it cannot contradict them. An alpha
    band the copy keeps gets none: the table's bands are the spectral bands (``raster.spectral_band_numbers``)."""
    for number, name, centre, fwhm in zip(spectral_band_numbers(ds), table.band_names, table.centres_nm,
                                          table.fwhm_nm):
        band = ds.GetRasterBand(number)
        set_band_spectral_metadata(band, centre, fwhm)
        if not band.GetDescription():
            band.SetDescription(f"{name} ({centre:.1f} nm)")
    ds.SetMetadataItem(SOURCE_ITEM, note)
    return True


def assign_wavelengths(
    src: str | os.PathLike,
    sensor: str,
    out: str | os.PathLike,
    *,
    bands: str | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
    cancel: Cancel | None = None,
) -> Path:
    """Write ``out``, a copy of ``src`` whose bands carry the wavelengths of ``sensor``'s band table; its path.

    ``sensor``: ``enmap``, ``prisma``, ``desis`` or ``emit``, optionally with the bands the file holds
    (``"enmap:B1-B130"``; or give them as ``bands``, see ``sensor_bands``). ``out`` ending in ``.vrt`` is a virtual
    raster referring to ``src``; ``.tif`` / ``.tiff`` a GeoTIFF copy (``progress`` and ``cancel`` apply to it).
    Raises InputError when the band counts differ (naming both and the band list to give) or ``src`` already has
    wavelengths and ``overwrite`` is False; OutputError when ``out`` cannot be written or is ``src``; Canceled on
    ``cancel()`` (nothing is left behind).
    """
    table = sensor_bands(sensor, bands)
    info = read_info(src)
    suffix = Path(out).suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise OutputError(f"{out}: give the output the extension .vrt (a virtual raster that refers to the input, "
                          "written at once) or .tif (a GeoTIFF copy of the pixels).")
    target = check_output_path(out, (src,), suffixes=OUTPUT_SUFFIXES)
    if info.band_count != len(table.band_names):
        raise InputError(f"{info.path} has {info.band_count} bands but '{table.spec}' gives "
                         f"{len(table.band_names)} wavelengths; the counts must be equal. "
                         f"{_count_fix(info.band_count, table)}.")
    if info.wavelengths_nm is not None and not overwrite:
        raise InputError(f"{info.path} already has band wavelengths ({wavelength_range(info.wavelengths_nm)}) in "
                         "its metadata; nothing was written. To replace them "
                         f"with the {table.label} band table's, ask for it: overwrite (--overwrite on the command "
                         "line, OVERWRITE in Processing).")
    note = _note(table, info.wavelengths_nm)
    source = info.path if info.path.startswith("/vsi") else os.path.abspath(info.path)
    if suffix != ".vrt":
        check_free_space(target, info.width * info.height * info.band_count * np.dtype(info.dtype).itemsize)
    temp = temporary_path(target, ".vrt" if suffix == ".vrt" else ".tif")
    fix = f"Check that the disk holding {target.parent} has free space and that the folder is writable"
    canceled = []

    def report(fraction: float, _message: str, _data: object) -> int:
        if cancel is not None and cancel():
            canceled.append(True)
            return 0
        if progress is not None:
            progress(fraction, "copying the pixels")
        return 1

    if cancel is not None and cancel():
        raise Canceled("Assigning wavelengths canceled; no output file was written.")
    opened: list[gdal.Dataset] = []

    def close() -> bool:
        ds = opened.pop()
        ds.FlushCache()
        del ds  # closing writes the VRT, or the GeoTIFF's remaining tiles and metadata; failures are reported here
        return True

    try:
        if suffix == ".vrt":
            options = gdal.TranslateOptions(format="VRT")
        else:
            options = gdal.TranslateOptions(format="GTiff", creationOptions=geotiff_options(info.dtype),
                                            callback=report)
        try:
            opened.append(_gdal(lambda: gdal.Translate(str(temp), source, options=options), OutputError,
                                f"Cannot write {target}", fix))
        except OutputError:
            if canceled:
                raise Canceled("Assigning wavelengths canceled; no output file was written.") from None
            raise
        _gdal(lambda: _label(opened[0], table, note), OutputError, f"Cannot write the wavelengths into {target}",
              fix)
        _gdal(close, OutputError, f"Writing {target} failed", fix)
        os.replace(temp, target)
    except OSError as exc:
        _discard(temp, opened)
        raise OutputError(f"Cannot move the finished output to {target}: {exc}. {fix}.") from exc
    except BaseException:
        _discard(temp, opened)
        raise
    remove_with_sidecar(target, file=False)  # a stale sidecar would override the new metadata
    if progress is not None:
        progress(1.0, f"wrote {target.name}")
    return target


def _discard(temp: Path, opened: list) -> None:
    """Close without caring about errors and delete the temporary file and any sidecar of it."""
    gdal.PushErrorHandler("CPLQuietErrorHandler")
    try:
        opened.clear()
    except RuntimeError:
        pass
    finally:
        gdal.PopErrorHandler()
    remove_with_sidecar(temp)


def wavelength_range(values: Sequence[float] | np.ndarray) -> str:
    """``"418.2-2445.5 nm"``: the span of some wavelengths, for messages."""
    return f"{min(values):.1f}-{max(values):.1f} nm"
