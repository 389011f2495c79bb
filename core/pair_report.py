# SPDX-License-Identifier: GPL-2.0-or-later
"""A quality report without ground truth, for any fusion of a real pair (an LRHSI + an HRMSI, no HR reference).

:func:`pair_report` puts together what can honestly be measured on a real pair, in one HTML page (no external
assets: the plots are inline SVG) with a per-band CSV and a consistency map:

1. **The reduced-resolution check** (Wald's protocol on the pair itself): both inputs are degraded by the scale
   with the sensor model (``core.degrade.spatial_degrade``: the MTF-matched Gaussian and decimation), the degraded
   pair is fused with the same method (a classical method of ``core.classic.METHODS`` through
   ``core.classic_raster.fuse_classic_raster``, or a CoFusion checkpoint through ``core.service.fuse``: the real
   engines, on temporary GeoTIFFs in ``out_dir/.tmp``), and the result is compared with the LRHSI, which is then
   the reference: PSNR per band and overall, SAM, ERGAS, on valid pixels only (``core.metrics``). It assumes the
   method behaves the same one scale down; it measures the method, not the fused raster given. The raster's record
   of what made it (``core.producer``) is compared with the method checked: a note says when they differ, or when
   the raster records nothing.
2. **The honesty section**: plain bicubic upsampling of the LRHSI always runs in the same check. A method
   *beats bicubic* when its PSNR is at least :data:`BEAT_PSNR_DB` higher, its SAM no higher and its ERGAS lower;
   the report says so, with the numbers, for every candidate, and says "no method sharpens reliably on this pair"
   when no candidate evaluated beats it.
3. **Full-resolution indices** of the fused raster: D_lambda, D_s and QNR (``core.assess.assess_no_reference``),
   and HQNR (Aiazzi et al. 2014): ``HQNR = (1 - D_lambda^(K)) (1 - D_s)``, with Khan's spectral distortion
   ``D_lambda^(K) = 1 - Q(degrade(F), LRHSI)`` (Khan et al. 2009: the fused image low-passed by the sensor's MTF
   and decimated, against the LRHSI). Khan uses Q2^n, the hypercomplex index of 2^n bands; here Q is the
   band-averaged universal image quality index (``core.metrics.uqi``, 11 x 11 Gaussian windows), which is defined
   for any band count: a stated variant, not Khan's exact index.
4. **The consistency map**: the fused raster degraded by the sensor model against the LRHSI, per LR pixel: the
   spectral angle (degrees) and the RMSE over the bands (LRHSI units), a 2-band GeoTIFF on the LRHSI's grid.
   0 for a fusion whose degradation reproduces the LRHSI exactly (any fusion with back-projection comes close; a
   small value says the fusion is consistent, not that its detail is right).
5. **Supported and extrapolated bands**: an LRHSI band is *supported* when its centre wavelength lies where an
   HRMSI band responds at half its peak or more: the HRMSI's response is the SRF given (a preset or CSV), else the
   HRMSI's own band metadata (Gaussian bands of its centres and FWHM), else estimated from the pair (training's
   non-negative least squares, ``training.api.estimate_srf``, passed in as ``srf_estimator``: core does not import
   training), whose half-maximum width is taken as the central 76 % of each band's weight (the share inside the
   half-maximum width of a Gaussian). Other bands are *extrapolated*: the HRMSI carries no detail for them, and
   their scores are shown apart. Without any of these every band counts as supported and the report says so.
   The decision is ``core.band_support``'s, the one every fused raster carries in its band metadata.

Memory: the LRHSI is read whole (good bands, float32) and held with a few arrays of its size (the degraded pair,
one reduced-resolution result at a time, the fused raster degraded to the LR grid, float64 copies inside the
metrics: :data:`LR_COPIES` in all); the HRMSI and the fused raster are walked in full-width strips of rows (about
:data:`STRIP_VALUES` values each). The full-resolution QNR (``core.assess.assess_no_reference``) reads the fused
raster, the LRHSI and the HRMSI whole and works in float64: :data:`QNR_COPIES` copies of the fused raster. Both
needs are checked against the available memory before any pixel is read, and a scene above them is refused with
one line (InputError) that says to report on a crop.

References:
  Wald, L., Ranchin, T., Mangolini, M. (1997). Fusion of satellite images of different spatial resolutions:
  assessing the quality of resulting images. Photogrammetric Engineering & Remote Sensing 63(6), 691-699.
  Alparone, L., Aiazzi, B., Baronti, S., Garzelli, A., Nencini, F., Selva, M. (2008). Multispectral and
  panchromatic data fusion assessment without reference. PE&RS 74(2), 193-200 (QNR).
  Khan, M. M., Alparone, L., Chanussot, J. (2009). Pansharpening quality assessment using the modulation transfer
  functions of instruments. IEEE Trans. Geoscience and Remote Sensing 47(11), 3880-3891 (D_lambda^(K)).
  Aiazzi, B., Alparone, L., Baronti, S., Carla, R., Garzelli, A., Santurri, L. (2014). Full-scale assessment of
  pansharpening methods and data products. Proc. SPIE 9244, Image and Signal Processing for Remote Sensing XX,
  924402 (HQNR).
"""
from __future__ import annotations

import csv
import html
import io
import logging
import math
import os
import shutil
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .assess import assess_no_reference
from .band_support import band_support, hrmsi_response
from .bands import describe_bands, merge_screens, screen_bands
from .block_walk import coarse_valid, fill_invalid
from .checkpoint import read_card
from .classic import METHODS
from .classic_raster import fuse_classic_raster
from .degrade import blur_kernel, spatial_degrade
from .errors import Canceled, InputError
from .grid import check_coregistration
from .metrics import ergas, rmse_per_band, sam, sam_map, uqi
from .outputs import check_output_path
from .producer import BY_ITEM, METHOD, method_producer, model_producer, read_producer
from .progress import Cancel, Progress
from .raster import RasterInfo, RasterReader, RasterWriter, read_info
from .resources import available_memory, format_bytes
from .srf import SpectralResponse
from .window import Window

log = logging.getLogger(__name__)

#: ``srf_estimator(lr (C_h, h, w), hr (C_m, s h, s w), scale, valid (h, w)) -> R (C_m, C_h)``, rows summing to 1:
#: ``training.api.estimate_srf``.
SrfEstimator = Callable[[np.ndarray, np.ndarray, int, np.ndarray], np.ndarray]

#: The baseline every report runs: plain bicubic upsampling of the LRHSI.
BASELINE = "bicubic"
#: A method beats bicubic when its reduced-resolution PSNR is higher by at least this (dB), its SAM is no higher
#: and its ERGAS is lower.
BEAT_PSNR_DB = 0.1
#: Copies of the LRHSI's float32 values held at the peak besides the QNR (the LRHSI, the degraded pair, one
#: reduced-resolution result, the fused raster degraded to the LR grid, and the float64 copies and torch temporaries
#: of ``core.metrics.sam_map``): 21.6 measured (peak RSS, 48 bands, 384 x 384 LR pixels), 24 used. Copies of the fused
#: raster's float32 values inside the full-resolution QNR (``core.assess.assess_no_reference`` reads the three rasters
#: whole; ``core.metrics`` works in float64 with windowed moments): 22.2 and 22.8 measured (48 bands on 512 x 512 and
#: 12 bands on 1024 x 1024 HR pixels), 24 used.
LR_COPIES = 24
QNR_COPIES = 24
#: Values (float32) of a strip of the HRMSI or the fused raster, with its margin: about 128 MiB.
STRIP_VALUES = 32 * 2 ** 20
#: The largest window (LR pixels per side) the MSI response is estimated on; training's estimate samples 50 000
#: LR pixels, which a 224 x 224 window holds.
SRF_WINDOW = 256
#: The smallest degraded LRHSI (LR pixels per side) the reduced-resolution check fuses.
MIN_REDUCED_SIZE = 8


@dataclass(frozen=True)
class Scores:
    """Reduced-resolution scores of one candidate against the LRHSI.

    ``psnr`` (dB, the mean over the bands compared of each band's PSNR), ``sam`` (degrees), ``ergas``; per band
    (one entry per LRHSI band, NaN for a band not compared): ``psnr_per_band`` (dB), ``rmse_per_band`` (LRHSI
    units) and ``rel_rmse_per_band`` (RMSE over the band's mean, %: ERGAS's term times the scale).
    ``supported`` / ``extrapolated``: ``{'PSNR', 'SAM', 'ERGAS', 'bands'}`` over those bands alone (None when there
    is none; SAM is NaN over a single band). ``pixels``: the LR pixels compared (valid in the LRHSI and in the
    result). ``beats_bicubic``: None for bicubic itself.
    """

    name: str
    psnr: float
    sam: float
    ergas: float
    psnr_per_band: np.ndarray
    rmse_per_band: np.ndarray
    rel_rmse_per_band: np.ndarray
    supported: dict | None
    extrapolated: dict | None
    pixels: int = 0
    beats_bicubic: bool | None = None


@dataclass(frozen=True)
class PairReport:
    """What :func:`pair_report` measured and wrote.

    ``subject``: the method (a ``core.classic`` name) or the model file the report is about; ``candidates``: the
    reduced-resolution :class:`Scores` by name, the subject first, then bicubic, then the others compared.
    ``qnr``: ``{'D_lambda', 'D_s', 'QNR'}`` of the fused raster at full resolution; ``qnr_held_out``: the same on
    the validation strip of a model trained on this very pair (its card's ``validation_strip``), else None;
    ``d_lambda_k`` and ``hqnr``:
    Khan's spectral distortion (band-averaged Q) and HQNR (module docstring). ``consistency``: the map's
    summary, ``{'SAM mean', 'SAM median', 'SAM p95', 'RMSE mean', 'RMSE median', 'RMSE p95', 'relative RMSE'}``
    (degrees; LRHSI units; RMSE mean over the LRHSI's mean value). ``supported``: per LRHSI band, True when the
    HRMSI's response covers its wavelength (``support_rule`` says how that was decided); ``srf``: the MSI
    response matrix (C_m, bands compared) used for the decision and plotted, None when none was known;
    ``srf_source``: where it came from. ``sharpens``: whether the subject beats bicubic; ``verdict``: the
    honesty section's sentences.
    """

    html: Path
    consistency_map: Path
    per_band_csv: Path
    subject: str
    scale: int
    wavelengths_nm: tuple[float, ...] | None
    bands: tuple[int, ...]
    supported: np.ndarray
    support_rule: str
    candidates: dict
    qnr: dict
    qnr_held_out: dict | None
    d_lambda_k: float
    hqnr: float
    consistency: dict
    srf: np.ndarray | None
    srf_source: str
    srf_bands: tuple[str, ...]
    sharpens: bool
    verdict: tuple[str, ...]
    skipped: str = ""
    notes: tuple[str, ...] = field(default=())


# ---------------------------------------------------------------------------------------------------- entry point
def pair_report(lrhsi: str | os.PathLike, hrmsi: str | os.PathLike, fused: str | os.PathLike,
                method_or_model: str | os.PathLike | None, out_dir: str | os.PathLike, *,
                compare: Sequence[str] = (), srf: str | SpectralResponse | None = None,
                srf_estimator: SrfEstimator | None = None, device: str = "auto", threads: int | None = None,
                html_path: str | os.PathLike | None = None, map_path: str | os.PathLike | None = None,
                csv_path: str | os.PathLike | None = None, progress: Progress | None = None,
                cancel: Cancel | None = None) -> PairReport:
    """Assess ``fused``, the fusion of the real pair ``lrhsi`` + ``hrmsi`` by ``method_or_model``, without ground
    truth (module docstring), and write the report into ``out_dir`` (created if missing).

    ``method_or_model``: a classical method (a key of ``core.classic.METHODS``) or a CoFusion checkpoint
    (.safetensors; None or "" for the bundled model), run again on the degraded pair (``device``, ``threads`` as
    for fusion). ``compare``: more classical methods for the reduced-resolution check (bicubic always runs).
    ``srf``: the HRMSI's response (a preset such as 'sentinel2a:B2,B3,B4,B8', a CSV, or a SpectralResponse) for the
    supported / extrapolated split; None: the HRMSI's band metadata, else ``srf_estimator`` on the pair.
    Outputs: ``html_path`` (default ``out_dir/report.html``), ``map_path`` (``out_dir/consistency.tif``),
    ``csv_path`` (``out_dir/per_band.csv``), written only when everything is computed. Raises InputError,
    GridError, CheckpointError, OutputError with the fix, Canceled when ``cancel()`` returns True; the
    temporary files are removed in every case.
    """
    report = progress or (lambda _fraction, _message: None)
    subject, model = _subject(method_or_model)
    extra = _compare_list(compare, subject)
    lr_info, hr_info, f_info = read_info(lrhsi), read_info(hrmsi), read_info(fused)
    grid = check_coregistration(lr_info, hr_info)
    s, lr_win, hr_win = grid.scale, grid.lr_window, grid.hr_window
    if (f_info.width, f_info.height) != (hr_win.width, hr_win.height) or f_info.band_count != lr_info.band_count:
        raise InputError(
            f"The fused raster {f_info.path} ({f_info.band_count} bands, {f_info.width} x {f_info.height} pixels) "
            f"is not the fusion of this pair, which gives {lr_info.band_count} bands on {hr_win.width} x "
            f"{hr_win.height} pixels; give the LRHSI and HRMSI it was fused from.")
    reduced = Window(lr_win.col, lr_win.row, lr_win.width // s * s, lr_win.height // s * s)
    if min(reduced.width, reduced.height) // s < MIN_REDUCED_SIZE:
        raise InputError(
            f"The pair shares {lr_win.width} x {lr_win.height} LR pixels; the reduced-resolution check degrades the "
            f"LRHSI by {s} and needs at least {MIN_REDUCED_SIZE * s} x {MIN_REDUCED_SIZE * s} LR pixels: report on a "
            "larger area.")
    _check_memory(lr_info, lr_win, hr_win, available_memory())
    out = Path(out_dir).expanduser().absolute()
    out.mkdir(parents=True, exist_ok=True)
    inputs = (lrhsi, hrmsi, fused) + (() if model is None else (model,))
    html_out = check_output_path(html_path or out / "report.html", inputs, suffixes=(".html", ".htm"))
    map_out = check_output_path(map_path or out / "consistency.tif", inputs)
    csv_out = check_output_path(csv_path or out / "per_band.csv", inputs, suffixes=(".csv",))
    wavelengths = lr_info.wavelengths_nm

    report(0.0, "screening the bands")
    with RasterReader(lr_info.path) as lr_reader, RasterReader(f_info.path) as f_reader:
        screen = merge_screens((screen_bands(lr_reader, lr_win, cancel=cancel), screen_bands(f_reader, cancel=cancel)),
                               ("the LRHSI", "the fused raster"))
        good = list(screen.good)
        if not good:
            raise InputError(f"No band is good in both the LRHSI {lr_info.path} and the fused raster {f_info.path} "
                             f"({describe_bands(screen.reasons, wavelengths)}); nothing to assess.")
        lr, lr_valid = lr_reader.read_valid(lr_win, good)
    if not lr_valid.any():
        raise InputError(f"{lr_info.path} holds no valid pixel in the area the pair shares; nothing to assess.")
    span = float(lr[:, lr_valid].max())
    if not span > 0:
        raise InputError(f"The LRHSI's largest valid value is {span}: PSNR needs data with a positive range.")
    notes, strip = _maker_notes(f_info.path, subject, model, lrhsi, hrmsi)
    _check_cancel(cancel)

    report(0.05, "the HRMSI's spectral response")
    response, srf_source, matrix = _response(srf, hr_info, lr_info, good, notes)
    srf_bands = tuple(response.band_names) if response is not None else tuple(hr_info.band_names)
    if response is None and matrix is None and srf_estimator is not None:
        matrix = _estimate(srf_estimator, lr, lr_valid, hr_info, hr_win, s)
        srf_source = "estimated from the pair: non-negative least squares of the HRMSI degraded to the LR grid"
        if wavelengths is not None:
            notes.extend(_judge_estimate(matrix, np.asarray(wavelengths, np.float64)[good], srf_bands))
    supported, support_rule = _support(response, matrix, good, lr_info, srf_source, srf_bands)
    _check_cancel(cancel)

    scratch = out / ".tmp" / uuid.uuid4().hex[:12]
    scratch.mkdir(parents=True)
    try:
        report(0.1, "degrading the pair by the scale")
        lr_small, hr_small = _degraded_pair(lr, lr_valid, lr_info, hr_info, grid, reduced, screen, scratch, cancel)
        ref = lr[:, :reduced.height, :reduced.width]
        ref_valid = lr_valid[:reduced.height, :reduced.width]
        names = [subject, BASELINE, *extra] if subject != BASELINE else [BASELINE, *extra]
        candidates: dict[str, Scores] = {}
        for k, name in enumerate(names):
            _check_cancel(cancel)
            share = 0.1 + 0.2 * k / len(names)
            report(share, f"reduced-resolution check: fusing the degraded pair with {name}")
            target = scratch / f"reduced_{k}.tif"
            if name == subject and model is not None:
                from . import service

                service.fuse(service.FusionRequest(lr_small, hr_small, target, model=model, device=device,
                                                   threads=threads), cancel=cancel)
            else:
                fuse_classic_raster(lr_small, hr_small, target, name, cancel=cancel)
            candidates[name] = _score(name, target, ref, ref_valid, good, lr_info.band_count, supported, s, span)
            target.unlink()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        try:
            scratch.parent.rmdir()
        except OSError:
            pass
    candidates = _judge(candidates)

    report(0.3, "the consistency map: the fused raster degraded to the LR grid")
    angles, errors, degraded_f, map_valid = _consistency(f_info, lr, lr_valid, good, grid, cancel)
    consistency = _summary(angles, errors, map_valid, float(lr[:, lr_valid].mean()))
    d_lambda_k = _khan_distortion(degraded_f, lr, map_valid)
    del degraded_f
    _check_cancel(cancel)

    report(0.35, "the full-resolution D_lambda, D_s and QNR")
    indices = assess_no_reference(fused, lrhsi, hrmsi)
    qnr = {k: float(indices[k]) for k in ("D_lambda", "D_s", "QNR")}
    held_out = None
    if strip is not None:
        try:
            held = assess_no_reference(fused, lrhsi, hrmsi, area=strip)
        except InputError as exc:  # the card is untrusted input: a strip that does not fit the pair is said, not run
            notes.append(f"The model card's validation strip {tuple(strip)} could not be assessed: {exc}")
        else:
            held_out = {k: float(held[k]) for k in ("D_lambda", "D_s", "QNR")}
    if held_out is not None:
        notes.append(f"On the model's validation strip (HR pixels {tuple(strip)}: col, row, width, height), which its "
                     f"training never saw, the fused raster's QNR is {held_out['QNR']:.4f} (D_lambda "
                     f"{held_out['D_lambda']:.4f}, D_s {held_out['D_s']:.4f}), against {qnr['QNR']:.4f} on the whole "
                     "pair.")
    hqnr = (1.0 - d_lambda_k) * (1.0 - qnr["D_s"])
    _check_cancel(cancel)

    verdict, sharpens = _verdict(subject, candidates)
    result = PairReport(
        html=html_out, consistency_map=map_out, per_band_csv=csv_out, subject=subject, scale=s,
        wavelengths_nm=wavelengths, bands=tuple(good), supported=supported, support_rule=support_rule,
        candidates=candidates, qnr=qnr, qnr_held_out=held_out, d_lambda_k=d_lambda_k, hqnr=hqnr,
        consistency=consistency, srf=matrix,
        srf_source=srf_source, srf_bands=srf_bands, sharpens=sharpens, verdict=tuple(verdict),
        skipped=describe_bands(screen.reasons, wavelengths) if screen.bad else "", notes=tuple(notes))

    report(0.95, "writing the report")
    lr_gt = lr_info.geotransform
    map_gt = (lr_gt[0] + lr_win.col * lr_gt[1] + lr_win.row * lr_gt[2], lr_gt[1], lr_gt[2],
              lr_gt[3] + lr_win.col * lr_gt[4] + lr_win.row * lr_gt[5], lr_gt[4], lr_gt[5])
    with RasterWriter(map_out, width=lr_win.width, height=lr_win.height, band_count=2, geotransform=map_gt,
                      crs_wkt=lr_info.crs_wkt, nodata=math.nan, band_names=MAP_BANDS, cancel=cancel) as writer:
        writer.write(np.stack([angles, errors]).astype(np.float32), 0, 0)
    _write_text(csv_out, _per_band_csv(result, lr_info))
    _write_text(html_out, render_html(result, lr_info, hr_info, f_info))
    report(1.0, "done")
    return result


#: The consistency map's band names.
MAP_BANDS = ("SAM (degrees)", "RMSE (LRHSI units)")


def _subject(method_or_model: str | os.PathLike | None) -> tuple[str, Path | None]:
    """(the subject's name, the model file or None for a classical method)."""
    if isinstance(method_or_model, str) and method_or_model.strip().lower() in METHODS:
        return method_or_model.strip().lower(), None
    if method_or_model in (None, ""):
        from .service import model_file

        model = model_file(None)
        return f"CoFusion ({model.name})", model
    path = Path(method_or_model)
    if path.suffix.lower() != ".safetensors":
        raise InputError(f"{method_or_model!r} is neither a classical method ({', '.join(METHODS)}) nor a CoFusion "
                         "model (.safetensors); give one of them.")
    if not path.is_file():
        raise InputError(f"{path}: the model file does not exist; check the path.")
    return f"CoFusion ({path.name})", path


def _maker_notes(fused: str, subject: str, model: Path | None, lrhsi: str | os.PathLike,
                 hrmsi: str | os.PathLike) -> tuple[list[str], Window | None]:
    """The notes on what made the fused raster (its ``core.producer`` record) against the subject checked, and on
    how a subject model was trained (``_trained_on_pair``, whose notes on the raster's QNR apply only when that
    model made it, or the raster does not say); with the validation strip to assess apart."""
    maker = read_producer(fused)
    checked = method_producer(subject) if model is None else model_producer(model)
    notes: list[str] = []
    if maker is None:
        notes.append(f"The fused raster does not record what made it (no {BY_ITEM} item: another tool's raster, or "
                     f"an older CoFusion's): the reduced-resolution check measures {subject}, taken to have made it.")
    elif maker != checked:
        fallback = " (a fit that falls back to a classical method fuses with it)" if model is not None and \
            maker.kind == METHOD else ""
        notes.append(f"The fused raster was made by {maker.describe()}, not by {subject}, its {BY_ITEM} record "
                     f"says{fallback}: the reduced-resolution check measures {subject}, not what made the raster; "
                     f"report with {maker.describe()} to check that.")
    if model is None:
        return notes, None
    trained, strip = _trained_on_pair(model, lrhsi, hrmsi)
    return notes + (trained if maker in (None, checked) else []), strip


def _trained_on_pair(model: Path, lrhsi: str | os.PathLike,
                     hrmsi: str | os.PathLike) -> tuple[list[str], Window | None]:
    """What the report's reader must know of how ``model`` was trained (its card), and the window of the fused
    raster to assess apart: a model trained on a real pair with the no-reference loss learnt to lower D_lambda and
    D_s there, so its QNR on that pair is no independent check; when the pair is this one (the same files) and the
    card holds its validation strip, that strip is (None otherwise)."""
    provenance = read_card(model).provenance
    settings = provenance.get("settings") if isinstance(provenance.get("settings"), dict) else {}
    weight = settings.get("no_reference_weight")
    if provenance.get("mode") != "pair" or not isinstance(weight, (int, float)) or not weight > 0:
        return [], None
    inputs = provenance.get("inputs")
    pair = " + ".join(str(v) for v in inputs) if isinstance(inputs, list) else "its training pair"
    notes = [f"The model was trained on the real pair {pair} with a no-reference loss (D_lambda + D_s of fused "
             f"patches at the pair's own resolution, weight {weight:g}). On that pair, the D_lambda, D_s and QNR of "
             "its fusion measure what it was trained to lower, outside its validation strip: no independent check "
             "there; the reduced-resolution check and the strip's QNR are."]
    strip = provenance.get("validation_strip")
    same_pair = isinstance(inputs, list) and len(inputs) == 2 and all(
        isinstance(a, str) and _same_file(a, b) for a, b in zip(inputs, (lrhsi, hrmsi)))
    if not same_pair or not (isinstance(strip, list) and len(strip) == 4
                             and all(isinstance(v, int) and not isinstance(v, bool) for v in strip)):
        return notes, None
    return notes, Window(*strip)


def _same_file(recorded: str, given: str | os.PathLike) -> bool:
    """Whether ``recorded`` (a path a model card holds: untrusted) names the file ``given`` does."""
    try:
        return os.path.samefile(recorded, given)
    except (OSError, ValueError):  # missing, unreadable, or not a path at all (an embedded NUL)
        return False


def _compare_list(compare: Sequence[str], subject: str) -> list[str]:
    names = []
    for item in compare:
        name = str(item).strip().lower()
        if not name:
            continue
        if name not in METHODS:
            raise InputError(f"Unknown classical method {item!r} to compare: choose among {', '.join(METHODS)}.")
        if name not in (subject, BASELINE) and name not in names:
            names.append(name)
    return names


def _check_cancel(cancel: Cancel | None) -> None:
    if cancel is not None and cancel():
        raise Canceled("The report was canceled; nothing was written.")


def _check_memory(lr: RasterInfo, lr_win: Window, hr_win: Window, available: int | None) -> None:
    """InputError (one line) when the LRHSI's copies and the full-resolution QNR's need more than ``available``."""
    lr_pixels, hr_pixels = lr_win.width * lr_win.height, hr_win.width * hr_win.height
    strip = min(STRIP_VALUES, lr.band_count * hr_pixels)  # a strip of the fused raster, read and degraded
    need = 4 * max(lr.band_count * lr_pixels * LR_COPIES + 3 * strip,
                   lr.band_count * (hr_pixels * QNR_COPIES + lr_pixels))  # the LRHSI stays held during the QNR
    if available is None or need <= available:
        return
    raise InputError(
        f"The report holds the LRHSI ({lr.band_count} bands, {lr_win.width} x {lr_win.height} pixels) and, for the "
        f"full-resolution QNR, the fused raster ({hr_win.width} x {hr_win.height} pixels) whole: about "
        f"{format_bytes(need)} of memory, but {format_bytes(available)} are available; report on a crop of the three "
        "rasters (e.g. gdal_translate -srcwin on each, the HRMSI's and the fused raster's window the scale times the "
        "LRHSI's) or close other programs.")


# --------------------------------------------------------------------------------------------- spectral support
def _response(srf: str | SpectralResponse | None, hr: RasterInfo, lr: RasterInfo, good: list[int],
              notes: list[str]) -> tuple[SpectralResponse | None, str, np.ndarray | None]:
    """The HRMSI's response as curves (``core.band_support.hrmsi_response``: an SRF given, or Gaussian bands of the
    HRMSI's metadata), where it came from, and its matrix on the good LRHSI bands (None when it cannot be formed);
    all None when neither is known."""
    response, source = hrmsi_response(srf, hr)
    if response is None:
        if hr.wavelengths_nm is not None:
            notes.append("The HRMSI has band centres but no FWHM: its response was not taken from its metadata.")
        return None, "none known", None
    matrix = None
    if lr.wavelengths_nm is not None:
        try:
            matrix = response.matrix([lr.wavelengths_nm[b] for b in good],
                                     None if lr.fwhm_nm is None else [lr.fwhm_nm[b] for b in good])
        except InputError as exc:
            notes.append(f"The response matrix on the LRHSI's bands could not be formed: {exc}")
    return response, source, matrix


def _estimate(estimator: SrfEstimator, lr: np.ndarray, lr_valid: np.ndarray, hr_info: RasterInfo, hr_win: Window,
              s: int) -> np.ndarray:
    """The MSI response estimated on the central window (at most SRF_WINDOW LR pixels per side) of the pair."""
    rows, cols = lr.shape[1:]
    height, width = min(rows, SRF_WINDOW), min(cols, SRF_WINDOW)
    row0, col0 = (rows - height) // 2, (cols - width) // 2
    lr_part = lr[:, row0:row0 + height, col0:col0 + width].copy()
    part_valid = lr_valid[row0:row0 + height, col0:col0 + width]
    with RasterReader(hr_info.path) as reader:
        hr, hr_valid = reader.read_valid(Window(hr_win.col + col0 * s, hr_win.row + row0 * s, width * s, height * s))
    valid = part_valid & coarse_valid(hr_valid, s)
    if not valid.any():
        raise InputError("No LR pixel of the central window is valid in both rasters, so the HRMSI's spectral "
                         "response cannot be estimated; give it (an SRF preset or CSV).")
    fill_invalid(lr_part, part_valid)
    fill_invalid(hr, hr_valid)
    return np.asarray(estimator(lr_part, hr, s, valid), np.float64)


#: Where a band named so lies (nm): an estimated response centred elsewhere is called implausible in the report.
NOMINAL_BANDS = {"blue": (400.0, 530.0), "green": (480.0, 610.0), "red": (570.0, 720.0), "nir": (700.0, 1100.0)}


def _judge_estimate(matrix: np.ndarray, centres: np.ndarray, names: Sequence[str]) -> list[str]:
    """Notes on an estimated response: each band's weighted centre, and which of them lie outside the range of a
    band of that name (``NOMINAL_BANDS``: a 'red' band centred at 400 nm is not a red band)."""
    weights = np.clip(np.asarray(matrix, np.float64), 0, None)
    mean = (weights * centres).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-300)
    notes = ["The estimated response's weighted centres: " +
             ", ".join(f"{n} {m:.0f} nm" for n, m in zip(names, mean)) + "."]
    odd = [f"'{n}' at {m:.0f} nm (a {str(n).strip().lower()} band lies within {lo:.0f}-{hi:.0f} nm)"
           for n, m in zip(names, mean) for lo, hi in [NOMINAL_BANDS.get(str(n).strip().lower(), (-np.inf, np.inf))]
           if not lo <= m <= hi]
    if odd:
        notes.append("The estimate is implausible: " + "; ".join(odd) + ". The split into supported and "
                     "extrapolated bands rests on it; give the HRMSI's spectral response (an SRF preset or CSV, e.g. "
                     "'rgb' for a consumer camera) for a split that can be trusted.")
    return notes


def _support(response: SpectralResponse | None, matrix: np.ndarray | None, good: list[int], lr: RasterInfo,
             source: str, msi_bands: Sequence[str]) -> tuple[np.ndarray, str]:
    """Per LRHSI band, True when an HRMSI band responds at half its peak or more at its centre
    (``core.band_support``; every band when that cannot be decided), and the rule in words."""
    wavelengths = lr.wavelengths_nm
    split = band_support(wavelengths, response=response, matrix=matrix,
                         matrix_wavelengths_nm=None if wavelengths is None else [wavelengths[b] for b in good],
                         msi_band_names=msi_bands, source=source, tried="no SRF given, no band wavelengths and FWHM, "
                         "no estimate")
    if split.supported is None:
        return np.ones(lr.band_count, bool), (f"{split.how}: every band counts as supported." +
                                              ("" if wavelengths is None else " Give an SRF to split the bands."))
    return np.array(split.supported), split.rule


# -------------------------------------------------------------------------------------- the degraded pair
def _margin(s: int) -> int:
    """HR rows of context a strip needs for the sensor blur, a multiple of the scale."""
    pad = (blur_kernel(s).size - s) // 2
    return -(-pad // s) * s


def _strips(lr_rows: int, values_per_hr_row: int, s: int) -> list[tuple[int, int]]:
    """LR row ranges [r0, r1) whose HR strips (``values_per_hr_row`` values per HR row, with their margins) hold
    about STRIP_VALUES values."""
    step = max(1, STRIP_VALUES // max(1, values_per_hr_row * s) - 2 * _margin(s) // s)
    return [(r0, min(lr_rows, r0 + step)) for r0 in range(0, lr_rows, step)]


def _degrade_rows(read: Callable[[int, int], tuple[np.ndarray, np.ndarray]], hr_rows: int, r0: int, r1: int,
                  s: int) -> tuple[np.ndarray, np.ndarray]:
    """LR rows [r0, r1) of an HR image degraded by the sensor model, exactly as a whole-image degradation: the HR
    rows under them are read with the blur's margin (clipped to the image, where the blur reflects as it does on
    the whole image). ``read(row0, rows) -> (data (B, rows, W) with invalid pixels already filled, valid)``."""
    margin = _margin(s)
    top, bottom = max(0, r0 * s - margin), min(hr_rows, r1 * s + margin)
    data, valid = read(top, bottom - top)
    degraded = spatial_degrade(data, s)
    inner = slice(r0 - top // s, r1 - top // s)
    return degraded[:, inner], coarse_valid(valid, s)[inner]


def _degraded_pair(lr: np.ndarray, lr_valid: np.ndarray, lr_info: RasterInfo, hr_info: RasterInfo, grid,
                   reduced: Window, screen, scratch: Path, cancel: Cancel | None) -> tuple[Path, Path]:
    """Write the pair degraded by the scale (``reduced``: the LR window cropped to whole multiples of it) as two
    GeoTIFFs: the LRHSI at s times its pixel size and the HRMSI on the LRHSI's grid, nodata NaN, every band of the
    LRHSI (bad ones nodata, bbl = 0). Nodata pixels enter the blur as their band's mean over valid pixels."""
    s = grid.scale
    rows, cols = reduced.height, reduced.width
    part = lr[:, :rows, :cols].copy()
    part_valid = lr_valid[:rows, :cols]
    fill_invalid(part, part_valid)
    small = spatial_degrade(part, s).astype(np.float32)
    small[:, ~coarse_valid(part_valid, s)] = np.nan
    del part
    good = list(screen.good)
    full = np.full((lr_info.band_count, *small.shape[1:]), np.nan, np.float32)
    full[good] = small
    del small
    gt = lr_info.geotransform
    x0 = gt[0] + reduced.col * gt[1] + reduced.row * gt[2]
    y0 = gt[3] + reduced.col * gt[4] + reduced.row * gt[5]
    lr_path, hr_path = scratch / "lrhsi_reduced.tif", scratch / "hrmsi_reduced.tif"
    bbl = tuple(r is None for r in screen.reasons)
    with RasterWriter(lr_path, width=cols // s, height=rows // s, band_count=lr_info.band_count,
                      geotransform=(x0, gt[1] * s, gt[2] * s, y0, gt[4] * s, gt[5] * s), crs_wkt=lr_info.crs_wkt,
                      nodata=math.nan, wavelengths_nm=lr_info.wavelengths_nm, fwhm_nm=lr_info.fwhm_nm,
                      band_names=lr_info.band_names, bbl=bbl) as writer:
        writer.write(full, 0, 0)
    del full
    hr_win = grid.hr_window
    with RasterReader(hr_info.path) as reader:
        means = _band_means(reader, Window(hr_win.col, hr_win.row, cols * s, rows * s))

        def read(row0: int, count: int) -> tuple[np.ndarray, np.ndarray]:
            data, valid = reader.read_valid(Window(hr_win.col, hr_win.row + row0, cols * s, count))
            data[:, ~valid] = means[:, None]
            return data, valid

        with RasterWriter(hr_path, width=cols, height=rows, band_count=hr_info.band_count,
                          geotransform=(x0, gt[1], gt[2], y0, gt[4], gt[5]), crs_wkt=lr_info.crs_wkt,
                          nodata=math.nan, wavelengths_nm=hr_info.wavelengths_nm, fwhm_nm=hr_info.fwhm_nm,
                          band_names=hr_info.band_names) as writer:
            for r0, r1 in _strips(rows, hr_info.band_count * cols * s, s):
                _check_cancel(cancel)
                degraded, valid = _degrade_rows(read, rows * s, r0, r1, s)
                degraded = degraded.astype(np.float32)
                degraded[:, ~valid] = np.nan
                writer.write(degraded, 0, r0)
    return lr_path, hr_path


def _band_means(reader: RasterReader, window: Window) -> np.ndarray:
    """(B,) float32 mean of each band over the pixels of ``window`` valid in every band (0 where none is), in
    strips."""
    bands = reader.info.band_count
    total, count = np.zeros(bands), 0
    rows = max(1, STRIP_VALUES // max(1, bands * window.width))
    for row in range(window.row, window.row_end, rows):
        data, valid = reader.read_valid(Window(window.col, row, window.width, min(rows, window.row_end - row)))
        total += data[:, valid].sum(axis=1, dtype=np.float64)
        count += int(valid.sum())
    return (total / max(count, 1)).astype(np.float32)


# ----------------------------------------------------------------------------------------------------- scores
def _score(name: str, path: Path, ref: np.ndarray, ref_valid: np.ndarray, good: list[int], band_count: int,
           supported: np.ndarray, s: int, span: float) -> Scores:
    """The reduced-resolution scores of the result at ``path`` against ``ref`` (the LRHSI's good bands)."""
    with RasterReader(path) as reader:
        est, est_band_valid = reader.read_masked(reader.info.window, good)
    usable = est_band_valid.any(axis=(1, 2))  # a band the method wrote as nodata everywhere is not compared
    if not usable.any():
        raise InputError(f"{name} gave no valid pixel on the degraded pair; nothing to compare.")
    keep = np.flatnonzero(usable)
    valid = ref_valid & est_band_valid[keep].all(axis=0)
    if not valid.any():
        raise InputError(f"No pixel of {name}'s reduced-resolution result is valid where the LRHSI is; nothing to "
                         "compare.")
    r, e = ref[keep], est[keep]
    rmse = rmse_per_band(r, e, valid)
    mean = r[:, valid].mean(axis=1, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        psnr = 10.0 * np.log10(span ** 2 / rmse ** 2)
        rel = 100.0 * rmse / mean
    rn, en = r / span, e / span
    per_band = [np.full(band_count, np.nan) for _ in range(3)]
    bands = np.asarray(good)[keep]
    for array, values in zip(per_band, (psnr, rmse, rel)):
        array[bands] = values
    subsets = []
    for want in (True, False):
        inside = supported[bands] == want
        if not inside.any():
            subsets.append(None)
            continue
        subsets.append({"PSNR": float(psnr[inside].mean()),
                        "SAM": sam(rn[inside], en[inside], valid) if inside.sum() > 1 else math.nan,
                        "ERGAS": ergas(rn[inside], en[inside], s, valid), "bands": int(inside.sum())})
    return Scores(name, float(psnr.mean()), sam(rn, en, valid), ergas(rn, en, s, valid), *per_band, *subsets,
                  pixels=int(valid.sum()))


def _as_dict(scores: Scores | dict) -> dict:
    return scores if isinstance(scores, dict) else {"PSNR": scores.psnr, "SAM": scores.sam, "ERGAS": scores.ergas}


def _beats(candidate: Scores | dict, baseline: Scores | dict) -> bool:
    """True when ``candidate`` beats ``baseline``: PSNR higher by BEAT_PSNR_DB or more, ERGAS lower, SAM no higher
    (SAM is left out where it is undefined: a single band)."""
    c, b = _as_dict(candidate), _as_dict(baseline)
    if not (c["PSNR"] >= b["PSNR"] + BEAT_PSNR_DB and c["ERGAS"] < b["ERGAS"]):
        return False
    return bool(math.isnan(c["SAM"]) or math.isnan(b["SAM"]) or c["SAM"] <= b["SAM"])


def _judge(candidates: dict) -> dict:
    """The candidates with ``beats_bicubic`` set."""
    baseline = candidates[BASELINE]
    return {name: Scores(**{**vars(c), "beats_bicubic": None if name == BASELINE else _beats(c, baseline)})
            for name, c in candidates.items()}


def _numbers(scores: Scores | dict) -> str:
    c = _as_dict(scores)
    sam_text = "n/a" if math.isnan(c["SAM"]) else f"{c['SAM']:.2f}°"
    return f"PSNR {c['PSNR']:.2f} dB, SAM {sam_text}, ERGAS {c['ERGAS']:.2f}"


def _verdict(subject: str, candidates: dict) -> tuple[list[str], bool]:
    """The honesty section's sentences, and whether the subject beats bicubic."""
    b = candidates[BASELINE]
    lines = []
    others = [c for name, c in candidates.items() if name != BASELINE]
    if subject == BASELINE:
        lines.append(f"The fused raster is plain bicubic upsampling ({_numbers(b)} in the reduced-resolution "
                     "check): it adds no detail from the HRMSI.")
    for c in others:
        if c.beats_bicubic:
            lines.append(f"{c.name} beats bicubic in the reduced-resolution check: {_numbers(c)} against bicubic's "
                         f"{_numbers(b)} (PSNR {c.psnr - b.psnr:+.2f} dB).")
        else:
            lines.append(f"{c.name} does not beat bicubic in the reduced-resolution check: {_numbers(c)} against "
                         f"bicubic's {_numbers(b)} (PSNR {c.psnr - b.psnr:+.2f} dB; beating it takes at least "
                         f"+{BEAT_PSNR_DB:g} dB, a SAM no higher and a lower ERGAS).")
        if c.extrapolated is not None and b.extrapolated is not None and c.beats_bicubic and \
                not _beats(c.extrapolated, b.extrapolated):
            lines.append(f"On the {c.extrapolated['bands']} extrapolated bands, which the HRMSI does not cover, "
                         f"{c.name} does not beat bicubic: {_numbers(c.extrapolated)} against "
                         f"{_numbers(b.extrapolated)}.")
    if others and not any(c.beats_bicubic for c in others):
        lines.append(f"No method sharpens reliably on this pair: none of the {len(others)} evaluated "
                     f"({', '.join(c.name for c in others)}) beats bicubic upsampling.")
    sharpens = subject != BASELINE and bool(candidates[subject].beats_bicubic)
    return lines, sharpens


# -------------------------------------------------------------------------------------------- consistency map
def _consistency(f_info: RasterInfo, lr: np.ndarray, lr_valid: np.ndarray, good: list[int], grid,
                 cancel: Cancel | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """SAM (degrees) and RMSE (LRHSI units) per LR pixel of the fused raster degraded by the sensor model against
    the LRHSI, NaN where either is nodata; the degraded fused raster (good bands, float32) and the pixels valid in
    both. The fused raster is walked in strips; its nodata pixels enter the blur as the LRHSI pixel above them."""
    s = grid.scale
    rows, cols = lr.shape[1:]
    filler = lr.copy()
    fill_invalid(filler, lr_valid)
    degraded = np.empty_like(lr)
    valid = np.zeros((rows, cols), bool)
    with RasterReader(f_info.path) as reader:
        def read(row0: int, count: int) -> tuple[np.ndarray, np.ndarray]:
            data, ok = reader.read_valid(Window(0, row0, cols * s, count), good)
            if not ok.all():
                below = filler[:, row0 // s:(row0 + count) // s].repeat(s, 1).repeat(s, 2)
                data[:, ~ok] = below[:, ~ok]
            return data, ok

        for r0, r1 in _strips(rows, len(good) * cols * s, s):
            _check_cancel(cancel)
            part, ok = _degrade_rows(read, rows * s, r0, r1, s)
            degraded[:, r0:r1] = part
            valid[r0:r1] = ok
    valid &= lr_valid
    angles = sam_map(lr, degraded).astype(np.float32)
    diff = (degraded.astype(np.float64) - lr) ** 2
    errors = np.sqrt(diff.mean(axis=0)).astype(np.float32)
    del diff
    angles[~valid] = np.nan
    errors[~valid] = np.nan
    return angles, errors, degraded, valid


def _summary(angles: np.ndarray, errors: np.ndarray, valid: np.ndarray, lr_mean: float) -> dict:
    if not valid.any():
        raise InputError("No LR pixel is valid in both the fused raster and the LRHSI; nothing to assess.")
    a, e = angles[valid].astype(np.float64), errors[valid].astype(np.float64)
    return {"SAM mean": float(a.mean()), "SAM median": float(np.median(a)), "SAM p95": float(np.percentile(a, 95)),
            "RMSE mean": float(e.mean()), "RMSE median": float(np.median(e)), "RMSE p95": float(np.percentile(e, 95)),
            "relative RMSE": float(e.mean() / lr_mean) if lr_mean else math.nan, "pixels": int(valid.sum())}


def _khan_distortion(degraded: np.ndarray, lr: np.ndarray, valid: np.ndarray) -> float:
    """``1 - mean_b Q(degrade(F)_b, X_b)``: Khan's D_lambda with the band-averaged UQI (module docstring)."""
    return float(1.0 - np.mean([uqi(degraded[b], lr[b], mask=valid) for b in range(lr.shape[0])]))


# ----------------------------------------------------------------------------------------------------- writing
def _write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a hidden temporary file renamed over it (never half-written)."""
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        temp.write_text(text, encoding="utf-8", newline="")
        os.replace(temp, path)
    finally:
        if temp.exists():
            temp.unlink()


def _per_band_csv(r: PairReport, lr_info: RasterInfo) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    header = ["band", "wavelength_nm", "supported"]
    for name in r.candidates:
        header += [f"{name} PSNR (dB)", f"{name} relative RMSE (%)", f"{name} RMSE"]
    writer.writerow(header)
    for b in range(lr_info.band_count):
        row = [b + 1, "" if r.wavelengths_nm is None else f"{r.wavelengths_nm[b]:.2f}", int(r.supported[b])]
        for c in r.candidates.values():
            row += [_cell(c.psnr_per_band[b]), _cell(c.rel_rmse_per_band[b]), _cell(c.rmse_per_band[b], 6)]
        writer.writerow(row)
    return buffer.getvalue()


def _cell(value: float, digits: int = 4) -> str:
    return "" if not np.isfinite(value) else f"{value:.{digits}g}" if digits > 4 else f"{value:.4f}"


# -------------------------------------------------------------------------------------------------- HTML + SVG
_PALETTE = ("#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
_BASELINE_COLOUR = "#7f7f7f"
_MSI_COLOURS = {"red": "#d62728", "green": "#2ca02c", "blue": "#1f77b4", "nir": "#8c564b"}


def _nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    if not high > low:
        high = low + 1.0
    raw = (high - low) / count
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.ceil(low / step) * step
    return [first + k * step for k in range(int((high - first) / step + 1e-9) + 1)]


def _fmt_tick(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 10 or value == int(value) else f"{value:.3g}"


def svg_plot(x: Sequence[float], series: Sequence[tuple[str, Sequence[float], str, bool]], *, title: str,
             xlabel: str, ylabel: str, shade: Sequence[tuple[float, float]] = (), width: int = 760,
             height: int = 300) -> str:
    """An inline SVG line plot: ``series`` of (label, y values per x, colour, dashed); non-finite values break a
    line; ``shade``: x intervals drawn as grey bands (the extrapolated bands)."""
    xs = np.asarray(x, np.float64)
    left, right, top, bottom = 60, 170, 30, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    values = np.concatenate([np.asarray(y, np.float64) for _l, y, _c, _d in series]) if series else np.array([])
    finite = values[np.isfinite(values)]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="{html.escape(title)}" '
             'font-family="sans-serif" font-size="11">',
             f'<text x="{left}" y="18" font-size="13" font-weight="bold">{html.escape(title)}</text>']
    if not finite.size or not xs.size:
        parts.append(f'<text x="{left}" y="{top + 20}">no finite values to plot</text></svg>')
        return "".join(parts)
    y_low, y_high = float(finite.min()), float(finite.max())
    pad = 0.05 * (y_high - y_low) or max(abs(y_high) * 0.05, 0.5)
    y_low, y_high = y_low - pad, y_high + pad
    x_low, x_high = float(xs.min()), float(xs.max())
    if x_high == x_low:
        x_low, x_high = x_low - 1, x_high + 1

    def px(v: float) -> float:
        return left + (v - x_low) / (x_high - x_low) * plot_w

    def py(v: float) -> float:
        return top + (y_high - v) / (y_high - y_low) * plot_h

    for a, b in shade:
        a, b = max(a, x_low), min(b, x_high)
        if b >= a:
            parts.append(f'<rect x="{px(a):.1f}" y="{top}" width="{max(px(b) - px(a), 2):.1f}" height="{plot_h}" '
                         'fill="#dddddd" opacity="0.7"><title>extrapolated bands</title></rect>')
    parts.append(f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#333"/>')
    for t in _nice_ticks(y_low, y_high):
        parts.append(f'<line x1="{left - 4}" x2="{left + plot_w}" y1="{py(t):.1f}" y2="{py(t):.1f}" '
                     'stroke="#eee"/>'
                     f'<text x="{left - 6}" y="{py(t) + 4:.1f}" text-anchor="end">{_fmt_tick(t)}</text>')
    for t in _nice_ticks(x_low, x_high, 8):
        parts.append(f'<line x1="{px(t):.1f}" x2="{px(t):.1f}" y1="{top + plot_h}" y2="{top + plot_h + 4}" '
                     f'stroke="#333"/><text x="{px(t):.1f}" y="{top + plot_h + 16}" '
                     f'text-anchor="middle">{_fmt_tick(t)}</text>')
    parts.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 8}" text-anchor="middle">'
                 f'{html.escape(xlabel)}</text>'
                 f'<text x="14" y="{top + plot_h / 2:.1f}" text-anchor="middle" '
                 f'transform="rotate(-90 14 {top + plot_h / 2:.1f})">{html.escape(ylabel)}</text>')
    order = np.argsort(xs)
    for k, (label, y, colour, dashed) in enumerate(series):
        ys = np.asarray(y, np.float64)[order]
        dash = ' stroke-dasharray="6 4"' if dashed else ""
        run: list[str] = []
        for xv, yv in zip(xs[order], ys):
            if np.isfinite(yv):
                run.append(f"{px(xv):.1f},{py(yv):.1f}")
                continue
            if run:
                parts.append(_polyline(run, colour, dash, len(xs)))
            run = []
        if run:
            parts.append(_polyline(run, colour, dash, len(xs)))
        ly = top + 10 + 16 * k
        parts.append(f'<line x1="{left + plot_w + 12}" x2="{left + plot_w + 36}" y1="{ly}" y2="{ly}" '
                     f'stroke="{colour}" stroke-width="2"{dash}/><text x="{left + plot_w + 40}" '
                     f'y="{ly + 4}">{html.escape(label)}</text>')
    if shade:
        ly = top + 10 + 16 * len(series)
        parts.append(f'<rect x="{left + plot_w + 12}" y="{ly - 6}" width="24" height="12" fill="#dddddd"/>'
                     f'<text x="{left + plot_w + 40}" y="{ly + 4}">extrapolated</text>')
    parts.append("</svg>")
    return "".join(parts)


def _polyline(points: list[str], colour: str, dash: str, count: int) -> str:
    line = f'<polyline fill="none" stroke="{colour}" stroke-width="1.8"{dash} points="{" ".join(points)}"/>'
    if len(points) == 1 or count <= 60:
        line += "".join(f'<circle cx="{p.split(",")[0]}" cy="{p.split(",")[1]}" r="2" fill="{colour}"/>'
                        for p in points)
    return line


def _shade(x: np.ndarray, extrapolated: np.ndarray) -> list[tuple[float, float]]:
    """x intervals of the runs of extrapolated bands (to the midpoints with their neighbours)."""
    order = np.argsort(x)
    xs, flags = x[order], extrapolated[order]
    spans = []
    k = 0
    while k < len(xs):
        if not flags[k]:
            k += 1
            continue
        j = k
        while j + 1 < len(xs) and flags[j + 1]:
            j += 1
        a = xs[k] - (xs[k] - xs[k - 1]) / 2 if k > 0 else xs[k]
        b = xs[j] + (xs[j + 1] - xs[j]) / 2 if j + 1 < len(xs) else xs[j]
        spans.append((float(a), float(b)))
        k = j + 1
    return spans


def _colours(names: Sequence[str]) -> dict:
    colours, k = {}, 0
    for name in names:
        if name == BASELINE:
            colours[name] = _BASELINE_COLOUR
        else:
            colours[name] = _PALETTE[k % len(_PALETTE)]
            k += 1
    return colours


def _f(value: float, digits: int = 2) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


_CONSISTENCY_UNITS = {"SAM": " (degrees)", "RMSE": " (LRHSI units)", "relative": " (RMSE mean / LRHSI mean)",
                      "pixels": " (LR pixels valid in both)"}


def render_html(r: PairReport, lr: RasterInfo, hr: RasterInfo, fused: RasterInfo) -> str:
    """The report as one self-contained HTML page (inline CSS and SVG, no external assets)."""
    e = html.escape
    wl = None if r.wavelengths_nm is None else np.asarray(r.wavelengths_nm, np.float64)
    x = wl if wl is not None else np.arange(1, lr.band_count + 1, dtype=np.float64)
    xlabel = "wavelength (nm)" if wl is not None else "band"
    compared = np.zeros(lr.band_count, bool)
    compared[list(r.bands)] = True
    extrapolated = compared & ~r.supported
    shade = _shade(x[compared], extrapolated[compared]) if extrapolated.any() else []
    colours = _colours(list(r.candidates))
    series = [(name, c.psnr_per_band[compared], colours[name], name == BASELINE) for name, c in r.candidates.items()]
    psnr_svg = svg_plot(x[compared], series, title="Reduced-resolution PSNR per band (higher is better)",
                        xlabel=xlabel, ylabel="PSNR (dB)", shade=shade)
    rel_svg = svg_plot(x[compared], [(n, c.rel_rmse_per_band[compared], colours[n], n == BASELINE)
                                     for n, c in r.candidates.items()],
                       title="Reduced-resolution relative RMSE per band (lower is better)", xlabel=xlabel,
                       ylabel="RMSE / band mean (%)", shade=shade)
    srf_svg = ""
    if r.srf is not None and wl is not None:
        names = r.srf_bands
        srf_series = [(names[j] if j < len(names) else f"band {j + 1}", row,
                       _MSI_COLOURS.get(str(names[j]).lower() if j < len(names) else "", _PALETTE[j % len(_PALETTE)]),
                       False) for j, row in enumerate(np.asarray(r.srf))]
        srf_svg = svg_plot(wl[list(r.bands)], srf_series,
                           title=f"HRMSI response on the LRHSI's bands ({r.srf_source.split(':')[0]})",
                           xlabel="LRHSI wavelength (nm)", ylabel="weight (rows sum to 1)", shade=shade)

    verdict_class = "good" if r.sharpens else "bad"
    verdict = "".join(f"<p>{e(line)}</p>" for line in r.verdict)
    head = ("<tr><th>candidate</th><th>PSNR (dB)</th><th>SAM (°)</th><th>ERGAS</th><th>beats bicubic</th>"
            "<th>supported bands: PSNR / SAM / ERGAS</th><th>extrapolated bands: PSNR / SAM / ERGAS</th></tr>")
    rows = []
    for name, c in r.candidates.items():
        beats = "baseline" if c.beats_bicubic is None else ("yes" if c.beats_bicubic else "<b>no</b>")
        subsets = []
        for part in (c.supported, c.extrapolated):
            subsets.append("—" if part is None else
                           f"{_f(part['PSNR'])} / {_f(part['SAM'])} / {_f(part['ERGAS'])} ({part['bands']} bands)")
        mark = " (the method assessed)" if name == r.subject else ""
        rows.append(f"<tr><th>{e(name)}{mark}</th><td>{_f(c.psnr)}</td><td>{_f(c.sam)}</td><td>{_f(c.ergas)}</td>"
                    f"<td>{beats}</td><td>{subsets[0]}</td><td>{subsets[1]}</td></tr>")
    full = [("QNR", r.qnr["QNR"], "1 is best"), ("D_lambda", r.qnr["D_lambda"], "0 is best"),
            ("D_s", r.qnr["D_s"], "0 is best"), ("HQNR", r.hqnr, "1 is best; (1 - D_lambda^(K)) (1 - D_s)"),
            ("D_lambda^(K)", r.d_lambda_k, "0 is best; 1 - band-averaged Q(degraded fused, LRHSI)")]
    if r.qnr_held_out is not None:
        full.insert(1, ("QNR, validation strip", r.qnr_held_out["QNR"], "the part of this pair the model never saw"))
    full_rows = "".join(f"<tr><th>{e(k)}</th><td>{v:.4f}</td><td>{e(note)}</td></tr>" for k, v, note in full)
    cons = r.consistency
    cons_rows = "".join(f"<tr><th>{e(k)}{e(_CONSISTENCY_UNITS.get(k.split()[0], ''))}</th><td>"
                        f"{v if k == 'pixels' else f'{v:.4g}'}</td></tr>" for k, v in cons.items())
    bands_text = _band_ranges(r, wl, True), _band_ranges(r, wl, False)
    inputs = [("LRHSI", f"{lr.path} ({lr.band_count} bands, {lr.width} x {lr.height} pixels)"),
              ("HRMSI", f"{hr.path} ({hr.band_count} bands, {hr.width} x {hr.height} pixels)"),
              ("Fused raster", f"{fused.path} ({fused.band_count} bands, {fused.width} x {fused.height} pixels)"),
              ("Method or model", r.subject), ("Scale", f"x{r.scale}"),
              ("Bands compared", f"{len(r.bands)} of {lr.band_count}"),
              ("Bands left out", r.skipped or "none"), ("HRMSI response", r.srf_source)]
    input_rows = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in inputs)
    per_band = "".join(
        f"<tr><td>{b + 1}</td><td>{'' if wl is None else f'{wl[b]:.1f}'}</td>"
        f"<td>{'supported' if r.supported[b] else 'extrapolated'}</td>"
        + "".join(f"<td>{_f(c.psnr_per_band[b])}</td><td>{_f(c.rel_rmse_per_band[b])}</td>"
                  for c in r.candidates.values()) + "</tr>"
        for b in r.bands)
    per_band_head = "<tr><th>band</th><th>nm</th><th>support</th>" + "".join(
        f"<th>{e(n)} PSNR</th><th>{e(n)} rel. RMSE %</th>" for n in r.candidates) + "</tr>"
    notes = "".join(f"<li>{e(n)}</li>" for n in r.notes)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>CoFusion pair report: {e(r.subject)}</title>
<style>
body {{ font-family: sans-serif; max-width: 1000px; margin: 1em auto; padding: 0 1em; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1em; }}
th, td {{ border: 1px solid #ccc; padding: 3px 8px; text-align: left; font-size: 13px; }}
th {{ background: #f4f4f4; }}
.verdict {{ padding: 0.4em 1em; border-left: 6px solid; margin: 1em 0; }}
.verdict.good {{ border-color: #2ca02c; background: #eef8ee; }}
.verdict.bad {{ border-color: #d62728; background: #fbeeee; }}
.small {{ font-size: 12px; color: #555; }}
</style></head><body>
<h1>Quality without ground truth: {e(r.subject)}</h1>
<table>{input_rows}</table>
<h2 id="honesty">Does it beat bicubic?</h2>
<div class="verdict {verdict_class}">{verdict}</div>
<h2 id="summary">Summary</h2>
<h3>Reduced-resolution check (Wald's protocol on the pair)</h3>
<p class="small">Both inputs degraded by x{r.scale} with the sensor model (MTF-matched Gaussian, decimation), the
degraded pair fused by each candidate, the result compared with the LRHSI on valid pixels. It measures the method
one scale down, assuming it behaves alike at full scale.</p>
<table>{head}{"".join(rows)}</table>
<h3>Full-resolution indices of the fused raster</h3>
<table><tr><th>index</th><th>value</th><th></th></tr>{full_rows}</table>
<h3>Consistency with the LRHSI</h3>
<p class="small">The fused raster degraded by the sensor model against the LRHSI, per LR pixel (map:
{e(str(r.consistency_map))}, bands "{MAP_BANDS[0]}" and "{MAP_BANDS[1]}"). Near 0 means the fusion keeps the
LRHSI's content; it does not say its added detail is right.</p>
<table><tr><th>statistic</th><th>value</th></tr>{cons_rows}</table>
<h2 id="bands">Per band</h2>
{psnr_svg}
{rel_svg}
<p class="small">SAM is the angle between whole spectra: it has no per-band value, so it is given overall and over
the supported and the extrapolated bands apart (table above); the second plot shows each band's relative RMSE
(ERGAS's term of the band, times the scale). Per-band numbers: {e(str(r.per_band_csv))}.</p>
<h2 id="support">Supported and extrapolated bands</h2>
<p>{e(r.support_rule)}</p>
<p>Supported: {e(bands_text[0])}.<br>Extrapolated: {e(bands_text[1])}.</p>
{srf_svg}
<details><summary>Per-band table</summary><table>{per_band_head}{per_band}</table></details>
<h2 id="notes">Notes</h2>
<ul>{notes}
<li>A method beats bicubic when its reduced-resolution PSNR is at least {BEAT_PSNR_DB:g} dB higher, its SAM no higher
and its ERGAS lower.</li>
<li>QNR = (1 - D_lambda)(1 - D_s) (Alparone et al. 2008), computed at full resolution on windows wholly on valid
pixels. HQNR = (1 - D_lambda^(K))(1 - D_s) (Aiazzi et al. 2014) with Khan's spectral distortion D_lambda^(K)
(Khan et al. 2009) computed with the band-averaged universal image quality index in place of Q2^n, which is
defined for 2^n bands only: a variant, not Khan's exact index.</li>
<li>PSNR uses the LRHSI's largest valid value as the data range; ERGAS uses the scale {r.scale}.</li>
</ul>
</body></html>
"""


def _band_ranges(r: PairReport, wl: np.ndarray | None, supported: bool) -> str:
    bands = [b for b in r.bands if bool(r.supported[b]) == supported]
    if not bands:
        return "none"
    runs: list[list[int]] = []
    for b in bands:
        if runs and b == runs[-1][-1] + 1:
            runs[-1].append(b)
        else:
            runs.append([b])
    parts = []
    for run in runs:
        name = f"{run[0] + 1}" if len(run) == 1 else f"{run[0] + 1}-{run[-1] + 1}"
        if wl is not None:
            name += f" ({wl[run[0]]:.0f} nm)" if len(run) == 1 else f" ({wl[run[0]]:.0f}-{wl[run[-1]]:.0f} nm)"
        parts.append(name)
    return f"{len(bands)} bands: " + ", ".join(parts)
