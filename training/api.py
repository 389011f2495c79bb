# SPDX-License-Identifier: GPL-2.0-or-later
"""Training on a user's own scenes, from raster files: the API behind the CLI and the Processing algorithm.

* :func:`train_reference` - HR hyperspectral reference scene(s) + an MSI spectral response (Wald's protocol).
* :func:`train_pair` - a real co-registered LRHSI + HRMSI pair, no reference (reduced-resolution training); the
  MSI response is taken from a preset/CSV or estimated from the pair (:func:`estimate_srf`).

Regions are windows in HR pixels; the validation strip is carved from inside the region and never trained on;
normalisation statistics come from the training part only.

Real scenes train as they are: bad bands (``core.bands``: flagged, nodata everywhere or constant) are left out, so
the model's bands are the scene's good bands (its card keeps their wavelengths); nodata pixels and borders are
masked (``training.data``): the region is cropped to its valid data, patches are drawn where every pixel is valid
and the validation strip is placed and scored on valid pixels. Only a region without one whole valid patch (plus
one for validation) is refused, with the counts.
"""
from __future__ import annotations

import datetime
import logging
import math
import os
import platform
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import nnls

from .. import __version__
from ..core.bands import BandView, merge_screens, plan_good_bands, screen_bands
from ..core.block_walk import coarse_valid, fill_invalid
from ..core.degrade import spatial_degrade
from ..core.errors import InputError, OutputError
from ..core.grid import FusionGrid, check_coregistration
from ..core.model import ModelConfig
from ..core.outputs import check_not_an_input, check_output_path
from ..core.progress import Cancel, Progress
from ..core.raster import RasterReader, read_info
from ..core.resources import available_memory, format_bytes
from ..core.srf import SpectralResponse, parse_srf
from ..core.tiling import network_bytes_per_pixel
from ..core.window import Window
from .data import PairSource, ReferenceSource, split_validation
from .trainer import (
    TrainResult,
    TrainSettings,
    canceled_before_start,
    concrete_model,
    files_written,
    patch_for,
    run_lock,
    train,
)

log = logging.getLogger(__name__)

SRF_SAMPLE_PIXELS = 50_000
#: Training reads its region whole. Copies of the region's float32 values held at the peak (before the first step),
#: counted in the code and measured (peak RSS above the RSS at the call, Linux VmHWM; 198 bands, x4):
#: reference mode, of the hyperspectral region: the read scene, its training and validation crops, the source's
#: padded copy, the training pixels gathered for the statistics and their float64 deviations (two copies' worth):
#: 6.1-6.4 measured on 384 x 384 and 384 x 768 regions, 7 used. Pair mode, of the LRHSI region (its read, the
#: crops, the pixels and their float64 deviations of the statistics, the float64 pixels of the SRF estimate) and
#: of the HRMSI region (its read, the crops, the degraded copy): 4.4 copies of both measured on 768 x 768 and 1536 x
#: 1536 HRMSI regions, 6 and 4 used.
REFERENCE_COPIES = 7
PAIR_LR_COPIES, PAIR_HR_COPIES = 6, 4
#: While training, the sources keep about 3 copies of the hyperspectral data (reference: the last scene read, the
#: crops and the padded copy; pair: the read LRHSI, the crops and the degraded inputs; 2 of the HRMSI), and each
#: validation runs the network on the whole validation strip at once (``trainer.validate``), at most this share of
#: the region (``split_validation`` carves 20 %, rounded to the alignment), with 3 copies of its output. With few
#: bands this, not the data, is the peak.
RESIDENT_COPIES, VALIDATION_SHARE = 3, 0.25
#: The training steps beyond the data at the default settings (the network, AdamW's state, a batch, the forward on
#: the validation strip): 450-500 MiB measured above the data's peak, rounded up.
TRAIN_STEP_BYTES = 512 * 2 ** 20


def train_reference(hsi_paths: Sequence[str | os.PathLike], srf: str | SpectralResponse, scale: int,
                    out: str | os.PathLike, *, region: Window | None = None,
                    settings: TrainSettings | None = None, progress: Progress | None = None,
                    cancel: Cancel | None = None, restart: bool = False,
                    init: str | os.PathLike | None = None) -> TrainResult:
    """Train from HR hyperspectral reference scenes by simulating (LRHSI, HRMSI) pairs on the fly.

    Args:
        hsi_paths: rasters of the reference scenes; same bands and wavelengths.
        srf: MSI response: a preset ('sentinel2a:B2,B3,B4,B8'), a CSV path, or a SpectralResponse.
        scale: HR pixels per LR pixel of the simulated pairs, an integer from 2 to 8 (3: EnMAP with Sentinel-2).
        region: HR pixel window used from every scene (the whole scene when None); the validation strip is
            carved from the first scene's region.
        init: a model to fine-tune instead of training from scratch (``trainer.train``).

    ``cancel()`` is asked after each scene is read and by the trainer's start-up: a cancel before the first step
    leaves no file.
    """
    out = _check_model_output(out, [*hsi_paths, srf, init])
    with run_lock(out):  # before any raster is read: a second run writing the same model is refused at once
        return _train_reference(hsi_paths, srf, scale, out, region=region, settings=settings, progress=progress,
                                cancel=cancel, restart=restart, init=init)


def _train_reference(hsi_paths: Sequence[str | os.PathLike], srf: str | SpectralResponse, scale: int,
                     out: str | os.PathLike, *, region: Window | None = None,
                     settings: TrainSettings | None = None, progress: Progress | None = None,
                     cancel: Cancel | None = None, restart: bool = False,
                     init: str | os.PathLike | None = None) -> TrainResult:
    out = Path(out)
    settings = settings or TrainSettings()
    align = check_patch(settings, scale)
    infos = [read_info(p) for p in hsi_paths]
    if not infos:
        raise InputError("give at least one reference hyperspectral scene (--hsi).")
    first = infos[0]
    for info in infos[1:]:
        if info.band_count != first.band_count or info.wavelengths_nm != first.wavelengths_nm:
            raise InputError(f"{info.path} has other bands than {first.path}: reference scenes must share the "
                             "band count and wavelengths.")
    if first.wavelengths_nm is None:
        raise InputError(f"{first.path} carries no band wavelengths, so the MSI response cannot be sampled at its "
                         "bands; add 'wavelength' band metadata (nm) to the file.")
    windows = [_region_window(info.window, region, info.path) for info in infos]
    _check_training_memory(reference_bytes_per_pixel(first.band_count, scale, settings),
                           [w.width * w.height for w in windows], align, f"{first.band_count} bands",
                           available_memory())
    screens = []
    for info, window in zip(infos, windows):
        with RasterReader(info.path) as reader:
            screens.append(screen_bands(reader, window))
    bands = plan_good_bands(merge_screens(screens), first.wavelengths_nm)
    if not bands.working_bands:
        raise InputError(f"no band is good in every reference scene ({bands.describe(first.wavelengths_nm)}); "
                         "train on scenes of one sensor with data in the same bands.")
    response = srf if isinstance(srf, SpectralResponse) else parse_srf(srf)
    matrix = response.matrix(bands.wavelengths_nm, bands.pick(first.fwhm_nm)).astype(np.float32)
    scenes, masks, validation, validation_valid = [], [], None, None
    for info, window in zip(infos, windows):
        with RasterReader(info.path) as reader:
            data, valid = _valid_part(*BandView(reader, bands).read_valid(window), info.path, align)
        _check_cancel(cancel, f"reading {info.path}")
        train_box, val_box = split_validation(valid.shape[0], valid.shape[1], align, texture=data.mean(axis=0),
                                              valid=valid)
        scenes.append(_crop(data, train_box))
        masks.append(_crop(valid[None], train_box)[0])
        if validation is None:
            validation, validation_valid = _crop(data, val_box), _crop(valid[None], val_box)[0]
            _check_validation(validation_valid, info.path)
    source = ReferenceSource(scenes, validation, matrix, scale, masks, validation_valid)
    settings = _fit_patch(settings, min(min(z.shape[1:]) for z in scenes), align)
    card_info = {
        "hsi_wavelengths_nm": bands.wavelengths_nm,
        "srf": tuple(tuple(float(v) for v in row) for row in matrix),
        "msi_band_names": response.band_names,
        "provenance": {**_provenance("reference", [str(p) for p in hsi_paths], region, scale, settings,
                                     srf=srf if isinstance(srf, str) else "custom"),
                       "bad_bands": bands.describe(first.wavelengths_nm)},
    }
    return train(source, settings, out, card_info, progress, cancel, restart, init)


def train_pair(lrhsi_path: str | os.PathLike, hrmsi_path: str | os.PathLike, out: str | os.PathLike, *,
               srf: str | SpectralResponse | None = None, region: Window | None = None,
               settings: TrainSettings | None = None, progress: Progress | None = None,
               cancel: Cancel | None = None, restart: bool = False,
               init: str | os.PathLike | None = None) -> TrainResult:
    """Train on a real co-registered pair by reduced-resolution self-supervision, for use at full resolution.

    Args:
        srf: the MSI response (preset, CSV or SpectralResponse) stored in the checkpoint; None estimates it from
            the pair (non-negative least squares, :func:`estimate_srf`).
        region: training window in HRMSI pixels (the whole common area when None), snapped inward to LR pixels.
        init: a model to fine-tune instead of training from scratch (``trainer.train``).

    ``cancel()`` is asked after each raster is read, after the MSI response is estimated and by the trainer's
    start-up: a cancel before the first step leaves no file.
    """
    out = _check_model_output(out, [lrhsi_path, hrmsi_path, srf, init])
    with run_lock(out):  # before any raster is read: a second run writing the same model is refused at once
        return _train_pair(lrhsi_path, hrmsi_path, out, srf=srf, region=region, settings=settings,
                           progress=progress, cancel=cancel, restart=restart, init=init)


def _train_pair(lrhsi_path: str | os.PathLike, hrmsi_path: str | os.PathLike, out: str | os.PathLike, *,
                srf: str | SpectralResponse | None = None, region: Window | None = None,
                settings: TrainSettings | None = None, progress: Progress | None = None,
                cancel: Cancel | None = None, restart: bool = False,
                init: str | os.PathLike | None = None) -> TrainResult:
    out = Path(out)
    settings = settings or TrainSettings()
    lr_info, hr_info = read_info(lrhsi_path), read_info(hrmsi_path)
    grid = check_coregistration(lr_info, hr_info)
    scale = grid.scale
    align = check_patch(settings, scale)
    lr_window = _lr_window_of(grid, region)
    hr_window = Window(grid.hr_window.col + (lr_window.col - grid.lr_window.col) * scale,
                       grid.hr_window.row + (lr_window.row - grid.lr_window.row) * scale,
                       lr_window.width * scale, lr_window.height * scale)
    per_pixel = pair_bytes_per_pixel(lr_info.band_count, hr_info.band_count, scale, settings)
    _check_training_memory(per_pixel, [hr_window.width * hr_window.height], align,
                           f"{lr_info.band_count} + {hr_info.band_count} bands", available_memory())
    with RasterReader(lr_info.path) as reader:
        bands = plan_good_bands(screen_bands(reader, lr_window), lr_info.wavelengths_nm)
        lr, lr_valid = BandView(reader, bands).read_valid(lr_window)
    _check_cancel(cancel, f"reading {lr_info.path}")
    with RasterReader(hr_info.path) as reader:
        hr, hr_valid = reader.read_valid(hr_window)
    _check_cancel(cancel, f"reading {hr_info.path}")
    valid = lr_valid & coarse_valid(hr_valid, scale)
    if not valid.any():
        raise InputError("the training region of the pair is entirely nodata; choose a region with data.")
    fill_invalid(lr, lr_valid)  # placeholders only: patches and statistics use valid pixels
    fill_invalid(hr, hr_valid)
    train_box, val_box = split_validation(lr_window.height, lr_window.width, align, texture=lr.mean(axis=0),
                                          valid=valid)
    hr_box = tuple(v * scale for v in train_box)
    hr_val_box = tuple(v * scale for v in val_box)
    train_lr, train_valid = _crop(lr, train_box), _crop(valid[None], train_box)[0]
    train_hr = _crop(hr, hr_box)
    if srf is None:
        matrix = estimate_srf(train_lr, train_hr, scale, train_valid)
        names, srf_label = hr_info.band_names, "estimated from the pair (NNLS)"
    else:
        if lr_info.wavelengths_nm is None:
            raise InputError(f"{lr_info.path} carries no band wavelengths, so the MSI response cannot be sampled; "
                             "add 'wavelength' band metadata or leave --srf out to estimate it.")
        response = srf if isinstance(srf, SpectralResponse) else parse_srf(srf)
        matrix = response.matrix(bands.wavelengths_nm, bands.pick(lr_info.fwhm_nm))
        names, srf_label = response.band_names, srf if isinstance(srf, str) else "custom"
    _check_cancel(cancel, "estimating the MSI response" if srf is None else "sampling the MSI response")
    validation_valid = _crop(valid[None], val_box)[0]
    _check_validation(validation_valid, lr_info.path)
    source = PairSource(train_lr, train_hr, _crop(lr, val_box), _crop(hr, hr_val_box), scale, train_valid,
                        validation_valid)
    settings = _fit_patch(settings, min(train_lr.shape[1:]), align)
    card_info = {
        "hsi_wavelengths_nm": bands.wavelengths_nm,
        "srf": tuple(tuple(float(v) for v in row) for row in matrix),
        "msi_band_names": tuple(names),
        "provenance": {**_provenance("pair", [str(lrhsi_path), str(hrmsi_path)], region, scale, settings,
                                     srf=srf_label),
                       "bad_bands": bands.describe(lr_info.wavelengths_nm),
                       "validation_strip": list(_strip_on_grid(val_box, lr_window, grid))},
    }
    return train(source, settings, out, card_info, progress, cancel, restart, init)


def _strip_on_grid(box: tuple[int, int, int, int], lr_window: Window, grid: FusionGrid) -> Window:
    """The validation strip ``box`` ((row0, row1, col0, col1), LR pixels of ``lr_window``) as a window of the
    pair's HR grid (``grid.hr_window``'s pixels: those of a fusion of the whole pair), for an assessment of the
    strip alone (``core.assess.assess_no_reference(area=)``)."""
    s = grid.scale
    return Window((lr_window.col - grid.lr_window.col + box[2]) * s, (lr_window.row - grid.lr_window.row + box[0]) * s,
                  (box[3] - box[2]) * s, (box[1] - box[0]) * s)


def _check_cancel(cancel: Cancel | None, phase: str) -> None:
    """Canceled (nothing written yet) when ``cancel()`` says so; ``phase`` is what the run was doing."""
    if cancel is not None and cancel():
        raise canceled_before_start(phase)


def estimate_srf(lr_hsi: np.ndarray, hr_msi: np.ndarray, scale: int, valid: np.ndarray | None = None,
                 seed: int = 0) -> np.ndarray:
    """Estimate the MSI spectral response from a co-registered pair: R (C_m, C_h), rows >= 0 summing to 1.

    The HRMSI is degraded to the LR grid (core.degrade) and each MSI band is fitted as a non-negative linear
    combination of the HSI bands (scipy.optimize.nnls) over at most 50 000 valid LR pixels. Rows are then
    normalised to sum 1 (the radiometric gain between the sensors is not part of the response).

    Args:
        lr_hsi: (C_h, h, w); hr_msi: (C_m, s*h, s*w); valid: (h, w) bool.
    """
    msi_lr = spatial_degrade(hr_msi, scale)
    pixels = lr_hsi.reshape(lr_hsi.shape[0], -1).T.astype(np.float64)
    targets = msi_lr.reshape(msi_lr.shape[0], -1).T.astype(np.float64)
    if valid is not None:
        pixels, targets = pixels[valid.reshape(-1)], targets[valid.reshape(-1)]
    if len(pixels) > SRF_SAMPLE_PIXELS:
        keep = np.random.default_rng(seed).choice(len(pixels), SRF_SAMPLE_PIXELS, replace=False)
        pixels, targets = pixels[keep], targets[keep]
    rows = []
    for band in range(targets.shape[1]):
        weights, _ = nnls(pixels, targets[:, band])
        if weights.sum() <= 0:
            raise InputError(f"MSI band {band + 1} cannot be explained by the hyperspectral bands (no positive fit); "
                             "give its spectral response with --srf.")
        rows.append(weights / weights.sum())
    return np.stack(rows)


def _validation_bytes_per_pixel(hsi_bands: int, scale: int, settings: TrainSettings) -> float:
    """Bytes per pixel of the validation strip that the network's forward on it needs (``core.tiling``'s measured
    activations of the model ``settings`` describe, plus 3 copies of its output)."""
    config = ModelConfig(3, 1, scale, **concrete_model(settings.model))
    return network_bytes_per_pixel(hsi_bands, config.width, config.saliency_stride) + 4 * hsi_bands * RESIDENT_COPIES


def reference_bytes_per_pixel(bands: int, scale: int, settings: TrainSettings) -> float:
    """Peak bytes per HR pixel of the region of a reference-mode training: the data's peak (REFERENCE_COPIES), or
    what stays while training with the forward on the validation strip, whichever is more."""
    data, resident = 4 * bands * REFERENCE_COPIES, 4 * bands * RESIDENT_COPIES
    return float(max(data, resident + VALIDATION_SHARE * _validation_bytes_per_pixel(bands, scale, settings)))


def pair_bytes_per_pixel(hsi_bands: int, msi_bands: int, scale: int, settings: TrainSettings) -> float:
    """Peak bytes per HRMSI pixel of the region of a pair-mode training (its LRHSI has ``scale ** 2`` times fewer
    pixels; the network runs on the LR grid), as :func:`reference_bytes_per_pixel`."""
    lr = 1 / scale ** 2
    data = 4 * (hsi_bands * PAIR_LR_COPIES * lr + msi_bands * PAIR_HR_COPIES)
    resident = 4 * (hsi_bands * RESIDENT_COPIES * lr + msi_bands * 2)
    validation = VALIDATION_SHARE * lr * _validation_bytes_per_pixel(hsi_bands, scale, settings)
    return float(max(data, resident + validation))


def training_memory(bytes_per_pixel: float, pixels: Sequence[int]) -> int:
    """Estimated peak memory (bytes) of a training run on regions of ``pixels`` HR pixels each (one per scene),
    ``bytes_per_pixel`` per HR pixel (:func:`reference_bytes_per_pixel`, :func:`pair_bytes_per_pixel`), plus the
    steps' TRAIN_STEP_BYTES."""
    return int(bytes_per_pixel * sum(pixels) + TRAIN_STEP_BYTES)


def _check_training_memory(bytes_per_pixel: float, pixels: Sequence[int], align: int, bands: str,
                           available: int | None) -> None:
    """InputError, before any pixel is read, when the training regions (``pixels`` HR pixels each) need more memory
    than is ``available`` (None: unknown, no check), naming both and the largest square --region that fits (a
    multiple of ``align``, for every scene)."""
    need = training_memory(bytes_per_pixel, pixels)
    if available is None or need <= available:
        return
    scenes = len(pixels)
    what = (f"training reads its region whole: {sum(pixels):,} HR pixels of {bands}"
            f"{f' in {scenes} scenes' if scenes > 1 else ''} need about {format_bytes(need)} of memory but "
            f"{format_bytes(available)} are available")
    room = (available - TRAIN_STEP_BYTES) / (bytes_per_pixel * scenes)
    side = int(math.isqrt(max(0, int(room)))) // align * align
    if side < 2 * align:
        raise InputError(f"{what}; even the smallest region ({2 * align} x {2 * align} pixels) does not fit: close "
                         "other programs or use a machine with more memory.")
    raise InputError(f"{what}; give a --region of at most {side} x {side} HR pixels (about "
                     f"{format_bytes(training_memory(bytes_per_pixel, [side * side] * scenes))}), or close other "
                     "programs.")


def _valid_part(data: np.ndarray, valid: np.ndarray, path: str, align: int) -> tuple[np.ndarray, np.ndarray]:
    """``data`` (C, H, W) and ``valid`` (H, W) cropped to the bounding box of the valid pixels (nodata borders
    cost neither training nor validation), invalid pixels filled with band means (placeholders; the masks keep
    them out). InputError naming the counts when fewer than two ``align`` x ``align`` patches of pixels are
    valid (one to train on, one to validate)."""
    needed = 2 * align * align
    if int(valid.sum()) < needed:
        raise InputError(f"{path}: the training region holds {int(valid.sum())} valid pixels; training needs at "
                         f"least {needed} (two {align} x {align} patches, one of them to validate): choose a "
                         "region with more valid data (--region).")
    rows, cols = np.flatnonzero(valid.any(axis=1)), np.flatnonzero(valid.any(axis=0))
    box = (rows[0], rows[-1] + 1, cols[0], cols[-1] + 1)
    data, valid = _crop(data, box), _crop(valid[None], box)[0]
    fill_invalid(data, valid)
    return data, valid


def _check_validation(valid: np.ndarray, path: str) -> None:
    """InputError unless the validation strip ``valid`` (bool) holds valid pixels to score on."""
    if not valid.any():
        raise InputError(f"{path}: the validation strip carved from the training region holds no valid pixel "
                         f"(of {valid.size}); choose a region with valid data along both ends (--region).")


def _fit_patch(settings: TrainSettings, region_side: int, align: int) -> TrainSettings:
    """The settings with the patch set (``patch_for``), shrunk to a multiple of ``align`` where the training
    region is smaller."""
    settings = replace(settings, patch=patch_for(settings.patch, align))
    largest = region_side // align * align
    if settings.patch <= largest:
        return settings
    log.warning("patch size %d exceeds the training region (%d pixels): using %d", settings.patch, region_side,
                largest)
    return replace(settings, patch=largest)


def check_patch(settings: TrainSettings, scale: int) -> int:
    """The alignment of the model ``settings`` describe at ``scale``; InputError when the patch size is set and
    not a multiple of it (the rest of the settings are checked by TrainSettings itself)."""
    align = ModelConfig(3, 1, scale, **concrete_model(settings.model)).align
    if settings.patch is not None and settings.patch % align:
        lower = max(align, settings.patch // align * align)
        raise InputError(f"patch {settings.patch} (--patch, PATCH_SIZE) must be a multiple of the model's alignment, "
                         f"{align} pixels at x{scale}: pass for example {lower} or {lower + align}.")
    return align


def _lr_window_of(grid, region: Window | None) -> Window:
    """The LRHSI window of the pair's common area inside ``region`` (HRMSI pixels), snapped inward to LR pixels."""
    if region is None:
        return grid.lr_window
    s, lr, hr = grid.scale, grid.lr_window, grid.hr_window
    col0 = lr.col + -(-(region.col - hr.col) // s)
    row0 = lr.row + -(-(region.row - hr.row) // s)
    col1 = lr.col + (region.col_end - hr.col) // s
    row1 = lr.row + (region.row_end - hr.row) // s
    window = Window(col0, row0, col1 - col0, row1 - row0).intersection(lr) if col1 > col0 and row1 > row0 else None
    if window is None:
        raise InputError(f"the region {tuple(region)} (HRMSI pixels) does not cover a whole LR pixel of the "
                         "area the two rasters share.")
    return window


def _region_window(full: Window, region: Window | None, path: str) -> Window:
    window = full if region is None else full.intersection(region)
    if window is None:
        raise InputError(f"the region {tuple(region)} lies outside {path} ({full.width} x {full.height} pixels).")
    return window


def _crop(data: np.ndarray, box: tuple) -> np.ndarray:
    row0, row1, col0, col1 = box
    return np.ascontiguousarray(data[:, row0:row1, col0:col1])


def _check_model_output(out: str | os.PathLike,
                        inputs: Sequence[str | os.PathLike | SpectralResponse | None]) -> Path:
    """The absolute model path, after checking that neither it nor a file written beside it
    (``trainer.files_written``) is one of ``inputs`` (rasters, an SRF CSV) or a file read to open one."""
    if Path(out).suffix != ".safetensors":
        raise OutputError(f"{Path(out).expanduser().absolute()}: CoFusion models are .safetensors files; give the "
                          "output that extension.")
    path = check_output_path(out, suffixes=(".safetensors",))
    reads = [p for p in inputs if isinstance(p, (str, os.PathLike))]  # a preset name matches no file
    for written in files_written(path):
        check_not_an_input(written, reads)
    return path


def _provenance(mode: str, inputs: list[str], region: Window | None, scale: int, settings: TrainSettings,
                srf: str) -> dict:
    return {
        "mode": mode, "inputs": inputs, "region": None if region is None else list(region), "scale": scale,
        "srf": srf, "settings": {k: v for k, v in vars(settings).items()},
        "cofusion": __version__, "torch": torch.__version__, "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
