# SPDX-License-Identifier: GPL-2.0-or-later
"""The training loop: AdamW, warm-up + cosine (or step) schedule, L1 + 0.1 (1 - SSIM) (paper eq. 8), gradient
clipping, validation by PSNR with the best checkpoint kept, a CSV log, and resume after an interruption.

What is validated and kept is an exponential moving average of the weights (``TrainSettings.ema_decay``, 0.99 per
step), not the last step's weights. Why: on aviris_jasper_ridge x4 (52 training columns) the test-region PSNR of
the kept checkpoint varied by 0.33 dB between three seeds (44.49-44.82) with the raw weights, and by 0.14 dB
(44.72-44.86) with the averaged weights, 0.12 dB higher on average (bench/results/cofusion_x4_jasper_seeds.md).

The L1 term is weighted per band by the inverse error of the network's base (:func:`band_weights`), unless
``TrainSettings.band_weighting`` is off (the paper's plain L1). Why: the quality measures (PSNR as a mean over bands
of ``-10 log10 MSE_b``, SAM as an angle) count relative errors, and the base's error differs 45-fold between bands
(aviris_jasper_ridge, x4: 5e-4 RMS on the bands the Sentinel-2 bands cover, 2e-2 in the SWIR). With a plain L1 the
head spent its effort on the SWIR bands and paid for it with small absolute errors on the bands the base had
almost right: the stop-11 Jasper Ridge model gained 0.5-0.7 dB on 1000-1700 nm and lost 1-1.8 dB on 480-830 nm,
0.21 dB and 0.13 deg net against its own base on the test region. ``w_b ~ 1 / RMS_b`` is the L1 analogue of the
gradient of the mean log-MSE.

Everything the loop needs arrives as arguments: a :class:`~.data.PatchSource`, :class:`TrainSettings`, the output
path, and the progress / cancel callables (the same coupling as the fusion engine).
"""
from __future__ import annotations

import csv
import datetime
import json
import logging
import math
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ..core.checkpoint import Checkpoint, ModelCard, load_checkpoint, save_checkpoint
from ..core.classic import fuse_classic
from ..core.degrade import spatial_degrade
from ..core.device import DEVICES, compute_plan, configure_cpu_threads, is_device_name
from ..core.errors import Canceled, CheckpointError, InputError, OutputError
from ..core.injection import SceneMoments
from ..core.metrics import psnr, qnr_torch, sam, ssim_torch
from ..core.model import ModelConfig, build_model
from ..core.model.config import AUTO_BASE, AUTO_CANDIDATES, WIDTH
from ..core.model.prior import DetailInjection
from .data import Batch, FullResolutionBatch, PatchSource

log = logging.getLogger(__name__)

SSIM_WEIGHT = 0.1  # lambda of paper eq. (8)
#: Training LR pixels (at most) the trust map is fitted on.
DOMAIN_SAMPLE = 20_000
#: Batches of training patches on which the base's per-band error is measured (:func:`band_weights`).
BAND_WEIGHT_BATCHES = 8
#: Training patch edge (HR pixels) aimed at when none is given; the patch is a multiple of the model's alignment.
DEFAULT_PATCH = 64
#: The no-reference loss of pair mode (:func:`_no_reference_loss`): patches of FULL_RESOLUTION_BATCH x at least
#: FULL_RESOLUTION_LR LR pixels a side (its 11 x 11 windows need room at the LR side), and D_lambda over at most
#: MAX_BAND_PAIRS random band pairs per step (224 bands have 24,976).
FULL_RESOLUTION_LR, FULL_RESOLUTION_BATCH, MAX_BAND_PAIRS = 24, 2, 256
#: Steps per no-reference term, which then weighs this many times the weight (the same mean pull for the cost of one
#: in so many: on the Houston pair's 5-minute fit, the loss at every step gave 213 steps and a QNR of 0.9897, at
#: every second step 305 steps and 0.9881, and none 460 steps and 0.9750).
NO_REFERENCE_EVERY = 2
#: Largest ratio between two band weights: bands the base reproduces almost exactly do not take over the loss.
BAND_WEIGHT_RATIO = 100.0
#: The classical methods (``core.classic``) scored on the validation set beside the network (:func:`classical_scores`):
#: the candidates a fit compares its model with (``core.fit``). Bicubic too: on the real Houston pair's
#: reduced-resolution check it beat GSA, LLR and MTF-GLP-HPM (issue 18), where no method sharpens reliably.
CLASSICAL_CANDIDATES = ("gsa", "llr", "mtf_glp_hpm", "blend", "bicubic")
#: no_reference: the step's D_lambda + D_s at the pair's own resolution (:func:`_no_reference_loss`), empty on a
#: step without it (the run has none; it comes every NO_REFERENCE_EVERY-th step); loss includes it, weighted.
LOG_COLUMNS = ("step", "learning_rate", "loss", "l1", "ssim", "no_reference", "val_psnr", "val_sam", "elapsed_s")
#: Upper bounds of the settings (far beyond any useful run; they keep a typo from allocating or running forever).
MAX_ITERATIONS, MAX_MINUTES, MAX_BATCH, MAX_PATCH, MAX_SEED, MAX_THREADS = 10**9, 10**6, 1024, 4096, 2**32 - 1, 4096
#: The model settings a run may give (the band counts and the scale come from the data).
MODEL_SETTINGS = ("width", "blocks_per_level", "top_k", "wavelet", "saliency_stride", "dropout", "spacam", "specam",
                  "sscfm", "base", "domain_prototypes", "trust_falloff", "consistency_steps")
#: The options that set a setting, for the messages: the training CLI's, and the Processing algorithm's.
OPTIONS = {"iterations": "--iterations, ITERATIONS", "minutes": "--minutes, MINUTES", "batch_size": "--batch, "
           "BATCH_SIZE", "patch": "--patch, PATCH_SIZE", "learning_rate": "--lr", "schedule": "--schedule",
           "validate_every": "--validate-every", "seed": "--seed", "ema_decay": "--ema-decay",
           "device": "--device, DEVICE", "width": "--width", "blocks_per_level": "--blocks", "base": "--base",
           "domain_prototypes": "--trust-clusters", "consistency_steps": "--consistency-steps",
           "threads": "--threads", "no_reference_weight": "--no-reference-weight"}


@dataclass(frozen=True)
class TrainSettings:
    """Hyper-parameters of a training run.

    Args:
        iterations: optimisation steps (the schedule's length). With ``minutes`` too, whichever ends first.
        minutes: wall-clock budget; alone, the schedule follows elapsed time instead of steps.
        batch_size: patches per step.
        patch: patch size in target (HR) pixels, a multiple of the model's ``align``; None: the multiple nearest
            :data:`DEFAULT_PATCH` (64 at x2, x4, x8; 48 at x3 and x6, whose alignment is 48; 80 at x5).
        learning_rate: AdamW peak learning rate; weight_decay its decoupled weight decay.
        schedule: 'cosine' (to 1 % of the peak) or 'step' (x0.5 at 50 % and 75 %), after ``warmup`` steps.
        clip: maximum gradient norm.
        validate_every: steps between validations (and resume points).
        seed: seeds patch sampling and initialisation (runs with an iteration budget are reproducible on CPU).
        band_weighting: weigh the L1 term per band by the base's inverse error (:func:`band_weights`); False
            for the paper's plain L1.
        no_reference_weight: weight of the no-reference loss at the pair's own resolution (D_lambda + D_s of
            fused patches, :func:`_no_reference_loss`, every NO_REFERENCE_EVERY-th step) beside the
            reduced-resolution loss, in pair mode (a simulated scene has its reference and ignores it); 0 for the
            reduced-resolution loss alone.
        ema_decay: validate and keep an exponential moving average of the weights with this decay per step
            (``torch.optim.swa_utils``); 0 keeps the raw weights.
        device: 'auto', 'cpu' or 'cuda'.
        threads: CPU threads of the run (``core.device.configure_cpu_threads``); None: every core this process
            may run on.
        model: ModelConfig keyword arguments besides band counts and scale (width, blocks_per_level, ablations);
            ``base`` may also be "auto" (the default when left out): the candidate of
            ``core.model.config.AUTO_CANDIDATES`` that scores best on the validation set (:func:`choose_base`).
    """

    iterations: int | None = 2000
    minutes: float | None = None
    batch_size: int = 8
    patch: int | None = None
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    schedule: str = "cosine"
    warmup: int = 50
    clip: float = 1.0
    validate_every: int = 100
    seed: int = 0
    band_weighting: bool = True
    no_reference_weight: float = 1.0
    ema_decay: float = 0.99
    device: str = "auto"
    threads: int | None = None
    model: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Every field checked once, for its type and range (InputError naming the setting and the fix), so the
        CLI, the Processing algorithm (its checkParameterValues) and the API refuse a bad setting before any
        raster is read; the model settings through ModelConfig's own checks (with placeholder band counts)."""
        if self.iterations is not None:
            _integer("iterations", self.iterations, 1, MAX_ITERATIONS, "optimisation steps; or leave it out and "
                     "give minutes")
        if self.minutes is not None:
            _number("minutes", self.minutes, 0.0, MAX_MINUTES, "a wall-clock budget in minutes, above 0; or leave "
                    "it out and give iterations", low_open=True)
        if self.iterations is None and self.minutes is None:
            raise InputError("give a training budget: a number of iterations, minutes, or both.")
        _integer("batch_size", self.batch_size, 1, MAX_BATCH, "patches per step")
        if self.patch is not None:
            _integer("patch", self.patch, 1, MAX_PATCH, "the patch edge in HR pixels, a multiple of the model's "
                     "alignment (16 at x2, x4, x8); or leave it out for the default")
        _number("learning_rate", self.learning_rate, 0.0, 1.0, "AdamW's peak learning rate, e.g. 1e-3",
                low_open=True)
        _number("weight_decay", self.weight_decay, 0.0, 10.0, "AdamW's weight decay, e.g. 1e-4")
        if self.schedule not in ("cosine", "step"):
            raise InputError(f"schedule {self.schedule!r} ({OPTIONS['schedule']}) is not 'cosine' or 'step'.")
        _integer("warmup", self.warmup, 0, MAX_ITERATIONS, "warm-up steps, 0 for none")
        _number("clip", self.clip, 0.0, math.inf, "the largest gradient norm, e.g. 1", low_open=True)
        _integer("validate_every", self.validate_every, 1, MAX_ITERATIONS, "steps between validations")
        _integer("seed", self.seed, 0, MAX_SEED, "the random seed")
        if not isinstance(self.band_weighting, bool):
            raise InputError(f"band_weighting {self.band_weighting!r} must be true or false.")
        _number("no_reference_weight", self.no_reference_weight, 0.0, 1000.0, "the weight of the no-reference "
                "loss in pair mode, e.g. 1, or 0 for none")
        _number("ema_decay", self.ema_decay, 0.0, 1.0, "the decay of the weights' moving average per step, e.g. "
                "0.99, or 0 for the raw weights", high_open=True)
        if not is_device_name(self.device):
            raise InputError(f"device {self.device!r} ({OPTIONS['device']}) is not one of {DEVICES} (or 'cuda:N').")
        if self.threads is not None:
            _integer("threads", self.threads, 1, MAX_THREADS, "CPU threads, or leave it out for every core")
        if not isinstance(self.model, dict):
            raise InputError(f"the model settings must be a dict of ModelConfig fields, not {self.model!r}.")
        unknown = sorted(set(self.model) - set(MODEL_SETTINGS))
        if unknown:
            raise InputError(f"unknown model settings {unknown}; the model settings are {', '.join(MODEL_SETTINGS)} "
                             "(the band counts and the scale come from the data).")
        try:  # placeholder band counts and scale: --width 3, --blocks -1, a network too large are refused now
            ModelConfig(3, 1, 2, **concrete_model(self.model))
        except InputError as exc:
            words = str(exc).split(" ", 2)
            if len(words) == 3 and words[0] in MODEL_SETTINGS:  # "width 3 must be ...": name the option too
                raise InputError(f"model setting {words[0]} {words[1]}{_option(words[0])} {words[2]}") from exc
            raise InputError(f"model settings: {exc}") from exc


@dataclass(frozen=True)
class TrainResult:
    """What a finished run produced: the best checkpoint, its validation metrics, the log.

    ``classical``: the validation PSNR (dB) and SAM (degrees) of each of CLASSICAL_CANDIDATES on the same check
    (:func:`classical_scores`); ``base_scores``: those of the network's starting point with each candidate base when
    the base was chosen ("auto"), else empty.
    """

    checkpoint: Path
    log: Path
    steps: int
    seconds: float
    metrics: dict
    classical: dict = field(default_factory=dict)
    base_scores: dict = field(default_factory=dict)


def _integer(name: str, value: object, low: int, high: int, what: str) -> None:
    """InputError naming the setting, its options, the range and what it is, unless ``value`` is an int (not a
    bool or a float) in ``low..high``."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        limit = f"at least {low}" if high == MAX_ITERATIONS else f"from {low} to {high}"
        raise InputError(f"{name} {value!r}{_option(name)} must be a whole number {limit}: {what}.")


def _number(name: str, value: object, low: float, high: float, what: str, low_open: bool = False,
            high_open: bool = False) -> None:
    """InputError as for :func:`_integer` unless ``value`` is a finite number in the interval."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not number or value < low or (low_open and value == low) or value > high or (high_open and value == high):
        left, right = "(" if low_open else "[", ")" if high_open or not math.isfinite(high) else "]"
        interval = f"{left}{low:g}, {_bound(high)}{right}"
        raise InputError(f"{name} {value!r}{_option(name)} must be a finite number in {interval}: {what}.")


def _bound(value: float) -> str:
    return "inf" if not math.isfinite(value) else str(int(value)) if value == int(value) else f"{value:g}"


def _option(name: str) -> str:
    return f" ({OPTIONS[name]})" if name in OPTIONS else ""


def concrete_model(model: dict) -> dict:
    """The model settings with a base a network can be built with: "auto" (or none given) as its first candidate."""
    return {**model, "base": AUTO_CANDIDATES[0]} if model.get("base", AUTO_BASE) == AUTO_BASE else model


def patch_for(patch: int | None, align: int) -> int:
    """``patch``, or for None the multiple of ``align`` nearest :data:`DEFAULT_PATCH` (at least ``align``)."""
    return patch if patch is not None else max(1, round(DEFAULT_PATCH / align)) * align


def learning_rate_factor(settings: TrainSettings, fraction: float, step: int) -> float:
    """Multiplier of the peak learning rate at ``step`` when ``fraction`` (0-1) of the budget is spent."""
    warm = min(1.0, (step + 1) / settings.warmup) if settings.warmup else 1.0
    if settings.schedule == "step":
        return warm * (0.25 if fraction >= 0.75 else 0.5 if fraction >= 0.5 else 1.0)
    return warm * (0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * min(fraction, 1.0))))


def resume_path(out: Path) -> Path:
    """Where the resume state of a run writing ``out`` lives (beside it)."""
    return out.with_name(out.name + ".resume.pt")


def partial_path(out: Path) -> Path:
    """Where a run writing ``out`` keeps its best checkpoint until it ends (``model.partial.safetensors``)."""
    return out.with_name(f"{out.stem}.partial{out.suffix}")


def lock_path(out: Path) -> Path:
    """The lock file of the run writing ``out``: it exists while a training writes there."""
    return out.with_name(out.name + ".lock")


def log_path(out: Path) -> Path:
    """The CSV log (one row per validation) of the run writing ``out``."""
    return out.with_name(out.stem + ".log.csv")


def files_written(out: Path) -> tuple[Path, ...]:
    """Every file a run writing the model ``out`` creates or replaces."""
    return out, partial_path(out), resume_path(out), lock_path(out), log_path(out)


_held: dict[str, tuple[int, int]] = {}  # lock file -> (thread holding it, depth): re-entrant in one thread
_held_guard = threading.Lock()


@contextmanager
def run_lock(out: Path) -> Iterator[None]:
    """Hold ``lock_path(out)`` for the block: one training per output at a time.

    The lock is created with O_CREAT | O_EXCL and holds the holder's process id, host, start time and command. A
    second run (another process, or another thread of this one, e.g. two QGIS tasks) gets an OutputError naming the
    run that holds it. A lock left by a killed run is taken over when it names a process of this host that no
    longer runs (checked on POSIX only; elsewhere, and when the file cannot be read, the message says to delete
    it). Re-entrant within a thread (the API takes it before reading the rasters, :func:`train` again).
    """
    path = lock_path(out)
    key = str(path.absolute())
    me = threading.get_ident()
    with _held_guard:
        holder, depth = _held.get(key, (None, 0))
        if holder == me:
            _held[key] = (me, depth + 1)
    if holder == me:
        try:
            yield
        finally:
            with _held_guard:
                _held[key] = (me, _held[key][1] - 1)
        return
    _acquire(path, out)
    with _held_guard:
        _held[key] = (me, 1)
    try:
        yield
    finally:
        with _held_guard:
            del _held[key]
        path.unlink(missing_ok=True)


def _acquire(path: Path, out: Path) -> None:
    mine = {"pid": os.getpid(), "host": socket.gethostname(),
            "started": datetime.datetime.now().isoformat(timespec="seconds"), "command": " ".join(sys.argv)[:300]}
    for attempt in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _read_lock(path)
            if attempt == 0 and holder is not None and _is_stale(holder):
                log.warning("%s: taking over the lock of process %d, which no longer runs", path, holder["pid"])
                path.unlink(missing_ok=True)
                continue
            raise OutputError(_lock_message(path, out, holder)) from None
        except OSError as exc:
            raise OutputError(f"Cannot create the lock file {path}: {exc.strerror or exc}. "
                              f"{_disk_fix(path)}") from exc
        with os.fdopen(fd, "w") as file:
            json.dump(mine, file)
        return


def _read_lock(path: Path) -> dict | None:
    """The lock's holder, or None when the file is unreadable or not a lock this code wrote."""
    try:
        holder = json.loads(path.read_text()[:2000])
    except (OSError, ValueError):
        return None
    if not isinstance(holder, dict) or not isinstance(holder.get("pid"), int) or isinstance(holder["pid"], bool):
        return None
    return holder


def _is_stale(holder: dict) -> bool:
    """Whether the lock's process is known to be gone: a process of this host (not this one) that no longer runs."""
    return (holder.get("host") == socket.gethostname() and holder["pid"] != os.getpid()
            and _process_alive(holder["pid"]) is False)


def _process_alive(pid: int) -> bool | None:
    """True / False where the OS tells (POSIX: signal 0); None where it cannot (Windows' os.kill does not probe)."""
    if os.name != "posix" or pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it runs, as another user
        return True
    except OSError:
        return None
    return True


def _lock_message(path: Path, out: Path, holder: dict | None) -> str:
    fix = f"wait for it to end or give another output; delete {path} if no other training runs"
    if holder is None:
        return f"another training may be writing {out}: its lock file {path} exists; {fix}."
    who = f"process {holder['pid']} on {holder.get('host', '?')}, started {holder.get('started', '?')}"
    command = f" ({holder['command']})" if isinstance(holder.get("command"), str) and holder["command"] else ""
    return f"another training is writing {out}: {who}{command} holds {path}; {fix}."


def train(source: PatchSource, settings: TrainSettings, out: str | os.PathLike, card_info: dict,
          progress: Callable[[float, str], None] | None = None, cancel: Callable[[], bool] | None = None,
          restart: bool = False, init: str | os.PathLike | None = None) -> TrainResult:
    """Train a CoFusion network on ``source`` and keep the best checkpoint (validation PSNR) at ``out``.

    Args:
        card_info: ModelCard fields besides config, normalisation and metrics (wavelengths, srf, names,
            provenance).
        restart: ignore a resume state left by an interrupted run with the same settings.
        init: a checkpoint to start from (fine-tuning) instead of a fresh network: it must fit the data's band
            counts and scale (InputError naming what differs). Its architecture, base and normalisation are kept
            (the weights were learned in those units, on that base), ``settings.model`` is not used; the base's
            scene weights and the trust map are fitted on this data, as for a fresh network.

    Before the first step the run scores the classical methods on the validation set (:func:`classical_scores`)
    and, for ``base`` "auto", chooses the base (:func:`choose_base`); both go in the card's provenance
    (``classical_validation``, ``base_choice``) and the result.

    During the run the best checkpoint is written to ``partial_path(out)``; it replaces ``out`` when the run ends,
    or is canceled (the best so far is kept), never earlier: a run that is killed or fails leaves an existing model
    at ``out`` as it was, and the partial checkpoint and the resume state beside it, which rerunning resumes from.

    Raises:
        Canceled: ``cancel()`` returned True; the best checkpoint so far is at ``out`` and the resume state stays.
            Before the first step (``cancel`` is asked at each phase of the start-up, and while the bases are
            scored) nothing is written: no model, no log.
        OutputError: another training holds ``lock_path(out)``, or the checkpoint, the log or the resume state
            could not be written (a full disk), with the fix.
        CheckpointError: the resume state beside ``out`` is unusable (fix: delete it or pass restart).
    """
    out = Path(out)
    try:
        with run_lock(out):
            return _train(source, settings, out, card_info, progress, cancel, restart, init)
    except OSError as exc:  # the log (the checkpoint and the resume state raise OutputError themselves)
        raise OutputError(f"Writing the training log beside {out} failed: {exc.strerror or exc}. {_disk_fix(out)}") \
            from exc


#: Provenance entries left out of a run's fingerprint: the date, and the scores measured at start-up (recomputed on
#: resume; another thread count may change their last digits).
_UNSTABLE = ("date", "classical_validation", "base_choice")


def _disk_fix(out: Path) -> str:
    return f"Check that the disk holding {out.parent} has free space and that the folder is writable."


def _train(source: PatchSource, settings: TrainSettings, out: Path, card_info: dict,
           progress: Callable[[float, str], None] | None, cancel: Callable[[], bool] | None,
           restart: bool, init: str | os.PathLike | None) -> TrainResult:
    plan = compute_plan(settings.device)  # the device and the training's precision there (core.device)
    device = plan.device
    if device.type == "cpu":
        configure_cpu_threads(settings.threads)
    report = progress or (lambda _fraction, _message: None)
    start = _StartUp(cancel, report)
    start.check("starting")
    generator = torch.Generator().manual_seed(settings.seed)
    start_model = None if init is None else _start_model(init, source)
    if start_model is not None:
        config, normalization = start_model.card.config, start_model.card.normalization
    else:
        config = ModelConfig(source.hsi_bands, source.msi_bands, source.scale, **concrete_model(settings.model))
        normalization = source.normalization()
    settings = replace(settings, patch=patch_for(settings.patch, config.align))
    if settings.patch % config.align:
        raise InputError(f"patch size {settings.patch} must be a multiple of {config.align} pixels.")
    full_lr = None if not settings.no_reference_weight else source.full_resolution_size(
        math.ceil(FULL_RESOLUTION_LR * config.scale / config.align) * config.align // config.scale,
        config.align // config.scale)
    stats = [torch.tensor(v, dtype=torch.float32, device=device).view(1, -1, 1, 1)
             for v in (normalization.hsi_mean, normalization.hsi_std, normalization.msi_mean, normalization.msi_std)]
    start.check("scoring the classical methods on the validation set")
    classical = classical_scores(source, cancel=start.check)
    base_scores = {}
    if start_model is None and settings.model.get("base", AUTO_BASE) == AUTO_BASE:
        start.check(f"choosing the base: scoring {', '.join(AUTO_CANDIDATES)} on the validation set")
        base_scores = choose_base(config, source, stats, device, cancel=start.check)
        config = replace(config, base=max(base_scores, key=lambda name: base_scores[name]["PSNR"]))
        log.info("base chosen on the validation set: %s (%s)", config.base,
                 ", ".join(f"{name} {m['PSNR']:.2f} dB" for name, m in base_scores.items()))
    start_net = base_network(config)  # built before the seed is set: the network's initialisation is unchanged
    _fit_base(start_net, source, stats)
    torch.manual_seed(settings.seed)
    model = (build_model(config) if start_model is None else start_model.model).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate,
                                  weight_decay=settings.weight_decay)
    provenance = {**card_info.get("provenance", {}), "classical_validation": classical}
    if base_scores:
        provenance["base_choice"] = {"chosen": config.base, "candidates": base_scores}
    if start_model is not None:
        provenance["started_from"] = {"model": str(start_model.path), "provenance": start_model.card.provenance}
    card = ModelCard(config=config, normalization=normalization, **{**card_info, "provenance": provenance})
    state = _RunState()
    resume, partial = resume_path(out), partial_path(out)
    resumable = {k: v for k, v in asdict(settings).items() if k not in ("iterations", "minutes", "device", "threads")}
    data_card = replace(card, provenance={k: v for k, v in card.provenance.items() if k not in _UNSTABLE})
    fingerprint = json.dumps({"settings": resumable, "card": data_card.to_json()}, sort_keys=True)
    start.check("fitting the classical base")
    _fit_base(model, source, stats)  # the base and the trust map are functions of the data: refitted on resume
    start.check("fitting the trust map")
    _fit_domain(model, source, stats, settings.seed, cancel=start.check)
    averaged = (AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(settings.ema_decay))
                if settings.ema_decay else None)
    kept = model if averaged is None else averaged.module  # the weights validated and saved
    if resume.exists() and not restart:
        state = _load_resume(resume, fingerprint, model, optimizer, generator, averaged, config.hsi_bands)
        log.info("resuming %s at step %d", out, state.step)
    else:  # a fresh start: a best checkpoint another run left is not this run's
        partial.unlink(missing_ok=True)
    log_csv = log_path(out)
    if state.step:
        _truncate_log(log_csv, state.step)
    started = time.monotonic() - state.elapsed
    if not state.step and settings.band_weighting:  # measured once, on the base; resumed after
        start.check("weighing the bands")
        state.band_weights = band_weights(start_net.to(device), source, stats, device, settings,
                                          start.check).tolist()
    weights = None if state.band_weights is None else torch.tensor(state.band_weights, device=device)
    start.check("validating the starting point")
    try:
        with open(log_csv, "a" if state.step else "w", newline="") as log_file:
            writer = csv.writer(log_file)
            if not state.step:  # the starting point (the base alone) is a candidate too
                writer.writerow(LOG_COLUMNS)
                known = None  # a fresh network's score is its base's: the candidate's, or the base network's
                if start_model is None:
                    known = base_scores.get(config.base) or validate(start_net, source.validation(), stats,
                                                                     source.value_range, device)
                metrics = _keep_if_best(kept, card, source, stats, device, state, partial, known)
                writer.writerow([0, "", "", "", "", "", metrics["PSNR"], metrics["SAM"],
                                 round(time.monotonic() - started, 2)])
            loop_started, loop_first_step = time.monotonic(), state.step  # the step rate of this run, for the ETA
            while True:
                elapsed = time.monotonic() - started
                fraction = _budget_fraction(settings, state.step, elapsed)
                if fraction >= 1.0:
                    break
                if cancel is not None and cancel():
                    if not state.step:  # nothing trained: the starting point is no model of this run's
                        raise canceled_before_start("validating the starting point")
                    _publish(partial, out)
                    raise Canceled("training canceled; the best checkpoint so far is kept"
                                   f"{' at ' + str(out) if out.exists() else ''}, and rerunning resumes.")
                for group in optimizer.param_groups:
                    group["lr"] = settings.learning_rate * learning_rate_factor(settings, fraction, state.step)
                model.train()
                batch = source.sample(settings.batch_size, settings.patch, generator)
                full = (None if full_lr is None or state.step % NO_REFERENCE_EVERY else
                        source.full_resolution(FULL_RESOLUTION_BATCH, full_lr, generator))
                distortion = None
                with plan.training_autocast():
                    loss, l1, ssim_value = _loss(model, _to(batch, device), stats, source.value_range, weights)
                    if full is not None:
                        distortion = _no_reference_loss(model, _to(full, device), stats, generator)
                        loss = loss + NO_REFERENCE_EVERY * settings.no_reference_weight * distortion
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), settings.clip)
                optimizer.step()
                if averaged is not None:
                    averaged.update_parameters(model)
                state.step += 1
                row = [state.step, optimizer.param_groups[0]["lr"], loss.item(), l1.item(), ssim_value.item(),
                       "" if distortion is None else distortion.item(), "", ""]
                last = _budget_fraction(settings, state.step, time.monotonic() - started) >= 1.0
                if state.step % settings.validate_every == 0 or last:
                    state.elapsed = time.monotonic() - started
                    metrics = _keep_if_best(kept, card, source, stats, device, state, partial)
                    row[6:8] = [metrics["PSNR"], metrics["SAM"]]
                    _save_resume(resume, fingerprint, model, optimizer, generator, state, averaged)
                writer.writerow(row + [round(time.monotonic() - started, 2)])
                log_file.flush()
                if progress is not None:
                    now = time.monotonic()
                    eta = eta_seconds(settings, state.step, now - started, now - loop_started,
                                      state.step - loop_first_step)
                    progress(min(_budget_fraction(settings, state.step, now - started), 1.0),
                             _status(state, row[2], eta))
    except Canceled:
        if not state.step:  # canceled before the first step: the files of this run go, no model is left
            partial.unlink(missing_ok=True)
            log_csv.unlink(missing_ok=True)
        raise
    _publish(partial, out)  # before the resume state goes: killed in between, a rerun finds the run complete
    resume.unlink(missing_ok=True)
    seconds = time.monotonic() - started
    if progress is not None:
        progress(1.0, f"done: {state.step} steps in {seconds / 60:.1f} min, best validation "
                      f"PSNR {state.best.get('PSNR', float('nan')):.2f} dB")
    return TrainResult(out, log_csv, state.step, seconds, state.best, classical, base_scores)


def validate(model: torch.nn.Module, batch: Batch, stats: list[torch.Tensor], value_range: float,
             device: torch.device) -> dict:
    """PSNR (dB, mean over bands) and SAM (degrees) of the model on the validation batch, data / value_range,
    over the batch's valid pixels (all when it carries no mask)."""
    model.eval()
    with torch.inference_mode():
        out = _predict(model, _to(batch, device), stats).float()
    return _scores(out[0].cpu().numpy(), batch, value_range)


def _scores(fused: np.ndarray, batch: Batch, value_range: float) -> dict:
    """PSNR (dB) and SAM (degrees) of ``fused`` (C_h, H, W), data units, against the batch's target (batch 1), both
    divided by ``value_range``, over its valid pixels."""
    ref = (batch.target[0] / value_range).numpy()
    mask = None if batch.valid is None else batch.valid[0].numpy()
    return {"PSNR": psnr(ref, fused / value_range, mask), "SAM": sam(ref, fused / value_range, mask)}


def classical_scores(source: PatchSource, cancel: Callable[[], bool] | None = None) -> dict:
    """The validation PSNR (dB) and SAM (degrees) of each classical method of CLASSICAL_CANDIDATES: ``{name:
    {"PSNR", "SAM"}}``, scored as :func:`validate` scores the network, on the same validation batch.

    Each method (``core.classic``) fuses the validation inputs and fits its weights on them, as it does on any scene
    it fuses (the network's base is fitted on the training part instead). In pair mode this is the reduced-resolution
    check: the pair degraded by the scale in, the LRHSI the target. ``cancel()`` is asked before each method.
    """
    batch = source.validation()
    lr, msi = batch.lr[0].numpy(), batch.msi[0].numpy()
    scores = {}
    for name in CLASSICAL_CANDIDATES:
        if cancel is not None and cancel():
            raise Canceled(f"canceled before scoring the classical method {name}")
        scores[name] = _scores(fuse_classic(name, lr, msi, source.scale), batch, source.value_range)
    return scores


def choose_base(config: ModelConfig, source: PatchSource, stats: list[torch.Tensor], device: torch.device,
                cancel: Callable[[], bool] | None = None) -> dict:
    """The validation PSNR (dB) and SAM (degrees) of the network's starting point with each base of AUTO_CANDIDATES:
    ``{name: {"PSNR", "SAM"}}``, in the candidates' order (the first wins ties).

    The starting point is what the trainer validates at step 0: the untrained network, whose zero-initialised head
    makes its output the base, back-projected (``core.model.net``), the base fitted on the training data
    (:func:`_fit_base`); it is scored through :func:`base_network`. ``cancel()`` is asked before each candidate.
    """
    scores = {}
    for name in AUTO_CANDIDATES:
        if cancel is not None and cancel():
            raise Canceled(f"canceled before scoring the base {name}")
        model = base_network(replace(config, base=name)).to(device)
        _fit_base(model, source, stats)
        scores[name] = validate(model, source.validation(), stats, source.value_range, device)
    return scores


def base_network(config: ModelConfig) -> torch.nn.Module:
    """A network that gives what a fresh network of ``config`` gives (float rounding apart), at a fraction of the
    cost.

    A fresh network's head is zero-initialised, so its output is its base, back-projected, whatever its trunk and
    its trust map (``core.model.net``: ``back_project(base + trust * head)``, the head's last layer 0). This one has
    ``config``'s base, scale, alignment and back-projection, the narrowest trunk and no trust map. Its base's scene
    weights are set as any network's (:func:`_fit_base`). Used to score the bases, weigh the bands and score a fresh
    network's step 0, never trained.
    """
    return build_model(replace(config, width=WIDTH[0], top_k=1, blocks_per_level=1, domain_prototypes=0))


def _start_model(path: str | os.PathLike, source: PatchSource) -> Checkpoint:
    """The checkpoint a run fine-tunes (``core.checkpoint.load_checkpoint``: safetensors, its card validated), after
    checking that it fits the training data's bands and scale (InputError naming what differs and the fix)."""
    checkpoint = load_checkpoint(path)
    try:
        checkpoint.check_fits(source.hsi_bands, source.msi_bands, source.scale, "the training data")
    except CheckpointError as exc:
        problem = str(exc).split(": ", 1)[1].split(". Use a checkpoint", 1)[0]
        raise InputError(f"the model {path} cannot be fine-tuned on this data: {problem}; train from scratch "
                         "(leave out the model to start from).") from exc
    return checkpoint


def canceled_before_start(phase: str) -> Canceled:
    """The error of a run canceled during its start-up (``phase``: what it was doing), when nothing is written."""
    return Canceled(f"training canceled while {phase}, before its first step; no model was written.")


class _StartUp:
    """The cancel check and the progress messages of a run's start-up, before its first step: each phase is
    reported at fraction 0, and a cancel (asked at each phase and inside the long ones) raises Canceled; nothing
    has been written then."""

    def __init__(self, cancel: Callable[[], bool] | None, report: Callable[[float, str], None]) -> None:
        self.cancel, self.report, self.phase = cancel, report, "starting"

    def check(self, phase: str | None = None) -> bool:
        """Report ``phase`` (when given) and raise Canceled if cancel says so; False otherwise (a cancel callable)."""
        if phase is not None:
            self.phase = phase
            self.report(0.0, f"start-up: {phase}")
        if self.cancel is not None and self.cancel():
            raise canceled_before_start(self.phase)
        return False


@torch.no_grad()
def band_weights(model: torch.nn.Module, source: PatchSource, stats: list[torch.Tensor], device: torch.device,
                 settings: TrainSettings, cancel: Callable[[], bool] | None = None) -> torch.Tensor:
    """Per-band weights of the L1 term, (C_h,): ``w_b = mean(e) / max(e_b, max(e) / BAND_WEIGHT_RATIO)``.

    ``e_b`` is the RMS error of band b (target / value_range units) of ``model``, the run's base
    (:func:`base_network`: the base, back-projected, which a fresh network gives) on BAND_WEIGHT_BATCHES batches
    of training patches drawn with their own generator (the training's patch sequence is unchanged). The scale makes the
    base's weighted error equal its plain one, so the paper's balance of L1 and SSIM (lambda = 0.1) holds at the
    start. Validation data are not used. ``cancel()`` is asked before each batch (True raises Canceled).
    """
    model.eval()
    generator = torch.Generator().manual_seed(settings.seed + 1)
    squared = torch.zeros(source.hsi_bands, dtype=torch.float64)
    for _ in range(BAND_WEIGHT_BATCHES):
        if cancel is not None and cancel():
            raise Canceled("canceled while weighing the bands")
        batch = _to(source.sample(settings.batch_size, settings.patch, generator), device)
        error = (_predict(model, batch, stats).float() - batch.target) / source.value_range
        squared += error.double().pow(2).mean((0, 2, 3)).cpu()
    rms = (squared / BAND_WEIGHT_BATCHES).sqrt()
    if float(rms.max()) == 0.0:  # the base is exact on the training data: nothing to weigh
        return torch.ones(source.hsi_bands)
    return (rms.mean() / rms.clamp_min(float(rms.max()) / BAND_WEIGHT_RATIO)).float()


def _publish(partial: Path, out: Path) -> None:
    """Move the run's best checkpoint over ``out`` (an atomic rename in one folder), if the run wrote one."""
    if not partial.exists():
        return
    try:
        os.replace(partial, out)
    except OSError as exc:
        raise OutputError(f"Cannot move the trained model {partial} to {out}: {exc.strerror or exc}. The model is "
                          f"whole in {partial}; check that {out} is not a folder or open in another program.") from exc


def _keep_if_best(model, card: ModelCard, source: PatchSource, stats: list[torch.Tensor], device: torch.device,
                  state: _RunState, out: Path, metrics: dict | None = None) -> dict:
    """Validate the model (or take its ``metrics``, known already); when its PSNR is the best so far, record it in
    ``state`` and save it to ``out``."""
    if metrics is None:
        metrics = validate(model, source.validation(), stats, source.value_range, device)
    if metrics["PSNR"] > state.best.get("PSNR", -math.inf):
        state.best = metrics
        save_checkpoint(out, model, replace(card, metrics=metrics, provenance={
            **card.provenance, "steps": state.step, "train_seconds": round(state.elapsed, 1)}))
    return metrics


@dataclass
class _RunState:
    step: int = 0
    elapsed: float = 0.0
    best: dict = field(default_factory=dict)
    band_weights: list[float] | None = None


def _predict(model: torch.nn.Module, batch: Batch | FullResolutionBatch, stats: list[torch.Tensor]) -> torch.Tensor:
    """Normalise the inputs, run the model, return the output in data units: (B, C_h, p, p)."""
    hsi_mean, hsi_std, msi_mean, msi_std = stats
    return model((batch.lr - hsi_mean) / hsi_std, (batch.msi - msi_mean) / msi_std) * hsi_std + hsi_mean


def _loss(model, batch: Batch, stats, value_range: float,
          weights: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Paper eq. (8) on data scaled by value_range: L1 + 0.1 (1 - SSIM), the L1 weighted per band by ``weights``
    (C_h,) when given. Returns (loss, l1, ssim), float32 scalars.

    The network runs under whatever autocast the caller opened (bfloat16 on a GPU:
    ``core.device.ComputePlan.training_autocast``); the loss is computed on its float32-cast prediction with autocast
    off, so it is the float32 loss of that prediction whatever the autocast dtype. Inside bfloat16 autocast SSIM's
    window sums (matrix products) would run in bfloat16: a true SSIM of 0.992 came out as 0.891.
    """
    prediction = _predict(model, batch, stats)
    with torch.autocast(prediction.device.type, enabled=False):
        out = prediction.float() / value_range
        target = batch.target.float() / value_range
        error = (out - target).abs()
        l1 = (error if weights is None else error * weights.float().view(1, -1, 1, 1)).mean()
        ssim_value = ssim_torch(target, out)
        loss = l1 + SSIM_WEIGHT * (1.0 - ssim_value)
    return loss, l1.detach(), ssim_value.detach()


def _no_reference_loss(model, full: FullResolutionBatch, stats: list[torch.Tensor],
                       generator: torch.Generator) -> torch.Tensor:
    """The mean over the patches of ``D_lambda + D_s`` (``core.metrics.qnr_torch``, 0 is best) of the model's
    fusion of ``full`` at the pair's own resolution, a float32 scalar; D_lambda over at most MAX_BAND_PAIRS band
    pairs drawn with ``generator``.

    The reduced-resolution loss teaches the network the detail the pair shows one scale down; this one keeps the
    detail it adds at full resolution in the relations the LRHSI and the HRMSI have there: between bands (D_lambda)
    and between each band and the HRMSI across scales (D_s), the two factors of QNR. Like ``_loss``, it is computed
    with autocast off, on the float32-cast prediction (in float64 inside ``qnr_torch``).
    """
    prediction = _predict(model, full, stats)
    bands = prediction.shape[1]
    pairs = torch.triu_indices(bands, bands, 1)
    if pairs.shape[1] > MAX_BAND_PAIRS:
        pairs = pairs[:, torch.randperm(pairs.shape[1], generator=generator)[:MAX_BAND_PAIRS]]
    pairs = pairs.to(prediction.device)
    with torch.autocast(prediction.device.type, enabled=False):
        total = sum(sum(qnr_torch(prediction[k].float(), full.lr[k], full.msi[k], full.msi_lr[k], pairs))
                    for k in range(prediction.shape[0]))
    return (total / prediction.shape[0]).float()


def _fit_base(model, source: PatchSource, stats: list[torch.Tensor]) -> None:
    """Set the model's GSA base (if it has one) to the GSA fit of the training scenes."""
    if not isinstance(model.base, DetailInjection):
        return
    hsi_mean, hsi_std, msi_mean, msi_std = (t.cpu()[0] for t in stats)
    moments = SceneMoments(source.hsi_bands, source.msi_bands)
    for lr, msi, valid in source.base_pairs():
        moments.add((lr - hsi_mean) / hsi_std, spatial_degrade((msi - msi_mean) / msi_std, source.scale), valid)
    model.base.set_weights(moments.weights())


def _fit_domain(model, source: PatchSource, stats: list[torch.Tensor], seed: int,
                cancel: Callable[[], bool] | None = None) -> None:
    """Fit the model's trust map (if it has one) to at most DOMAIN_SAMPLE training LR spectra, normalised;
    ``cancel()`` is asked between its k-means steps (2-9 s in all on a 2-core CPU)."""
    if model.domain is None:
        return
    hsi_mean, hsi_std = (t.cpu()[0, :, 0, 0] for t in stats[:2])
    spectra = source.domain_spectra()
    if len(spectra) > DOMAIN_SAMPLE:
        spectra = spectra[torch.randperm(len(spectra), generator=torch.Generator().manual_seed(seed))[:DOMAIN_SAMPLE]]
    model.domain.fit((spectra - hsi_mean) / hsi_std, seed, cancel)


def _to(batch: Batch | FullResolutionBatch, device: torch.device) -> Batch | FullResolutionBatch:
    """The batch's images on ``device`` (a validation mask stays where it is)."""
    return replace(batch, **{f.name: getattr(batch, f.name).to(device, non_blocking=True) for f in fields(batch)
                             if f.name != "valid"})


def _budget_fraction(settings: TrainSettings, step: int, elapsed: float) -> float:
    by_steps = step / settings.iterations if settings.iterations else 0.0
    by_time = elapsed / (60.0 * settings.minutes) if settings.minutes else 0.0
    return max(by_steps, by_time)


def eta_seconds(settings: TrainSettings, step: int, elapsed: float, loop_seconds: float,
                loop_steps: int) -> float | None:
    """Seconds until the budget ends, whichever of its limits comes first: the time left of ``minutes``, and the
    steps left of ``iterations`` at this run's own step rate (``loop_steps`` steps in ``loop_seconds``, validations
    included; the start-up before the first step, the base fit and the band weights, does not enter the rate).
    None while no limit can say yet (no step timed, no time limit)."""
    estimates = []
    if settings.minutes:
        estimates.append(max(0.0, 60.0 * settings.minutes - elapsed))
    if settings.iterations and loop_steps > 0:
        estimates.append(max(0, settings.iterations - step) * loop_seconds / loop_steps)
    return min(estimates) if estimates else None


def _status(state: _RunState, loss: float, eta: float | None) -> str:
    best = f", best val PSNR {state.best['PSNR']:.2f} dB" if state.best else ""
    left = "measuring" if eta is None else (f"{eta / 60:.1f} min" if eta >= 60 else f"{eta:.0f} s")
    return f"step {state.step}, loss {loss:.4f}{best}, ETA {left}"


def _truncate_log(path: Path, step: int) -> None:
    """Drop the log rows written after the resume point ``step`` (an interrupted run wrote them, then lost them)."""
    if not path.exists():
        return
    try:
        with open(path, newline="") as file:
            rows = list(csv.reader(file))
    except (UnicodeDecodeError, csv.Error):  # damaged: start it again (the model and the resume state are whole)
        rows = []
    kept = [list(LOG_COLUMNS)] + [row for row in rows[1:] if row and row[0].isdigit() and int(row[0]) <= step]
    with open(path, "w", newline="") as file:
        csv.writer(file).writerows(kept)


def _save_resume(path: Path, fingerprint: str, model, optimizer, generator, state: _RunState,
                 averaged: AveragedModel | None) -> None:
    temporary = path.with_name("." + path.name + ".tmp")
    try:
        torch.save({"fingerprint": fingerprint, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "averaged": None if averaged is None else averaged.state_dict(),
                    "generator": generator.get_state(), "torch_rng": torch.get_rng_state(), "step": state.step,
                    "elapsed": state.elapsed, "best": state.best, "band_weights": state.band_weights}, temporary)
        os.replace(temporary, path)
    except (OSError, RuntimeError) as exc:  # torch.save reports a failed write as a RuntimeError
        temporary.unlink(missing_ok=True)
        raise OutputError(f"Writing the resume state {path} failed: {_one_line(exc)}. "
                          f"{_disk_fix(path)}") from exc


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(getattr(exc, "strerror", None) or exc).split())
    return text if len(text) <= 200 else text[:197] + "..."


def _load_resume(path: Path, fingerprint: str, model, optimizer, generator,
                 averaged: AveragedModel | None, bands: int) -> _RunState:
    """Restore a run from its resume state; loaded with weights_only=True (no code can run), its structure checked
    (a dict of the keys and types :func:`_save_resume` writes), and every load step guarded: any problem is a
    one-line CheckpointError saying the state is unusable, with the fix (delete it or pass --restart)."""
    fix = "delete it or pass --restart to start over"
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unpickling refusal or corruption: the file is not ours to trust
        raise CheckpointError(f"the resume state {path} is unreadable ({_one_line(exc)}); {fix}.") from exc
    problem = _resume_problem(saved, bands)
    if problem:
        raise CheckpointError(f"the resume state {path} is unusable ({problem}); {fix}.")
    if saved["fingerprint"] != fingerprint:
        raise CheckpointError(f"the resume state {path} was written by a run with other data or settings; {fix}.")
    try:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        if averaged is not None:
            if saved["averaged"] is None:
                raise ValueError("it holds no average of the weights")
            averaged.load_state_dict(saved["averaged"])
        generator.set_state(saved["generator"])
        torch.set_rng_state(saved["torch_rng"])
    except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise CheckpointError(f"the resume state {path} is unusable ({_one_line(exc)}); {fix}.") from exc
    return _RunState(step=saved["step"], elapsed=float(saved["elapsed"]), best=dict(saved["best"]),
                     band_weights=None if saved["band_weights"] is None else [float(w) for w in saved["band_weights"]])


#: What :func:`_save_resume` writes, and the check of each value.
_RESUME_KEYS = {
    "fingerprint": lambda v: isinstance(v, str),
    "model": lambda v: isinstance(v, dict) and all(isinstance(t, torch.Tensor) for t in v.values()),
    "optimizer": lambda v: isinstance(v, dict) and {"state", "param_groups"} <= set(v),
    "averaged": lambda v: v is None or (isinstance(v, dict) and all(isinstance(t, torch.Tensor) for t in v.values())),
    "generator": lambda v: isinstance(v, torch.Tensor) and v.dtype == torch.uint8,
    "torch_rng": lambda v: isinstance(v, torch.Tensor) and v.dtype == torch.uint8,
    "step": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
    "elapsed": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0,
    "best": lambda v: isinstance(v, dict) and all(isinstance(x, (int, float)) for x in v.values()),
    "band_weights": lambda v: v is None or (isinstance(v, list) and all(
        isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0 for x in v)),
}


def _resume_problem(saved: object, bands: int) -> str | None:
    """What is wrong with a loaded resume state, or None."""
    if not isinstance(saved, dict):
        return f"it holds a {type(saved).__name__}, not the dict a training writes"
    missing = [key for key in _RESUME_KEYS if key not in saved]
    if missing:
        return f"it lacks {', '.join(missing)}"
    wrong = [key for key, valid in _RESUME_KEYS.items() if not valid(saved[key])]
    if wrong:
        return f"{', '.join(wrong)} of the wrong type or out of range"
    if saved["band_weights"] is not None and len(saved["band_weights"]) != bands:
        return f"{len(saved['band_weights'])} band weights for {bands} bands"
    return None
