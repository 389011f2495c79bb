# SPDX-License-Identifier: GPL-2.0-or-later
"""Raster I/O through GDAL: the only place that opens, reads and writes image files.

- `read_info` / `RasterReader` open any raster GDAL reads (a file, a folder GDAL reads as one raster such as a
  Sentinel-2 .SAFE, a /vsi path, a subdataset name such as `NETCDF:"f.nc":cube`) and describe it (`RasterInfo`):
  size, grid, CRS, dtype, nodata, band names, band scale and offset, and the centre wavelength and FWHM of every
  band in nanometres; pixels are read as float32 physical values (raw * scale + offset). A pixel of a band is
  valid when it is finite, its raw value is not the band's nodata, GDAL's mask says so (a per-dataset mask: an
  internal TIFF mask or a .msk sidecar; or an explicit per-band mask) and the alpha band, if any, is not 0.
  An alpha band (color interpretation Alpha, e.g. RGBA) is no spectral band: it is only the validity mask of
  the others, and band indices count the spectral bands only. Complex-valued rasters, and local paths that are
  not regular files or folders (a FIFO, a device: GDAL would block on them), are refused with InputError.
- `RasterWriter` / `write_raster` write tiled, compressed GeoTIFFs atomically: a hidden temporary file
  beside the target, renamed over it only when complete, so a failed or cancelled run leaves nothing behind.

GDAL failures never escape as GDAL's own errors: whatever the bindings' exception mode (QGIS and other
plugins may have turned `gdal.UseExceptions()` on or left it off), every call goes through `_gdal`, which
captures GDAL's messages with a thread-local error handler and raises `InputError` (reading) or
`OutputError` (writing) with the message and a fix. The process-wide exception mode is never changed.
"""
from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from osgeo import gdal, gdal_array, osr

from .band_metadata import bad_band_flags, envi_header, set_band_spectral_metadata, spectral_bands, spectral_metadata
from .errors import Canceled, CoFusionError, InputError, OutputError
from .outputs import check_free_space, check_output_path, is_openable, remove_with_sidecar, temporary_path
from .window import Window

log = logging.getLogger(__name__)

GeoTransform = tuple[float, float, float, float, float, float]
# What GDAL reports for a raster that has no geotransform (pixel coordinates, rows growing downwards).
PIXEL_GEOTRANSFORM: GeoTransform = (0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


_CREATE_OPTIONS = ("TILED=YES", "COMPRESS=DEFLATE", "ZLEVEL=1", "BIGTIFF=IF_SAFER", "INTERLEAVE=BAND")
#: The edge of the GeoTIFF's internal tiles (pixels) unless a writer asks for others (``internal_tile``).
INTERNAL_TILE = 256
#: The largest internal tile :func:`internal_tile` chooses.
MAX_INTERNAL_TILE = 512

T = TypeVar("T")
_NO_REASON = "GDAL gave no reason"


def _gdal(call: Callable[[], T], error: type[CoFusionError], what: str, fix: str) -> T:
    """Run `call` (one or a few GDAL calls) and raise `error` when GDAL fails.

    A failure is GDAL reporting an error of class CE_Failure or worse, the bindings raising RuntimeError
    (exception mode on), or `call` returning None or False (exception mode off). The message is
    "`what`: GDAL's messages. `fix`", on one line: GDAL 3.10 (Debian 13) appends the errors behind an error as
    lines of their own ("May be caused by: ..."), which become parts separated by "; " like separate messages.
    """
    result, detail = _attempt(call)
    if detail is not None:
        raise error(f"{what}: {detail}. {fix}.")
    return result


def _attempt(call: Callable[[], T]) -> tuple[T | None, str | None]:
    """`call`'s result and None, or (None, GDAL's messages on one line) when it fails (see `_gdal`); quiet."""
    messages: list[str] = []

    def add(message: str) -> None:
        messages.extend(line.strip().rstrip(".") for line in message.splitlines())

    def collect(err_class: int, _err_no: int, message: str) -> None:
        if err_class >= gdal.CE_Failure:
            add(message)
        else:
            log.debug("GDAL: %s", message.strip())

    gdal.PushErrorHandler(collect)  # thread-local: other threads keep their own handlers
    try:
        result: T | None = call()
    except RuntimeError as exc:
        add(str(exc))
        result = None
    finally:
        gdal.PopErrorHandler()
    if messages or result is None or result is False:
        return None, "; ".join(dict.fromkeys(m for m in messages if m)) or _NO_REASON
    return result, None


@dataclass(frozen=True)
class RasterInfo:
    """What the fusion needs to know about a raster, read once when it is opened.

    `geotransform` is in GDAL order (x origin, pixel width, row rotation, y origin, column rotation,
    pixel height); a raster without one reports `PIXEL_GEOTRANSFORM`. `nodata` has one entry per band
    (None: no nodata). `wavelengths_nm` / `fwhm_nm`: centre wavelength and full width at half maximum of
    every band in nanometres, None when the file does not say (see `_spectral_metadata` for the sources).
    `band_names`: GDAL's band descriptions, "band N" (1-based) where a band has none. `dtype` is the
    file's (raw) data type and `nodata` is in raw units. `scale` / `offset`: GDAL's band scale and offset,
    one entry per band (1.0 / 0.0 where a band has none, and for every band when left out, as hand-built
    infos do): the physical value of a pixel is raw * scale + offset, what `RasterReader.read` returns
    (e.g. EnMAP L2A reflectance stored as Int16 x 10000 with scale 0.0001). `bad_band_flags`: per band, True
    when the file flags it bad (`bbl` = 0, see `_bad_band_flags`), None when it has no bad band list.

    Bands are the spectral bands only: an alpha band of the file (see `RasterReader`) is not counted in
    `band_count`, has no entry in any per-band field and does not take part in `dtype`.
    """

    path: str
    width: int
    height: int
    band_count: int
    geotransform: GeoTransform
    crs_wkt: str
    dtype: str
    nodata: tuple[float | None, ...]
    wavelengths_nm: tuple[float, ...] | None
    fwhm_nm: tuple[float, ...] | None
    band_names: tuple[str, ...]
    scale: tuple[float, ...] = ()
    offset: tuple[float, ...] = ()
    bad_band_flags: tuple[bool, ...] | None = None

    def __post_init__(self) -> None:
        # frozen: fill the defaults through object.__setattr__, so that every info has one entry per band
        if not self.scale:
            object.__setattr__(self, "scale", (1.0,) * self.band_count)
        if not self.offset:
            object.__setattr__(self, "offset", (0.0,) * self.band_count)

    @property
    def pixel_size(self) -> tuple[float, float]:
        """Positive x and y size of one pixel in CRS units (pixels when the raster has no geotransform)."""
        gt = self.geotransform
        return math.hypot(gt[1], gt[4]), math.hypot(gt[2], gt[5])

    @property
    def window(self) -> Window:
        """The whole raster as a window."""
        return Window(0, 0, self.width, self.height)


# ---------------------------------------------------------------------------------------------- wavelengths


# --------------------------------------------------------------------------------------------------- reading


def _dtype_name(band: gdal.Band) -> str:
    return np.dtype(gdal_array.GDALTypeCodeToNumericTypeCode(band.DataType)).name


def _info_of(ds: gdal.Dataset, path: str, numbers: Sequence[int]) -> RasterInfo:
    """The description of `ds`'s spectral bands `numbers` (1-based file band numbers: alpha left out)."""
    bands = spectral_bands(ds, numbers)
    srs = ds.GetSpatialRef()
    header = envi_header(ds, path)
    wavelengths, fwhm = spectral_metadata(ds, numbers, path, header)
    return RasterInfo(
        path=path,
        width=ds.RasterXSize,
        height=ds.RasterYSize,
        band_count=len(bands),
        geotransform=tuple(float(v) for v in ds.GetGeoTransform()),
        crs_wkt=srs.ExportToWkt(["FORMAT=WKT2_2018"]) if srs is not None else "",
        dtype=np.result_type(*[_dtype_name(b) for b in bands]).name,
        nodata=tuple(b.GetNoDataValue() for b in bands),
        wavelengths_nm=wavelengths,
        fwhm_nm=fwhm,
        band_names=tuple(b.GetDescription() or f"band {i + 1}" for i, b in enumerate(bands)),
        scale=tuple(_or(b.GetScale(), 1.0) for b in bands),
        offset=tuple(_or(b.GetOffset(), 0.0) for b in bands),
        bad_band_flags=bad_band_flags(ds, numbers, path, header),
    )


_NO_MASK, _DATASET_MASK, _BAND_MASK = 0, 1, 2  # what `_mask_kind` says read_masked reads besides nodata
_SUBDATASET_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]+:")  # NETCDF:"f.nc":cube, HDF5:...; not a drive letter


def _open(name: str) -> gdal.Dataset:
    """`name` opened read-only as a raster; InputError when it does not exist or GDAL cannot read it.

    A name that is no local file (nor a /vsi path) may still be one GDAL understands, a subdataset such as
    `NETCDF:"f.nc":cube`: GDAL is asked (quietly) before the name is called missing.
    """
    def open_raster() -> gdal.Dataset | None:
        return gdal.OpenEx(name, gdal.OF_RASTER | gdal.OF_READONLY)

    if name.startswith("/vsi") or (os.path.exists(name) and not os.path.isdir(name)):
        return _gdal(open_raster, InputError, f"{name}: not a raster GDAL can read",
                     "Check that it is an image file (GeoTIFF, ENVI, ...) and that it is complete")
    dataset, reason = _attempt(open_raster)
    if dataset is not None:
        return dataset
    because = "" if reason == _NO_REASON else f" ({reason})"
    if os.path.isdir(name):
        raise InputError(f"{name} is a folder GDAL cannot read as a raster{because}; give the raster file inside it "
                         "(GeoTIFF, ENVI, ...), or a folder GDAL reads as one raster (e.g. a Sentinel-2 .SAFE).")
    if _SUBDATASET_NAME.match(name):
        raise InputError(f"{name}: the file does not exist or GDAL cannot open this subdataset{because}; check the "
                         "path and the subdataset name ('gdalinfo FILE' lists a file's subdatasets).")
    raise InputError(f"{name}: the file does not exist; check the path.")


def _check_real(ds: gdal.Dataset, name: str) -> None:
    """InputError when bands of `ds` hold complex numbers (their imaginary part would be dropped)."""
    types = dict.fromkeys(gdal.GetDataTypeName(ds.GetRasterBand(n).DataType) for n in range(1, ds.RasterCount + 1)
                          if gdal.DataTypeIsComplex(ds.GetRasterBand(n).DataType))
    if types:
        raise InputError(
            f"{name}: its pixels are complex numbers ({', '.join(types)}), which cannot be fused (the imaginary "
            "part would be lost); convert it to real values first, e.g. the magnitude with gdal_calc.py "
            f"-A {name} --allBands=A --calc=\"abs(A)\" --type=Float32 --outfile=magnitude.tif, or use the "
            "product's intensity or reflectance layer.")


def _mask_kind(band: gdal.Band, alpha_read: bool) -> int:
    """Which of GDAL's masks `read_masked` reads for `band`, from its mask flags: `_NO_MASK` when the band is
    all valid (GMF_ALL_VALID), masked by its nodata value only (GMF_NODATA: the nodata comparison covers it) or
    by an alpha band read directly (GMF_ALPHA, with `alpha_read`); `_DATASET_MASK` for one mask of all bands
    (GMF_PER_DATASET: an internal TIFF mask, a .msk sidecar, a dataset's NODATA_VALUES); else `_BAND_MASK`,
    an explicit mask of this band."""
    flags = band.GetMaskFlags()
    if flags & gdal.GMF_ALL_VALID or flags == gdal.GMF_NODATA or (flags & gdal.GMF_ALPHA and alpha_read):
        return _NO_MASK
    return _DATASET_MASK if flags & gdal.GMF_PER_DATASET else _BAND_MASK


def _or(value: float | None, default: float) -> float:
    """GDAL's scale or offset of a band as a float; `default` when the band has none (GDAL gives None)."""
    return default if value is None else float(value)


def alpha_band_numbers(ds: gdal.Dataset) -> tuple[int, ...]:
    """The 1-based numbers of `ds`'s alpha bands (color interpretation Alpha: transparency, not a spectral band)."""
    return tuple(n for n in range(1, ds.RasterCount + 1)
                 if ds.GetRasterBand(n).GetColorInterpretation() == gdal.GCI_AlphaBand)


def spectral_band_numbers(ds: gdal.Dataset) -> tuple[int, ...]:
    """The 1-based numbers of `ds`'s spectral bands: all but the alpha bands, in file order. `RasterInfo`'s band
    `i` (0-based) is file band `spectral_band_numbers(ds)[i]`."""
    alpha = alpha_band_numbers(ds)
    return tuple(n for n in range(1, ds.RasterCount + 1) if n not in alpha)


class RasterReader:
    """One open raster (a context manager holding one `gdal.Dataset`; not thread-safe: one per thread).

    `path`: a local file or folder, a /vsi path, or a name only GDAL understands (a subdataset such as
    `NETCDF:"f.nc":cube` or `HDF5:"f.h5"://cube`). Bands are the spectral bands: a band whose color
    interpretation is Alpha is left out of `info` and of the band indices of `read` / `read_masked` (0-based
    over the spectral bands, in file order), and is the validity mask of every spectral band instead (0:
    transparent). Raises InputError when the path does not exist, is a local file that is not a regular file (a
    FIFO or device, which GDAL would block on), GDAL cannot read it, it has no raster bands (or only alpha
    bands), or its pixels are complex numbers.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        name = os.fspath(path)
        if not is_openable(name):
            raise InputError(f"{name} is not a regular file (a pipe or device); give a raster file.")
        self._ds: gdal.Dataset | None = _open(name)
        ds = self._ds
        if ds.RasterCount == 0:
            subdatasets = list((ds.GetMetadata("SUBDATASETS") or {}).values())[:1]
            hint = f" It holds subdatasets: open one of them, e.g. {subdatasets[0]}." if subdatasets else ""
            raise InputError(f"{name}: the file has no raster bands.{hint}")
        _check_real(ds, name)
        #: 1-based file band numbers of the alpha bands, and of the spectral bands (all others, in file order)
        self._alpha = alpha_band_numbers(ds)
        self._numbers = spectral_band_numbers(ds)
        if not self._numbers:
            what = "its only band is an alpha band" if len(self._alpha) == 1 else "all its bands are alpha bands"
            raise InputError(f"{name}: {what} (transparency), so it holds no image; give the image raster itself.")
        for n in self._alpha:
            log.info("%s: band %d is an alpha band (transparency): used as the validity mask of the other "
                     "bands, not as a spectral band", name, n)
        #: per spectral band, which GDAL mask read_masked reads (`_mask_kind`)
        self._masks = tuple(_mask_kind(ds.GetRasterBand(n), bool(self._alpha)) for n in self._numbers)
        self.info: RasterInfo = _info_of(ds, name, self._numbers)

    def __enter__(self) -> RasterReader:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the dataset (also done on leaving the `with` block)."""
        self._ds = None

    def read(self, window: Window, bands: Sequence[int] | None = None) -> np.ndarray:
        """Physical values of `window` as float32 `(B, rows, cols)`; `bands`: 0-based indices of the spectral
        bands (default all; an alpha band is never read here).

        Physical values are raw * scale + offset per band (`RasterInfo.scale` / `offset`), nodata pixels
        included (`read_valid` gives their mask). Raises InputError when the window is not inside the
        raster, a band index is out of range, or GDAL cannot read the pixels (a truncated or corrupt file).
        """
        indices = list(range(self.info.band_count)) if bands is None else [int(b) for b in bands]
        return self._physical(self._read_raw(window, indices), indices)

    def _read_raw(self, window: Window, indices: list[int]) -> np.ndarray:
        """The file's own values of `window` and the bands `indices` as float32 `(B, rows, cols)` (see read)."""
        if self._ds is None:
            raise ValueError(f"{self.info.path}: the reader is closed")
        ds, info = self._ds, self.info
        if window.width < 1 or window.height < 1 or window.col < 0 or window.row < 0 \
                or window.col_end > info.width or window.row_end > info.height:
            raise InputError(f"{info.path}: window {tuple(window)} (col, row, width, height) is not inside "
                             f"the raster of {info.width} x {info.height} pixels.")
        if not indices or not all(0 <= b < info.band_count for b in indices):
            raise InputError(f"{info.path}: band indices {indices} are not 0-based indices of its "
                             f"{info.band_count} bands.")
        data = _gdal(
            lambda: ds.ReadAsArray(window.col, window.row, window.width, window.height,
                                   band_list=[self._numbers[b] for b in indices], buf_type=gdal.GDT_Float32),
            InputError, f"{info.path}: reading window {tuple(window)} failed",
            "The file may be truncated or corrupt: check it with 'gdalinfo -checksum' or create it again",
        )
        return np.asarray(data, dtype=np.float32).reshape(len(indices), window.height, window.width)

    def _physical(self, raw: np.ndarray, indices: list[int]) -> np.ndarray:
        """`raw` `(B, rows, cols)` of the bands `indices` turned into physical values, in place; returns it."""
        for position, index in enumerate(indices):
            scale, offset = self.info.scale[index], self.info.offset[index]
            if scale != 1.0:
                raw[position] *= np.float32(scale)
            if offset != 0.0:
                raw[position] += np.float32(offset)
        return raw

    def drop_cache(self) -> None:
        """Release the blocks GDAL's block cache holds for this raster (reads since fill it again).

        GDAL keeps every block read until its process-wide cache (GDAL_CACHEMAX, 5 % of the RAM by default)
        is full: a streaming reader calls this when it moves on, so that its memory does not grow with the
        raster's size.
        """
        if self._ds is not None:
            self._ds.FlushCache()

    def read_masked(self, window: Window, bands: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The spectral bands `bands` (0-based, default all) of `window` and where each is valid: float32 `(B,
        rows, cols)` physical values, as `read` gives them, and bool `(B, rows, cols)`.

        A band is valid at a pixel when its value is finite, its raw value (before scale and offset: nodata is in
        raw units) is not the band's nodata value (compared after conversion to float32, as the data are), GDAL's
        mask of the band is not 0 there, and no alpha band of the file is 0 there (a negative or NaN alpha counts
        as 0). GDAL's mask is read, for `window` only, when its flags say it holds more than the nodata
        comparison: a per-dataset mask (an internal TIFF mask, a .msk sidecar: read once for all bands) or an
        explicit per-band mask; not when the band is all valid or masked by its nodata value only, nor when the
        mask is the alpha band (read directly).
        """
        indices = list(range(self.info.band_count)) if bands is None else [int(b) for b in bands]
        data = self._read_raw(window, indices)
        band_valid = np.isfinite(data)
        with np.errstate(over="ignore"):
            for position, index in enumerate(indices):
                nodata = self.info.nodata[index]
                if nodata is not None:
                    band_valid[position] &= data[position] != np.float32(nodata)
        shared: np.ndarray | None = None  # the per-dataset mask, read once
        for position, index in enumerate(indices):
            kind, number = self._masks[index], self._numbers[index]
            if kind == _DATASET_MASK:
                if shared is None:
                    shared = self._read_mask(number, window, f"the mask of {self.info.path}")
                band_valid[position] &= shared
            elif kind == _BAND_MASK:
                band_valid[position] &= self._read_mask(number, window, f"the mask of band {number}")
        for number in self._alpha:
            band_valid &= self._read_band(number, window, f"the alpha band {number}") > 0
        return self._physical(data, indices), band_valid

    def _read_mask(self, number: int, window: Window, what: str) -> np.ndarray:
        """Where GDAL's mask of band `number` (1-based) is not 0 in `window`: bool `(rows, cols)`."""
        return self._read_band(number, window, what, mask=True) != 0

    def _read_band(self, number: int, window: Window, what: str, mask: bool = False) -> np.ndarray:
        """The raw values of band `number` (1-based), or of its mask band, in `window`: `(rows, cols)`."""
        if self._ds is None:
            raise ValueError(f"{self.info.path}: the reader is closed")
        band = self._ds.GetRasterBand(number)
        source = band.GetMaskBand() if mask else band
        values = _gdal(
            lambda: source.ReadAsArray(window.col, window.row, window.width, window.height),
            InputError, f"{self.info.path}: reading {what} in window {tuple(window)} failed",
            "The file (or its .msk sidecar) may be truncated or corrupt: check it with 'gdalinfo -checksum' or "
            "create it again",
        )
        return np.asarray(values).reshape(window.height, window.width)

    def read_valid(self, window: Window, bands: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The spectral bands `bands` (default all) of `window` and the pixels valid in every one of them
        (`read_masked`: nodata, GDAL's mask and the alpha band): float32 `(B, rows, cols)`, bool `(rows, cols)`."""
        data, band_valid = self.read_masked(window, bands)
        return data, band_valid.all(axis=0)


def output_nodata(lr_info: RasterInfo) -> float:
    """The nodata value of a float32 output made from ``lr_info``'s raster: its value when all its bands share one,
    else NaN (which no valid float can equal)."""
    values = set(lr_info.nodata)
    if len(values) == 1 and None not in values:
        value = values.pop()
        if np.isnan(value) or np.isfinite(np.float32(value)):
            return float(np.float32(value))
    return math.nan


def read_info(path: str | os.PathLike) -> RasterInfo:
    """Describe a raster without reading its pixels (see RasterInfo); InputError when unreadable."""
    with RasterReader(path) as reader:
        return reader.info


def read_raster(path: str | os.PathLike) -> np.ndarray:
    """The whole raster as float32 `(B, H, W)`: for small data, tests and benchmarks only."""
    with RasterReader(path) as reader:
        return reader.read(reader.info.window)


# --------------------------------------------------------------------------------------------------- writing


def _gdal_type(dtype: str) -> int:
    """GDAL's data type for a numpy dtype name; ValueError for one a GeoTIFF cannot hold exactly."""
    np_dtype = np.dtype(dtype)
    code = gdal_array.NumericTypeCodeToGDALTypeCode(np_dtype) if np_dtype.kind in "uif" else None
    if code is None or np.dtype(gdal_array.GDALTypeCodeToNumericTypeCode(code)) != np_dtype:
        raise ValueError(f"dtype {dtype!r} cannot be written; use uint8, (u)int16, (u)int32, (u)int64, "
                         "float32 or float64.")
    return code


def _per_band(values: Sequence | None, band_count: int, name: str) -> tuple | None:
    if values is None:
        return None
    values = tuple(values)
    if len(values) != band_count:
        raise ValueError(f"{name} has {len(values)} entries for {band_count} bands")
    return values


def geotiff_options(dtype: str, tile: int = INTERNAL_TILE, threads: int | None = None) -> list[str]:
    """GeoTIFF creation options of every output (see RasterWriter) for pixels of numpy dtype `dtype`, in internal
    tiles of `tile` x `tile` pixels (a multiple of 16, as TIFF requires), compressed on `threads` threads (None:
    all cores; see :func:`num_threads`)."""
    kind = np.dtype(dtype).kind
    predictor = {"f": ["PREDICTOR=3"], "i": ["PREDICTOR=2"], "u": ["PREDICTOR=2"]}.get(kind, [])
    return [*_CREATE_OPTIONS, num_threads(threads), f"BLOCKXSIZE={tile}", f"BLOCKYSIZE={tile}", *predictor]


def num_threads(threads: int | None) -> str:
    """GDAL's NUM_THREADS creation option for a writer allowed `threads` CPU threads (None: ALL_CPUS). A fusion
    given a thread count (``--threads``, a batch task's share of the cores) compresses on that many, so that the
    tasks of a machine's workers do not each take every core."""
    return "NUM_THREADS=ALL_CPUS" if threads is None else f"NUM_THREADS={max(1, int(threads))}"


def internal_tile(step: int) -> int:
    """The internal tile edge for a writer that writes squares of `step` pixels on a grid of `step` (the fusion
    engine: its tile step): the largest multiple of 16 up to MAX_INTERNAL_TILE that divides `step`, so that every
    write covers whole internal tiles, each compressed and stored once; INTERNAL_TILE when none does. (A write
    that covers part of an internal tile makes GDAL read it back, decompress, merge, compress and store it again,
    at the end of the file: at x3's step of 288 on 256-pixel tiles that doubled the time outside the network and
    made the file 1.5 times its raw size.)"""
    for edge in range(min(step, MAX_INTERNAL_TILE) // 16 * 16, 15, -16):
        if step % edge == 0:
            return edge
    return INTERNAL_TILE


class RasterWriter:
    """Writes one GeoTIFF, atomically; the only way outputs are written. Use it as a context manager.

    Creation options: tiled (`tile` x `tile` internal tiles, default 256; see :func:`internal_tile`), DEFLATE level
    1 on `threads` threads, default all CPUs (on a 198-band output 1.8 times faster than the default level 6, the
    file 6 % larger) with predictor 3 (floats) or 2 (integers), BigTIFF when needed, band interleaved. Every `write`
    is flushed out of GDAL's block cache at once, so memory does not grow with the raster; write whole internal
    tiles where possible (a tile written in parts is compressed and stored again for each part). Every band gets
    `nodata`, a description (its name, or "band N (W nm)"), and, with wavelengths, both the EnMAP-Box items
    `wavelength`, `wavelength_units`=Nanometers, `fwhm` (nm) and GDAL's IMAGERY items `CENTRAL_WAVELENGTH_UM`,
    `FWHM_UM` (um); with `bbl`, the item `bbl` (1 good, 0 bad: EnMAP-Box's bad band list); with `band_metadata`, its
    items per band and with `metadata` at dataset level (GDAL's default domain: e.g. ``core.band_support``'s
    measured / extrapolated marking). Bands get no scale or offset (GDAL's defaults, 1 and 0): the values written
    are the values every reader gets, so callers write physical values (as `RasterReader.read` gives them) and
    neither QGIS nor this module rescales them; the fused, simulated and aligned rasters are all float32 in the
    physical units of their inputs.

    The pixels go to a hidden temporary file beside `path` (".NAME.<random>.tmp.tif"), created on entering
    the `with` block. Leaving it normally flushes, closes and renames the file over `path` (an existing
    file is replaced only then, and a stale "path.aux.xml" sidecar of it is removed); leaving it with an
    exception (e.g. Canceled) deletes the temporary file, and so does leaving it normally when `cancel` is given
    and returns True then (a cancel request that came after the last check of the caller's loop: the request
    wins, the target is left as it was, and Canceled is raised). A failed write raises OutputError.
    `write` converts values to `dtype` the way GDAL does (rounded and clipped for integer types).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        width: int,
        height: int,
        band_count: int,
        geotransform: Sequence[float],
        crs_wkt: str,
        nodata: float | None = None,
        wavelengths_nm: Sequence[float] | None = None,
        fwhm_nm: Sequence[float] | None = None,
        band_names: Sequence[str] | None = None,
        bbl: Sequence[bool] | None = None,
        metadata: Mapping[str, str] | None = None,
        band_metadata: Sequence[Mapping[str, str]] | None = None,
        dtype: str = "float32",
        cancel: Callable[[], bool] | None = None,
        tile: int = INTERNAL_TILE,
        threads: int | None = None,
    ) -> None:
        if min(width, height, band_count) < 1:
            raise ValueError(f"cannot write a raster of {band_count} bands x {height} rows x {width} columns")
        self.path = check_output_path(path)
        self.width, self.height, self.band_count = int(width), int(height), int(band_count)
        self.geotransform = tuple(float(v) for v in geotransform)
        if len(self.geotransform) != 6:
            raise ValueError(f"a geotransform has 6 terms, got {len(self.geotransform)}")
        self.crs_wkt = crs_wkt
        self.dtype = np.dtype(dtype).name
        self._gdal_type = _gdal_type(self.dtype)
        if tile < 16 or tile % 16:
            raise ValueError(f"internal tiles of {tile} pixels: TIFF needs a multiple of 16")
        self.tile = int(tile)
        self.threads = threads
        if nodata is not None and np.dtype(self.dtype).kind in "ui":
            limits = np.iinfo(self.dtype)
            if not (math.isfinite(nodata) and nodata == int(nodata) and limits.min <= nodata <= limits.max):
                raise ValueError(f"nodata {nodata} is not a value of {self.dtype}")
        self.nodata = nodata
        self.wavelengths_nm = _per_band(wavelengths_nm, self.band_count, "wavelengths_nm")
        self.fwhm_nm = _per_band(fwhm_nm, self.band_count, "fwhm_nm")
        self.band_names = _per_band(band_names, self.band_count, "band_names")
        self.bbl = _per_band(bbl, self.band_count, "bbl")
        self.metadata = dict(metadata or {})
        self.band_metadata = _per_band(band_metadata, self.band_count, "band_metadata")
        self._cancel = cancel
        check_free_space(self.path, self.width * self.height * self.band_count * np.dtype(self.dtype).itemsize)
        self._temp = temporary_path(self.path)
        self._ds: gdal.Dataset | None = None
        self._disk_fix = (f"Check that the disk holding {self.path.parent} has free space (and that the "
                          "folder is writable), then run again")

    def __enter__(self) -> RasterWriter:
        options = geotiff_options(self.dtype, self.tile, self.threads)
        driver = gdal.GetDriverByName("GTiff")
        self._ds = _gdal(
            lambda: driver.Create(str(self._temp), self.width, self.height, self.band_count, self._gdal_type,
                                  options),
            OutputError, f"Cannot create {self._temp}", self._disk_fix,
        )
        try:
            _gdal(self._set_metadata, OutputError,
                  f"Cannot write the georeference and metadata of {self.path}",
                  "Check the CRS (a WKT string GDAL accepts) and the free disk space")
        except BaseException:
            self._discard()
            raise
        return self

    def _set_metadata(self) -> bool:
        ds = self._ds
        ok = ds.SetGeoTransform(self.geotransform) == gdal.CE_None
        if self.crs_wkt:
            srs = osr.SpatialReference()
            ok = ok and srs.ImportFromWkt(self.crs_wkt) == 0 and ds.SetSpatialRef(srs) == gdal.CE_None
        for i in range(self.band_count):
            band = ds.GetRasterBand(i + 1)
            if self.nodata is not None:
                ok = ok and band.SetNoDataValue(float(self.nodata)) == gdal.CE_None
            band.SetDescription(self._band_description(i))
            set_band_spectral_metadata(band, None if self.wavelengths_nm is None else self.wavelengths_nm[i],
                                       None if self.fwhm_nm is None else self.fwhm_nm[i])
            if self.bbl is not None:
                band.SetMetadataItem("bbl", "1" if self.bbl[i] else "0")
            for key, value in (self.band_metadata[i] if self.band_metadata is not None else {}).items():
                band.SetMetadataItem(key, value)
        for key, value in self.metadata.items():
            ds.SetMetadataItem(key, value)
        return ok

    def _band_description(self, index: int) -> str:
        if self.band_names is not None:
            return str(self.band_names[index])
        if self.wavelengths_nm is not None:
            return f"band {index + 1} ({float(self.wavelengths_nm[index]):.1f} nm)"
        return f"band {index + 1}"

    def write(self, array: np.ndarray, col: int, row: int) -> None:
        """Write `array` `(band_count, rows, cols)` with its top-left pixel at (`col`, `row`).

        ValueError when the shape or position does not fit the raster; OutputError when GDAL fails.
        """
        if self._ds is None:
            raise ValueError(f"{self.path}: write() is only possible inside the writer's 'with' block")
        data = np.asarray(array)
        if data.ndim != 3 or data.shape[0] != self.band_count:
            raise ValueError(f"expected an array ({self.band_count}, rows, cols), got shape {data.shape}")
        if col < 0 or row < 0 or col + data.shape[2] > self.width or row + data.shape[1] > self.height:
            raise ValueError(f"a block of {data.shape[1]} x {data.shape[2]} pixels at column {col}, row "
                             f"{row} does not fit in {self.height} x {self.width} pixels")
        _gdal(
            # self._ds, not a local: a failure's traceback must not keep the dataset open past the writer's
            # cleanup, or GDAL reports the failed flush again, outside the quiet error handler
            lambda: all(_write_band(self._ds.GetRasterBand(b + 1), data[b], int(col), int(row))
                        for b in range(self.band_count)),
            OutputError, f"Writing {self.path} failed", self._disk_fix,
        )

    def _close(self) -> bool:
        ds, self._ds = self._ds, None
        ds.FlushCache()
        del ds  # closing writes the remaining tiles and the TIFF directory; failures are reported here
        return True

    def __exit__(self, exc_type: type[BaseException] | None, *_exc: object) -> None:
        if exc_type is not None or self._ds is None:
            self._discard()
            return
        if self._cancel is not None and self._cancel():  # a cancel during the last pixels still cancels
            self._discard()
            raise Canceled(f"Canceled; {self.path} was not written" +
                           (" (the file there is unchanged)." if self.path.exists() else "."))
        try:
            _gdal(self._close, OutputError, f"Writing {self.path} failed", self._disk_fix)
            os.replace(self._temp, self.path)
        except OSError as exc:
            self._discard()
            raise OutputError(f"Cannot move the finished output to {self.path}: {exc}. {self._disk_fix}.") \
                from exc
        except BaseException:
            self._discard()
            raise
        remove_with_sidecar(self.path, file=False)  # a stale sidecar would override the new file's metadata

    def _discard(self) -> None:
        """Close without caring about errors and delete the temporary file and any sidecar of it."""
        gdal.PushErrorHandler("CPLQuietErrorHandler")
        try:
            self._ds = None
        except RuntimeError:
            pass
        finally:
            gdal.PopErrorHandler()
        remove_with_sidecar(self._temp)


def _write_band(band: gdal.Band, data: np.ndarray, col: int, row: int) -> bool:
    """Write `data` `(rows, cols)` at (`col`, `row`) and flush the band's blocks out of GDAL's cache (a failed
    flush reports through GDAL's error handler: the bindings return nothing)."""
    written = band.WriteArray(data, col, row) == gdal.CE_None
    band.FlushCache()
    return written


def write_raster(
    path: str | os.PathLike,
    array: np.ndarray,
    *,
    geotransform: Sequence[float] = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0),
    crs_wkt: str = "",
    nodata: float | None = None,
    wavelengths_nm: Sequence[float] | None = None,
    fwhm_nm: Sequence[float] | None = None,
    band_names: Sequence[str] | None = None,
    dtype: str | None = None,
) -> None:
    """Write `array` `(B, H, W)` (or `(H, W)`, one band) as a GeoTIFF through RasterWriter.

    `dtype` defaults to the array's own dtype.
    """
    data = np.asarray(array)
    if data.ndim == 2:
        data = data[np.newaxis]
    if data.ndim != 3:
        raise ValueError(f"expected an array (B, H, W) or (H, W), got shape {data.shape}")
    with RasterWriter(path, width=data.shape[2], height=data.shape[1], band_count=data.shape[0],
                      geotransform=geotransform, crs_wkt=crs_wkt, nodata=nodata,
                      wavelengths_nm=wavelengths_nm, fwhm_nm=fwhm_nm, band_names=band_names,
                      dtype=dtype or data.dtype.name) as writer:
        writer.write(data, 0, 0)
