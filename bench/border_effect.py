# SPDX-License-Identifier: GPL-2.0-or-later
"""How much of a fused result's error lies at the scene's outer border: PSNR / SAM on the test region without its
last k rows and columns, for a fused raster and the classical methods on the same simulated pair.

    .venv/bin/python bench/border_effect.py --scene houston2018_casi_hs --scale 3 \\
        --fused KEEP/houston2018_casi_hs_x3_full_fused.tif [--margins 0 6 12]

``--fused`` is the CoFusion output of ``bench/train_models.py --keep KEEP`` (KEEP/SCENE_xS_full_fused.tif). The
test regions of data/README.md end at the scenes' right and bottom edges, where Wald's simulation reflects the
reference (whole-sample) and the network and the tiler mirror it (half-sample symmetric): within the blur's reach
of the edge the two border models disagree, whatever the method learnt.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from common import SCENES, prepare

from cofusion.core.classic import METHODS
from cofusion.core.metrics import psnr, sam
from cofusion.core.raster import read_raster


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scene", choices=list(SCENES), required=True)
    parser.add_argument("--scale", type=int, required=True)
    parser.add_argument("--fused", type=Path, required=True)
    parser.add_argument("--margins", type=int, nargs="+", default=[0, 6, 12])
    args = parser.parse_args()
    case = prepare(SCENES[args.scene], args.scale)
    results = {"cofusion": read_raster(args.fused)}
    results.update({m: METHODS[m](case.lr_hsi, case.hr_msi, args.scale) for m in ("llr", "gsa")})
    test = case.test
    print("| margin (px) | " + " | ".join(f"{m} PSNR / SAM" for m in results) + " |")
    print("|---|" + "---|" * len(results))
    for k in args.margins:
        window = (slice(None), slice(test.row, test.row_end - k), slice(test.col, test.col_end - k))
        ref = case.reference[window]
        cells = [f"{psnr(ref, image[window]):.2f} / {sam(ref, image[window]):.2f}" for image in results.values()]
        print(f"| {k} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
