# SPDX-License-Identifier: GPL-2.0-or-later
"""The one-step fit on Wald's scenes treated as real pairs: no reference, no response given, a 5-minute budget.

From the repository root (2 cores; the three fits run one after the other, about 16 minutes in all)::

    taskset -c 0,1 .venv/bin/python bench/fit_wald_pairs.py --out bench/results/fit_wald_pairs_x4.md \\
        [--minutes 5] [--scenes NAME ...] [--keep DIR]

Per scene at x4, the simulated pair of ``bench/common`` (BENCHMARK.md's protocol) is written as two GeoTIFFs, the
LRHSI with its band wavelengths and the HRMSI without any response, as a user's real pair would come; then
``core.fit.fit_and_fuse`` (``python -m cofusion fit``) trains in pair mode on the whole pair (the pair degraded by
the scale, the LRHSI as target, the MSI response estimated from the pair) for the budget and fuses the pair. The
reference is used only afterwards, to score the result on the test region (``bench.common.evaluate``), beside the
classical methods on the same pair and the reference-mode result committed in ``bench/results/cofusion_x4.md``
(a model trained with the reference on the training region; its budget is given there). The target: the fit within
1 dB of the reference-mode result.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

from common import DATA_DIR, SCENES, evaluate, load_scene, prepare, write_results
from train_models import classical_rows

from cofusion.core import fit
from cofusion.core.checkpoint import read_card
from cofusion.core.errors import InputError
from cofusion.core.raster import read_raster, write_raster
from cofusion.core.service import FusionRequest

log = logging.getLogger("fit_wald_pairs")

SCALE = 4
WALD_SCENES = ("cave_balloons", "cave_oil_painting", "aviris_jasper_ridge")
REFERENCE_RESULTS = Path(__file__).resolve().parent / "results" / "cofusion_x4.md"
REFERENCE_METHOD = "cofusion_full"
TARGET_DB = 1.0
COLUMNS = {"scene": "", "method": "", "PSNR": ".2f", "SSIM": ".4f", "SAM": ".2f", "ERGAS": ".3f",
           "dPSNR_vs_reference_mode": "+.2f", "steps": "", "base": "", "seconds": ".0f"}


def reference_mode_psnr(path: Path = REFERENCE_RESULTS) -> dict[str, float]:
    """The committed reference-mode CoFusion PSNR (dB) per scene at x4, read from the results table."""
    rows = [line.strip().strip("|").split("|") for line in path.read_text(encoding="utf-8").splitlines()
            if line.startswith("|")]
    header = [cell.strip() for cell in rows[0]]
    found = {}
    for cells in rows[2:]:
        row = dict(zip(header, (cell.strip() for cell in cells)))
        if row.get("method") == REFERENCE_METHOD and row.get("scale") == str(SCALE):
            found[row["scene"]] = float(row["PSNR"])
    return found


def fit_scene(name: str, minutes: float, folder: Path, refused: dict[str, str]) -> list[dict]:
    """The classical rows and the fit's row of scene ``name`` at x4 (test-region scores); without the fit's row
    when the fit refuses the pair (its message in ``refused``)."""
    case = prepare(SCENES[name], SCALE, DATA_DIR, load_scene(SCENES[name], DATA_DIR))
    s = case.scale
    lr_path, hr_path = folder / f"{name}_lr.tif", folder / f"{name}_msi.tif"
    write_raster(lr_path, case.lr_hsi, geotransform=(0.0, float(s), 0.0, 0.0, 0.0, -float(s)),
                 wavelengths_nm=case.wavelengths_nm)
    write_raster(hr_path, case.hr_msi, geotransform=(0.0, 1.0, 0.0, 0.0, 0.0, -1.0))
    rows = [{**row, "steps": "-", "base": "-", "seconds": float("nan")} for row in classical_rows(case)]
    started = time.monotonic()
    try:
        result = fit.fit_and_fuse(FusionRequest(lr_path, hr_path, folder / f"{name}_fit.tif", device="cpu"),
                                  folder / f"{name}_fit.safetensors", minutes=minutes, device="cpu")
    except InputError as exc:  # a pair too small for pair mode: the fit refuses it, and the table says so
        refused[name] = str(exc)
        return rows
    seconds = time.monotonic() - started
    rows.append({"scene": name, "scale": s, "method": "fit_and_fuse (pair mode)",
                 **evaluate(case, read_raster(result.out_path)), "steps": f"{result.training.steps}",
                 "base": str(read_card(result.model).config.base), "seconds": seconds})
    return rows


def verdict(name: str, rows: list[dict], reference_psnr: float, refusal: str | None) -> str:
    """One sentence on scene ``name``: the fit (the last of ``rows``) against the reference mode and the best
    classical method, or the fit's refusal."""
    if refusal is not None:
        return f"{name}: the fit refused the pair (\"{refusal}\")"
    fitted, best = rows[-1], max(rows[:-1], key=lambda r: r["PSNR"])
    gap = fitted["PSNR"] - reference_psnr
    return (f"{name}: the fit {fitted['PSNR']:.2f} dB against the reference mode's {reference_psnr:.2f} ({gap:+.2f} "
            f"dB: {'within' if gap >= -TARGET_DB else 'NOT within'} {TARGET_DB:g} dB), the best classical method "
            f"{best['method']} {best['PSNR']:.2f} dB ({fitted['PSNR'] - best['PSNR']:+.2f} dB); base chosen: "
            f"{fitted['base']}, {fitted['steps']} steps")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench/results/fit_wald_pairs_x4.md"))
    parser.add_argument("--minutes", type=float, default=fit.DEFAULT_FIT_MINUTES)
    parser.add_argument("--scenes", nargs="+", choices=WALD_SCENES, default=list(WALD_SCENES))
    parser.add_argument("--keep", type=Path, help="a folder to keep the rasters and models in")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    reference = reference_mode_psnr()
    load = [os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")]
    rows: list[dict] = []
    verdicts: list[str] = []
    refused: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        for name in args.scenes:
            scene_rows = fit_scene(name, args.minutes, folder, refused)
            for row in scene_rows:
                row["dPSNR_vs_reference_mode"] = row["PSNR"] - reference.get(name, float("nan"))
            rows += scene_rows
            load.append(os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan"))
            verdicts.append(verdict(name, scene_rows, reference.get(name, float("nan")), refused.get(name)))
            notes = [" ".join(__doc__.split("\n\n")[3].split()),
                     f"Budget {args.minutes:g} training minutes per scene, on the CPU with every core "
                     f"({os.cpu_count()}); load average (1 min) at the start and after each scene: "
                     + ", ".join(f"{v:.1f}" for v in load) + ".",
                     "Results: " + "; ".join(verdicts) + "."]
            write_results(args.out, rows, COLUMNS, title="The one-step fit on Wald's scenes treated as real pairs "
                          f"(x{SCALE}, pair mode, no reference)", notes=notes)
    print(args.out.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
