# SPDX-License-Identifier: GPL-2.0-or-later
"""Speed and memory of the CoFusion network and of the streaming fusion engine (core.fuse) on the CPU.

From the repository root::

    .venv/bin/python bench/fuse_speed.py --out bench/results/fuse_speed.md [--settings jasper cave]
        [--sizes 512 1024 2048] [--threads 2] [--no-sweep]

Measured with untrained but fully built networks (speed does not depend on the weights) of realistic settings
(``SETTINGS``: band counts and scale of a scene), in this order:

- the machine's fp32 matmul peak (a large ``torch.mm``, best of a few), GFLOP/s;
- the network's FLOPs per output pixel (``torch.utils.flop_counter``: convolutions and matrix products, the
  element-wise operations are not counted) and its parameter count;
- the bare network forward on tiles of the engine's default size and batch: output MP/s, GFLOP/s, share of
  the matmul peak;
- ``fuse_raster`` end to end on a synthetic GeoTIFF pair (written beforehand) for each output size, each run
  in a fresh child process that reports its own peak resident memory (VmHWM), so that peaks never
  mix; the tiler overhead is 1 - (tiles x bare forward time per tile) / end-to-end time;
- a sweep of tile size and batch (bare forward in a child process each: throughput per output pixel after
  the overlap is discounted, and peak memory), which the engine's defaults were chosen from;
- the forward time of the paper's PaviaU x4 setting for small inputs, next to the paper's 5.65 ms.
"""
from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import markdown_table, peak_rss_mb, run_child, write_results
from osgeo import osr
from scipy.ndimage import gaussian_filter
from torch.utils.flop_counter import FlopCounterMode

from cofusion.core.checkpoint import Checkpoint, ModelCard, Normalization
from cofusion.core.fuse import DEFAULT_BATCH, fuse_raster
from cofusion.core.inference import NetworkPredictor
from cofusion.core.model import ModelConfig, build_model
from cofusion.core.raster import write_raster
from cofusion.core.tiling import default_tiling, tile_count

log = logging.getLogger("fuse_speed")

#: name -> (HSI bands, MSI bands, scale): AVIRIS Jasper Ridge + Sentinel-2 10 m bands, CAVE + 3 Sentinel-2
#: visible bands, ROSIS PaviaU + 4 MSI bands (the paper's efficiency setting), EnMAP 30 m + Sentinel-2 B2, B3, B4,
#: B8 at 10 m. The one list of settings: bench/profile_forward.py reads it too.
SETTINGS = {"jasper": (198, 4, 4), "cave": (20, 3, 4), "paviau": (103, 4, 4), "enmap": (224, 4, 3)}
SIZES = (512, 1024, 2048)
#: Tile sweep: tile = step + overlap with the default overlap; batches; the largest batch x tile^2 timed.
SWEEP_STEPS = (128, 256, 512)
SWEEP_BATCHES = (1, 2, 4, 8)
SWEEP_MAX_PIXELS = 1_300_000
#: Output edges (HR pixels) the paper's 5.65 ms could mean, timed with the PaviaU setting at batch 1.
PAPER_SIZES = (32, 64, 128, 256)
PAPER_MS = 5.65
#: Memory flatness bound of issue 3: peak RSS of the largest output over that of the smallest.
FLAT_BOUND = 1.25
#: 1 m pixels in UTM 32N for the synthetic rasters.
CRS_EPSG = 32632


def build_predictor(setting: str, threads: int, seed: int = 0) -> NetworkPredictor:
    """A CPU predictor around a freshly initialised network of ``setting`` (identity normalisation)."""
    hsi, msi, scale = SETTINGS[setting]
    config = ModelConfig(hsi, msi, scale)
    torch.manual_seed(seed)
    card = ModelCard(config, Normalization.identity(hsi, msi))
    return NetworkPredictor(Checkpoint(build_model(config).eval(), card, f"untrained {setting}"), device="cpu",
                            threads=threads)


def matmul_peak(size: int = 4096, repeats: int = 3) -> float:
    """Best fp32 GFLOP/s of ``size`` x ``size`` matrix products with torch's current thread count."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    best = min(_timed(lambda: torch.mm(a, b)) for _ in range(repeats))
    return 2 * size ** 3 / best / 1e9


def network_inputs(predictor: NetworkPredictor, tile: int, batch: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Random normalised inputs of the network for ``batch`` tiles of ``tile`` HR pixels, channels-last:
    lr (batch, C_h, tile/s, tile/s), hr (batch, C_m, tile, tile)."""
    gen = torch.Generator().manual_seed(seed)
    s = predictor.scale
    lr = torch.randn(batch, predictor.hsi_bands, tile // s, tile // s, generator=gen)
    hr = torch.randn(batch, predictor.msi_bands, tile, tile, generator=gen)
    return tuple(x.to(predictor.device).contiguous(memory_format=torch.channels_last) for x in (lr, hr))


def flops_per_pixel(predictor: NetworkPredictor, tile: int) -> float:
    """Network FLOPs (multiply and add counted apart) per output pixel of a ``tile`` x ``tile`` forward."""
    lr, hr = network_inputs(predictor, tile, 1)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        predictor.model(lr, hr)
    return counter.get_total_flops() / tile ** 2


def forward_seconds(predictor: NetworkPredictor, tile: int, batch: int, repeats: int) -> float:
    """Median wall time (s) of the bare network forward on ``batch`` tiles of ``tile`` pixels (after a warm-up),
    in eval and inference mode, on the predictor's device and layout."""
    lr, hr = network_inputs(predictor, tile, batch)
    with torch.inference_mode():
        predictor.model(lr, hr)
        return statistics.median(_timed(lambda: predictor.model(lr, hr)) for _ in range(repeats))


def write_pair(folder: Path, setting: str, size: int, seed: int = 0) -> tuple[Path, Path]:
    """A synthetic LRHSI / HRMSI GeoTIFF pair whose fusion is ``size`` x ``size`` HR pixels: smooth abundance
    maps of four endmembers with random spectra (so the output compresses like a real scene), the LRHSI their
    block mean, the HRMSI a random band mix. Returns (LRHSI path, HRMSI path)."""
    hsi, msi, scale = SETTINGS[setting]
    rng = np.random.default_rng(seed)
    abundance = gaussian_filter(rng.random((4, size, size), np.float32), (0, 6, 6))
    spectra = gaussian_filter(rng.random((hsi, 4), np.float32), (3, 0), mode="nearest")
    lr = abundance.reshape(4, size // scale, scale, size // scale, scale).mean(axis=(2, 4))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(CRS_EPSG)
    paths = folder / f"{setting}_{size}_lr.tif", folder / f"{setting}_{size}_hr.tif"
    write_raster(paths[0], np.einsum("ce,ehw->chw", spectra, lr), crs_wkt=srs.ExportToWkt(),
                 geotransform=(500000.0, scale, 0.0, 5000000.0, 0.0, -scale))
    write_raster(paths[1], np.einsum("me,ehw->mhw", rng.random((msi, 4), np.float32), abundance),
                 crs_wkt=srs.ExportToWkt(), geotransform=(500000.0, 1.0, 0.0, 5000000.0, 0.0, -1.0))
    return paths


def child(spec: dict) -> dict:
    """What one child process measures (see ``in_child``): the bare forward time of one batch and, when
    ``spec`` names a pair, the end-to-end fusion; always the process's peak resident memory (MB)."""
    predictor = build_predictor(spec["setting"], spec["threads"])
    result = {"forward_s": forward_seconds(predictor, spec["tile"], spec["batch"], spec["repeats"])}
    if "lr" in spec:
        with tempfile.TemporaryDirectory() as folder:
            fused = fuse_raster(spec["lr"], spec["hr"], Path(folder) / "out.tif", predictor, tile=spec["tile"],
                                overlap=spec["overlap"], batch=spec["batch"])
        result.update(seconds=fused.seconds, tiles=fused.tiles)
    result["rss_mb"] = peak_rss_mb()
    return result


def in_child(**spec: object) -> dict:
    """Run :func:`child` in a fresh interpreter (its own peak memory) and return its result."""
    return run_child(__file__, spec)


def end_to_end(setting: str, sizes: list[int], threads: int, folder: Path, flops: float) -> list[dict]:
    """fuse_raster at the default tiling for each output size, one child process each; rows of the table."""
    predictor = build_predictor(setting, threads)
    tile, overlap = default_tiling(predictor.align)
    rows = []
    for size in sizes:
        lr, hr = write_pair(folder, setting, size)
        got = in_child(setting=setting, threads=threads, tile=tile, overlap=overlap, batch=DEFAULT_BATCH,
                       repeats=2, lr=str(lr), hr=str(hr))
        bare = got["tiles"] * got["forward_s"] / DEFAULT_BATCH
        rows.append({
            "setting": setting, "output": f"{size}x{size}", "tiles": got["tiles"],
            "grid_tiles": tile_count(size, tile, overlap) ** 2, "seconds": got["seconds"],
            "MP/s": size ** 2 / got["seconds"] / 1e6, "GFLOP/s": flops * size ** 2 / got["seconds"] / 1e9,
            "overhead": 1 - bare / got["seconds"], "peak_RSS_MB": got["rss_mb"],
            "RSS_ratio": got["rss_mb"] / (rows[0]["peak_RSS_MB"] if rows else got["rss_mb"]),
        })
        log.info("%s", rows[-1])
        for path in (lr, hr):
            path.unlink()
    return rows


def sweep(setting: str, threads: int) -> list[dict]:
    """Bare forward throughput per useful output pixel ((tile - overlap)^2 per tile) and peak memory for tile
    steps x batches, one child process each."""
    predictor = build_predictor(setting, threads)
    default_tile, overlap = default_tiling(predictor.align)
    rows = []
    for step in SWEEP_STEPS:
        tile = step + overlap
        for batch in SWEEP_BATCHES:
            if batch * tile ** 2 > SWEEP_MAX_PIXELS and batch > 1:
                continue
            got = in_child(setting=setting, threads=threads, tile=tile, overlap=overlap, batch=batch, repeats=1)
            rows.append({"setting": setting, "tile": tile, "overlap": overlap, "batch": batch,
                         "forward_s": got["forward_s"], "useful_MP/s": batch * step ** 2 / got["forward_s"] / 1e6,
                         "peak_RSS_MB": got["rss_mb"], "default": (tile, batch) == (default_tile, DEFAULT_BATCH)})
            log.info("%s", rows[-1])
    return rows


def paper_rows(threads: int) -> list[dict]:
    """Forward time of the PaviaU setting at batch 1 for each output edge of ``PAPER_SIZES``, and the
    throughput 5.65 ms would need at that size."""
    predictor = build_predictor("paviau", threads)
    rows = []
    for size in PAPER_SIZES:
        flops = flops_per_pixel(predictor, size) * size ** 2
        seconds = forward_seconds(predictor, size, 1, repeats=5)
        rows.append({"LR_input": f"{size // predictor.scale}x{size // predictor.scale}", "output": f"{size}x{size}",
                     "GFLOP": flops / 1e9, "ms": seconds * 1e3, "GFLOP/s": flops / seconds / 1e9,
                     "GFLOP/s_for_5.65_ms": flops / (PAPER_MS / 1e3) / 1e9})
    return rows


E2E_COLUMNS = {"setting": "", "output": "", "tiles": "d", "grid_tiles": "d", "seconds": ".1f", "MP/s": ".3f",
               "GFLOP/s": ".1f", "overhead": ".0%", "peak_RSS_MB": ".0f", "RSS_ratio": ".2f"}
NET_COLUMNS = {"setting": "", "bands": "", "params_M": ".3f", "MFLOP/px": ".3f", "tile": "d", "batch": "d",
               "forward_s": ".2f", "MP/s": ".3f", "GFLOP/s": ".1f", "of_peak": ".0%"}
SWEEP_COLUMNS = {"setting": "", "tile": "d", "overlap": "d", "batch": "d", "forward_s": ".2f",
                 "useful_MP/s": ".3f", "peak_RSS_MB": ".0f"}
PAPER_COLUMNS = {"LR_input": "", "output": "", "GFLOP": ".3f", "ms": ".1f", "GFLOP/s": ".1f",
                 "GFLOP/s_for_5.65_ms": ".0f"}


def network_row(setting: str, threads: int, peak: float) -> tuple[dict, float]:
    """Parameters, FLOPs per pixel and bare forward throughput at the default tiling; (row, FLOPs/pixel)."""
    predictor = build_predictor(setting, threads)
    tile = default_tiling(predictor.align)[0]
    flops = flops_per_pixel(predictor, tile)
    seconds = forward_seconds(predictor, tile, DEFAULT_BATCH, repeats=3)
    rate = DEFAULT_BATCH * tile ** 2 * flops / seconds / 1e9
    row = {"setting": setting, "bands": "{}/{}/x{}".format(*SETTINGS[setting]),
           "params_M": sum(p.numel() for p in predictor.model.parameters()) / 1e6, "MFLOP/px": flops / 1e6,
           "tile": tile, "batch": DEFAULT_BATCH, "forward_s": seconds,
           "MP/s": DEFAULT_BATCH * tile ** 2 / seconds / 1e6, "GFLOP/s": rate, "of_peak": rate / peak}
    log.info("%s", row)
    return row, flops


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench/results/fuse_speed.md"), help="Markdown result file")
    parser.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=["jasper", "cave"])
    parser.add_argument("--sizes", nargs="+", type=int, default=list(SIZES), help="output edges, HR pixels")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (BENCHMARK.md's machine: 2)")
    parser.add_argument("--no-sweep", dest="sweep", action="store_false", help="skip the tile/batch sweep")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    torch.set_num_threads(args.threads)
    peak = matmul_peak()
    log.info("matmul peak %.1f GFLOP/s", peak)
    networks, e2e = [], []
    with tempfile.TemporaryDirectory() as folder:
        for setting in args.settings:
            row, flops = network_row(setting, args.threads, peak)
            networks.append(row)
            e2e += end_to_end(setting, args.sizes, args.threads, Path(folder), flops)
    sweeps = sweep(args.settings[0], args.threads) if args.sweep else []
    paper = paper_rows(args.threads)
    write_results(args.out, e2e, E2E_COLUMNS, title="Fusion speed and memory (core.fuse, CoFusionNet on the CPU)",
                  notes=notes(peak, networks, e2e, sweeps, paper))
    log.info("wrote %s", args.out)


def notes(peak: float, networks: list[dict], e2e: list[dict], sweeps: list[dict], paper: list[dict]) -> list[str]:
    """The paragraphs and side tables before the end-to-end table."""
    worst = max((r["RSS_ratio"] for r in e2e if r["output"] == e2e[-1]["output"]), default=float("nan"))
    return [
        f"fp32 matmul peak (torch.mm 4096^2, best of 3): {peak:.1f} GFLOP/s.",
        "Network (untrained, fully built; FLOPs of convolutions and matrix products per output pixel, "
        "bare forward in eval + inference mode, channels-last, on the engine's default tile and batch):",
        markdown_table(networks, NET_COLUMNS),
        "End to end (table at the end): `fuse_raster` with the default tiling on a synthetic GeoTIFF pair, each "
        "size in a fresh child process; GFLOP/s counts the network FLOPs per output pixel (useful work, the "
        "overlap recomputation not counted); tiles counts the tiles predicted, grid_tiles those of the tile "
        "grid (the difference is recomputed at the engine's block borders); overhead is the share of the time "
        "outside the bare network forward of the same tiles (the predictor's scene pre-pass, reading, padding, "
        "normalising, blending, compressing and writing); "
        f"peak_RSS_MB is the child's VmHWM and RSS_ratio that over the smallest size's (bound "
        f"{FLAT_BOUND}: largest ratio {worst:.2f}).",
        *(["Tile and batch sweep (bare forward in a fresh child each; useful_MP/s counts the (tile - "
           "overlap)^2 pixels a tile contributes, so it includes the overlap cost):",
           markdown_table(sweeps, SWEEP_COLUMNS), best_note(sweeps)] if sweeps else []),
        "The paper's 5.65 ms per x4 PaviaU inference on a Xeon CPU (section 4.4, Fig. 9) gives no input size. "
        "Our PaviaU network (103/4/x4) at batch 1, median of 5 forwards, and the throughput 5.65 ms would need:",
        markdown_table(paper, PAPER_COLUMNS),
    ]


def best_note(sweeps: list[dict]) -> str:
    """Which sweep row has the best useful throughput, and its memory next to the default tiling's."""
    return " ".join(
        f"{what}: tile {r['tile']}, batch {r['batch']}, {r['useful_MP/s']:.3f} MP/s, {r['peak_RSS_MB']:.0f} MB."
        for what, r in (("Best useful throughput", max(sweeps, key=lambda r: r["useful_MP/s"])),
                        *(("The engine's default", r) for r in sweeps if r["default"])))


def _timed(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
