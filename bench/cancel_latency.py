# SPDX-License-Identifier: GPL-2.0-or-later
"""How long a cancel takes to stop a fusion: from the moment ``cancel()`` starts returning True to the moment
``fuse_raster`` has raised Canceled and deleted its temporary file, at random moments of a run.

From the repository root::

    .venv/bin/python bench/cancel_latency.py --out bench/results/cancel_latency.md [--settings jasper cave]
        [--size 768] [--runs 8] [--threads 2]

Each setting (band counts and scale, ``fuse_speed.SETTINGS``) fuses a synthetic pair of ``size`` x ``size`` output
pixels with an untrained network of that setting, at the engine's default tile and batch; a timer requests the
cancel at a uniform random moment between 0 and the time of one whole run (so from the pre-pass to the last
batch). The engine checks cancel before every batch, so the latency is bounded by one batch's time (the
reference column: the median bare forward time of one batch). This replaces the timing assertion the reliability
suite used to make (a test asserts behaviour; the numbers live here).
"""
from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import threading
import time
from pathlib import Path

from common import write_results
from fuse_speed import SETTINGS, build_predictor, forward_seconds, write_pair

from cofusion.core.errors import Canceled
from cofusion.core.fuse import DEFAULT_BATCH, fuse_raster
from cofusion.core.tiling import default_tiling


def one_run(lr: Path, hr: Path, out: Path, predictor, delay: float | None) -> tuple[float, float | None]:
    """Fuse with a cancel requested ``delay`` s after the start (None: never); returns (wall time of the run,
    seconds from the request to Canceled, or None when the run ended first)."""
    requested: list[float] = []
    timer = None if delay is None else threading.Timer(delay, lambda: requested.append(time.perf_counter()))
    started = time.perf_counter()
    if timer is not None:
        timer.start()
    try:
        fuse_raster(lr, hr, out, predictor, cancel=lambda: bool(requested))
        latency = None
    except Canceled:
        latency = time.perf_counter() - requested[0]
    finally:
        if timer is not None:
            timer.cancel()
    if any(p.name.startswith(f".{out.name}") for p in out.parent.iterdir()):
        raise SystemExit(f"a temporary file of {out} was left behind")
    return time.perf_counter() - started, latency


def measure(setting: str, size: int, runs: int, threads: int, folder: Path, seed: int) -> dict:
    predictor = build_predictor(setting, threads)
    lr, hr = write_pair(folder, setting, size)
    out = folder / f"{setting}_fused.tif"
    whole, _ = one_run(lr, hr, out, predictor, None)
    rng = random.Random(seed)
    latencies = [latency for latency in (one_run(lr, hr, out, predictor, rng.uniform(0.0, whole))[1]
                                         for _ in range(runs)) if latency is not None]
    tile, _overlap = default_tiling(predictor.align)
    return {"setting": setting, "bands": f"{predictor.hsi_bands}+{predictor.msi_bands}", "size": size,
            "run_s": whole, "batch_s": forward_seconds(predictor, tile, DEFAULT_BATCH, 3), "canceled": len(latencies),
            "median_s": statistics.median(latencies) if latencies else float("nan"),
            "max_s": max(latencies) if latencies else float("nan")}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--settings", nargs="+", default=["jasper", "cave"], choices=sorted(SETTINGS))
    parser.add_argument("--size", type=int, default=768, help="output edge in HR pixels")
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        rows = [measure(s, args.size, args.runs, args.threads, Path(tmp), args.seed) for s in args.settings]
    columns = {"setting": "", "bands": "", "size": "d", "run_s": ".1f", "batch_s": ".2f", "canceled": "d",
               "median_s": ".2f", "max_s": ".2f"}
    write_results(args.out, rows, columns, title="Cancel latency of the fusion engine",
                  notes=["run_s: one whole run; batch_s: the bare forward of one batch at the default tile; "
                         "canceled: runs the request reached before they ended; median_s / max_s: seconds from "
                         "the request to Canceled (temporary file deleted)."])


if __name__ == "__main__":
    main()
