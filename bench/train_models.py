# SPDX-License-Identifier: GPL-2.0-or-later
"""Benchmark of CoFusion trained by the product's own command lines, against the classical baselines.

From the repository root::

    .venv/bin/python bench/train_models.py --out bench/results/cofusion.md --minutes 12 \\
        [--scenes NAME ...] [--scales 4] [--variants full no_spacam no_specam no_sscfm bicubic_base] \\
        [--seed N] [--keep DIR]

Per scene, scale and variant, everything goes through files and the command lines a user runs:

1. the scene is cropped to a multiple of the scale and written as a [0, 1] float32 GeoTIFF (``bench/common``);
2. ``python -m cofusion.training reference --hsi scene.tif --srf SENSOR --scale S --region TRAIN --minutes M``
   trains on the scene's training region only (Wald's protocol on the fly, validation carved from inside it);
3. the simulated LRHSI and HRMSI of the whole crop are written as GeoTIFFs and ``python -m cofusion fuse``
   fuses them with the trained checkpoint through the streaming tiler;
4. PSNR, SSIM, SAM and ERGAS are measured on the test region only, as are GSA's and MTF-GLP-HPM's on the same
   simulated pair (``core.classic``), so every table row compares with the best classical method.

Variants: ``full`` (the default model), ``no_spacam`` / ``no_specam`` / ``no_sscfm`` (paper Table 3's
ablations: the module replaced by a plain residual block), ``bicubic_base`` (the head corrects the bicubic
LRHSI, as in the paper, instead of the default blended base), ``gsa_base`` (the head corrects GSA alone),
``no_trust`` (the head applied everywhere, without the trust map), ``no_back_projection`` (no consistency
steps), ``plain_l1`` (the paper's unweighted L1 instead of the per-band weighting by the base's error) and
``no_ema`` (the raw weights validated and kept instead of their moving average).
"""
from __future__ import annotations

import argparse
import csv
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import DATA_DIR, SCENES, Case, evaluate, load_scene, prepare, write_results

from cofusion.core.checkpoint import load_checkpoint
from cofusion.core.classic import METHODS
from cofusion.core.raster import read_raster, write_raster

log = logging.getLogger("train_models")

CLASSICAL = ("llr", "gsa", "mtf_glp_hpm")
#: Extra training options per variant (``python -m cofusion.training`` arguments).
VARIANTS = {
    "full": [],
    "no_spacam": ["--ablation", "spacam"],
    "no_specam": ["--ablation", "specam"],
    "no_sscfm": ["--ablation", "sscfm"],
    "bicubic_base": ["--base", "bicubic"],
    "gsa_base": ["--base", "gsa"],
    "no_trust": ["--trust-clusters", "0"],
    "no_back_projection": ["--consistency-steps", "0"],
    "plain_l1": ["--plain-l1"],
    "no_ema": ["--ema-decay", "0"],
}
COLUMNS = {"scene": "", "scale": "d", "method": "", "PSNR": ".2f", "SSIM": ".4f", "SAM": ".2f", "ERGAS": ".3f",
           "dPSNR_vs_best_classical": "+.2f", "dSAM_vs_best_classical": "+.2f", "iterations": "",
           "train_min": "", "params_M": "", "fuse_s": ".1f"}


def train_variant(case: Case, variant: str, minutes: float, folder: Path, tag: str = "",
                  seed: int = 0) -> tuple[Path, float]:
    """Train ``variant`` on ``case``'s training region by the training CLI with ``seed``; returns the checkpoint
    and the training's wall time in minutes. The case's rasters are written to ``folder`` first (once)."""
    s = case.scale
    geotransform = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)
    scene_path, lr_path, hr_path = _case_paths(case, folder)
    if not scene_path.exists():
        write_raster(scene_path, case.reference, geotransform=geotransform, wavelengths_nm=case.wavelengths_nm)
        write_raster(lr_path, case.lr_hsi, geotransform=(0.0, float(s), 0.0, 0.0, 0.0, -float(s)),
                     wavelengths_nm=case.wavelengths_nm)
        write_raster(hr_path, case.hr_msi, geotransform=geotransform)
    model = folder / f"{case.scene.name}_x{s}_{variant}{tag}{f'_seed{seed}' if seed else ''}.safetensors"
    t = case.train
    start = time.perf_counter()
    _run([sys.executable, "-m", "cofusion.training", "reference", "--hsi", str(scene_path),
          "--srf", case.scene.msi, "--scale", str(s), "--region", f"{t.col},{t.row},{t.col_end},{t.row_end}",
          "--minutes", str(minutes), "--out", str(model), "--seed", str(seed), "--restart", *VARIANTS[variant]])
    return model, (time.perf_counter() - start) / 60


def run_variant(case: Case, variant: str, minutes: float, folder: Path, seed: int = 0) -> dict:
    """Train ``variant`` on ``case``'s training region, fuse the whole crop, evaluate on the test region."""
    model, train_minutes = train_variant(case, variant, minutes, folder, seed=seed)
    _, lr_path, hr_path = _case_paths(case, folder)
    fused = model.with_name(model.stem + "_fused.tif")
    start = time.perf_counter()
    _run([sys.executable, "-m", "cofusion", "fuse", "--lrhsi", str(lr_path), "--hrmsi", str(hr_path),
          "--model", str(model), "--out", str(fused)])
    fuse_seconds = time.perf_counter() - start
    checkpoint = load_checkpoint(model)
    params = sum(p.numel() for p in checkpoint.model.parameters()) / 1e6
    return {**evaluate(case, read_raster(fused)), "iterations": _steps(model, checkpoint.card.provenance),
            "train_min": f"{train_minutes:.1f}",
            "params_M": f"{params:.3f}", "fuse_s": fuse_seconds}


def _case_paths(case: Case, folder: Path) -> tuple[Path, Path, Path]:
    """Where ``train_variant`` writes the case's reference, LRHSI and HRMSI."""
    return tuple(folder / f"{case.scene.name}_x{case.scale}_{part}.tif" for part in ("hr", "lr", "msi"))


def classical_rows(case: Case) -> list[dict]:
    """The classical methods of CLASSICAL on the case's simulated pair, evaluated like the trained models."""
    return [{"scene": case.scene.name, "scale": case.scale, "method": name,
             **evaluate(case, METHODS[name](case.lr_hsi, case.hr_msi, case.scale)),
             "iterations": "-", "train_min": "-", "params_M": "-", "fuse_s": float("nan")} for name in CLASSICAL]


def _steps(model: Path, provenance: dict) -> str:
    """Steps run (last row of the training log) and the step the kept checkpoint is from."""
    with open(model.with_name(model.stem + ".log.csv"), newline="") as f:
        last = list(csv.DictReader(f))[-1]["step"]
    kept = provenance.get("steps", "?")
    return f"{last} (best {kept})"


def _run(command: list[str]) -> None:
    log.info("$ %s", " ".join(command))
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"{command[2]} failed ({result.returncode}):\n{result.stderr[-3000:]}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench/results/cofusion.md"))
    parser.add_argument("--scenes", nargs="+", choices=list(SCENES), default=list(SCENES))
    parser.add_argument("--scales", nargs="+", type=int, default=[4])
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=["full"])
    parser.add_argument("--minutes", type=float, default=12.0, help="training wall-clock budget per model")
    parser.add_argument("--seed", type=int, default=0, help="the training's random seed")
    parser.add_argument("--data", type=Path, default=DATA_DIR)
    parser.add_argument("--keep", type=Path, help="folder to keep the rasters and checkpoints in")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")

    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        for name in args.scenes:
            loaded = load_scene(SCENES[name], args.data)
            for scale in args.scales:
                case = prepare(SCENES[name], scale, args.data, loaded)
                if case is None:
                    continue
                baseline = classical_rows(case)
                best = max(baseline, key=lambda r: r["PSNR"])
                rows += baseline
                for variant in args.variants:
                    method = f"cofusion_{variant}" + (f"_seed{args.seed}" if args.seed else "")
                    row = {"scene": name, "scale": scale, "method": method,
                           **run_variant(case, variant, args.minutes, folder, args.seed)}
                    row["dPSNR_vs_best_classical"] = row["PSNR"] - best["PSNR"]
                    row["dSAM_vs_best_classical"] = row["SAM"] - best["SAM"]
                    log.info("%s x%d %s: PSNR %.2f dB (%+.2f vs %s), SAM %.2f deg", name, scale, variant,
                             row["PSNR"], row["dPSNR_vs_best_classical"], best["method"], row["SAM"])
                    rows.append(row)
                    write_results(args.out, _filled(rows), COLUMNS, title=TITLE, notes=NOTES)
    log.info("wrote %s", args.out)


def _filled(rows: list[dict]) -> list[dict]:
    """Rows with the comparison columns of the classical rows set to zero."""
    return [{"dPSNR_vs_best_classical": 0.0, "dSAM_vs_best_classical": 0.0, **r} for r in rows]


TITLE = "CoFusion trained on each scene's training region, against the best classical methods"
NOTES = [
    "Protocol: BENCHMARK.md. Each model is trained from scratch by `python -m cofusion.training reference` on the "
    "scene's training region only (validation strip carved from inside it, normalisation from it), with the "
    "wall-clock budget given by --minutes on this 2-core CPU; `iterations` are the optimisation steps run and the "
    "step of the kept (best validation PSNR) checkpoint. The whole simulated pair is then fused by "
    "`python -m cofusion fuse` (streaming tiler, default tile and overlap) and measured on the test region only. "
    "dPSNR/dSAM compare with the best (by PSNR) of LLR (local linear regression), GSA and MTF-GLP-HPM on the same "
    "pair (positive dPSNR and negative dSAM favour CoFusion). fuse_s is the fusion command's wall time, start-up "
    "included.",
]


if __name__ == "__main__":
    main()
