# SPDX-License-Identifier: GPL-2.0-or-later
"""Benchmark of the classical fusion baselines (core.classic) on every scene, by BENCHMARK.md's protocol.

From the repository root::

    .venv/bin/python bench/baselines.py --out bench/results/baselines.md [--scenes NAME ...] [--scales 2 4 8]

Each scene is cropped to a multiple of the scale (keeping its test region), simulated by Wald's protocol, fused
as a whole by bicubic, GSA, SFIM, MTF-GLP-HPM and LLR (local linear regression), and evaluated on its test
region only. Bicubic x4 is checked against BENCHMARK.md's reference numbers: a gap of more than 1 dB means a bug in
the protocol code.
"""
from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import torch
from common import DATA_DIR, SCALES, SCENES, Case, evaluate, load_scene, prepare, write_results

from cofusion.core.classic import METHODS

log = logging.getLogger("baselines")

COLUMNS = {"scene": "", "scale": "d", "method": "", "PSNR": ".2f", "SSIM": ".4f", "SAM": ".2f", "ERGAS": ".3f",
           "time_s": ".2f"}
# Largest tolerated gap (dB) between our bicubic x4 PSNR and BENCHMARK.md's reference (its stated 1 dB).
SANITY_DB = 1.0


def run(scenes: list[str], scales: list[int], data_dir: Path) -> tuple[list[dict], list[str]]:
    """Fuse and evaluate every scene at every scale the scene allows; returns the rows and notes on them."""
    rows, notes = [], []
    for name in scenes:
        scene = SCENES[name]
        loaded = load_scene(scene, data_dir)
        for scale in scales:
            case = prepare(scene, scale, data_dir, loaded)
            if case is None:
                notes.append(f"{name} x{scale}: skipped, the scene is too small for this scale.")
                continue
            if case.crop.width != loaded[0].shape[2] or case.crop.height != loaded[0].shape[1]:
                notes.append(f"{name} x{scale}: cropped to {_describe(case)}.")
            for method, fuse in METHODS.items():
                start = time.perf_counter()
                fused = fuse(case.lr_hsi, case.hr_msi, scale)
                elapsed = time.perf_counter() - start
                row = {"scene": name, "scale": scale, "method": method, **evaluate(case, fused), "time_s": elapsed}
                log.info("%s x%d %-12s PSNR %.2f dB  SSIM %.4f  SAM %.2f deg  ERGAS %.3f  %.2f s", name, scale,
                         method, row["PSNR"], row["SSIM"], row["SAM"], row["ERGAS"], elapsed)
                rows.append(row)
    return rows, notes


def sanity_notes(rows: list[dict]) -> list[str]:
    """Compare bicubic x4 with BENCHMARK.md's reference; warn (log) when PSNR is more than SANITY_DB away."""
    notes = []
    for row in rows:
        if row["method"] != "bicubic" or row["scale"] != 4 or SCENES[row["scene"]].bicubic_x4 is None:
            continue
        psnr, sam = SCENES[row["scene"]].bicubic_x4
        gap = row["PSNR"] - psnr
        verdict = "OK" if abs(gap) <= SANITY_DB else "MISMATCH: a bug in the degradation, split or metrics"
        notes.append(f"Sanity, {row['scene']} bicubic x4: {row['PSNR']:.2f} dB / {row['SAM']:.2f} deg against "
                     f"BENCHMARK.md's {psnr} dB / {sam} deg ({gap:+.2f} dB): {verdict}.")
        if abs(gap) > SANITY_DB:
            log.warning(notes[-1])
    return notes


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench/results/baselines.md"),
                        help="result table: .md for Markdown, anything else for CSV")
    parser.add_argument("--scenes", nargs="+", choices=list(SCENES), default=list(SCENES))
    parser.add_argument("--scales", nargs="+", type=int, default=list(SCALES))
    parser.add_argument("--data", type=Path, default=DATA_DIR, help="folder of the scenes (data/README.md)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (BENCHMARK.md's machine: 2)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    torch.set_num_threads(args.threads)

    rows, notes = run(args.scenes, args.scales, args.data)
    notes = [
        "Protocol: BENCHMARK.md (Wald's protocol, MTF-matched Gaussian blur and decimation, HRMSI = R Z with the "
        "sensor of data/README.md). Each method fuses the whole (cropped) scene; PSNR (dB), SSIM, SAM (degrees) "
        "and ERGAS are measured on the scene's test region only, on [0, 1] data, without clipping the output. "
        "time_s is the method's wall time. No method is trained: they have no iterations and no learned "
        "parameters.",
        *notes, *sanity_notes(rows)]
    write_results(args.out, rows, COLUMNS, title="Classical fusion baselines (core.classic)", notes=notes)
    log.info("wrote %s", args.out)


def _describe(case: Case) -> str:
    c = case.crop
    return (f"cols {c.col}-{c.col_end - 1}, rows {c.row}-{c.row_end - 1} (test region there: cols "
            f"{case.test.col}-{case.test.col_end - 1}, rows {case.test.row}-{case.test.row_end - 1})")


if __name__ == "__main__":
    main()
