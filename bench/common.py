# SPDX-License-Identifier: GPL-2.0-or-later
"""Shared benchmark helpers for BENCHMARK.md's protocol: scenes, simulated pairs, evaluation, result tables.

A benchmark script (``bench/baselines.py``, the deep model's benchmark) does, per scene and scale::

    case = prepare(scene, scale)          # crop, scale to [0, 1], simulate by Wald's protocol
    metrics = evaluate(case, estimate)    # PSNR, SSIM, SAM, ERGAS, RMSE on the test region only
    write_results(path, rows, columns, ...)

Scripts run as ``python bench/<script>.py`` from the repository root import this module as ``common`` (the
script's folder is on ``sys.path``) and the project as ``cofusion`` (the venv maps it).
"""
from __future__ import annotations

import csv
import datetime
import json
import logging
import platform
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cofusion.core.degrade import simulate
from cofusion.core.device import available_cpus
from cofusion.core.errors import InputError
from cofusion.core.metrics import reference_metrics
from cofusion.core.raster import read_info, read_raster
from cofusion.core.srf import parse_srf
from cofusion.core.window import Window

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = REPO.parent / "shared" / "data"


@dataclass(frozen=True)
class Scene:
    """One benchmark scene of ``DATA_DIR`` (data/README.md).

    ``test`` and ``train`` are windows of the full scene in HR pixels; ``max_value`` divides the stored values
    to give [0, 1] (None: the scene's maximum, data/README.md's rule for the Houston CASI cube); ``msi`` is the
    simulated MSI sensor as a ``core.srf.parse_srf`` specification; ``bicubic_x4`` is BENCHMARK.md's sanity
    reference for bicubic x4 on the test region, (PSNR dB, SAM deg), None where BENCHMARK.md gives none.
    """

    name: str
    file: str
    max_value: float | None
    msi: str
    test: Window
    train: Window
    bicubic_x4: tuple[float, float] | None


SCENES: dict[str, Scene] = {s.name: s for s in (
    Scene("cave_balloons", "cave_balloons.tif", 65535.0, "sentinel2a:B1,B2,B3",
          test=Window(384, 0, 256, 512), train=Window(0, 0, 384, 512), bicubic_x4=(41.7, 1.33)),
    Scene("cave_oil_painting", "cave_oil_painting.tif", 65535.0, "sentinel2a:B1,B2,B3",
          test=Window(384, 0, 256, 512), train=Window(0, 0, 384, 512), bicubic_x4=(32.1, 5.37)),
    Scene("aviris_jasper_ridge", "aviris_jasper_ridge.tif", 10000.0, "sentinel2a:B2,B3,B4,B8",
          test=Window(52, 0, 48, 96), train=Window(0, 0, 52, 100), bicubic_x4=(31.4, 5.58)),
    Scene("houston2018_casi_hs", "houston2018_casi_hs.tif", None, "sentinel2a:B2,B3,B4,B8",
          test=Window(64, 0, 64, 128), train=Window(0, 0, 64, 128), bicubic_x4=None),
)}

SCALES = (2, 4, 8)


@dataclass(frozen=True)
class Case:
    """A scene cropped for one scale and simulated by Wald's protocol; arrays on [0, 1], float32.

    ``reference`` ``(C_hsi, H, W)``, ``lr_hsi`` ``(C_hsi, H/s, W/s)``, ``hr_msi`` ``(C_msi, H, W)``, ``srf``
    ``(C_msi, C_hsi)``; ``crop`` is the window of the full scene kept (H and W multiples of ``scale``), and
    ``test`` / ``train`` are the scene's regions in the cropped frame (HR pixels).
    """

    scene: Scene
    scale: int
    crop: Window
    reference: np.ndarray
    lr_hsi: np.ndarray
    hr_msi: np.ndarray
    srf: np.ndarray
    wavelengths_nm: np.ndarray
    test: Window
    train: Window


def crop_window(height: int, width: int, keep: Window, scale: int) -> Window | None:
    """The largest window of a ``height`` x ``width`` image with sides multiples of ``scale``, keeping ``keep``.

    Pixels are trimmed on the side away from ``keep`` where possible; where ``keep`` spans the whole axis (an odd
    scale on an even size: cave scenes' 512 rows at x3) the fewer than ``scale`` pixels that no multiple of the
    scale holds are trimmed from its end, so ``keep`` loses them too. None when the image is smaller than
    ``scale``.
    """
    spans = []
    for size, start, end in ((width, keep.col, keep.col_end), (height, keep.row, keep.row_end)):
        kept = size // scale * scale
        if kept == 0:
            return None
        spans.append((min(max(0, end - kept), start, size - kept), kept))
    (col, width_kept), (row, height_kept) = spans
    return Window(col, row, width_kept, height_kept)


def load_scene(scene: Scene, data_dir: Path = DATA_DIR) -> tuple[np.ndarray, np.ndarray]:
    """The whole scene on [0, 1] ``(C, H, W)`` float32 and its band centres ``(C,)`` in nm."""
    path = Path(data_dir) / scene.file
    info = read_info(path)
    if info.wavelengths_nm is None:
        raise InputError(f"{path} has no band wavelengths; the benchmark needs them to simulate the MSI.")
    data = read_raster(path)
    peak = np.float32(data.max() if scene.max_value is None else scene.max_value)
    return data / peak, np.asarray(info.wavelengths_nm)


def prepare(scene: Scene, scale: int, data_dir: Path = DATA_DIR,
            loaded: tuple[np.ndarray, np.ndarray] | None = None) -> Case | None:
    """Crop ``scene`` to a multiple of ``scale`` keeping its test region, then simulate the pair.

    ``loaded`` is ``load_scene``'s result, to read a scene once for several scales. Returns None (and logs
    why) when the scene is too small for ``scale``.
    """
    reference, wavelengths = loaded if loaded is not None else load_scene(scene, data_dir)
    crop = crop_window(reference.shape[1], reference.shape[2], scene.test, scale)
    if crop is None:
        log.info("%s: the scene is smaller than the scale %d; skipped", scene.name, scale)
        return None
    test = scene.test.intersection(crop)
    if test != scene.test:
        log.info("%s at scale %d: the test region is %s of %s (a multiple of the scale)", scene.name, scale,
                 tuple(test), tuple(scene.test))
    reference = reference[:, crop.row:crop.row_end, crop.col:crop.col_end]
    srf = parse_srf(scene.msi).matrix(wavelengths)
    try:
        lr_hsi, hr_msi = simulate(reference, srf, scale)
    except InputError as exc:
        log.info("%s at scale %d: %s; skipped", scene.name, scale, exc)
        return None
    train = scene.train.intersection(crop)
    if train is None:
        raise InputError(f"{scene.name}: the crop {crop} for scale {scale} leaves no training region.")
    return Case(scene, scale, crop, reference, lr_hsi, hr_msi, srf, wavelengths,
                _shift(test, crop), _shift(train, crop))


def evaluate(case: Case, estimate: np.ndarray, mask: np.ndarray | None = None) -> dict[str, float]:
    """BENCHMARK.md's reference metrics of ``estimate`` ``(C_hsi, H, W)`` over the case's test region only.

    ``mask`` ``(H, W)`` bool marks valid pixels of the whole case (False: nodata). Returns ``{'PSNR' (dB),
    'SSIM', 'SAM' (deg), 'ERGAS', 'RMSE'}``.
    """
    t = case.test
    region = (slice(t.row, t.row_end), slice(t.col, t.col_end))
    return reference_metrics(case.reference[(slice(None), *region)], estimate[(slice(None), *region)],
                             case.scale, None if mask is None else mask[region])


def command_line() -> str:
    """The command that is running, as a shell line relative to the repository root."""
    script = Path(sys.argv[0]).resolve()
    if script.is_relative_to(REPO):
        script = script.relative_to(REPO)
    return shlex.join(["python", str(script), *sys.argv[1:]])


def machine() -> str:
    """One line on where the numbers were measured: CPU, cores available, torch threads."""
    return (f"{platform.processor() or platform.machine()}, {available_cpus()} cores available, "
            f"torch {torch.__version__} with {torch.get_num_threads()} threads")


def load_average() -> str:
    """The 1, 5 and 15 minute load averages of /proc/loadavg, e.g. "0.08 0.55 0.94" (timings beside it)."""
    with open("/proc/loadavg") as loadavg:
        return " ".join(loadavg.read().split()[:3])


def peak_rss_mb() -> float:
    """This process's peak resident memory (MB): VmHWM of /proc/self/status.

    Not ``ru_maxrss``: Linux carries that across fork and exec, so a child started from a large parent reports
    the parent's size; VmHWM belongs to the address space the child's exec created.
    """
    with open("/proc/self/status") as status:
        line = next(row for row in status if row.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def run_child(script: str | Path, spec: Mapping[str, object]) -> dict:
    """Run ``python script --child JSON(spec)`` in a fresh interpreter (its own peak memory, no state of this one)
    and return the JSON object its last line of output holds; the script's ``--child`` handler prints it."""
    done = subprocess.run([sys.executable, str(script), "--child", json.dumps(spec)], check=True,
                          capture_output=True, text=True)
    return json.loads(done.stdout.splitlines()[-1])


def write_results(path: Path, rows: Sequence[Mapping[str, object]], columns: Mapping[str, str], *,
                  title: str, notes: Sequence[str] = ()) -> None:
    """Write ``rows`` as a Markdown table (``.md``) or CSV (any other suffix).

    ``columns`` maps each row key to its format spec (e.g. ``{"PSNR": ".2f", "scene": ""}``); the header uses
    the keys. The Markdown file starts with ``title``, the exact command, the date, the machine and ``notes``
    (one paragraph each); the CSV file holds the rows only, plus a ``# command`` comment line first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    with open(path, "w", newline="", encoding="utf-8") as f:
        if path.suffix.lower() == ".md":
            f.write(f"# {title}\n\nCommand: `{command_line()}`\n\nDate: {date}. Machine: {machine()}.\n\n")
            f.writelines(f"{note}\n\n" for note in notes)
            f.write(markdown_table(rows, columns))
        else:
            f.write(f"# {command_line()} ({date})\n")
            writer = csv.writer(f)
            writer.writerow(list(columns))
            writer.writerows(_cells(rows, columns))


def markdown_table(rows: Sequence[Mapping[str, object]], columns: Mapping[str, str]) -> str:
    """``rows`` as a Markdown table, one line per row; ``columns`` as for :func:`write_results`."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cells) + " |" for cells in _cells(rows, columns)]
    return "\n".join(lines) + "\n"


def _cells(rows: Sequence[Mapping[str, object]], columns: Mapping[str, str]) -> list[list[str]]:
    return [[format(row[key], spec) for key, spec in columns.items()] for row in rows]


def _shift(window: Window, origin: Window) -> Window:
    """``window`` in the frame whose top-left pixel is ``origin``'s."""
    return Window(window.col - origin.col, window.row - origin.row, window.width, window.height)
