# SPDX-License-Identifier: GPL-2.0-or-later
"""``make demo``: fuse the bundled sample scene through qgis_process and print the quality table.

Runs, for CoFusion with the bundled model and for the classical methods, ``cofusion:fuse`` or
``cofusion:fuse_classic`` and then ``cofusion:assess`` against the sample's reference, each as a
``qgis_process run ... --json`` command, exactly as a server user would, and prints one Markdown row per method.

    python tools/demo.py --process "qgis_process.bin" [--keep DIR]
"""
from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SAMPLE = Path(__file__).resolve().parents[1] / "resources" / "sample"
METHODS = ("cofusion", "llr", "gsa", "mtf_glp_hpm", "sfim", "bicubic")
METRICS = ("PSNR", "SSIM", "SAM", "ERGAS")


def run_algorithm(process: list[str], algorithm: str, **parameters: str) -> dict:
    """``qgis_process run cofusion:<algorithm> --json -- NAME=value ...`` -> its results; exits on failure."""
    command = [*process, "run", f"cofusion:{algorithm}", "--json", "--", *(f"{k}={v}" for k, v in parameters.items())]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{shlex.join(command)} failed ({done.returncode}):\n{done.stderr.strip() or done.stdout.strip()}")
    return json.loads(done.stdout[done.stdout.index("{"):])["results"]


def fuse(process: list[str], method: str, out: Path) -> float:
    """Fuse the sample with ``method`` into ``out``; returns the wall time in seconds."""
    inputs = {"LRHSI": str(SAMPLE / "lrhsi.tif"), "HRMSI": str(SAMPLE / "hrmsi.tif"), "OUTPUT": str(out)}
    start = time.perf_counter()
    if method == "cofusion":
        run_algorithm(process, "fuse", **inputs)
    else:
        run_algorithm(process, "fuse_classic", METHOD=method, **inputs)
    return time.perf_counter() - start


def assess(process: list[str], fused: Path, folder: Path) -> dict:
    """Reference metrics of ``fused`` against the sample's reference (x4)."""
    stem = fused.stem
    return run_algorithm(process, "assess", FUSED=str(fused), REFERENCE=str(SAMPLE / "reference.tif"), SCALE="4",
                         DATA_RANGE="1",  # the sample is reflectance on [0, 1]: BENCHMARK.md's peak of 1
                         OUTPUT_TABLE=str(folder / f"{stem}_metrics.csv"),
                         OUTPUT_REPORT=str(folder / f"{stem}_report.html"),
                         OUTPUT_SAM_MAP=str(folder / f"{stem}_sam.tif"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--process", default="qgis_process.bin", help="the qgis_process command line")
    parser.add_argument("--keep", type=Path, help="keep the fused rasters, reports and SAM maps in this folder")
    args = parser.parse_args()
    process = shlex.split(args.process)
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        print("Sample: resources/sample (AVIRIS Jasper Ridge test region, 198 bands; Sentinel-2 B2/B3/B4/B8 "
              "simulated at x4). Metrics on the whole sample, which the bundled model never saw in training.\n")
        print("| method | PSNR (dB) | SSIM | SAM (deg) | ERGAS | fuse time (s) |\n|---|---|---|---|---|---|")
        for method in METHODS:
            fused = folder / f"{method}.tif"
            seconds = fuse(process, method, fused)
            metrics = assess(process, fused, folder)
            print(f"| {method} | {metrics['PSNR']:.2f} | {metrics['SSIM']:.4f} | {metrics['SAM']:.2f} | "
                  f"{metrics['ERGAS']:.3f} | {seconds:.1f} |", flush=True)


if __name__ == "__main__":
    main()
