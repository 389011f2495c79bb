# SPDX-License-Identifier: GPL-2.0-or-later
"""Batch fusion of many scenes on Dask: a manifest of pairs -> one cloud-optimised GeoTIFF per pair.

``python -m cofusion batch MANIFEST.csv --out DIR`` and ``cofusion:batch_fuse`` call :func:`run_batch`.

The manifest
    A CSV file with a header naming the columns ``lrhsi``, ``hrmsi``, ``output`` and optionally ``model`` (empty:
    the bundled model) and ``method`` (a classical method of ``core.classic``, e.g. ``gsa``, instead of a model).
    Input and model paths are relative to the manifest's folder, outputs relative to ``DIR``; blank lines and lines
    starting with ``#`` are skipped.

The work
    Each CoFusion scene is split into full-height stripes of the output grid, ``settings.block`` HR pixels wide
    (rounded down to a multiple of the tile step and anchored at the grid origin, as the engine's own blocks:
    ``core.tiling.plan_strips``), and each stripe is one Dask task that fuses that region of the output grid with
    the real engine (``core.service.fuse`` with ``FusionRequest.region``) into its own part file. The engine fuses
    any region exactly as the same pixels of a whole run (its tiles read their context from outside the region,
    and the predictor's scene statistics, ``prepare``, are fitted on the whole grid), so the parts put together
    are the single-process output: bit for bit, given the same tile, overlap, batch, device and number of model
    threads (PyTorch's CPU convolutions round differently with another thread count, so ``--threads`` is part of
    what a result depends on). A classical method is one task for the whole scene (``fuse_classic_raster`` fits
    its weights per block of its own). Each task then adds its part's overviews (``add_overviews``: averaged, at
    the factors of ``overview_factors``), so that the workers compute them side by side. When a scene's parts are
    all there, a last task lays them side by side in a virtual raster (``write_mosaic_vrt``: the output grid, the
    nodata, and the parts' own band metadata, which the engine wrote as a single-process run writes them) and
    copies that into a cloud-optimised GeoTIFF (GDAL's COG driver: float32, DEFLATE with the floating-point
    predictor, lossless, 256-pixel tiles, the parts' overviews). That one copy is all a scene does outside its
    tasks: the pixels are compressed once more, nothing else is computed (on a 1152 x 1152 x 224 scene a mosaic
    written first and overviews computed by the driver took 46 s, this copy 14 s). A GDAL
    whose COG driver copies only the bands' default metadata domain (3.6, Debian 12; 3.10 copies them all) leaves
    out the IMAGERY items CENTRAL_WAVELENGTH_UM / FWHM_UM, not the wavelengths (``cog_keeps_band_domains``). Disk:
    the parts and the COG of a scene exist together for a moment.

Resume
    Parts live in ``DIR/.cofusion-batch/<scene key>/``, the key a hash of the inputs (path, size, modification
    time), the model, the method, the output and the settings; each part is written atomically (``RasterWriter``:
    a temporary file renamed ``block-...pixels.tif`` when complete, renamed ``block-....tif`` once its overviews are
    added), so after a crash or a kill a rerun computes only the missing stripes, or only the overviews of a stripe
    killed while they were made (and deletes the temporary files the killed run left). The scene's output is
    written to a temporary file beside it and renamed when complete: no half-written file is ever at an output
    path. Once it is in place the parts are deleted and ``done.json`` records the output, so a rerun skips the
    scene while the output is unchanged.

Failures, progress, interruption
    A pair that fails (a missing file, a grid check, a model that does not fit, an error in a task) is reported
    with its one-line error and does not stop the others. ``progress(fraction, line)`` gets a line per finished
    stripe and scene (and the dashboard's link first). ``cancel() -> bool`` (the command line's signal policy,
    ``core.interrupts``, or QGIS's cancel button) stops the batch: no new stripe is scheduled, the queued ones are
    canceled, the running ones stop at their engine's next check (they poll a Dask ``Event``) and the finished
    parts stay for a rerun; :func:`run_batch` then returns a report with ``canceled`` set.

Dask (``dask`` and ``distributed``, ``requirements-batch.txt``) is imported only by the functions that need it, so
the core and the plugin import without it; without it :func:`run_batch` raises InputError naming the install line.
"""
from __future__ import annotations

import csv
import glob
import hashlib
import json
import logging
import math
import os
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from xml.sax.saxutils import escape as xml_escape

from osgeo import gdal

from .allocator import ENVIRONMENT as ALLOCATOR_ENVIRONMENT
from .allocator import is_glibc
from .device import available_cpus
from .errors import Canceled, CoFusionError, EmptyOutputError, InputError, OutputError
from .fuse import DEFAULT_BATCH, check_predictor
from .grid import check_inputs
from .outputs import check_output_path, remove_with_sidecar, temporary_path
from .progress import Cancel, Progress
from .raster import num_threads, output_nodata
from .tiling import DEFAULT_BLOCK, block_size, check_tiling, default_tiling, plan_strips
from .window import Window

log = logging.getLogger(__name__)


#: The folder under the output folder that holds the parts of unfinished scenes (and a record of finished ones).
STATE_FOLDER = ".cofusion-batch"
#: The line that installs what batch fusion needs.
INSTALL = "python -m pip install -r requirements-batch.txt"
#: The manifest's columns: those it must have, and the optional ones.
REQUIRED_COLUMNS = ("lrhsi", "hrmsi", "output")
OPTIONAL_COLUMNS = ("model", "method")
#: Dask starts its worker processes with glibc's MALLOC_TRIM_THRESHOLD_=65536 (freed memory goes back to the system at
#: once), which also fixes glibc's threshold for serving allocations by fresh memory maps at 128 kB: every array of a
#: tile was mapped, zeroed and unmapped again, and a stripe took 1.6 times as long (31 s -> 51 s, 224 bands at x3).
#: A local cluster's workers start with ``core.allocator``'s settings instead; workers started by the user without
#: them are named in a note (``_slow_workers``).
ALLOCATOR_SETTING = "distributed.nanny.pre-spawn-environ"
#: Seconds to wait for a scheduler given by address before giving up.
CONNECT_TIMEOUT = 30.0
#: Seconds between two looks of a running task at the batch's cancel event (each look asks the scheduler).
CANCEL_POLL = 0.5
#: Bumped whenever what a part holds changes, so that parts of an older version are never reused.
PART_VERSION = 2
#: The marker of a stripe without a valid pixel (the engine raises EmptyOutputError for it): a stripe of a scene
#: may have none while the scene has some, and is then all nodata in the output.
_EMPTY = ".empty"


@dataclass(frozen=True)
class BatchSettings:
    """How every scene of a batch is fused (the defaults are ``python -m cofusion fuse``'s).

    device: where the model runs ("auto", "cpu", "cuda", "cuda:N"); threads: PyTorch CPU threads per task (None: the
    machine's cores shared among the local cluster's tasks, 1 per task on a cluster given by address); tile,
    overlap: HR pixels (None: the engine's defaults for the model); batch: tiles per model call; block: the width of
    a stripe, one task, in HR pixels (rounded down to a multiple of tile - overlap).
    """

    device: str = "auto"
    threads: int | None = None
    tile: int | None = None
    overlap: int | None = None
    batch: int = DEFAULT_BATCH
    block: int = DEFAULT_BLOCK


@dataclass(frozen=True)
class ManifestRow:
    """One pair of the manifest as written (``line``: its line number in the file, the header being line 1)."""

    line: int
    lrhsi: str
    hrmsi: str
    output: str
    model: str = ""
    method: str = ""


@dataclass(frozen=True)
class BlockJob:
    """What one task fuses: ``region`` (HR pixels of the output grid) of a scene into ``part``."""

    scene: str  # the scene key
    part: Path
    lrhsi: Path
    hrmsi: Path
    model: Path | None
    method: str | None
    region: Window
    settings: BatchSettings
    cancel_event: str
    overviews: tuple[int, ...] = ()  # the part's overview factors (``overview_factors``)


@dataclass(frozen=True)
class BlockDone:
    """A finished task: the part written (or marked empty) and how long it took."""

    part: Path
    empty: bool
    seconds: float
    tiles: int
    canceled: bool = False


@dataclass(frozen=True)
class AssembleJob:
    """The last task of a scene: its parts (``regions`` of the output grid, in stripe order) into the COG
    ``output``, with the output grid's geotransform, CRS and nodata (``core.fuse.fuse_raster``'s: ``output_nodata``);
    the band metadata (wavelengths, FWHM, names, the bad band list, the measured / extrapolated marking) are the
    parts' own, which the engine wrote as a single-process run writes them."""

    scene: str
    folder: Path
    parts: tuple[Path, ...]
    regions: tuple[Window, ...]
    output: Path
    width: int
    height: int
    geotransform: tuple[float, ...]
    crs_wkt: str
    nodata: float
    cancel_event: str
    overviews: tuple[int, ...] = ()  # the parts' overview factors, the mosaic's (``overview_factors``)
    threads: int | None = None  # the COG's compression threads (None: all cores)


@dataclass
class SceneOutcome:
    """How one row of the manifest ended: ``status`` "written", "done before" (unchanged since an earlier run),
    "failed" or "canceled"; ``blocks`` its stripes, ``computed`` those fused by this run; ``error`` one line."""

    line: int
    output: str
    status: str = "pending"
    blocks: int = 0
    computed: int = 0
    seconds: float = 0.0
    error: str = ""


@dataclass
class BatchReport:
    """Every row's outcome, in manifest order; ``canceled`` when the batch was interrupted."""

    scenes: list[SceneOutcome] = field(default_factory=list)
    canceled: bool = False
    dashboard: str = ""

    @property
    def ok(self) -> bool:
        return not self.canceled and all(s.status in ("written", "done before") for s in self.scenes)

    def table(self) -> str:
        """The outcomes as a plain-text table, a row per scene."""
        rows = [("line", "status", "blocks", "new", "seconds", "output / error")]
        for s in self.scenes:
            rows.append((str(s.line), s.status, str(s.blocks), str(s.computed), f"{s.seconds:.1f}",
                         s.output + (f": {s.error}" if s.error else "")))
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        return "".join("  ".join(v.ljust(w) for v, w in zip(r[:5], widths)) + "  " + r[5] + "\n" for r in rows)


# ------------------------------------------------------------------------------------------------------ the manifest


def read_manifest(path: str | os.PathLike) -> list[ManifestRow]:
    """The rows of a manifest CSV (see the module's doc). InputError when the file cannot be read or lacks a
    required column; a row's own problems (an empty cell) are found when it is planned."""
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"Cannot read the manifest {source}: {exc}; give a CSV file with the columns "
                         "lrhsi,hrmsi,model,output.") from exc
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    reader = csv.reader(lines)
    header = [name.strip().lower() for name in next(reader, [])]
    missing = [name for name in REQUIRED_COLUMNS if name not in header]
    if missing:
        raise InputError(f"The manifest {source} has no column {', '.join(missing)} (its header is "
                         f"{','.join(header) or 'empty'}); its first line must name the columns, e.g. "
                         "lrhsi,hrmsi,model,output.")
    numbers = [k + 1 for k, line in enumerate(text.splitlines())
               if line.strip() and not line.lstrip().startswith("#")]
    rows = []
    for number, cells in zip(numbers[1:], reader):
        values = dict(zip(header, (cell.strip() for cell in cells)))
        rows.append(ManifestRow(number, *(values.get(name, "") for name in REQUIRED_COLUMNS + OPTIONAL_COLUMNS)))
    if not rows:
        raise InputError(f"The manifest {source} lists no pair: add a line per pair below its header.")
    return rows


# ------------------------------------------------------------------------------------------------------ planning


@dataclass(frozen=True)
class _Plan:
    """A scene ready to run: its key, state folder, stripes and the jobs that make it."""

    row: ManifestRow
    key: str
    output: Path
    folder: Path
    blocks: tuple[BlockJob, ...]
    assemble: AssembleJob


def _file_identity(name: str | os.PathLike) -> dict[str, Any]:
    """What identifies an input in a scene key: its resolved path, size and modification time (a raster that is
    no local file, such as a /vsi path or a subdataset name, by its name alone)."""
    path = Path(name)
    try:
        st = path.stat()
    except OSError:
        return {"path": os.fspath(name)}
    return {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _inside(base: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def _plan(row: ManifestRow, manifest_dir: Path, out_dir: Path, settings: BatchSettings, event: str) -> _Plan:
    """Check a row as far as it can be checked without reading pixels and split it into jobs (raises the core's
    errors with the fix)."""
    from . import service

    for name in ("lrhsi", "hrmsi", "output"):
        if not getattr(row, name):
            raise InputError(f"the {name} cell is empty; give a path.")
    if row.model and row.method:
        raise InputError(f"both a model ({row.model}) and a classical method ({row.method}) are given; give one.")
    lrhsi, hrmsi = _inside(manifest_dir, row.lrhsi), _inside(manifest_dir, row.hrmsi)
    output = _inside(out_dir, row.output).absolute()
    if out_dir in output.parents:
        output.parent.mkdir(parents=True, exist_ok=True)
    model = None if row.method else service.model_file(_inside(manifest_dir, row.model) if row.model else None)
    if model is not None and not model.is_file():
        raise InputError(f"the model {model} does not exist; give the path of a CoFusion checkpoint (.safetensors), "
                         "or leave the model empty for the bundled one.")
    lr_info, hr_info, grid, output = check_inputs(lrhsi, hrmsi, output, model)
    width, height = grid.hr_window.width, grid.hr_window.height
    if row.method:
        from .classic import METHODS

        if row.method not in METHODS:
            raise InputError(f"unknown classical method {row.method!r}: choose one of {', '.join(METHODS)}, or "
                             "leave the method empty to fuse with a model.")
        regions = [Window(0, 0, width, height)]
        tiling: dict[str, Any] = {"method": row.method}
        model_id: dict[str, Any] | None = None
    else:
        from .checkpoint import read_card

        config = read_card(model).config
        check_predictor(SimpleNamespace(msi_bands=config.msi_bands, scale=config.scale), lr_info, hr_info, grid)
        align = math.lcm(int(config.align), grid.scale)  # as core.fuse.fuse_raster
        default_tile, default_overlap = default_tiling(align)
        tile = default_tile if settings.tile is None else settings.tile
        overlap = default_overlap if settings.overlap is None else settings.overlap
        check_tiling(tile, overlap, align)
        if settings.batch < 1:
            raise InputError(f"Batch size {settings.batch} must be at least 1 tile.")
        stripe = block_size(settings.block, tile, overlap)
        regions = plan_strips(Window(0, 0, width, height), stripe)
        # the engine gets the block as given: it rounds it to the same stripe (a stripe may be narrower than a
        # tile, which the engine refuses as a block given)
        settings = BatchSettings(settings.device, settings.threads, tile, overlap, settings.batch, settings.block)
        tiling = {"tile": tile, "overlap": overlap, "batch": settings.batch, "block": stripe,
                  "device": settings.device, "threads": settings.threads}
        model_id = _file_identity(model)
    identity = {"version": PART_VERSION, "lrhsi": _file_identity(lr_info.path),
                "hrmsi": _file_identity(hr_info.path), "model": model_id, "output": str(output), **tiling}
    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:20]
    folder = out_dir / STATE_FOLDER / key
    folder.mkdir(parents=True, exist_ok=True)
    _write_json(folder / "scene.json", {**identity, "width": width, "height": height})
    overviews = overview_factors(width, height, regions[0].width if len(regions) > 1 else None)
    jobs = tuple(BlockJob(key, folder / f"block-{r.col:06d}-{r.col_end:06d}.tif", lrhsi, hrmsi, model,
                          row.method or None, r, settings, event, overviews) for r in regions)
    assemble = AssembleJob(key, folder, tuple(job.part for job in jobs), tuple(regions), output, width, height,
                           tuple(grid.geotransform), grid.crs_wkt, output_nodata(lr_info), event, overviews,
                           settings.threads)
    return _Plan(row, key, output, folder, jobs, assemble)


def _write_json(path: Path, data: dict) -> None:
    """Write ``data`` to ``path`` atomically (a temporary file renamed)."""
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        temporary.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(temporary, path)
    except OSError as exc:
        raise OutputError(f"Cannot write {path}: {exc}; check that the output folder is writable and has free "
                          "space.") from exc
    finally:
        if temporary.exists():
            temporary.unlink()


def _clean_leftovers(folder: Path, output: Path) -> None:
    """Delete what a killed run left half-written: the hidden temporary files of a scene's folder (every complete
    part has its final name) and those of its output beside it (``outputs.temporary_path``, and the COG driver's
    overview file of one)."""
    for leftover in [*folder.glob(".*.tmp*"), *output.parent.glob(f".{glob.escape(output.name)}.*.tmp*")]:
        try:
            leftover.unlink()
        except OSError:
            pass


def _done_before(plan: _Plan) -> bool:
    """Whether an earlier run wrote this scene's output and it is still the file it wrote."""
    record = plan.folder / "done.json"
    try:
        done = json.loads(record.read_text(encoding="utf-8"))
        st = plan.output.stat()
    except (OSError, ValueError):
        return False
    return done.get("output") == str(plan.output) and done.get("size") == st.st_size and \
        done.get("mtime_ns") == st.st_mtime_ns


# ------------------------------------------------------------------------------------------------------ the tasks


class _TaskCancel:
    """A task's ``cancel() -> bool``: whether the batch's Dask Event is set, asked at most every ``CANCEL_POLL``
    seconds (the engine checks before every batch of tiles)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._checked = 0.0
        self._set = False
        self._event = None

    def __call__(self) -> bool:
        now = time.monotonic()
        if self._set or now - self._checked < CANCEL_POLL:
            return self._set
        self._checked = now
        try:
            if self._event is None:
                from distributed import Event

                self._event = Event(self.name)
            self._set = bool(self._event.is_set())
        except Exception:  # noqa: BLE001 (no scheduler to ask: the worker is going away with it)
            log.debug("cannot ask the scheduler about event %s", self.name, exc_info=True)
        return self._set


def fuse_block(job: BlockJob) -> BlockDone:
    """A Dask task: fuse ``job.region`` into ``job.part`` with the engine (``core.service.fuse``), or the whole
    scene with a classical method, and add the part's overviews (``add_overviews``). The engine writes the pixels
    to ``pixels_path(part)`` (atomically), which takes the part's name once its overviews are there: a part is
    complete when it exists, and a rerun after a kill during the overviews fuses nothing again. A part already
    there is kept (another run or task made it). A stripe without a valid pixel is recorded by an empty marker
    file (``.empty``): it is nodata in the output."""
    started = time.perf_counter()
    marker = job.part.with_name(job.part.name + _EMPTY)
    if job.part.exists() or marker.exists():
        return BlockDone(job.part, marker.exists(), 0.0, 0)
    pixels = pixels_path(job.part)
    cancel = _TaskCancel(job.cancel_event)
    tiles = 0
    try:
        if not pixels.exists():
            tiles = _fuse_pixels(job, pixels, cancel)
        add_overviews(pixels, job.overviews, cancel)
        os.replace(pixels, job.part)
    except Canceled:  # the batch was stopped (its driver reports that): no error for Dask to log
        return BlockDone(job.part, False, time.perf_counter() - started, tiles, canceled=True)
    except EmptyOutputError as exc:
        _write_json(marker, {"region": list(job.region), "message": str(exc)})
        return BlockDone(job.part, True, time.perf_counter() - started, 0)
    return BlockDone(job.part, False, time.perf_counter() - started, tiles)


def pixels_path(part: Path) -> Path:
    """Where the engine writes a part's pixels before its overviews are added: ``block-...pixels.tif``."""
    return part.with_name(part.stem + ".pixels" + part.suffix)


def _fuse_pixels(job: BlockJob, target: Path, cancel: Cancel) -> int:
    """Fuse the job's region (a classical method: the whole scene) into ``target``; the number of tiles."""
    if job.method:
        from .classic_raster import fuse_classic_raster

        fuse_classic_raster(job.lrhsi, job.hrmsi, target, job.method, cancel=cancel)
        return 0
    from . import service

    s = job.settings
    return service.fuse(service.FusionRequest(
        job.lrhsi, job.hrmsi, target, model=job.model, device=s.device, threads=s.threads, tile=s.tile,
        overlap=s.overlap, batch=s.batch, block=s.block, region=job.region), cancel=cancel).tiles


def overview_factors(width: int, height: int, stripe: int | None) -> tuple[int, ...]:
    """The overview factors of a scene of ``width`` x ``height`` HR pixels in stripes ``stripe`` pixels wide (None:
    one part): the COG driver's own rule (halve until a level fits in one ``COG_BLOCK`` tile), but only factors
    that divide the stripe, so that every part's overview pixels average whole blocks of the scene's pixels and
    the parts' levels put side by side are the scene's. A scene that would need more levels gets fewer (QGIS then
    reads the smallest one for a view of the whole scene)."""
    factors, factor, size = [], 1, max(width, height)
    while size > COG_BLOCK and (stripe is None or stripe % (2 * factor) == 0):
        factor, size = 2 * factor, -(-size // 2)
        factors.append(factor)
    return tuple(factors)


def add_overviews(path: Path, factors: Sequence[int], cancel: Cancel | None = None) -> None:
    """Add (or rebuild) the GeoTIFF ``path``'s internal overviews at ``factors``: the average of the valid
    pixels (GDAL's AVERAGE, nodata left out), compressed as the file is. A file GDAL cannot open or extend (what
    a kill in the middle may leave) is deleted, so that a rerun fuses it again: OutputError saying so; Canceled
    when ``cancel()`` turns True (checked by GDAL's progress callback)."""
    if not factors:
        return

    def callback(_fraction, _message, _data):
        return 0 if cancel is not None and cancel() else 1

    with _QuietGdal():
        gdal.ErrorReset()
        try:  # whatever the bindings' exception mode (QGIS turns exceptions on)
            ds = gdal.Open(str(path), gdal.GA_Update)
            failed = ds is None or ds.BuildOverviews("AVERAGE", list(factors), callback=callback) != gdal.CE_None
            ds = None
            message = gdal.GetLastErrorMsg()
        except RuntimeError as exc:
            failed, message, ds = True, str(exc), None
    if cancel is not None and cancel():
        raise Canceled(f"Canceled; the overviews of {path} were not made.")
    if failed:
        remove_with_sidecar(path)
        raise OutputError(f"Cannot add overviews to the part {path}: {message or 'GDAL gave no reason'}; it is "
                          "deleted: run the batch again to fuse it again.")


def assemble_scene(job: AssembleJob, _blocks: Sequence[BlockDone] = ()) -> dict[str, Any]:
    """A Dask task: the scene's parts into its COG (``write_mosaic_vrt``, then ``write_cog`` from it: written to a
    temporary file beside ``job.output``, renamed when complete); then ``done.json`` is written and the parts
    deleted. ``_blocks``: the stripes' results, only so that Dask runs this after them."""
    empty = {p for p in job.parts if p.with_name(p.name + _EMPTY).exists()}
    missing = [p.name for p in job.parts if p not in empty and not p.exists()]
    if missing:
        raise OutputError(f"the parts {', '.join(missing)} of {job.output} are missing from {job.folder}; run the "
                          "batch again to compute them.")
    if len(empty) == len(job.parts):  # the scene has no valid pixel: the single-process run's error
        marker = job.parts[0].with_name(job.parts[0].name + _EMPTY)
        raise InputError(json.loads(marker.read_text(encoding="utf-8"))["message"])
    cancel = _TaskCancel(job.cancel_event)
    mosaic = write_mosaic_vrt(job, job.folder / "mosaic.vrt")
    try:
        write_cog(mosaic, job.output, cancel=cancel, threads=job.threads)
    except Canceled:  # the batch was stopped (its driver reports that): no error for Dask to log
        return {"output": str(job.output), "canceled": True}
    st = job.output.stat()
    _write_json(job.folder / "done.json", {"output": str(job.output), "size": st.st_size, "mtime_ns": st.st_mtime_ns})
    for part in (*job.parts, mosaic):
        for leftover in (part, part.with_name(part.name + _EMPTY)):
            remove_with_sidecar(leftover)
    return {"output": str(job.output), "bytes": st.st_size}


# ------------------------------------------------------------------------------------------------------ the COG

#: Edge of the COG's internal tiles, pixels.
COG_BLOCK = 256
#: Metadata domains GDAL computes itself, never copied from a part.
_OWN_DOMAINS = ("IMAGE_STRUCTURE", "DERIVED_SUBDATASETS", "LocationInfo")


def write_mosaic_vrt(job: AssembleJob, target: Path) -> Path:
    """The parts side by side as a GDAL virtual raster at ``target`` (rewritten each time; a few kB): the output
    grid, CRS and nodata of the job, each part's pixels at its region as stored (no resampling, no scaling, so a NaN
    or a -0.0 keeps its bits), nodata where a stripe has no part (no valid pixel), and the first part's metadata:
    at dataset level and per band, every domain, the descriptions and colour interpretations. Its overviews, at the
    job's factors, are virtual (the VRT's OverviewList, GDAL 3.2 and later): GDAL reads each level from the same
    level of the parts' own (averaged) overviews, pixel for pixel ("nearest" at the parts' own factor), which
    spares the COG driver computing them."""
    fix = "check that the output folder is writable and has free space"
    with _QuietGdal():
        gdal.ErrorReset()
        try:  # whatever the bindings' exception mode (QGIS turns exceptions on)
            first = gdal.Open(str(next(p for p in job.parts if p.exists())))
        except RuntimeError:
            first = None
        if first is None:
            raise OutputError(f"Cannot read the parts of {job.output}: {gdal.GetLastErrorMsg()}; delete "
                              f"{job.folder} and run the batch again.")
        try:
            vrt = gdal.GetDriverByName("VRT").Create(str(target), job.width, job.height, 0)
        except RuntimeError:
            vrt = None
        if vrt is None:
            raise OutputError(f"Cannot write {target}: {gdal.GetLastErrorMsg()}; {fix}.")
        try:
            vrt.SetGeoTransform(job.geotransform)
            vrt.SetProjection(job.crs_wkt)
            _copy_metadata(first, vrt)
            for number in range(1, first.RasterCount + 1):
                vrt.AddBand(gdal.GDT_Float32)
                band, source = vrt.GetRasterBand(number), first.GetRasterBand(number)
                band.SetNoDataValue(job.nodata)
                band.SetDescription(source.GetDescription())
                band.SetColorInterpretation(source.GetColorInterpretation())
                _copy_metadata(source, band)
                band.SetMetadata({f"source_{k}": _simple_source(part, number, region)
                                  for k, (part, region) in enumerate(zip(job.parts, job.regions)) if part.exists()},
                                 "new_vrt_sources")
            band = source = vrt = None  # closing writes the file
            failed = gdal.GetLastErrorType() >= gdal.CE_Failure
            message = gdal.GetLastErrorMsg()
        except RuntimeError as exc:
            failed, message = True, str(exc)
        band = source = vrt = first = None
    try:
        if failed:
            raise OSError(message)
        if job.overviews:
            text = target.read_text(encoding="utf-8")
            factors = " ".join(str(f) for f in job.overviews)
            end = text.rindex("</VRTDataset>")
            target.write_text(f'{text[:end]}  <OverviewList resampling="nearest">{factors}</OverviewList>\n'
                              f"{text[end:]}", encoding="utf-8")
    except (OSError, ValueError) as exc:
        raise OutputError(f"Cannot write {target}: {exc}; {fix}.") from exc
    return target


def _copy_metadata(source, target) -> None:
    """Every metadata domain of a GDAL dataset or band ``source`` onto ``target``, but those GDAL computes."""
    for domain in source.GetMetadataDomainList() or []:
        if domain not in _OWN_DOMAINS and not domain.startswith("xml:"):
            target.SetMetadata(source.GetMetadata(domain), domain)


def _simple_source(part: Path, band: int, region: Window) -> str:
    """A VRT source: band ``band`` of ``part`` (the region's pixels) at ``region`` of the mosaic."""
    return (f"<SimpleSource><SourceFilename relativeToVRT=\"0\">{xml_escape(str(part))}</SourceFilename>"
            f"<SourceBand>{band}</SourceBand>"
            f"<SrcRect xOff=\"0\" yOff=\"0\" xSize=\"{region.width}\" ySize=\"{region.height}\"/>"
            f"<DstRect xOff=\"{region.col}\" yOff=\"{region.row}\" xSize=\"{region.width}\" "
            f"ySize=\"{region.height}\"/></SimpleSource>")


def cog_options(band_count: int, threads: int | None = None) -> list[str]:
    """COG creation options in the spirit of ``core.raster.geotiff_options``: 256-pixel tiles, DEFLATE level 1
    with the floating-point predictor (lossless), on ``threads`` threads (None: all CPUs), BigTIFF when needed, the
    source's overviews (the parts', ``add_overviews``; averaged by the driver where a source has none);
    band-interleaved where this GDAL's COG driver offers it (3.11 and later; before, a COG is pixel-interleaved)."""
    options = [f"BLOCKSIZE={COG_BLOCK}", "COMPRESS=DEFLATE", "LEVEL=1", "PREDICTOR=FLOATING_POINT",
               num_threads(threads), "BIGTIFF=IF_SAFER", "RESAMPLING=AVERAGE", "OVERVIEWS=AUTO"]
    listed = gdal.GetDriverByName("COG").GetMetadataItem("DMD_CREATIONOPTIONLIST") or ""
    if band_count > 1 and "name='INTERLEAVE'" in listed:
        options.append("INTERLEAVE=BAND")
    return options


_KEEPS_DOMAINS: bool | None = None  # cog_keeps_band_domains's answer, once asked


def cog_keeps_band_domains() -> bool:
    """Whether this GDAL's COG driver copies the bands' metadata domains other than the default one from a
    virtual raster (``write_mosaic_vrt``; the IMAGERY items CENTRAL_WAVELENGTH_UM and FWHM_UM that ``RasterWriter``
    writes): GDAL 3.10 does, 3.6 (Debian 12) copies only the default domain, where the wavelengths and FWHM are too
    (the EnMAP-Box items), so readers of those (``core.raster.read_info``, QGIS, the EnMAP-Box) see the same bands
    either way. Asked once, in memory."""
    global _KEEPS_DOMAINS
    if _KEEPS_DOMAINS is None:
        name = f"/vsimem/cofusion-probe-{uuid.uuid4().hex}"
        with _QuietGdal():
            source = gdal.GetDriverByName("VRT").Create(name + ".vrt", 1, 1, 1, gdal.GDT_Float32)
            source.GetRasterBand(1).SetMetadataItem("PROBE", "1", "IMAGERY")
            copy = gdal.GetDriverByName("COG").CreateCopy(name + ".cog.tif", source)
            copy = None
            copy = gdal.Open(name + ".cog.tif")
            band = copy.GetRasterBand(1) if copy is not None else None
            _KEEPS_DOMAINS = band is not None and band.GetMetadataItem("PROBE", "IMAGERY") == "1"
            band = copy = source = None
            for suffix in (".vrt", ".cog.tif"):
                gdal.Unlink(name + suffix)
    return _KEEPS_DOMAINS


class _QuietGdal:
    """GDAL's messages kept from stderr (they are read with GetLastErrorMsg) inside the ``with`` block."""

    def __enter__(self) -> None:
        gdal.PushErrorHandler("CPLQuietErrorHandler")

    def __exit__(self, *_exc: object) -> None:
        gdal.PopErrorHandler()


def write_cog(source: Path, output: Path, cancel: Cancel | None = None, threads: int | None = None) -> Path:
    """Copy the raster ``source`` (the mosaic's virtual raster) into a cloud-optimised GeoTIFF at ``output``
    (``cog_options``), pixels, overviews and metadata as they are (the bands' other domains where
    ``cog_keeps_band_domains``). Written to a temporary file beside ``output`` and renamed when
    complete; OutputError when GDAL fails (whatever the bindings' exception mode), Canceled when ``cancel()``
    turns True (checked by GDAL's progress callback)."""
    output = check_output_path(output)
    temporary = temporary_path(output)
    fix = f"Check that the disk holding {output.parent} has free space, then run the batch again"
    cog = src = None
    try:
        with _QuietGdal():
            gdal.ErrorReset()
            src = gdal.Open(str(source))
            if src is None:
                raise RuntimeError(gdal.GetLastErrorMsg())

            def callback(_fraction, _message, _data):
                return 0 if cancel is not None and cancel() else 1

            cog = gdal.GetDriverByName("COG").CreateCopy(str(temporary), src, 0,
                                                         cog_options(src.RasterCount, threads), callback=callback)
            failed = cog is None or gdal.GetLastErrorType() >= gdal.CE_Failure
            cog = src = None  # closing the COG finishes it
            failed = failed or gdal.GetLastErrorType() >= gdal.CE_Failure
            message = gdal.GetLastErrorMsg()
        if cancel is not None and cancel():
            raise Canceled(f"Canceled; {output} was not written.")
        if failed:
            raise RuntimeError(message)
        os.replace(temporary, output)
        remove_with_sidecar(output, file=False)
    except RuntimeError as exc:
        raise OutputError(f"Writing {output} failed: {_one_line(exc) or 'GDAL gave no reason'}. {fix}.") from exc
    except OSError as exc:
        raise OutputError(f"Cannot write {output}: {exc}. {fix}.") from exc
    finally:
        cog = src = None
        remove_with_sidecar(temporary)
    return output


# ------------------------------------------------------------------------------------------------------ the driver


def _import_distributed():
    try:
        import distributed
    except ImportError as exc:
        raise InputError(f"Batch fusion needs dask and distributed, which cannot be imported here ({exc}); install "
                         f"them with: {INSTALL}") from exc
    return distributed


def _one_line(exc: BaseException) -> str:
    text = str(exc) if isinstance(exc, CoFusionError) else f"{type(exc).__name__}: {exc}"
    return " ".join(text.split()) or type(exc).__name__


def local_threads(workers: int, threads_per_worker: int) -> int:
    """PyTorch threads per task in a local cluster: the cores shared by the tasks that run at once."""
    return max(1, available_cpus() // max(1, workers * threads_per_worker))


def open_client(scheduler: str | None, workers: int | None, threads_per_worker: int, processes: bool,
                connect_timeout: float):
    """A Dask client of the scheduler at address ``scheduler``, or of a new local cluster of ``workers``
    processes (threads with ``processes=False``) of ``threads_per_worker`` threads. InputError when dask is
    missing or the scheduler cannot be reached."""
    distributed = _import_distributed()
    if not logging.getLogger().isEnabledFor(logging.INFO):  # Dask's own lines only with --verbose
        logging.getLogger("distributed").setLevel(logging.WARNING)
    if scheduler:
        try:
            return distributed.Client(scheduler, timeout=connect_timeout, set_as_default=False)
        except (OSError, ValueError, TypeError) as exc:
            raise InputError(f"Cannot reach the Dask scheduler at {scheduler}: {_one_line(exc)}; start it (dask "
                             "scheduler) or give the address it prints, e.g. tcp://host:8786.") from exc
    count = workers or max(1, available_cpus() // max(1, threads_per_worker))
    import dask

    settings = {f"{ALLOCATOR_SETTING}.{name}": value for name, value in ALLOCATOR_ENVIRONMENT.items()}
    with dask.config.set(settings):  # see ALLOCATOR_SETTING
        cluster = distributed.LocalCluster(n_workers=count, threads_per_worker=threads_per_worker,
                                           processes=processes, dashboard_address=":8787")
    client = distributed.Client(cluster, set_as_default=False)
    client._cofusion_cluster = cluster  # closed with the client (close_client)
    if processes:
        _ignore_interrupts_in_workers(client)
    return client


def _ignore_interrupts(driver_pid: int) -> None:
    """In a worker process of a local cluster: ignore Ctrl-C (and Ctrl-Break), which a terminal sends to every
    process of the group. The driver alone follows the signal policy (``core.interrupts``): it cancels the tasks
    and closes the cluster, so a worker never dies half-way through a part on its own. Nothing happens in the
    driver's process (a cluster of threads) or outside a main thread."""
    import signal

    if os.getpid() == driver_pid or threading.current_thread() is not threading.main_thread():
        return
    for name in ("SIGINT", "SIGBREAK"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)


def _ignore_interrupts_in_workers(client) -> None:
    """Run ``_ignore_interrupts`` on every worker of the client's cluster, restarted ones too (a worker plugin)."""
    from distributed.diagnostics.plugin import WorkerPlugin

    class IgnoreInterrupts(WorkerPlugin):
        name = "cofusion-ignore-interrupts"

        def __init__(self, driver_pid: int) -> None:
            self.driver_pid = driver_pid

        def setup(self, worker) -> None:
            _ignore_interrupts(self.driver_pid)

    register = getattr(client, "register_plugin", None) or client.register_worker_plugin
    try:
        register(IgnoreInterrupts(os.getpid()))
    except Exception:  # noqa: BLE001 (a worker that cannot take it still works; Ctrl-C may then stop it)
        log.warning("could not make the local workers ignore Ctrl-C", exc_info=True)


def close_client(client) -> None:
    cluster = getattr(client, "_cofusion_cluster", None)
    client.close()
    if cluster is not None:
        cluster.close()


def run_batch(
    manifest: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    settings: BatchSettings | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    threads_per_worker: int = 1,
    processes: bool = True,
    connect_timeout: float = CONNECT_TIMEOUT,
    progress: Progress | None = None,
    cancel: Cancel | None = None,
    client=None,
) -> BatchReport:
    """Fuse every pair of ``manifest`` into ``out_dir`` on Dask (see the module's doc); returns the report.

    scheduler: a Dask scheduler's address (None: a local cluster of ``workers`` processes, default one per core,
    of ``threads_per_worker`` threads; ``processes=False`` makes them threads of this process). ``client``: an
    open ``distributed.Client`` to use instead (not closed). Raises InputError for an unreadable manifest, a
    missing output folder, missing dask or an unreachable scheduler; a pair's own failure is in the report.
    """
    report_line = progress or (lambda _fraction, _line: None)
    settings = settings or BatchSettings()
    out = Path(out_dir).expanduser().absolute()
    if not out.is_dir():
        raise OutputError(f"The output folder {out} does not exist; create it or give another --out.")
    rows = read_manifest(manifest)
    _import_distributed()
    own = client is None
    if own:
        client = open_client(scheduler, workers, threads_per_worker, processes, connect_timeout)
    try:
        if settings.threads is None:
            local = getattr(client, "_cofusion_cluster", None) is not None
            per_task = local_threads(len(client.scheduler_info().get("workers", {})) or 1, threads_per_worker) \
                if local else 1
            settings = BatchSettings(settings.device, per_task, settings.tile, settings.overlap, settings.batch,
                                     settings.block)
        return _Batch(client, rows, Path(manifest).expanduser().absolute().parent, out, settings, report_line,
                      cancel).run()
    finally:
        if own:
            close_client(client)


def _allocator_settings() -> dict[str, str | None] | None:
    """On a worker (``Client.run``): its values of ``core.allocator.ENVIRONMENT``'s variables (None when unset), or
    None when its C library is not glibc's (the settings do not apply there)."""
    return {name: os.environ.get(name) for name in ALLOCATOR_ENVIRONMENT} if is_glibc() else None


def _slow_workers(client) -> list[tuple[str, str]]:
    """(address, its settings as "NAME=value, ...") of the glibc workers that run without ``core.allocator``'s
    settings (none when they cannot be asked)."""
    try:
        values = client.run(_allocator_settings)
    except Exception:  # noqa: BLE001 (a worker that cannot answer is not named)
        return []
    return sorted((address, ", ".join(f"{name}={value or 'unset'}" for name, value in settings.items()))
                  for address, settings in values.items() if settings is not None and settings != ALLOCATOR_ENVIRONMENT)


def _executing(run_id: str, dask_worker=None) -> int:
    """On a worker (``Client.run``): how many tasks of the batch ``run_id`` its threads still execute, canceled ones
    included (a thread cannot be stopped: it runs until the task returns)."""
    state = getattr(dask_worker, "state", None)
    return sum(1 for ts in getattr(state, "executing", ()) if run_id in str(ts.key))


class _Batch:
    """One run of the driver: plans the rows, submits the tasks, follows them and reports."""

    def __init__(self, client, rows: list[ManifestRow], manifest_dir: Path, out: Path, settings: BatchSettings,
                 report: Progress, cancel: Cancel | None) -> None:
        self.client, self.rows, self.manifest_dir, self.out = client, rows, manifest_dir, out
        self.settings, self.report, self.cancel = settings, report, cancel
        self.run_id = uuid.uuid4().hex[:12]  # in every task key of this run
        self.event = f"cofusion-cancel-{self.run_id}"
        self.outcomes = [SceneOutcome(row.line, row.output) for row in rows]
        self.total = 0
        self.finished = 0

    def line(self, text: str) -> None:
        self.report(self.finished / self.total if self.total else 0.0, text)

    def run(self) -> BatchReport:
        from distributed import Event

        dashboard = getattr(self.client, "dashboard_link", "") or ""
        self.report(0.0, f"Dask scheduler {self.client.scheduler.address}, dashboard {dashboard or 'not available'}; "
                         f"{self.settings.threads} model thread(s) per task")
        slow = _slow_workers(self.client)
        if slow:
            fix = " and ".join(f"{ALLOCATOR_SETTING}.{name}: {value}" for name, value in ALLOCATOR_ENVIRONMENT.items())
            self.report(0.0, f"note: {len(slow)} worker(s) run without the allocator settings a fusion is fastest with "
                             f"(e.g. {slow[0][0]}: {slow[0][1]}; Dask's default MALLOC_TRIM_THRESHOLD_=65536 makes "
                             f"it about 1.6 times as slow): start them with the Dask settings {fix}")
        if not cog_keeps_band_domains():
            self.report(0.0, f"note: GDAL {gdal.__version__} copies only the bands' default metadata into a COG: the "
                             "outputs carry wavelengths and FWHM as the EnMAP-Box items, not GDAL's IMAGERY items")
        event = Event(self.event, client=self.client)
        plans = self._plan()
        futures: dict[Any, tuple[str, int, Any]] = {}  # future -> (kind, row index, job)
        scenes: dict[int, dict[str, Any]] = {}
        started = time.perf_counter()
        canceled = False
        try:
            for index, plan in plans.items():
                state = scenes[index] = {"blocks": [], "assemble": None, "started": time.perf_counter()}
                outcome = self.outcomes[index]
                outcome.blocks = len(plan.blocks)
                todo = []
                for job in plan.blocks:
                    marker = job.part.with_name(job.part.name + _EMPTY)
                    if job.part.exists() or marker.exists():
                        continue
                    todo.append(job)
                kept = len(plan.blocks) - len(todo)
                if kept:
                    self.line(f"line {plan.row.line} {plan.row.output}: {kept} of {len(plan.blocks)} blocks kept "
                              "from an earlier run")
                for job in todo:
                    key = f"cofusion-block-{job.scene}-{job.region.col}-{self.run_id}"
                    future = self.client.submit(fuse_block, job, key=key, pure=False, retries=0)
                    futures[future] = ("block", index, job)
                    state["blocks"].append(future)
                assemble = self.client.submit(assemble_scene, plan.assemble, state["blocks"], pure=False,
                                              key=f"cofusion-scene-{plan.key}-{self.run_id}")
                futures[assemble] = ("scene", index, plan)
                state["assemble"] = assemble
            self.total = sum(1 for kind, _i, _j in futures.values() if kind == "block") + len(scenes)
            pending = dict(futures)
            while pending:
                if self.cancel is not None and self.cancel():
                    canceled = True
                    break
                done = [f for f in pending if f.done()]
                if not done:
                    time.sleep(0.05)
                    continue
                for future in done:
                    if future not in pending:  # dropped with its scene's failure
                        continue
                    kind, index, job = pending.pop(future)
                    self._finished(future, kind, index, job, scenes, pending)
        finally:
            if canceled or any(not f.done() for f in futures):
                event.set()
                self.client.cancel(list(futures), force=True)
                self._let_running_tasks_stop()
        report = BatchReport(self.outcomes, canceled=canceled, dashboard=dashboard)
        for outcome in self.outcomes:
            if outcome.status == "pending":
                outcome.status = "canceled"
        if canceled:
            kept = sum(1 for plan in plans.values() for job in plan.blocks if job.part.exists())
            self.report(self.finished / max(1, self.total), f"canceled: the {kept} finished blocks are kept in "
                        f"{self.out / STATE_FOLDER} and a rerun computes only the others")
        else:
            written = sum(1 for o in self.outcomes if o.status in ("written", "done before"))
            self.report(1.0, f"{written} of {len(self.outcomes)} scenes written in "
                             f"{time.perf_counter() - started:.1f} s")
        return report

    def _let_running_tasks_stop(self) -> None:
        """Wait (a few seconds at most) until no worker runs a task of this batch: the running ones see the cancel
        event at their engine's next check and delete their temporary files, which closing a local cluster under
        them would leave behind (a rerun deletes such leftovers, but a stopped batch should leave none)."""
        deadline = time.monotonic() + 4 * CANCEL_POLL + 2.0
        while time.monotonic() < deadline:
            try:
                busy = any(self.client.run(_executing, self.run_id).values())
            except Exception:  # noqa: BLE001 (no scheduler or no worker left: nothing runs)
                return
            if not busy:
                return
            time.sleep(0.05)

    def _plan(self) -> dict[int, _Plan]:
        plans: dict[int, _Plan] = {}
        outputs: dict[Path, int] = {}
        for index, row in enumerate(self.rows):
            outcome = self.outcomes[index]
            try:
                plan = _plan(row, self.manifest_dir, self.out, self.settings, self.event)
            except (CoFusionError, OSError) as exc:
                self._fail(outcome, _one_line(exc))
                continue
            outcome.output = str(plan.output)
            if plan.output in outputs:
                self._fail(outcome, f"the output is also that of line {self.rows[outputs[plan.output]].line}; give "
                                    "every pair its own output.")
                continue
            outputs[plan.output] = index
            if _done_before(plan):
                outcome.status, outcome.blocks = "done before", len(plan.blocks)
                self.line(f"line {row.line} {row.output}: done before, {plan.output} is unchanged")
                continue
            _clean_leftovers(plan.folder, plan.output)
            plans[index] = plan
        return plans

    def _fail(self, outcome: SceneOutcome, error: str) -> None:
        outcome.status, outcome.error = "failed", error
        self.line(f"line {outcome.line} {outcome.output}: FAILED: {error}")

    def _finished(self, future, kind: str, index: int, job, scenes: dict, pending: dict) -> None:
        outcome = self.outcomes[index]
        state = scenes[index]
        if future.cancelled() or outcome.status == "failed":
            return
        if future.status == "error":
            self._fail(outcome, _one_line(future.exception()))
            outcome.seconds = time.perf_counter() - state["started"]
            others = [f for f in state["blocks"] + [state["assemble"]] if f in pending]
            for other in others:
                pending.pop(other)
            self.client.cancel(others, force=True)
            return
        self.finished += 1
        row = self.rows[index]
        if kind == "block":
            done: BlockDone = future.result()
            outcome.computed += 1
            what = "no valid pixel (nodata)" if done.empty else f"{done.tiles} tiles in {done.seconds:.1f} s"
            self.line(f"line {row.line} {row.output}: block {outcome.computed} of {outcome.blocks} done (columns "
                      f"{job.region.col}-{job.region.col_end}, {what})")
        else:
            outcome.status = "written"
            outcome.seconds = time.perf_counter() - state["started"]
            self.line(f"line {row.line} {row.output}: written {job.output} ({outcome.computed} of {outcome.blocks} "
                      f"blocks computed now) in {outcome.seconds:.1f} s")

