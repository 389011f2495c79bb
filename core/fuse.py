# SPDX-License-Identifier: GPL-2.0-or-later
"""The streaming fusion engine: an LRHSI raster + an HRMSI raster -> an HRHSI GeoTIFF, tile by tile.

The engine walks the output grid (``core.grid.FusionGrid``) in blocks, full-height strips of at most ``block``
HR pixels wide, and each block in batches of tiles planned by ``core.tiling`` (row by row). For every tile it reads
the HR window and the LR window under it (HR window / scale: tile origins and sizes are multiples of the
scale), clipped to the grid, pads both past the grid's right and bottom edges by half-sample symmetric
mirroring (the edge pixel repeated, then the pixels before it: unlike whole-sample reflection, mirroring
LR pixels this way mirrors the HR pixels under them, so the padded LR and HR stay co-registered; any pad
width works), fills nodata pixels with the predictor's fill values so nodata never reaches the predictor,
runs the predictor on the batch and hands the predictions to a :class:`TileMerger`, which blends them
(weighted sum over weight sum, ``tiling.blend_weights``) and writes each tile's final part at once.

Memory is bounded by tile, overlap, batch and block, never by the scene size: the merger of a block holds
``(C_h + 1)`` float32 planes of ``overlap x block`` (the top carry: 104 MB for 198 bands, overlap 32 and the
default block of 4096), of ``tile x overlap`` (the left carry) and of ``tile x tile`` (the tile being
blended), plus the ``C_h`` planes of at most ``tile x tile`` it writes; the batch holds its inputs and
``batch`` predictions of ``C_h x tile x tile`` float32; GDAL's read cache holds at most one tile row of a
block's inputs; the predictor needs its activations. ``fuse_raster`` estimates the peak
(``core.tiling.engine_memory``, measured against peak RSS) and refuses, before a pixel is read, settings that need
more memory than is available, naming smaller ones that fit.

Nodata: an output pixel is nodata when its HR pixel or the LR pixel covering it is nodata in any band (see
``RasterReader.read_valid``). The output's nodata value is the LRHSI's when all its bands share one, else
NaN (which no valid float can equal); a valid result that happens to equal the nodata value is moved to the
next float32 above it so it stays valid. Tiles without a valid pixel are not predicted at all.

The predictor is anything that satisfies :class:`Predictor`; ``progress(fraction, message)`` and
``cancel() -> bool`` are the only coupling to callers. Cancel is checked before every batch, and between the
strips of the passes before the first tile (band screening, the predictor's ``prepare``, which take the first
:data:`PREPASS_SHARE` of the progress), and raises ``Canceled``; the ``RasterWriter`` then deletes its temporary
file, so nothing is left behind.
"""
from __future__ import annotations

import inspect
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from .band_support import BandSupport, fusion_support
from .bands import BandPlan, BandView, plan_model_bands, screen_bands
from .errors import Canceled, CheckpointError, EmptyOutputError, InputError
from .grid import FusionGrid, check_inputs
from .producer import model_producer
from .progress import Cancel, Progress
from .raster import RasterInfo, RasterReader, RasterWriter, internal_tile, output_nodata
from .resources import available_memory
from .tiling import (
    DEFAULT_BLOCK,
    EngineLoad,
    blend_weights,
    block_size,
    check_engine_memory,
    check_tiling,
    default_tiling,
    network_bytes_per_pixel,
    plan_strips,
    plan_tiles,
)
from .window import Window

log = logging.getLogger(__name__)

#: The share of the progress bar the passes before the first tile take: the band screening and the predictor's
#: scene statistics (``prepare``), which read the whole LRHSI (and HRMSI) once.
PREPASS_SHARE = 0.05
#: Tiles per predictor call. Measured (bench/results/fuse_speed.md, 198 bands, 288 tiles, 2 CPU threads): batch 1
#: gives the best throughput and half the memory of batch 4; larger batches pay off on a GPU (--batch).
DEFAULT_BATCH = 1



class Predictor(Protocol):
    """What the engine needs from a model (``core.inference.NetworkPredictor`` is one)."""

    scale: int  # HR pixels per LR pixel it was built for
    hsi_bands: int  # C_h it expects and produces
    msi_bands: int  # C_m it expects
    align: int  # HR tile origins and sizes must be multiples of this (a multiple of scale)
    hsi_fill: np.ndarray  # (C_h,) value, in the LRHSI's units, put into nodata LR pixels
    msi_fill: np.ndarray  # (C_m,) value, in the HRMSI's units, put into nodata HR pixels
    # Optional: ``wavelengths_nm`` (C_h,) band centres it was trained on, or None; inputs must match them.
    # Optional: ``name``, how errors name it ("the model PATH"); ``source_path``, the file it was loaded from
    # (the output may not overwrite it). A prediction that is not finite on a valid pixel
    # is refused (CheckpointError): an output never comes out NaN silently.

    def __call__(self, lr: np.ndarray, hr: np.ndarray) -> np.ndarray:
        """lr (B, C_h, T/s, T/s) and hr (B, C_m, T, T) float32 in the rasters' units -> (B, C_h, T, T)."""
        ...

    # Optional: ``prepare(lr_reader, hr_reader, grid, progress=..., cancel=...)``, called once before the first
    # tile with the two open ``RasterReader`` and the ``FusionGrid``, for scene-level statistics
    # (``NetworkPredictor.prepare``; it reports ``progress(fraction, message)`` and raises Canceled when
    # ``cancel()`` returns True between its blocks). It always sees the whole grid, so a sub-window fusion matches
    # the same pixels of a whole run.
    # Optional: ``activation_bytes_per_pixel``, the memory (bytes) its call needs per HR pixel of a tile and per
    # tile of a batch, for the engine's memory check (``core.tiling.engine_memory``); a CoFusion network's is
    # derived from its checkpoint's config (``core.tiling.network_bytes_per_pixel``).


@dataclass(frozen=True)
class FusionResult:
    """What a fusion produced: the output path, the scale, the output size in HR pixels, the number of
    tiles the predictor ran on (tiles at block borders count twice, tiles without valid pixels not at
    all) and the wall time in seconds."""

    out_path: Path
    scale: int
    width: int
    height: int
    tiles: int
    seconds: float


class TileMerger:
    """Blends the tile predictions of one block into the output and writes each pixel once, when it is final.

    Windows are in pixels of the output file. The tiles are those of the tile grid (step ``s = tile -
    overlap``) that intersect ``block``, in ``tiling.plan_tiles`` order (row by row, left to right); ``last``
    is the block's last one. Once tile (k, j) at (col, row) is blended, its pixels ``[row, row + s) x [col,
    col + s)`` are final (clipped to the block, and reaching the block's end in the last tile row or column):
    tiles of row k - 1 and tile (k, j - 1) came before, tile (k, j + 1) starts at ``col + s`` and row k + 1 at
    ``row + s``. So the merger holds, as weighted sums and weight sums, only what crosses those lines:

    - the top carry, ``(C + 1) x overlap x block width``: tile row k - 1's contributions to rows ``[row, row +
      overlap)``. Tile (k, j) adds it on its final columns, then puts its own bottom spill (its rows ``s`` to
      ``tile``) there for tile (k + 1, j): each column is read once, by one tile, then overwritten;
    - the left carry, ``(C + 1) x tile x overlap``: tile (k, j - 1)'s columns ``s`` to ``tile``, all rows. Its
      bottom-right corner thus travels right before it goes down, and nothing is counted twice;
    - the accumulator of the tile being blended, ``(C + 1) x tile x tile``.

    Each final part goes to ``sink(array (C, rows, cols), col, row)`` at once: the output GeoTIFF's internal
    tiles divide the step (``core.raster.internal_tile``), so every write covers whole internal tiles (blocks and
    tiles lie on the step grid of the whole output), but for the last ones of a row or column, which reach the
    block's edge, and those of a region that does not start on the step grid. Tiles may start left of
    or above the block: their contributions outside it are dropped, their spills into it kept.
    """

    def __init__(
        self,
        block: Window,
        last: Window,
        bands: int,
        overlap: int,
        nodata: float,
        sink: Callable[[np.ndarray, int, int], None],
    ) -> None:
        self.block, self.last, self.bands, self.overlap = block, last, bands, overlap
        self.step = last.width - overlap
        self.nodata = np.float32(nodata)
        self.sink = sink
        self.valid_pixels = 0
        self._top = (np.zeros((bands, overlap, block.width), np.float32),
                     np.zeros((overlap, block.width), np.float32))
        self._left = (np.zeros((bands, last.height, overlap), np.float32),
                      np.zeros((last.height, overlap), np.float32))
        self._row: int | None = None  # the tile row the left carry belongs to

    def add(self, tile: Window, weights: np.ndarray, prediction: np.ndarray | None, valid: np.ndarray) -> None:
        """Blend the next tile in and write its final part. weights (T, T); prediction (C, T, T), or None for
        a tile without a valid pixel (its final part is nodata); valid (T, T) bool, the output validity of the
        tile's pixels."""
        if tile.row != self._row:  # a new tile row: nothing comes from the left
            self._row = tile.row
            for carry in self._left:
                carry[:] = 0
        if prediction is None:
            acc = (np.zeros((self.bands, *weights.shape), np.float32), np.zeros_like(weights))
        else:
            acc = (prediction * weights, weights.copy())
        c0, c1 = self._final(tile.col, self.last.col, self.block.col, self.block.col_end)
        r0, r1 = self._final(tile.row, self.last.row, self.block.row, self.block.row_end)
        cols, top = slice(c0 - tile.col, c1 - tile.col), slice(c0 - self.block.col, c1 - self.block.col)
        overlap, step = self.overlap, self.step
        for part, top_carry, left_carry in zip(acc, self._top, self._left):
            part[..., :overlap] += left_carry
            part[..., :overlap, cols] += top_carry[..., top]
            top_carry[..., top] = part[..., step:, cols]
            left_carry[:] = part[..., step:]
        if c1 > c0 and r1 > r0:
            rows = slice(r0 - tile.row, r1 - tile.row)
            self._write(acc[0][:, rows, cols], acc[1][rows, cols], valid[rows, cols], c0, r0)

    def _final(self, origin: int, last: int, start: int, end: int) -> tuple[int, int]:
        """Along one axis: the final pixels ``[first, stop)`` of the tile at ``origin``, clipped to
        ``[start, end)`` (empty for a tile that reaches into the block by its overlap only)."""
        first = max(origin, start)
        return first, max(first, end if origin == last else min(origin + self.step, end))

    def _write(self, sums: np.ndarray, weight: np.ndarray, valid: np.ndarray, col: int, row: int) -> None:
        """Divide ``sums`` (C, rows, cols; a view of the tile's accumulator, whose carries are already taken) by
        ``weight`` in place, set the invalid pixels to nodata, and hand it to the sink."""
        np.divide(sums, weight, out=sums, where=valid)
        sums[:, ~valid] = self.nodata
        if not np.isnan(self.nodata):
            sums[(sums == self.nodata) & valid] = np.nextafter(self.nodata, np.float32(np.inf))
        self.sink(sums, col, row)
        self.valid_pixels += int(np.count_nonzero(valid))


def check_predictor(predictor: Predictor, lr_info: RasterInfo, hr_info: RasterInfo, grid: FusionGrid) -> None:
    """CheckpointError unless the predictor's multispectral band count and scale fit the HRMSI and the grid (its
    hyperspectral bands are matched to the LRHSI's by ``core.bands.plan_model_bands``)."""
    fix = "use a model trained for these inputs, or train one with 'python -m cofusion.training'"
    if predictor.msi_bands != hr_info.band_count:
        raise CheckpointError(
            f"The model expects {predictor.msi_bands} multispectral bands but the HRMSI {hr_info.path} has "
            f"{hr_info.band_count}; {fix}."
        )
    if predictor.scale != grid.scale:
        raise CheckpointError(
            f"The model was trained for scale {predictor.scale} but the HRMSI {hr_info.path} has pixels "
            f"{grid.scale} times finer than the LRHSI {lr_info.path}; {fix}."
        )


class _TileReader:
    """Reads the inputs of one block's tiles: the grid part under a tile, nodata filled, mirrored out to the
    full tile.

    At each new tile row it drops GDAL's cache of both inputs: what was read before (by ``prepare``, by the
    last block, by the tile row above) is not needed again but for the overlap rows, which are cheap to read
    again, and GDAL's cache would keep it all, so that memory grows with the scene.
    """

    def __init__(self, lr: RasterReader, hr: RasterReader, grid: FusionGrid, predictor: Predictor) -> None:
        self.lr, self.hr, self.grid = lr, hr, grid
        self.bounds = Window(0, 0, grid.hr_window.width, grid.hr_window.height)
        self.hsi_fill = np.asarray(predictor.hsi_fill, np.float32)[:, None]
        self.msi_fill = np.asarray(predictor.msi_fill, np.float32)[:, None]
        self._row: int | None = None  # the tile row read last

    def read(self, tile: Window) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """-> lr (C_h, T/s, T/s), hr (C_m, T, T) float32, valid (T, T) bool (False outside the grid)."""
        if tile.row != self._row:
            self.lr.drop_cache()
            self.hr.drop_cache()
            self._row = tile.row
        s, inside = self.grid.scale, tile.intersection(self.bounds)
        hr_origin, lr_origin = self.grid.hr_window, self.grid.lr_window
        hr, hr_valid = self.hr.read_valid(
            Window(hr_origin.col + inside.col, hr_origin.row + inside.row, inside.width, inside.height))
        lr, lr_valid = self.lr.read_valid(Window(lr_origin.col + inside.col // s, lr_origin.row + inside.row // s,
                                                 inside.width // s, inside.height // s))
        hr[:, ~hr_valid] = self.msi_fill
        lr[:, ~lr_valid] = self.hsi_fill
        valid = np.zeros((tile.height, tile.width), bool)
        valid[:inside.height, :inside.width] = hr_valid & lr_valid.repeat(s, 0).repeat(s, 1)
        pad_rows, pad_cols = tile.height - inside.height, tile.width - inside.width
        hr = np.pad(hr, ((0, 0), (0, pad_rows), (0, pad_cols)), mode="symmetric")
        lr = np.pad(lr, ((0, 0), (0, pad_rows // s), (0, pad_cols // s)), mode="symmetric")
        return lr, hr, valid


def _predict(
    predictor: Predictor, reads: list[tuple[np.ndarray, np.ndarray, np.ndarray]], tile: int
) -> list[np.ndarray | None]:
    """One predictor call on the tiles of ``reads`` (lr, hr, valid) that have a valid pixel.

    Returns a prediction (C_h, T, T) per tile, None for tiles without a valid pixel. CheckpointError when a
    prediction is not finite on a valid pixel of its tile.
    """
    live = [k for k, (_lr, _hr, valid) in enumerate(reads) if valid.any()]
    predictions: list[np.ndarray | None] = [None] * len(reads)
    if not live:
        return predictions
    out = np.asarray(predictor(np.stack([reads[k][0] for k in live]), np.stack([reads[k][1] for k in live])),
                     dtype=np.float32)
    expected = (len(live), predictor.hsi_bands, tile, tile)
    if out.shape != expected:
        raise CheckpointError(f"The model returned an array of shape {out.shape} for a batch that needs "
                              f"{expected}; the model does not implement the fusion interface.")
    for k, prediction in zip(live, out):
        valid = reads[k][2]
        if not np.isfinite(prediction[:, valid]).all():
            bad = int((~np.isfinite(prediction[:, valid])).any(axis=0).sum())
            raise CheckpointError(
                f"{getattr(predictor, 'name', None) or 'The model'} produced NaN or infinite values for {bad} valid "
                "pixels (its inputs are finite: nodata is filled), so no output was written. Its weights or "
                "normalisation statistics are unusable, or the inputs lie far outside the values it was trained "
                "on; use another checkpoint or train the model again.")
        predictions[k] = prediction
    return predictions


def fuse_raster(
    lrhsi_path: str | os.PathLike,
    hrmsi_path: str | os.PathLike,
    out_path: str | os.PathLike,
    predictor: Predictor,
    *,
    tile: int | None = None,
    overlap: int | None = None,
    batch: int = DEFAULT_BATCH,
    block: int = DEFAULT_BLOCK,
    region: Window | None = None,
    threads: int | None = None,
    progress: Progress | None = None,
    cancel: Cancel | None = None,
) -> FusionResult:
    """Fuse an LRHSI and an HRMSI raster into a float32 HRHSI GeoTIFF at ``out_path``, streaming.

    tile, overlap: HR pixels, multiples of the predictor's alignment (defaults ``tiling.default_tiling``:
    288 and 32 for an alignment of 16); batch: tiles per predictor call; block: width in HR pixels of the
    full-height strips the output is walked in (rounded down to a multiple of ``tile - overlap``; memory grows
    with it).
    region: a window of the output grid (HR pixels, see ``check_inputs``) to fuse into its own file; its
    pixels equal the same pixels of a whole run. The output carries the HR grid, the CRS, the LRHSI's
    wavelengths, FWHM and band names, a nodata value (``output_nodata``), per band whether its detail is
    measured or extrapolated (``_support``), and the model file that made it (``core.producer``).
    threads: the CPU threads the output is compressed on (None: all cores; the model's are the predictor's).
    Raises InputError / GridError / OutputError / CheckpointError with the fix, InputError when the settings need
    more memory than is available (``core.tiling.check_engine_memory``) or no output pixel is valid, Canceled
    when ``cancel()`` returns True; on any error no output file is left.
    """
    started = time.perf_counter()
    lr_info, hr_info, grid, out = check_inputs(lrhsi_path, hrmsi_path, out_path,
                                               getattr(predictor, "source_path", None))
    check_predictor(predictor, lr_info, hr_info, grid)
    align = math.lcm(int(predictor.align), grid.scale)
    default_tile, default_overlap = default_tiling(align)
    tile = default_tile if tile is None else tile
    overlap = default_overlap if overlap is None else overlap
    if batch < 1:
        raise InputError(f"Batch size {batch} must be at least 1 tile; pass for example --batch {DEFAULT_BATCH}.")
    width, height = grid.hr_window.width, grid.hr_window.height
    region = grid.output_region(region)
    check_tiling(tile, overlap, align)  # before block_size, which divides by tile - overlap
    load = EngineLoad(int(predictor.hsi_bands), int(predictor.msi_bands), grid.scale, _activation_bytes(predictor),
                      lr_info.band_count, min(max(region.width, 1), width))
    check_engine_memory(load, tile, overlap, batch, block, align, available_memory())  # before any pixel is read
    blocks = plan_strips(region, block_size(block, tile, overlap))
    total = sum(len(plan_tiles(b, width, height, tile, overlap, align)) for b in blocks)
    log.info("Fusing %s + %s -> %s: x%d, %d x %d pixels, %d tiles of %d (overlap %d) in %d blocks",
             lr_info.path, hr_info.path, out, grid.scale, region.width, region.height, total, tile, overlap,
             len(blocks))
    report = progress or (lambda _fraction, _message: None)
    weights = blend_weights(tile, overlap)
    nodata = output_nodata(lr_info)
    geotransform = grid.region_geotransform(region)
    done = predicted = valid_pixels = 0
    prepare = getattr(predictor, "prepare", None)
    screened = PREPASS_SHARE if prepare is None else PREPASS_SHARE / 2  # the bar's share of the band screening
    with RasterReader(lr_info.path) as lr_file, RasterReader(hr_info.path) as hr_reader:
        report(0.0, "screening the hyperspectral bands")
        screen = screen_bands(lr_file, grid.lr_window, cancel=cancel,
                              progress=lambda f, m: report(screened * f, m))
        bands = plan_model_bands(screen, lr_info, predictor.hsi_bands, getattr(predictor, "wavelengths_nm", None))
        lr_reader = BandView(lr_file, bands)
        support = _support(predictor, lr_info, hr_info, bands)
        with RasterWriter(out, width=region.width, height=region.height, band_count=lr_info.band_count,
                          geotransform=geotransform, crs_wkt=grid.crs_wkt, nodata=nodata,
                          wavelengths_nm=lr_info.wavelengths_nm, fwhm_nm=lr_info.fwhm_nm,
                          band_names=lr_info.band_names, bbl=bands.bbl,
                          metadata={**support.dataset_metadata(), **_producer(predictor)},
                          band_metadata=support.band_metadata(), cancel=cancel,
                          tile=internal_tile(tile - overlap), threads=threads) as writer:
            def write(working: np.ndarray, col: int, row: int) -> None:
                writer.write(bands.expand(working, nodata), col, row)

            if prepare is not None:
                report(screened, "fitting the model's scene statistics")
                _call_prepare(prepare, lr_reader, hr_reader, grid, cancel=cancel,
                              progress=lambda f, m: report(screened + (PREPASS_SHARE - screened) * f, m))
            report(PREPASS_SHARE, f"fusing {region.width} x {region.height} pixels in {total} tiles")
            for blk in blocks:
                reader = _TileReader(lr_reader, hr_reader, grid, predictor)
                tiles = plan_tiles(blk, width, height, tile, overlap, align)
                merger = TileMerger(_in_file(blk, region), _in_file(tiles[-1], region), bands.working_bands,
                                    overlap, nodata, write)
                for first in range(0, len(tiles), batch):
                    if cancel is not None and cancel():
                        raise Canceled("Fusion canceled; no output file was written.")
                    chunk = tiles[first:first + batch]
                    predicted += _fuse_batch(predictor, reader, merger, chunk, region, weights, tile)
                    done += len(chunk)
                    report(PREPASS_SHARE + (1 - PREPASS_SHARE) * done / total, f"tile {done} of {total}")
                valid_pixels += merger.valid_pixels
            if valid_pixels == 0:
                raise EmptyOutputError(
                    f"Every output pixel is nodata: no pixel of the region is valid in both {lr_info.path} and "
                    f"{hr_info.path} (a nodata value in any good band makes a pixel nodata). Check the inputs' "
                    "nodata values and that the region covers valid data."
                )
    if not all(bands.bbl):
        log.info("%s: bands written as nodata (bbl = 0): %s", out, bands.describe(lr_info.wavelengths_nm))
    seconds = time.perf_counter() - started
    log.info("Fused %s in %.1f s (%d tiles predicted)", out, seconds, predicted)
    report(1.0, "done")
    return FusionResult(out, grid.scale, region.width, region.height, predicted, seconds)


def _producer(predictor: Predictor) -> dict[str, str]:
    """The output's record of what made it (``core.producer``): the model file the predictor was loaded from;
    nothing for a predictor without one, or when the file cannot be read again (a warning in the log)."""
    source = getattr(predictor, "source_path", None)
    if source is None:
        return {}
    try:
        return model_producer(source).metadata()
    except OSError as exc:
        log.warning("%s: cannot read it again to record it in the output (%s); the output does not say what made it",
                    source, exc.strerror or exc)
        return {}


def _support(predictor: Predictor, lr_info: RasterInfo, hr_info: RasterInfo, bands: BandPlan) -> BandSupport:
    """The output's measured / extrapolated bands (``core.band_support.fusion_support``): by the HRMSI's band
    metadata, else by the response in a CoFusion network's model card (its columns are the model's bands, which
    read the LRHSI bands ``bands.sources``), else unmarked."""
    card = getattr(getattr(predictor, "checkpoint", None), "card", None)
    matrix = None if card is None or card.srf is None else np.asarray(card.srf, np.float64)
    return fusion_support(lr_info, hr_info, matrix=matrix, matrix_wavelengths_nm=bands.pick(lr_info.wavelengths_nm),
                          msi_band_names=None if card is None else card.msi_band_names,
                          matrix_source="" if card is None else
                          f"the model card's, {card.provenance.get('srf') or 'origin not recorded'}")


def _call_prepare(prepare: Callable[..., None], *args: object, **extras: object) -> None:
    """``prepare(*args)`` with those of ``extras`` (progress, cancel) its signature accepts: a predictor written
    for ``prepare(lr_reader, hr_reader, grid)`` keeps working."""
    try:
        parameters = inspect.signature(prepare).parameters
    except (TypeError, ValueError):
        parameters = {}
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    prepare(*args, **{k: v for k, v in extras.items() if takes_any or k in parameters})


def _activation_bytes(predictor: Predictor) -> float:
    """The host memory the predictor's call needs per HR pixel of a tile and per batch tile: its own
    ``activation_bytes_per_pixel``, else a CoFusion network's on the CPU (``network_bytes_per_pixel`` of its
    checkpoint's config; on a GPU its activations are in the GPU's memory), else 0 (its output is counted)."""
    own = getattr(predictor, "activation_bytes_per_pixel", None)
    if own is not None:
        return float(own)
    if getattr(getattr(predictor, "device", None), "type", "cpu") != "cpu":
        return 0.0
    config = getattr(getattr(getattr(predictor, "checkpoint", None), "card", None), "config", None)
    if config is None:
        return 0.0
    return network_bytes_per_pixel(config.hsi_bands, config.width, config.saliency_stride)


def _fuse_batch(predictor: Predictor, reader: _TileReader, merger: TileMerger, chunk: list[Window], region: Window,
                weights: np.ndarray, tile: int) -> int:
    """Read, predict and blend one batch of tiles (``chunk``, windows of the output grid); returns how many were
    predicted. Its inputs and predictions are freed on return, before the next batch is read."""
    reads = [reader.read(t) for t in chunk]
    predictions = _predict(predictor, reads, tile)
    for t, (_lr, _hr, valid), prediction in zip(chunk, reads, predictions):
        merger.add(_in_file(t, region), weights, prediction, valid)
    return sum(p is not None for p in predictions)


def _in_file(window: Window, region: Window) -> Window:
    """A window of the output grid in pixels of the output file, whose origin is the region's corner."""
    return Window(window.col - region.col, window.row - region.row, window.width, window.height)
