# SPDX-License-Identifier: GPL-2.0-or-later
"""Where the classical fusions' error lies: the evidence behind the network's blended base (core/model/prior.py).

From the repository root::

    .venv/bin/python bench/error_structure.py --out bench/results/error_structure.md [--scale 4]

For every scene, by BENCHMARK.md's protocol, on its test region: the share of GSA's squared error held by the 1 %
(and 5 %) of pixels where it is largest, the HRMSI's gradient there against everywhere, the per-band PSNR range of
GSA and LLR, and PSNR / SAM of GSA, LLR and their mean (the blended base's untrained start).
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
from common import DATA_DIR, SCENES, evaluate, load_scene, prepare, write_results

from cofusion.core.classic import gsa, llr

log = logging.getLogger("error_structure")

COLUMNS = {"scene": "", "fusion": "", "PSNR": ".2f", "SAM": ".2f", "band_PSNR_min": ".1f", "band_PSNR_max": ".1f",
           "top1%_share": ".0%", "top5%_share": ".0%", "msi_gradient_ratio": ".1f"}


def structure(reference: np.ndarray, estimate: np.ndarray, msi: np.ndarray) -> dict[str, float]:
    """Error statistics of ``estimate`` against ``reference`` (both (C, H, W)) with the HRMSI ``msi`` (C_m, H, W):
    per-band PSNR range (dB, data on [0, 1]), the share of the squared error (summed over bands) in the 1 % and
    5 % worst pixels, and the HRMSI's mean gradient magnitude on the 1 % worst pixels over its mean everywhere."""
    squared = (estimate - reference) ** 2
    band_psnr = -10 * np.log10(squared.mean(axis=(1, 2)))
    per_pixel = squared.sum(axis=0).ravel()
    ranked = np.sort(per_pixel)[::-1]
    share = np.cumsum(ranked) / ranked.sum()
    rows, cols = np.gradient(msi.mean(axis=0))
    gradient = np.hypot(rows, cols).ravel()
    worst = per_pixel >= ranked[max(0, int(0.01 * per_pixel.size) - 1)]
    return {"band_PSNR_min": band_psnr.min(), "band_PSNR_max": band_psnr.max(),
            "top1%_share": share[int(0.01 * share.size)], "top5%_share": share[int(0.05 * share.size)],
            "msi_gradient_ratio": gradient[worst].mean() / gradient.mean()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench/results/error_structure.md"))
    parser.add_argument("--scale", type=int, default=4)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    rows = []
    for name, scene in SCENES.items():
        case = prepare(scene, args.scale, DATA_DIR, load_scene(scene, DATA_DIR))
        t = case.test
        region = (slice(None), slice(t.row, t.row_end), slice(t.col, t.col_end))
        fusions = {"gsa": gsa(case.lr_hsi, case.hr_msi, case.scale), "llr": llr(case.lr_hsi, case.hr_msi, case.scale)}
        fusions["mean of both"] = 0.5 * (fusions["gsa"] + fusions["llr"])
        for fusion, estimate in fusions.items():
            metrics = evaluate(case, estimate)
            rows.append({"scene": name, "fusion": fusion, "PSNR": metrics["PSNR"], "SAM": metrics["SAM"],
                         **structure(case.reference[region], estimate[region], case.hr_msi[region])})
            log.info("%s", rows[-1])
    write_results(args.out, rows, COLUMNS, title=f"Where the classical fusions' error lies (x{args.scale})",
                  notes=["Protocol: BENCHMARK.md; test regions only; PSNR is the mean over bands, as everywhere. "
                         "top1%_share / top5%_share: share of the squared error (summed over bands) held by the 1 % "
                         "/ 5 % worst pixels; msi_gradient_ratio: the HRMSI's mean gradient magnitude on the 1 % "
                         "worst pixels over its mean on all pixels (above 1: the error sits at edges)."])


if __name__ == "__main__":
    main()
