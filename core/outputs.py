# SPDX-License-Identifier: GPL-2.0-or-later
"""Where an output may go: the checks every command runs on an output path before it writes anything.

- ``check_output_path``: the extension, the folder, and that the output is none of the files the command reads
  (its inputs, the files GDAL reads to open them, such as a VRT's sources, and non-raster inputs such as the
  model file), compared after resolving links and by file identity (hard links);
- ``temporary_path``: the hidden file beside the target that an output is written to before it is renamed over
  the target, named so that it stays a legal file name for any legal target name;
- ``check_free_space``: that the disk holding the output has room for it, before the first pixel is computed.
"""
from __future__ import annotations

import errno
import logging
import os
import shutil
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path

from osgeo import gdal

from .errors import OutputError

log = logging.getLogger(__name__)

GEOTIFF_SUFFIXES = (".tif", ".tiff")
#: The longest file name (bytes, UTF-8) the file systems QGIS runs on take: NTFS, APFS, ext4.
MAX_NAME_BYTES = 255
#: The share of the uncompressed size an output is assumed to take at least on disk. The outputs are DEFLATE
#: compressed with a floating-point predictor: a fused image of the bundled sample takes 91 % of its raw size,
#: so an output whose half does not fit certainly does not.
MIN_COMPRESSED_SHARE = 0.5


def files_read_by(path: str | os.PathLike) -> list[Path]:
    """Every local file GDAL reads to open raster ``path``: the file itself, a VRT's sources (recursively),
    sidecars such as .aux.xml, .hdr, .msk. Non-rasters (a model file) and unreadable paths are only themselves;
    ``/vsi`` paths and connection strings (``NETCDF:"f.nc":cube``) give the local files GDAL names, if any."""
    name = os.fspath(path)
    files = [] if name.startswith("/vsi") or not os.path.exists(name) else [Path(name)]
    gdal.PushErrorHandler("CPLQuietErrorHandler")
    try:
        dataset = gdal.OpenEx(name, gdal.OF_RASTER | gdal.OF_READONLY) if is_openable(name) else None
        listed = (dataset.GetFileList() or []) if dataset is not None else []
    except RuntimeError:
        listed = []
    finally:
        dataset = None
        gdal.PopErrorHandler()
    files.extend(Path(f) for f in listed if not f.startswith("/vsi"))
    return files


def is_openable(name: str) -> bool:
    """Whether GDAL may be asked to open ``name`` without blocking: a regular file, a folder, or no local file
    at all (a /vsi path or a driver's connection string). A FIFO or a device is never opened here."""
    if not os.path.exists(name):
        return True
    return os.path.isfile(name) or os.path.isdir(name)


def _same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_output_path(path: str | os.PathLike, inputs: Iterable[str | os.PathLike] = (),
                      suffixes: Sequence[str] = GEOTIFF_SUFFIXES) -> Path:
    """The absolute output path, after checking that a file can be written there without harm.

    ``inputs``: everything the command reads (rasters and other files); the output may be none of them, nor a
    file GDAL reads to open one (``files_read_by``). Raises OutputError when the extension is not one of
    ``suffixes`` (default .tif/.tiff), the file name is longer than file systems allow, the folder is missing
    or not writable, the path is a folder, or it is one of the files read.
    """
    target = Path(path).expanduser().absolute()
    if target.suffix.lower() not in suffixes:
        if tuple(suffixes) == GEOTIFF_SUFFIXES:
            raise OutputError(f"{target}: outputs are GeoTIFF files; give the file name the extension .tif.")
        raise OutputError(f"{target}: give the output file name one of the extensions {', '.join(suffixes)}.")
    if len(target.name.encode("utf-8")) > MAX_NAME_BYTES:
        raise OutputError(f"{target.name[:40]}...: the file name is {len(target.name.encode('utf-8'))} bytes "
                          f"long, more than the {MAX_NAME_BYTES} file systems allow; give a shorter name.")
    folder = target.parent
    if not folder.is_dir():
        raise OutputError(f"{target}: the folder {folder} does not exist; create it or choose another folder.")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{target}: the folder {folder} is not writable; choose a folder you can write to.")
    if target.is_dir():
        raise OutputError(f"{target} is a folder; give a file name ending in {suffixes[0]}.")
    check_not_an_input(target, inputs)
    return target


def check_not_an_input(target: Path, inputs: Iterable[str | os.PathLike]) -> None:
    """OutputError when writing ``target`` would overwrite one of ``inputs`` or a file GDAL reads to open one
    (``files_read_by``: a VRT's sources among them), by path, symbolic link or hard link."""
    for source in inputs:
        source_path = Path(source).expanduser()
        for read in files_read_by(source_path):
            if _same_file(read, target):
                what = "also an input" if _same_file(read, source_path) else f"read to open the input {source_path}"
                raise OutputError(f"{target} is {what}; choose another output file name so that the input is "
                                  "not overwritten.")


def temporary_path(target: Path, suffix: str = ".tif") -> Path:
    """A new hidden file name beside ``target`` for its pixels until they are complete: ``.NAME.<random>.tmp``
    plus ``suffix``, NAME shortened so that the whole stays within ``MAX_NAME_BYTES``."""
    tail = f".{uuid.uuid4().hex[:12]}.tmp{suffix}"
    room = MAX_NAME_BYTES - 1 - len(tail.encode("utf-8"))
    name = target.name.encode("utf-8")[:room].decode("utf-8", errors="ignore")
    return target.with_name(f".{name}{tail}")


def remove_with_sidecar(path: Path, *, file: bool = True) -> None:
    """Delete ``path`` (when ``file``) and its GDAL sidecar ``path.aux.xml`` if they exist. A sidecar whose
    name would be too long for the file system cannot exist, so that is no error either."""
    for leftover in ((path,) if file else ()) + (path.with_name(path.name + ".aux.xml"),):
        try:
            leftover.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            if exc.errno != errno.ENAMETOOLONG:
                raise


def check_free_space(target: Path, raw_bytes: int) -> None:
    """OutputError when the disk holding ``target`` cannot hold an output of ``raw_bytes`` uncompressed bytes
    (i.e. has less free space than ``MIN_COMPRESSED_SHARE`` of it; a warning in the log when less than all).
    A file already at ``target`` does not count as free space: it is replaced only once the new one is
    complete."""
    try:
        free = shutil.disk_usage(target.parent).free
    except OSError:
        return  # a file system that does not say: the write itself reports a full disk
    needed = int(raw_bytes * MIN_COMPRESSED_SHARE)
    if free < needed:
        raise OutputError(
            f"{target}: the output needs about {_size(needed)} to {_size(raw_bytes)} of disk space but "
            f"{target.parent} has {_size(free)} free; free some space, choose a folder on a larger disk, or fuse "
            "a smaller region.")
    if free < raw_bytes:
        log.warning("%s: the output may need up to %s and the disk has %s free; it may not fit", target,
                    _size(raw_bytes), _size(free))


def _size(nbytes: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if nbytes < 1000:
            return f"{nbytes:.0f} {unit}" if unit == "bytes" else f"{nbytes:.1f} {unit}"
        nbytes /= 1000
    return f"{nbytes:.1f} TB"
