# SPDX-License-Identifier: GPL-2.0-or-later
"""GPU against CPU throughput of CoFusion: the network forward, the fusion end to end, training steps (issue 20).

From the repository root, here (CPU only: it says there is no CUDA GPU and exits 0 with the CPU figures)::

    .venv/bin/python bench/gpu_throughput.py --out bench/results/gpu_throughput.md [--setting jasper]
        [--size 1024] [--train-size 512] [--train-steps 12] [--threads N]

On a lent GPU machine (python3 there holds a CUDA PyTorch but no GDAL: carry the ``gdal-wheel`` wheel, downloaded
here with ``echo /.whl/ >> .git/info/exclude; python3 -m pip download --no-deps --only-binary=:all:
--python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 -d .whl gdal-wheel==3.13.3``), with
``.whl`` carried::

    python3 -m pip install -q --no-index --no-deps --target build/gpu-site .whl/*.whl && mkdir -p build/gpu-pkg &&
    ln -sfn "$PWD" build/gpu-pkg/cofusion && export PYTHONPATH="$PWD/build/gpu-site:$PWD/build/gpu-pkg" \
    PYTHONUNBUFFERED=1 && python3 bench/gpu_throughput.py --out "$OUT/gpu_throughput.md"

Expected under 3 minutes on an H200 machine with 16 cores, start-up included (the CPU's share dominates).

Per device - the CPU with ``--threads`` threads (default every core available), then the first CUDA GPU when
PyTorch sees one - on an untrained but fully built network of ``--setting`` (speed does not depend on the weights):

- forward: the bare network on tiles of the engine's default size (``bench/fuse_speed.py``'s helpers) in the
  precision the predictor runs it in (its ``core.device`` plan: float16 autocast on CUDA, float32 on the CPU),
  waited for on CUDA; at the engine's default batch, and on CUDA also at ``GPU_BATCH`` tiles a call;
- end to end: ``core.service.fuse`` of a synthetic ``--size`` x ``--size`` pair (``fuse_speed.write_pair``) from a
  model file, at each batch of the forward; ``outside`` is the share of its time outside the bare forward of the
  same tiles (reading, the scene pre-pass, host-device copies, blending, writing);
- training: optimisation steps per second of ``training.api.train_pair`` on a synthetic ``--train-size`` pair
  (its default batch, patch and model; the training's own device precision), from its log's step times between
  the first and the last step, so the set-up and the final validation are left out.
"""
from __future__ import annotations

import argparse
import copy
import csv
import logging
import tempfile
from pathlib import Path

import torch
from common import load_average, markdown_table, write_results
from fuse_speed import SETTINGS, build_predictor, flops_per_pixel, forward_seconds, write_pair

from cofusion.core.checkpoint import save_checkpoint
from cofusion.core.device import available_cpus, cuda_available
from cofusion.core.fuse import DEFAULT_BATCH
from cofusion.core.inference import NetworkPredictor
from cofusion.core.service import FusionRequest, fuse
from cofusion.core.tiling import default_tiling
from cofusion.training.api import train_pair
from cofusion.training.trainer import TrainSettings

log = logging.getLogger("gpu_throughput")

#: Tiles a call on the GPU besides the engine's default (a GPU needs more than one 288^2 tile to be busy).
GPU_BATCH = 8
#: Timed forwards (after one warm-up), median taken: the CPU's take seconds, the GPU's milliseconds.
REPEATS = {"cpu": 3, "cuda": 10}
FORWARD_COLUMNS = {"device": "", "what": "", "batch": "d", "seconds": ".4f", "MP/s": ".3f", "GFLOP/s": ".1f",
                   "vs_cpu": ".1f"}
FUSE_COLUMNS = {"device": "", "what": "", "batch": "d", "seconds": ".2f", "MP/s": ".3f", "outside": ".0%",
                "vs_cpu": ".1f"}
TRAIN_COLUMNS = {"device": "", "what": "", "batch": "d", "seconds": ".2f", "steps/s": ".3f", "vs_cpu": ".1f"}


class _AsPredicted(torch.nn.Module):
    """A predictor's network as the predictor runs it: under its plan's inference autocast and, on CUDA, waited for
    (kernels run asynchronously: without the wait a timer stops when they are queued, not done)."""

    def __init__(self, predictor: NetworkPredictor) -> None:
        super().__init__()
        self.net, self.plan = predictor.model, predictor.plan

    def forward(self, lr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        with self.plan.inference_autocast():
            out = self.net(lr, hr)
        if out.is_cuda:
            torch.cuda.synchronize(out.device)
        return out


def predictor_on(setting: str, device: str, threads: int) -> NetworkPredictor:
    """``fuse_speed.build_predictor``'s network (the same seed: the same weights) on ``device``."""
    cpu = build_predictor(setting, threads)
    return cpu if device == "cpu" else NetworkPredictor(cpu.checkpoint, device=device, threads=threads)


def forward_row(predictor: NetworkPredictor, batch: int, flops: float) -> dict:
    """The bare forward at the default tile on ``batch`` tiles, as the predictor runs it."""
    tile = default_tiling(predictor.align)[0]
    timed = copy.copy(predictor)  # the same predictor, its network wrapped for timing
    timed.model = _AsPredicted(predictor)
    seconds = forward_seconds(timed, tile, batch, REPEATS[predictor.device.type])
    pixels = batch * tile ** 2
    return {"device": predictor.plan.describe(), "what": f"forward {tile}^2", "batch": batch, "seconds": seconds,
            "MP/s": pixels / seconds / 1e6, "GFLOP/s": flops * pixels / seconds / 1e9}


def fuse_row(model: Path, lr: Path, hr: Path, folder: Path, device: str, threads: int, forward: dict) -> dict:
    """``core.service.fuse`` of the pair from the model file at the batch of ``forward`` (a forward_row)."""
    batch = forward["batch"]
    result = fuse(FusionRequest(lr, hr, folder / f"fused_{device}_{batch}.tif", model=model, device=device,
                                threads=threads, batch=batch))
    (folder / f"fused_{device}_{batch}.tif").unlink()
    bare = result.tiles / batch * forward["seconds"]
    return {"device": forward["device"], "what": f"fuse {result.width}x{result.height}", "batch": batch,
            "seconds": result.seconds, "MP/s": result.width * result.height / result.seconds / 1e6,
            "outside": 1 - bare / result.seconds}


def training_row(lr: Path, hr: Path, folder: Path, device: str, steps: int, label: str) -> dict:
    """Steps per second of ``steps`` steps of pair-mode training, from the log's times of steps 1 and steps - 1."""
    out = folder / f"model_{device}.safetensors"
    result = train_pair(lr, hr, out, settings=TrainSettings(iterations=steps, validate_every=steps, device=device))
    with open(result.log, newline="") as table:
        elapsed = {int(row["step"]): float(row["elapsed_s"]) for row in csv.DictReader(table)}
    seconds = elapsed[steps - 1] - elapsed[1]
    return {"device": label, "what": "train_pair steps", "batch": TrainSettings().batch_size, "seconds": seconds,
            "steps/s": (steps - 2) / seconds}


def measure(device: str, args: argparse.Namespace, folder: Path, pair: tuple[Path, Path],
            train: tuple[Path, Path], model: Path, flops: float) -> tuple[list[dict], list[dict], dict]:
    """One device's rows: (forward at each batch, fusion at each batch, training steps)."""
    predictor = predictor_on(args.setting, device, args.threads)
    batches = (DEFAULT_BATCH,) if device == "cpu" else (DEFAULT_BATCH, GPU_BATCH)
    forwards = [forward_row(predictor, batch, flops) for batch in batches]
    fusions = [fuse_row(model, *pair, folder, device, args.threads, forward) for forward in forwards]
    training = training_row(*train, folder, device, args.train_steps, predictor.plan.describe())
    for row in (*forwards, *fusions, training):
        log.info("%s", row)
    return forwards, fusions, training


def speed_ups(rows: list[dict], key: str) -> list[dict]:
    """``rows`` with ``vs_cpu``: each row's ``key`` over the first CPU row's (the CPU runs the default batch)."""
    cpu = next(row for row in rows if row["device"].startswith("cpu"))
    return [{**row, "vs_cpu": row[key] / cpu[key]} for row in rows]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench/results/gpu_throughput.md"), help="Markdown file")
    parser.add_argument("--setting", choices=list(SETTINGS), default="jasper", help="bands and scale")
    parser.add_argument("--size", type=int, default=1024, help="output edge of the fused pair, HR pixels")
    parser.add_argument("--train-size", type=int, default=512, help="HR edge of the training pair")
    parser.add_argument("--train-steps", type=int, default=12, help="training steps per device (at least 3)")
    parser.add_argument("--threads", type=int, default=available_cpus(), help="torch CPU threads")
    args = parser.parse_args(argv)
    if args.train_steps < 3:
        parser.error("--train-steps must be at least 3: the rate is taken between step 1 and the step before last")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    devices = ["cpu"] + (["cuda"] if cuda_available() else [])
    if len(devices) == 1:
        log.warning("PyTorch sees no CUDA GPU here (torch %s): the CPU figures only", torch.__version__)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        pair = write_pair(folder, args.setting, args.size)
        train_folder = folder / "train"
        train_folder.mkdir()
        train = write_pair(train_folder, args.setting, args.train_size, seed=1)
        cpu = build_predictor(args.setting, args.threads)
        model = folder / "model.safetensors"
        save_checkpoint(model, cpu.model, cpu.checkpoint.card)
        flops = flops_per_pixel(cpu, default_tiling(cpu.align)[0])
        measured = [measure(device, args, folder, pair, train, model, flops) for device in devices]
    forwards = speed_ups([row for rows, _, _ in measured for row in rows], "MP/s")
    fusions = speed_ups([row for _, rows, _ in measured for row in rows], "MP/s")
    training = speed_ups([row for _, _, row in measured], "steps/s")
    gpu = "" if len(devices) > 1 else " PyTorch saw no CUDA GPU: CPU figures only."
    hsi, msi, scale = SETTINGS[args.setting]
    write_results(args.out, fusions, FUSE_COLUMNS, title="GPU against CPU throughput (network, engine, training)",
                  notes=[f"Setting {args.setting} ({hsi} + {msi} bands, x{scale}), untrained network; "
                         f"{args.threads} CPU threads; load average {load_average()} at the end.{gpu} vs_cpu: "
                         "throughput over the CPU's at the engine's default batch.",
                         f"Bare forward (GFLOP/s counts the network's {flops / 1e6:.3f} MFLOP per output pixel):",
                         markdown_table(forwards, FORWARD_COLUMNS),
                         f"Training ({args.train_steps} steps of train_pair on a {args.train_size}^2 pair, the rate "
                         "between step 1 and the step before last):",
                         markdown_table(training, TRAIN_COLUMNS),
                         "End to end (core.service.fuse from a model file; outside: the share of the time outside "
                         "the bare forward of the same tiles):"])
    log.info("wrote %s", args.out)


if __name__ == "__main__":
    main()
