# SPDX-License-Identifier: GPL-2.0-or-later
"""Fit a model on the pair, then fuse it: one step for a pair that no model at hand fits.

:func:`fit_and_fuse` trains a CoFusion network in pair mode on the pair itself (``training.api.train_pair``:
reduced-resolution self-supervision, the MSI response estimated from the pair, and a no-reference loss on patches
at the pair's own resolution, ``TrainSettings.no_reference_weight``), on the whole scene or a training area, then
fuses the pair at full resolution with that model through the one fusion service (``core.service.fuse``), and keeps
the model. The no-reference loss is D_lambda + D_s, the two factors of QNR: the fit's QNR on its own pair measures,
outside the validation strip, what it was trained to lower (the card's ``validation_strip`` is the part it never
saw, at either resolution).

Order of the work: every check that reads no pixel first (the budget and settings, the output and the model paths,
the co-registration, the area to fuse and the training area against the output grid, the training area against the
minimum pair-mode training needs, the device), then whether the area to fuse holds a pixel valid in both inputs (the
LRHSI's band screening and the inputs' masks, read in strips up to the first valid pixel), then the training (its
own checks of the training area's valid pixels come before its first step), then the fusion. So a zero budget, a
pair too small, an area outside the pair or without valid data is refused in one line before the training starts.

All or nothing: the training writes to a hidden temporary model beside ``model_out``
(``core.outputs.temporary_path``), which becomes ``model_out`` (and its log ``<model_out stem>.log.csv``) only when
the fusion has written its output. A cancel at any moment (the trainer asks before every step and at each phase of
its start-up: after reading each raster, after the MSI response, before each classical method and each base it
scores, before the base fit, the band weights and the step-0 validation; the engine before every batch of tiles and
between the strips of its pre-passes; this function between the phases and while it checks the area to fuse), a
second signal (KeyboardInterrupt) or any error removes the temporary model and every file the
trainer writes beside it (``training.trainer.files_written``); the engine removes its own temporary output. While a
run writes ``model_out``, its lock file (``training.trainer.run_lock``) keeps a second run from writing the same
model.

What the fit guarantees, on the check (PSNR, mean over bands, on the valid pixels of the validation strip carved
from the training area, which is never trained on, at reduced resolution: the pair degraded by its scale, the LRHSI
the target):

- the network starts from the best of its bases: with the default base 'auto' the trainer scores the untrained
  network (its head is zero-initialised, so its output is its classical base, back-projected) with each candidate
  base (``core.model.config.AUTO_CANDIDATES``: blend, llr, gsa) and keeps the best
  (``training.trainer.choose_base``); the starting point is a candidate like every later validation, and the model
  kept is the candidate with the highest PSNR (ties keep the earlier), so the kept model scores at least its best
  base;
- the result is never worse than the best classical candidate: the trainer also scores the classical methods of
  ``training.trainer.CLASSICAL_CANDIDATES`` (GSA, LLR, MTF-GLP-HPM, the blend, bicubic; ``core.classic``, each
  fitted on the strip's inputs as it would be on the scene) on the same strip. When the kept model scores below
  the best of them, the fit says so (a warning, ``FitResult.used``, the card's ``fit`` provenance) and fuses the
  pair with that classical method (``core.classic_raster``) instead of the model; the model is kept all the same,
  for the record. Why that method and not the model with its head off (its base): the kept model scores at least
  its base, so when it falls below a classical method its base does too. With an area to fuse
  (``request.region``) the classical method fuses that area, as the model would.

Nothing more: not SAM, not at full resolution (no reference exists there; the base's GSA weights are fitted again
on the full-resolution scene when fusing), not on pixels outside the strip. :class:`FitResult` carries the numbers
(``base_metrics``, ``metrics``, ``classical``) and whether the base itself was kept.

Fine-tuning: ``start_from`` names a model to start from instead of a fresh network (``training.trainer.train``'s
``init``): it must fit the pair's multispectral bands and scale (checked from the card before any pixel is read)
and its hyperspectral bands (checked after the band screening); its architecture, base and normalisation are kept.

Threads: the training and the fusion use ``threads`` CPU threads (None: every core this process may run on,
``core.device.available_cpus``).

PyTorch and the training package are imported when :func:`fit_and_fuse` runs, so importing this module needs NumPy
and GDAL only, like ``core.service``.
"""
from __future__ import annotations

import csv
import logging
import math
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from . import service
from .device import available_cpus, cuda_available, resolve_device
from .errors import Canceled, EmptyOutputError, InputError, OutputError
from .fuse import FusionResult, check_inputs
from .grid import FusionGrid
from .outputs import check_not_an_input, check_output_path, temporary_path
from .progress import Cancel, Progress
from .raster import RasterInfo, RasterReader
from .service import FusionRequest
from .window import Window

if TYPE_CHECKING:
    from ..training.trainer import TrainResult, TrainSettings

log = logging.getLogger(__name__)

#: The training budget of a fit (minutes of the trainer's clock; the start-up before it, the reading of the pair,
#: the estimate of the MSI response and the fit of the classical base, and the fusion come on top).
DEFAULT_FIT_MINUTES = 5.0
#: Fusion throughput assumed for the progress bar's split between the phases (output pixels per second and CPU
#: thread). Measured with the default network fitted on the Houston pair (48 + 3 bands, x4, 512 x 512 output
#: pixels, 2 threads; bench/results/fit_and_fuse_houston.md): 2.3 s on 2 quiet cores (about 60 000 pixels per second
#: and thread), 11 s and 48 s with other processes on the same cores; bench/results/fuse_speed.md: 20 000-43 000 per
#: thread for the bare forward with 198 and 20 bands. A middle value; on a GPU ten times that is assumed.
FUSE_PIXELS_PER_SECOND_PER_THREAD = 25_000.0
GPU_SPEED_UP = 10.0
#: Seconds a fusion takes whatever its size (loading the model, the band screening, the scene statistics).
FUSE_START_SECONDS = 1.0
#: Seconds per step assumed when the budget is a number of iterations only, for the same split: the default
#: network's steps (batch 8, 64-pixel patches) on the Houston pair took 0.64 s each on 2 quiet cores, 2.6 s with
#: other processes on them.
SECONDS_PER_STEP = 1.0
#: LR rows of the area to fuse checked for valid pixels at a time, at most (and at most CHECK_VALUES values read).
CHECK_VALUES = 1 << 22


@dataclass(frozen=True)
class FitResult:
    """What :func:`fit_and_fuse` produced.

    out_path: the fused raster (``fusion.out_path``); model: the fitted model (``model_out``); log: its training
    log (CSV, one row per validation; step 0 is the classical base alone); fusion, training: the two phases'
    results (``training.checkpoint`` and ``training.log`` name the kept files); metrics: the kept model's
    validation PSNR (dB) and SAM (degrees); base_metrics: the same of the starting point, the classical base;
    steps: the training step of the kept model (0: the base itself was kept); seconds: the whole run's wall
    time; training_share: the share of the progress bar the training took; classical: the validation PSNR and SAM
    of each classical candidate on the same strip (``training.trainer.classical_scores``); used: what fused the
    pair, "model" or the name of the classical method that scored above the model (``core.classic.METHODS``).
    """

    out_path: Path
    model: Path
    log: Path
    fusion: FusionResult
    training: TrainResult
    metrics: dict
    base_metrics: dict
    steps: int
    seconds: float
    training_share: float
    classical: dict
    used: str

    @property
    def kept_base(self) -> bool:
        """Whether no trained step beat the classical base on the validation strip (the model is the base)."""
        return self.steps == 0


@dataclass(frozen=True)
class _Plan:
    """What the checks found: the paths, the pair's grid, the fusion area, the training window (HRMSI pixels)."""

    request: FusionRequest
    model_out: Path
    lr_info: RasterInfo
    hr_info: RasterInfo
    grid: FusionGrid
    area: Window
    training_window: Window | None
    start_from: str | os.PathLike | None = None


def fit_and_fuse(request: FusionRequest, model_out: str | os.PathLike, *, minutes: float | None = DEFAULT_FIT_MINUTES,
                 iterations: int | None = None, training_region: Window | None = None, device: str = "auto",
                 threads: int | None = None, settings: TrainSettings | None = None, progress: Progress | None = None,
                 cancel: Cancel | None = None, start_from: str | os.PathLike | None = None) -> FitResult:
    """Train a model on the pair ``request`` names (pair mode), fuse the pair with it, keep it at ``model_out``.

    Args:
        request: the fusion (``core.service.FusionRequest``): its inputs, output, tiling and ``region`` (the area
            to fuse, a window of the output grid). Its ``model`` must be None: the fitted model is used.
        model_out: where the fitted model goes (.safetensors; its log beside it as ``<stem>.log.csv``); replaced
            when the whole run succeeds, untouched otherwise.
        minutes, iterations: the training budget (``TrainSettings``: either or both, whichever ends first; each
            must be above 0). Default DEFAULT_FIT_MINUTES minutes.
        training_region: the window of the output grid to train on (None: the whole pair); its validation strip
            is carved from inside it.
        device: where the training and the fusion run ('auto', 'cpu', 'cuda', 'cuda:N'; it replaces the
            request's); threads: the training's and the fusion's CPU threads (None: every core available; replaces
            the request's and the settings').
        settings: a ``training.trainer.TrainSettings`` with the other training settings (batch, patch, the
            model's width, ...); its budget, device and threads are replaced by ``minutes``, ``iterations``,
            ``device`` and ``threads``.
        progress: ``progress(fraction, message)``: one bar over both phases (see :func:`training_share`), the
            message naming the phase, the step, the best validation PSNR and the ETA.
        cancel: ``cancel() -> bool``, asked before every training step, at each phase of the training's start-up
            and before every batch of tiles.
        start_from: a model (.safetensors) to fine-tune instead of training from scratch (see the module
            docstring); None trains a fresh network.

    Raises InputError / GridError / OutputError / CheckpointError with the fix (the checks that read no pixel,
    then the area to fuse's valid pixels, before the training starts), Canceled on cancel; on any error, cancel
    or interruption no model and no output file are left behind.
    """
    started = time.monotonic()
    train_settings = _train_settings(settings, minutes, iterations, device, threads)
    if request.model not in (None, ""):
        raise InputError("fit_and_fuse fits a model on the pair and fuses with it: leave the request's model empty "
                         "(to start from an existing model, give it as start_from, --start-from), or fuse with "
                         "that model without fitting.")
    request = replace(request, model=None, device=device, threads=threads)
    plan = check_fit(request, model_out, train_settings, training_region, start_from)
    report = progress or (lambda _fraction, _message: None)
    report(0.0, "checking the area to fuse for valid pixels")
    check_area_has_data(plan, cancel)
    from ..training.trainer import files_written, log_path, run_lock

    share = training_share(train_settings, plan.area.width * plan.area.height, device, threads)
    fuse_guess = _fuse_seconds(plan.area.width * plan.area.height, device, threads)
    with run_lock(plan.model_out):  # a second run writing this model is refused before any training
        temporary = temporary_path(plan.model_out, ".safetensors")
        try:
            training = _train(plan, temporary, train_settings, share, fuse_guess, report, cancel)
            rows = _log_rows(log_path(temporary))
            base = {k: rows[0][k] for k in ("PSNR", "SAM")} if rows and rows[0]["step"] == 0 else {}
            used = _choose_fusion(plan, training)
            steps = _stamp_card(temporary, plan, minutes, iterations, base, training.classical, used)
            if cancel is not None and cancel():
                raise Canceled("Fit and fuse canceled after the training; no model and no output were written.")
            fusion = _fuse(plan, temporary, share, report, cancel, used)
            _move(log_path(temporary), log_path(plan.model_out))
            _move(temporary, plan.model_out, fused=fusion.out_path)
        except BaseException:
            _remove(files_written(temporary))
            raise
        _remove(files_written(temporary))  # nothing should be left; a stray file is not kept
    seconds = time.monotonic() - started
    kept = replace(training, checkpoint=plan.model_out, log=log_path(plan.model_out))
    log.info("fit and fuse: %d steps kept of %d, validation PSNR %.2f dB (base %.2f dB), %.1f s", steps,
             training.steps, training.metrics.get("PSNR", math.nan), base.get("PSNR", math.nan), seconds)
    return FitResult(fusion.out_path, plan.model_out, log_path(plan.model_out), fusion, kept, dict(training.metrics),
                     base, steps, seconds, share, dict(training.classical), used)


def check_fit(request: FusionRequest, model_out: str | os.PathLike, settings: TrainSettings,
              training_region: Window | None = None, start_from: str | os.PathLike | None = None) -> _Plan:
    """Every check of a fit that reads no pixel, with the core's own messages: the output and the model paths (the
    model is a .safetensors file, neither it nor the files written beside it is an input or the output), the
    co-registration, the area to fuse and the training area inside the output grid, the training area at least as
    large as pair-mode training needs (see :func:`minimum_training_area`), the device, and the model to start from
    (its card: a CoFusion model for the pair's multispectral bands and scale). Returns what the run needs; raises
    InputError / GridError / OutputError / CheckpointError."""
    from ..training.api import _lr_window_of, check_patch
    from ..training.trainer import files_written

    model_out = Path(model_out)
    if model_out.suffix != ".safetensors":
        raise OutputError(f"{model_out.expanduser().absolute()}: CoFusion models are .safetensors files; give the "
                          "model output that extension.")
    lr_info, hr_info, grid, out = check_inputs(request.lrhsi, request.hrmsi, request.out, model_out)
    model_out = check_output_path(model_out, [request.lrhsi, request.hrmsi, out], suffixes=(".safetensors",))
    for written in files_written(model_out)[1:]:
        check_not_an_input(written, [request.lrhsi, request.hrmsi, out])
    area = grid.output_region(request.region)
    training_window = None
    if training_region is not None:
        training_region = grid.output_region(training_region)
        training_window = Window(training_region.col + grid.hr_window.col, training_region.row + grid.hr_window.row,
                                 training_region.width, training_region.height)  # HRMSI pixels, as train_pair takes
    align = check_patch(settings, grid.scale)
    lr_window = _lr_window_of(grid, training_window)
    _check_training_size(lr_window, align, grid.scale, training_region is not None)
    resolve_device(settings.device)  # 'cuda' without a GPU: refused now, not after the reading
    if start_from is not None:
        _check_start_model(start_from, hr_info.band_count, grid.scale)
    return _Plan(replace(request, out=out), model_out, lr_info, hr_info, grid, area, training_window, start_from)


def _check_start_model(path: str | os.PathLike, msi_bands: int, scale: int) -> None:
    """InputError naming what differs (and the fix: train from scratch) when the model ``path`` was made for another
    number of multispectral bands or another scale; CheckpointError when it is no CoFusion model. Reads its card
    only (its hyperspectral bands are checked by the trainer, after the band screening)."""
    from .checkpoint import read_card

    config = read_card(path).config
    problems = [f"{what} where the model has {theirs}" for what, ours, theirs in (
        (f"the pair has {msi_bands} multispectral bands", msi_bands, config.msi_bands),
        (f"the pair's scale is x{scale}", scale, config.scale)) if ours != theirs]
    if problems:
        raise InputError(f"the model {path} cannot be fine-tuned on this pair: {'; '.join(problems)} "
                         f"({config.msi_bands} bands, x{config.scale}); fit from scratch (leave out the model to "
                         "start from).")


def minimum_training_area(align: int) -> tuple[int, int]:
    """The smallest training area of pair-mode training, in LR pixels (longer side, shorter side): the trainer
    carves a validation strip from it and trains on the rest, each at least ``align`` (the model's alignment at
    the pair's scale, ``ModelConfig.align``) pixels across (``training.data.split_validation``)."""
    return 2 * align, align


def _check_training_size(lr_window: Window, align: int, scale: int, is_area: bool) -> None:
    """InputError naming the minimum when the training window (LR pixels) is smaller than pair-mode training
    needs (``split_validation``'s own rule decides)."""
    from ..training.data import split_validation

    try:
        split_validation(lr_window.height, lr_window.width, align)
    except InputError:
        longer, shorter = minimum_training_area(align)
        what = "the training area" if is_area else "the pair"
        raise InputError(
            f"{what} is too small to fit a model on: {lr_window.width} x {lr_window.height} LR pixels, and pair-mode "
            f"training degrades the pair by its scale (x{scale}) and needs at least {longer} x {shorter} LR pixels "
            f"({longer * scale} x {shorter * scale} HRMSI pixels, either way round: a validation strip of "
            f"{align} and at least {align} to train on); give a larger "
            f"{'training area' if is_area else 'pair'}.") from None


def check_area_has_data(plan: _Plan, cancel: Cancel | None = None) -> None:
    """EmptyOutputError when no pixel of the area to fuse is valid in both inputs (the engine's rule: the HR pixel
    and the LR pixel under it, in the LRHSI's good bands), before any training. Reads the LRHSI's band screening
    (as the engine does) and the inputs' masks in strips, stopping at the first valid pixel."""
    from .bands import BandView, plan_good_bands, screen_bands

    grid, area, s = plan.grid, plan.area, plan.grid.scale
    under = area.covering(s)  # the LR pixels under the area
    lr_cols, lr_rows = range(under.col, under.col_end), range(under.row, under.row_end)
    with RasterReader(plan.lr_info.path) as lr_file, RasterReader(plan.hr_info.path) as hr_file:
        bands = plan_good_bands(screen_bands(lr_file, grid.lr_window, cancel=cancel), plan.lr_info.wavelengths_nm)
        view = BandView(lr_file, bands)
        per_row = max(1, max(bands.working_bands, plan.hr_info.band_count * s * s) * len(lr_cols))
        step = max(1, CHECK_VALUES // per_row)
        for row0 in range(lr_rows.start, lr_rows.stop, step):
            if cancel is not None and cancel():
                raise Canceled("Fit and fuse canceled before the training; nothing was written.")
            row1 = min(lr_rows.stop, row0 + step)
            _, lr_valid = view.read_valid(Window(lr_cols.start, row0, len(lr_cols), row1 - row0).within(grid.lr_window))
            if not lr_valid.any():
                continue
            hr_top, hr_bottom = max(area.row, row0 * s), min(area.row_end, row1 * s)
            _, hr_valid = hr_file.read_valid(Window(area.col, hr_top, area.width, hr_bottom - hr_top)
                                             .within(grid.hr_window))
            under = lr_valid.repeat(s, 0).repeat(s, 1)[hr_top - row0 * s:hr_bottom - row0 * s,
                                                        area.col - lr_cols.start * s:area.col_end - lr_cols.start * s]
            if (hr_valid & under).any():
                return
    raise EmptyOutputError(
        f"the area to fuse ({area.width} x {area.height} pixels at col {area.col}, row {area.row} of the output "
        f"grid) holds no pixel valid in both {plan.lr_info.path} and {plan.hr_info.path}: nothing would be fused, "
        "so no model is fitted. Choose an area with data, or check the inputs' nodata values.")


def training_share(settings: TrainSettings, fuse_pixels: int, device: str = "auto",
                   threads: int | None = None) -> float:
    """The share of the progress bar the training takes: its expected time over the expected time of both phases.

    The training's is its budget, ``60 * minutes`` (the trainer's clock; with iterations only,
    ``iterations * SECONDS_PER_STEP``, and the shorter of the two when both are given); the fusion's is
    ``FUSE_START_SECONDS`` plus its output pixels at ``FUSE_PIXELS_PER_SECOND_PER_THREAD`` per thread (``threads``,
    else every core available), ``GPU_SPEED_UP`` times that on a GPU. Kept within [0.05, 0.99]: each phase moves
    the bar."""
    budgets = []
    if settings.minutes:
        budgets.append(60.0 * settings.minutes)
    if settings.iterations:
        budgets.append(settings.iterations * SECONDS_PER_STEP)
    train = min(budgets)
    fuse = _fuse_seconds(fuse_pixels, device, threads)
    return min(0.99, max(0.05, train / (train + fuse)))


def _fuse_seconds(pixels: int, device: str, threads: int | None) -> float:
    rate = FUSE_PIXELS_PER_SECOND_PER_THREAD * (threads or available_cpus())
    if device.startswith("cuda") or (device == "auto" and cuda_available()):
        rate *= GPU_SPEED_UP
    return FUSE_START_SECONDS + pixels / rate



def _train_settings(settings, minutes: float | None, iterations: int | None, device: str, threads: int | None):
    """The run's TrainSettings: ``settings`` (default TrainSettings(): base 'auto') with the budget, the device and
    the threads given; its own checks refuse a budget of 0 or below, or none at all, in one line naming the
    option."""
    from ..training.trainer import TrainSettings

    return replace(settings or TrainSettings(), minutes=minutes, iterations=iterations, device=device,
                   threads=threads)


def _train(plan: _Plan, temporary: Path, settings, share: float, fuse_guess: float, report: Progress,
           cancel: Cancel | None):
    """The training phase: pair mode into ``temporary``, its progress on [0, share] of the bar."""
    from ..training.api import train_pair

    def training(fraction: float, message: str) -> None:
        report(share * fraction, f"fitting the model (1 of 2): {message}; then fusing, about {_duration(fuse_guess)}")

    lr = plan.grid.lr_window
    window = plan.training_window
    size = (f"{lr.width} x {lr.height}" if window is None else
            f"{window.width // plan.grid.scale} x {window.height // plan.grid.scale}")
    report(0.0, f"fitting the model (1 of 2): reading {size} LR pixels of the pair, estimating the MSI response, "
                "fitting the classical base")
    if cancel is not None and cancel():
        raise Canceled("Fit and fuse canceled before the training; nothing was written.")
    try:
        return train_pair(plan.request.lrhsi, plan.request.hrmsi, temporary, region=plan.training_window,
                          settings=settings, progress=training, cancel=cancel, restart=True, init=plan.start_from)
    except Canceled as exc:
        raise Canceled("Fit and fuse canceled while training; no model and no output were written.") from exc


def _choose_fusion(plan: _Plan, training: TrainResult) -> str:
    """What fuses the pair: "model", or the classical candidate that scored above the kept model on the validation
    strip (the best of them; see the module docstring), said in a warning."""
    if not training.classical:
        return "model"
    best = max(training.classical, key=lambda name: training.classical[name]["PSNR"])
    ours, theirs = training.metrics.get("PSNR", -math.inf), training.classical[best]["PSNR"]
    if ours >= theirs:
        return "model"
    log.warning("the fitted model scores %.2f dB on the validation strip, below %s (%.2f dB): the pair is fused with "
                "%s; the model is kept", ours, best, theirs, best)
    return best


def _fuse(plan: _Plan, model: Path, share: float, report: Progress, cancel: Cancel | None,
          used: str = "model") -> FusionResult:
    """The fusion phase with the fitted model (or, ``used`` naming one, the classical method), its progress on
    [share, 1] of the bar with an ETA."""
    started = time.monotonic()
    what = "the fitted model" if used == "model" else f"{used}, which scored above the fitted model"

    def fusing(fraction: float, message: str) -> None:
        elapsed = time.monotonic() - started
        eta = "" if fraction < 0.1 or fraction >= 1 else f", ETA {_duration(elapsed * (1 - fraction) / fraction)}"
        report(share + (1 - share) * fraction, f"fusing with {what} (2 of 2): {message}{eta}")

    report(share, f"fusing with {what} (2 of 2): loading it")
    try:
        if used == "model":
            return service.fuse(replace(plan.request, model=model), progress=fusing, cancel=cancel)
        from .classic_raster import fuse_classic_raster

        out = fuse_classic_raster(plan.request.lrhsi, plan.request.hrmsi, plan.request.out, used,
                                  region=plan.request.region, progress=fusing, cancel=cancel)
        return FusionResult(out, plan.grid.scale, plan.area.width, plan.area.height, 0, time.monotonic() - started)
    except Canceled as exc:
        raise Canceled("Fit and fuse canceled while fusing; no model and no output were written.") from exc


def _stamp_card(model: Path, plan: _Plan, minutes: float | None, iterations: int | None, base: dict,
                classical: dict, used: str) -> int:
    """Record in the model's card that fit_and_fuse fitted it on these files, what it fused and with what
    (``used``: "model" or the classical method that scored above it; ``classical``: the candidates' validation
    scores); returns the training step of the kept weights. The weights are written back unchanged."""
    from .checkpoint import load_checkpoint, save_checkpoint

    checkpoint = load_checkpoint(model)
    card = checkpoint.card
    request = plan.request
    provenance = {**card.provenance, "fitted_by": "fit_and_fuse (cofusion.core.fit)", "fit": {
        "lrhsi": str(request.lrhsi), "hrmsi": str(request.hrmsi), "fused": str(request.out),
        "fusion_region": None if request.region is None else list(plan.area),
        "training_region": None if plan.training_window is None else list(plan.training_window),
        "minutes": minutes, "iterations": iterations, "base_validation": base, "classical_validation": classical,
        "fused_with": used}}
    save_checkpoint(model, checkpoint.model, replace(card, provenance=provenance))
    return int(card.provenance.get("steps", 0))


def _log_rows(path: Path) -> list[dict]:
    """The validation rows of a training log: step, PSNR and SAM (rows without a validation left out)."""
    if not path.exists():
        return []
    with open(path, newline="") as file:
        return [{"step": int(row["step"]), "PSNR": float(row["val_psnr"]), "SAM": float(row["val_sam"])}
                for row in csv.DictReader(file) if row.get("val_psnr")]


def _move(source: Path, target: Path, fused: Path | None = None) -> None:
    """Rename ``source`` over ``target`` (one folder: atomic); OutputError with the fix when that fails."""
    if not source.exists():
        return
    try:
        os.replace(source, target)
    except OSError as exc:
        written = f"The fused raster {fused} was written, but t" if fused is not None else "T"
        raise OutputError(f"{written}he fitted model could not be moved to {target}: {exc.strerror or exc}. Check "
                          f"that {target} is not a folder or open in another program, and run again.") from exc


def _remove(paths) -> None:
    for path in paths:
        try:
            Path(path).unlink(missing_ok=True)
        except OSError as exc:  # a file another program holds: say so, keep the first error
            log.warning("could not remove %s: %s", path, exc)


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{max(0.0, seconds):.0f} s"
