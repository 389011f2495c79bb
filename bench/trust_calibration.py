# SPDX-License-Identifier: GPL-2.0-or-later
"""The trust map's rule, chosen without test data: spatial cross-validation inside each training region.

From the repository root::

    .venv/bin/python bench/trust_calibration.py --out bench/results/trust_calibration.md --minutes 15 \\
        [--scenes NAME ...] [--keep DIR]

The trust map (``core.model.domain``) weighs the head's correction by how far an LR spectrum lies from the
clusters of the training spectra: 1 up to a cluster's radius, falling linearly to 0 at ``FALLOFF`` radii. Its
radius and fall-off can only be judged on materials the training did not see, and those must not be the test
region's. So, per scene (x4):

1. the scene's training region is split by columns: the first two thirds (a multiple of the model's alignment)
   train a model through the training CLI (``train_models.train_variant``, the benchmark's own budget and code),
   the last third is held out;
2. the model is applied to the training region only (the test region is never read), whole, with its GSA weights
   fitted on that region, and the held-out part is scored for a grid of rules: the radii scaled by ``m``, the trust
   falling to 0 at ``F`` (scaled) radii, beside the head off (base and back-projection alone) and the head
   everywhere (no trust map).

The rule with the best mean PSNR gain over the head off, across the scenes, is the one to use.
"""
from __future__ import annotations

import argparse
import logging
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from common import DATA_DIR, SCENES, Case, evaluate, load_scene, prepare, write_results
from train_models import train_variant

from cofusion.core.checkpoint import load_checkpoint
from cofusion.core.degrade import spatial_degrade
from cofusion.core.device import available_cpus
from cofusion.core.injection import SceneMoments, back_project
from cofusion.core.model.domain import RADIUS_SCALE, trust_of
from cofusion.core.resample import upsample
from cofusion.core.window import Window

log = logging.getLogger("trust_calibration")

SCALE = 4
RADIUS_SCALES = (0.5, 0.75, 1.0, 1.5, 2.0)
FALLOFFS = (1.5, 2.0, 3.0)
COLUMNS = {"scene": "", "rule": "", "radius_scale": "", "falloff": "", "PSNR": ".2f", "SAM": ".3f",
           "dPSNR_vs_head_off": "+.2f", "dSAM_vs_head_off": "+.3f", "mean_trust": ".2f"}


def split_training_region(case: Case, align: int = 16) -> Case:
    """The case with its training region's first two thirds of columns as ``train`` and the rest as ``test``."""
    t = case.train
    inner = max(align, round(t.width * 2 / 3 / align) * align)
    return replace(case, train=Window(t.col, t.row, inner, t.height),
                   test=Window(t.col + inner, t.row, t.width - inner, t.height))


def sweep(case: Case, model_path: Path) -> list[dict]:
    """Score the held-out part (``case.test``) for every trust rule; the model sees the training region only."""
    s, region = case.scale, case.train._replace(width=case.test.col_end - case.train.col)
    lr_box = (slice(None), slice(region.row // s, region.row_end // s), slice(region.col // s, region.col_end // s))
    hr_box = (slice(None), slice(region.row, region.row_end), slice(region.col, region.col_end))
    checkpoint = load_checkpoint(model_path)
    model = checkpoint.model.float().eval()
    hsi_mean, hsi_std, msi_mean, msi_std = (torch.from_numpy(a).view(-1, 1, 1)
                                            for a in checkpoint.card.normalization.arrays())
    lr = ((torch.from_numpy(case.lr_hsi[lr_box]) - hsi_mean) / hsi_std)[None]
    hr = ((torch.from_numpy(case.hr_msi[hr_box]) - msi_mean) / msi_std)[None]
    moments = SceneMoments(lr.shape[1], hr.shape[1])
    moments.add(lr[0], spatial_degrade(hr[0], s))
    model.base.set_weights(moments.weights())
    domain, steps = model.domain, model.config.consistency_steps
    model.domain, model.config = None, replace(model.config, consistency_steps=0)
    with torch.inference_mode():
        base = model.base(lr, upsample(lr, s, "bicubic"), hr)
        correction = model(lr, hr) - base
        novelty = domain.novelty(lr) * RADIUS_SCALE  # in 90 %-quantile radii, whatever the fitted radius scale
    held_out = replace(case, reference=case.reference[hr_box],
                       test=case.test._replace(col=case.test.col - region.col, row=case.test.row - region.row))

    def score(trust_lr: torch.Tensor | float) -> dict:
        trust = upsample(trust_lr, s, "bilinear") if torch.is_tensor(trust_lr) else trust_lr
        with torch.inference_mode():
            fused = back_project(base + trust * correction, lr, s, steps)
        estimate = (fused[0] * hsi_std + hsi_mean).numpy()
        t = held_out.test
        mean_trust = float(trust[..., t.row:t.row_end, t.col:t.col_end].mean()) if torch.is_tensor(trust) else trust
        return {**evaluate(held_out, estimate), "mean_trust": mean_trust}

    rows = [{"rule": "head off", **score(0.0)}, {"rule": "no trust map", **score(1.0)}]
    for m in RADIUS_SCALES:
        for falloff in FALLOFFS:
            rows.append({"rule": "trust map", "radius_scale": m, "falloff": falloff,
                         **score(trust_of(novelty / m, falloff))})
    off = rows[0]
    for row in rows:
        row.update(scene=case.scene.name, dPSNR_vs_head_off=row["PSNR"] - off["PSNR"],
                   dSAM_vs_head_off=row["SAM"] - off["SAM"])
    return rows


def summary(rows: list[dict]) -> list[str]:
    """The rules ranked by mean PSNR change over the head off across scenes, each with its mean SAM change and its
    worst scene; the chosen rule (the best mean PSNR among rules that lower no scene's PSNR and do not raise the
    mean SAM) is marked."""
    rules: dict[tuple, list[dict]] = {}
    for row in rows:
        if row["rule"] == "trust map":
            rules.setdefault((row["radius_scale"], row["falloff"]), []).append(row)
    ranked = sorted(rules.items(), key=lambda item: -np.mean([r["dPSNR_vs_head_off"] for r in item[1]]))
    eligible = [key for key, group in ranked if min(r["dPSNR_vs_head_off"] for r in group) >= 0
                and np.mean([r["dSAM_vs_head_off"] for r in group]) <= 0]
    chosen = eligible[0] if eligible else None
    return [f"- radius x{m}, fall-off {falloff}: mean dPSNR {np.mean([r['dPSNR_vs_head_off'] for r in group]):+.3f} "
            f"dB, mean dSAM {np.mean([r['dSAM_vs_head_off'] for r in group]):+.4f} deg, worst dPSNR "
            f"{min(r['dPSNR_vs_head_off'] for r in group):+.3f} dB{' **(chosen)**' if (m, falloff) == chosen else ''}"
            for (m, falloff), group in ranked]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench/results/trust_calibration.md"))
    parser.add_argument("--scenes", nargs="+", choices=list(SCENES),
                        default=["aviris_jasper_ridge", "cave_oil_painting"])
    parser.add_argument("--minutes", type=float, default=15.0, help="training wall-clock budget per model")
    parser.add_argument("--data", type=Path, default=DATA_DIR)
    parser.add_argument("--keep", type=Path, help="folder to keep the rasters and checkpoints in")
    parser.add_argument("--models", nargs="*", type=Path, default=[],
                        help="checkpoints already trained by this script, one per scene in order: only sweep")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    torch.set_num_threads(available_cpus())
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        for index, name in enumerate(args.scenes):
            case = split_training_region(prepare(SCENES[name], SCALE, args.data, load_scene(SCENES[name], args.data)))
            if index < len(args.models):
                model = args.models[index]
            else:
                model, _ = train_variant(case, "full", args.minutes, folder, tag="_cv")
            scene_rows = sweep(case, model)
            log.info("%s: head off %.2f dB, no trust map %+.2f dB", name, scene_rows[0]["PSNR"],
                     scene_rows[1]["dPSNR_vs_head_off"])
            rows += scene_rows
    filled = [{"radius_scale": "-", "falloff": "-", **r} for r in rows]
    ranking = "Ranking (mean over scenes):\n" + "\n".join(summary(rows))
    write_results(args.out, filled, COLUMNS, title=TITLE, notes=[NOTE, ranking])
    log.info("wrote %s", args.out)


TITLE = "Trust-map rule by spatial cross-validation inside the training regions (x4)"
NOTE = ("Each scene's training region is split by columns: a model is trained by the training CLI on the first two "
        "thirds and scored on the last third for each rule; the test region is never read. radius_scale multiplies "
        "the clusters' 90 %-quantile radii; the trust is 1 up to the scaled radius and 0 beyond falloff times it. "
        "dPSNR and "
        "dSAM compare with the same model's head off (base and back-projection alone).")


if __name__ == "__main__":
    main()
