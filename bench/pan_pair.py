# SPDX-License-Identifier: GPL-2.0-or-later
"""A hyperspectral image with a panchromatic image at x3, no reference: pair-mode training, QNR against GSA and LLR.

From the repository root::

    .venv/bin/python bench/pan_pair.py --minutes 3 --out bench/results/pan_pair_x3.md [--keep DIR]

The pair is made from ``cave_oil_painting`` (20 bands, 400-590 nm; ``../shared/data``): the LRHSI is the scene
degraded by Wald's protocol at x3 (170 x 213 pixels), the HRMSI one panchromatic band, the flat mean of the bands
(a pan over the scene's span), at full resolution. The network sees no reference: it is trained by
``python -m cofusion.training pair`` (reduced resolution, its SRF estimated from the pair) and fused by
``python -m cofusion fuse`` at full resolution, as a user with a real 30 m + 10 m pan pair would; the classical
methods fuse the same pair, and every result is scored without a reference (D_lambda, D_s, QNR).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from cofusion.core.assess import assess_no_reference
from cofusion.core.classic_raster import fuse_classic_raster
from cofusion.core.degrade import spatial_degrade
from cofusion.core.raster import read_info, read_raster, write_raster

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SCALE = 3


def make_pair(folder: Path) -> tuple[Path, Path]:
    """The LRHSI (x3 coarser, 30 m pixels) and the pan (10 m) of cave_oil_painting cropped to a multiple of 3."""
    source = DATA / "cave_oil_painting.tif"
    scene = read_raster(source)[:, :510, :639] / np.float32(65535.0)
    pan = scene.mean(axis=0, keepdims=True)
    lr, hr = folder / "lrhsi.tif", folder / "pan.tif"
    write_raster(lr, spatial_degrade(scene, SCALE), geotransform=(500000.0, 30.0, 0.0, 5000000.0, 0.0, -30.0),
                 wavelengths_nm=read_info(source).wavelengths_nm)
    write_raster(hr, pan, geotransform=(500000.0, 10.0, 0.0, 5000000.0, 0.0, -10.0))
    return lr, hr


def _run(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=3.0, help="pair-mode training budget")
    parser.add_argument("--out", type=Path, default=Path("bench/results/pan_pair_x3.md"))
    parser.add_argument("--keep", type=Path, help="folder to keep the rasters and the model in")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        lr, pan = make_pair(folder)
        model = folder / "pair.safetensors"
        start = time.perf_counter()
        _run("cofusion.training", "pair", "--lrhsi", str(lr), "--hrmsi", str(pan), "--minutes", str(args.minutes),
             "--out", str(model), "--restart")
        train_s = time.perf_counter() - start
        for method in ("cofusion", "llr", "gsa"):
            fused = folder / f"{method}.tif"
            start = time.perf_counter()
            if method == "cofusion":
                _run("cofusion", "fuse", "--lrhsi", str(lr), "--hrmsi", str(pan), "--model", str(model), "--out",
                     str(fused), "--device", "cpu")
            else:
                fuse_classic_raster(lr, pan, fused, method)
            seconds = time.perf_counter() - start
            scores = assess_no_reference(fused, lr, pan)
            rows.append(f"| {method} | {scores['D_lambda']:.4f} | {scores['D_s']:.4f} | {scores['QNR']:.4f} | "
                        f"{seconds:.1f} |")
    text = "\n".join([
        "# A hyperspectral image with a panchromatic image at x3, no reference (pair mode)", "",
        f"Command: `python bench/pan_pair.py --minutes {args.minutes:g} --out {args.out}`", "",
        " ".join((__doc__ or "").split("\n\n")[3:4]).replace("\n", " "), "",
        f"Pair-mode training: {train_s:.0f} s wall (budget {args.minutes:g} min, start-up included).", "",
        "| method | D_lambda | D_s | QNR | fuse_s |", "|---|---|---|---|---|", *rows, ""])
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
