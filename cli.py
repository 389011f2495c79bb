# SPDX-License-Identifier: GPL-2.0-or-later
"""``python -m cofusion``: the command line.

Subcommands (more can be added as ``argparse`` subparsers with a ``handler``):

    fuse   fuse an LRHSI and an HRMSI raster into an HRHSI GeoTIFF with a CoFusion checkpoint
    fit    fit a model on the pair (pair-mode training), then fuse the pair with it, in one step
    srf    ``srf --list``: the sensor spectral response presets, one line each (sensor, bands, wavelengths)
    wavelengths  give a hyperspectral raster without wavelength metadata those of a spectrometer's band table
    batch  fuse the pairs of a manifest on Dask (core.batch), each into a cloud-optimised GeoTIFF
    report a quality report of a fusion of a real pair without ground truth (core.pair_report)

Exit codes: 0 done, 2 a problem with the inputs, the model or the output (the message says which and how to
fix it; nothing is left half-written), 128 + the signal's number when interrupted (130 for Ctrl-C, 143 for
SIGTERM, 129 for SIGHUP: the run stops cleanly after the batch in progress, a second signal stops at once, and
nothing is left at the output or beside it; ``core.interrupts``). The model's runtime (PyTorch) is imported
only when it is needed.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from .core import service
from .core.device import DEVICES
from .core.errors import Canceled, CoFusionError, InputError
from .core.fuse import DEFAULT_BATCH
from .core.interrupts import Interrupts
from .core.progress import ProgressBar
from .core.service import FusionRequest
from .core.srf import describe_presets
from .core.tiling import DEFAULT_BLOCK, DEFAULT_OVERLAP, DEFAULT_STEP
from .core.wavelengths import SPECTROMETERS, assign_wavelengths
from .core.window import Window

log = logging.getLogger(__name__)
T = TypeVar("T")

EXIT_ERROR = 2


def with_progress(quiet: bool, work: Callable[[ProgressBar | None], T]) -> T:
    """``work(bar)`` with a progress bar on stderr (None when ``quiet``), whose line is ended however it returns."""
    bar = None if quiet else ProgressBar(sys.stderr)
    try:
        return work(bar)
    finally:
        if bar is not None:
            bar.close()


def _region(text: str) -> Window:
    """argparse type: 'COL0,ROW0,COL1,ROW1' -> Window (end exclusive)."""
    try:
        col0, row0, col1, row1 = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not four whole numbers COL0,ROW0,COL1,ROW1 (e.g. 0,0,1024,1024)") from None
    if col1 <= col0 or row1 <= row0:
        raise argparse.ArgumentTypeError(f"'{text}' is empty: COL1 must exceed COL0 and ROW1 must exceed ROW0")
    return Window(col0, row0, col1 - col0, row1 - row0)


def _at_least(minimum: int):
    """argparse type factory: a whole number >= ``minimum``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} must be at least {minimum}")
        return value
    return parse


_positive = _at_least(1)
_whole = _at_least(0)


def _add_pair(parser: argparse.ArgumentParser) -> None:
    """The --lrhsi and --hrmsi options of the commands that fuse a pair."""
    parser.add_argument("--lrhsi", required=True, metavar="FILE",
                        help="low-resolution hyperspectral raster (any format GDAL reads)")
    parser.add_argument("--hrmsi", required=True, metavar="FILE",
                        help="high-resolution multispectral raster on a grid that subdivides the LRHSI's")


def _add_fuse(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "fuse",
        help="fuse an LRHSI and an HRMSI into an HRHSI GeoTIFF",
        description=(
            "Fuse a low-resolution hyperspectral raster (LRHSI) with a co-registered high-resolution "
            "multispectral raster (HRMSI) into a float32 GeoTIFF with the LRHSI's bands on the HRMSI's grid. "
            "The scene is processed tile by tile (memory does not grow with the scene). All sizes are in HR "
            "pixels, i.e. pixels of the output."
        ),
    )
    _add_pair(parser)
    parser.add_argument("--model", metavar="FILE",
                        help="CoFusion checkpoint (.safetensors) trained for these band counts and scale; default "
                             "the bundled demo model (198 AVIRIS bands + 4 multispectral bands at x4, the sample "
                             "scene's)")
    parser.add_argument("--out", required=True, metavar="FILE", help="output GeoTIFF (.tif); replaced if it exists")
    parser.add_argument("--tile", type=_positive, metavar="PIXELS",
                        help="edge of the square tiles the model runs on, in HR pixels; a multiple of the model's "
                             f"alignment (16 for the CoFusion network). Default {DEFAULT_STEP + DEFAULT_OVERLAP} "
                             "(the default overlap plus a 256-pixel step, rounded up to the alignment)")
    parser.add_argument("--overlap", type=_whole, metavar="PIXELS",
                        help="HR pixels shared by neighbouring tiles, blended with a smooth window so no seam "
                             "shows; a multiple of the alignment, at most half the tile. Default "
                             f"{DEFAULT_OVERLAP} (rounded up to the alignment)")
    parser.add_argument("--batch", type=_positive, default=DEFAULT_BATCH, metavar="TILES",
                        help="tiles per model call: more is faster on a GPU and needs more memory. "
                             f"Default {DEFAULT_BATCH}")
    parser.add_argument("--block", type=_positive, default=DEFAULT_BLOCK, metavar="PIXELS",
                        help="the output is fused in full-height strips of at most BLOCK HR pixels wide (rounded "
                             "down to a multiple of tile - overlap, at least the tile), with one tile column "
                             "computed twice at each strip border: memory grows with the strip width (the "
                             "blending keeps (bands + 1) x overlap x BLOCK float32 values, 104 MB for 198 bands at "
                             f"the default), never with the scene. Default {DEFAULT_BLOCK}")
    parser.add_argument("--device", default=DEVICES[0],
                        help="where the model runs: auto (a CUDA GPU when present, else the CPU), cpu, cuda or "
                             f"cuda:N. Default {DEVICES[0]}")
    parser.add_argument("--threads", type=_positive, metavar="N",
                        help="CPU threads the model may use. Default: every core available to this process")
    parser.add_argument("--region", type=_region, metavar="COL0,ROW0,COL1,ROW1",
                        help="fuse only this window of the output grid: HR pixel columns COL0..COL1-1 and rows "
                             "ROW0..ROW1-1, counted from the top-left of the area both inputs cover. Its pixels "
                             "equal those of a whole run (tiles read their context from outside the window)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_fuse)


def _fuse(args: argparse.Namespace, interrupts: Interrupts) -> int:
    request = FusionRequest(args.lrhsi, args.hrmsi, args.out, model=args.model, device=args.device,
                            threads=args.threads, tile=args.tile, overlap=args.overlap, batch=args.batch,
                            block=args.block, region=args.region)
    result = with_progress(args.quiet, lambda bar: service.fuse(request, progress=bar, cancel=interrupts))
    sys.stdout.write(f"wrote {result.out_path}: {result.width} x {result.height} pixels, x{result.scale}, "
                     f"{result.tiles} tiles in {result.seconds:.1f} s\n")
    return 0


def _add_classic(commands: argparse._SubParsersAction) -> None:
    from .core.classic import METHODS

    parser = commands.add_parser(
        "classic",
        help="fuse an LRHSI and an HRMSI with a classical method (GSA, LLR, MTF-GLP-HPM, ...): no model",
        description=(
            "Fuse a pair with a classical pansharpening method fitted on the pair itself (core.classic), streamed "
            "in blocks: the baselines to compare CoFusion with, and the fallback where no model fits. The output "
            "is a float32 GeoTIFF with the LRHSI's bands on the HRMSI's grid, as 'fuse' writes it."
        ),
    )
    _add_pair(parser)
    parser.add_argument("--method", required=True, choices=list(METHODS),
                        help="gsa (Gram-Schmidt adaptive), llr (local linear regression), mtf_glp_hpm, sfim, blend "
                             "(the mean of gsa and llr with back-projection, the network's base) or bicubic (no "
                             "detail: the reference every method must beat)")
    parser.add_argument("--out", required=True, metavar="FILE", help="output GeoTIFF (.tif); replaced if it exists")
    parser.add_argument("--srf", metavar="SRF",
                        help="the HRMSI's spectral response (a preset such as sentinel2a:B2,B3,B4,B8 or rgb, or a "
                             "CSV), to mark each band's detail as measured or extrapolated in the output's metadata. "
                             "Default: the HRMSI's band metadata, else no marking")
    parser.add_argument("--region", type=_region, metavar="COL0,ROW0,COL1,ROW1",
                        help="fuse only this window of the output grid (HR pixels counted from the top-left of the "
                             "area both inputs cover, end exclusive); the method's weights are fitted on the blocks "
                             "under it. Default: everything")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_classic)


def _classic(args: argparse.Namespace, interrupts: Interrupts) -> int:
    from .core.classic_raster import fuse_classic_raster

    started = time.perf_counter()
    out = with_progress(args.quiet, lambda bar: fuse_classic_raster(
        args.lrhsi, args.hrmsi, args.out, args.method, srf=args.srf, region=args.region, progress=bar,
        cancel=interrupts))
    sys.stdout.write(f"wrote {out} ({args.method}) in {time.perf_counter() - started:.1f} s\n")
    return 0


def _add_fit(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "fit",
        help="fit a model on the pair (pair-mode training), then fuse the pair with it: one step",
        description=(
            "For a pair no model at hand fits (other sensors, bands or scale): train a CoFusion network on the "
            "pair itself by reduced-resolution self-supervision (both rasters degraded by the scale; the MSI "
            "response estimated from the pair), then fuse the pair at full resolution with it, and keep the model. "
            "The model kept scores at least as well as the network's classical base (its starting point) on the "
            "validation strip the training never sees. Nothing is kept unless both phases succeed: an error, "
            "Ctrl-C or a signal leaves no model and no output. Sizes are in HR pixels of the output grid."
        ),
    )
    _add_pair(parser)
    parser.add_argument("--out", required=True, metavar="FILE", help="output GeoTIFF (.tif); replaced if it exists")
    parser.add_argument("--model-out", required=True, metavar="FILE",
                        help="the fitted model (.safetensors), its training log written beside it as .log.csv; "
                             "replaced if it exists")
    parser.add_argument("--minutes", type=float, metavar="MIN",
                        help="the training budget in minutes, above 0 (the reading of the pair before it and the "
                             "fusion after it come on top). Default 5, unless --iterations is given")
    parser.add_argument("--iterations", type=int, metavar="N",
                        help="a budget of training steps instead of (or with --minutes, besides) minutes")
    parser.add_argument("--region", type=_region, metavar="COL0,ROW0,COL1,ROW1",
                        help="fuse only this window of the output grid (HR pixels counted from the top-left of the "
                             "area both inputs cover, end exclusive). Default: everything")
    parser.add_argument("--train-region", type=_region, metavar="COL0,ROW0,COL1,ROW1",
                        help="train on this window of the output grid only (same frame as --region); its validation "
                             "strip is carved from inside it. Default: the whole pair")
    parser.add_argument("--device", default=DEVICES[0],
                        help="where training and fusion run: auto (a CUDA GPU when present, else the CPU), cpu, cuda "
                             f"or cuda:N. Default {DEVICES[0]}")
    parser.add_argument("--threads", type=_positive, metavar="N",
                        help="CPU threads of the training and the fusion. Default: every core available to this "
                             "process")
    parser.add_argument("--start-from", metavar="MODEL",
                        help="fine-tune this model (.safetensors) instead of fitting a new one: it must fit the "
                             "pair's bands and scale; its architecture and base are kept")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_fit)


def _fit(args: argparse.Namespace, interrupts: Interrupts) -> int:
    from .core import fit

    minutes = args.minutes
    if minutes is None and args.iterations is None:
        minutes = fit.DEFAULT_FIT_MINUTES
    request = FusionRequest(args.lrhsi, args.hrmsi, args.out, device=args.device, threads=args.threads,
                            region=args.region)
    result = with_progress(args.quiet, lambda bar: fit.fit_and_fuse(
        request, args.model_out, minutes=minutes, iterations=args.iterations, training_region=args.train_region,
        device=args.device, threads=args.threads, progress=bar, cancel=interrupts, start_from=args.start_from))
    base = result.base_metrics.get("PSNR", float("nan"))
    kept = "the classical base itself (no step beat it)" if result.kept_base else f"step {result.steps}"
    sys.stdout.write(
        f"wrote {result.out_path}: {result.fusion.width} x {result.fusion.height} pixels, x{result.fusion.scale}, "
        f"in {result.seconds:.1f} s\n"
        f"wrote {result.model} (log {result.log}): {result.training.steps} steps, kept {kept}; validation PSNR "
        f"{result.metrics.get('PSNR', float('nan')):.2f} dB, the classical base {base:.2f} dB\n"
        + ("" if result.used == "model" else f"fused with {result.used}, which scored "
           f"{result.classical[result.used]['PSNR']:.2f} dB on the same check, above the model\n"))
    return 0


def _add_srf(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "srf",
        help="list the sensor spectral response presets",
        description=(
            "The sensor presets a multispectral spectral response (SRF) can name in simulation and training: "
            "NAME for its default bands, NAME:B2,B3 for those bands, NAME:B1-B130 for a range of bands, or the "
            "path of a CSV of responses instead."
        ),
    )
    parser.add_argument("--list", action="store_true",
                        help="print every preset with its sensor, bands and the wavelengths they span")
    parser.set_defaults(handler=_srf)


def _srf(args: argparse.Namespace, _interrupts: Interrupts) -> int:
    if not args.list:
        raise InputError("nothing to do: give --list to print the sensor presets")
    lines = describe_presets()
    width = max(len(name) for name in lines)
    sys.stdout.write("".join(f"{name:<{width}}  {line}\n" for name, line in lines.items()))
    return 0


def _add_wavelengths(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "wavelengths",
        help="give a hyperspectral raster that lacks them the wavelengths of a spectrometer's band table",
        description=(
            "Write a copy of a hyperspectral raster without wavelength metadata (e.g. an EnMAP or PRISMA product "
            "converted by another tool, or a cube cut with gdal_translate) whose bands carry the centre "
            "wavelengths and FWHM of a spectrometer's band table, so that it can be fused, simulated from and "
            "plotted in nm. Pixels, georeference, nodata and band scale/offset are kept; the output's metadata "
            "item cofusion_wavelength_source says the wavelengths were assigned, not measured."
        ),
    )
    parser.add_argument("--sensor", required=True, metavar="SENSOR[:BANDS]",
                        help=f"the spectrometer: {', '.join(SPECTROMETERS)}; for a file holding only some of its "
                             "bands, list them in the file's order, e.g. enmap:B1-B130 or enmap:B1-B50,B60-B224")
    parser.add_argument("input", metavar="IN", help="the hyperspectral raster (any format GDAL reads)")
    parser.add_argument("output", metavar="OUT",
                        help="the output: .vrt for a virtual raster referring to IN (instant, nothing big written; "
                             "keep IN where it is) or .tif for a GeoTIFF copy; replaced if it exists")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the wavelengths IN already has (without it such a file is refused)")
    parser.set_defaults(handler=_wavelengths)


def _wavelengths(args: argparse.Namespace, interrupts: Interrupts) -> int:
    out = assign_wavelengths(args.input, args.sensor, args.output, overwrite=args.overwrite, cancel=interrupts)
    sys.stdout.write(f"wrote {out}: the wavelengths and FWHM of '{args.sensor.strip()}'\n")
    return 0


def _add_batch(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "batch",
        help="fuse the pairs of a manifest on Dask, each into a cloud-optimised GeoTIFF",
        description=(
            "Fuse many scenes on Dask: every pair of MANIFEST (a CSV with the columns lrhsi, hrmsi, model, output "
            "and optionally method; inputs relative to the manifest's folder, outputs relative to --out; an empty "
            "model is the bundled one, a method such as gsa a classical method instead) is split into full-height "
            "stripes fused as Dask tasks, then put together into a cloud-optimised GeoTIFF equal to a "
            "single-process 'fuse' with the same settings and --threads. A rerun after a crash computes only the "
            "stripes that are missing (they are kept in DIR/.cofusion-batch). A pair that fails is reported and "
            "does not stop the others. Exit code 0 when every pair was written, 2 when one failed. Needs "
            "'pip install -r requirements-batch.txt'."
        ),
    )
    parser.add_argument("manifest", metavar="MANIFEST.csv", help="the CSV of pairs")
    parser.add_argument("--out", required=True, metavar="DIR", help="the folder the outputs are written to")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="a running Dask scheduler, e.g. tcp://host:8786 (its workers must see the same files "
                             "under the same paths). Default: a local cluster on this machine")
    parser.add_argument("--workers", type=_positive, metavar="N",
                        help="worker processes of the local cluster. Default: one per core")
    parser.add_argument("--threads-per-worker", type=_positive, default=1, metavar="T",
                        help="tasks each local worker runs at once. Default 1")
    parser.add_argument("--threads", type=_positive, metavar="N",
                        help="CPU threads of the model in each task (results depend on it in their last bits). "
                             "Default: the cores shared among the local cluster's tasks, 1 on a scheduler given by "
                             "address")
    parser.add_argument("--device", default=DEVICES[0],
                        help=f"where the model runs: auto, cpu, cuda or cuda:N. Default {DEVICES[0]}")
    parser.add_argument("--tile", type=_positive, metavar="PIXELS", help="as for 'fuse'")
    parser.add_argument("--overlap", type=_whole, metavar="PIXELS", help="as for 'fuse'")
    parser.add_argument("--batch", type=_positive, default=DEFAULT_BATCH, metavar="TILES",
                        help=f"as for 'fuse'. Default {DEFAULT_BATCH}")
    parser.add_argument("--block", type=_positive, default=DEFAULT_BLOCK, metavar="PIXELS",
                        help="the width of the stripes, one Dask task each (rounded down to a multiple of tile - "
                             f"overlap): narrower stripes spread a scene over more workers. Default {DEFAULT_BLOCK}")
    parser.add_argument("--connect-timeout", type=float, default=30.0, metavar="SECONDS",
                        help="how long to try to reach --scheduler. Default 30")
    parser.set_defaults(handler=_batch)


def _batch(args: argparse.Namespace, interrupts: Interrupts) -> int:
    from .core.batch import BatchSettings, run_batch

    def line(_fraction: float, text: str) -> None:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()

    settings = BatchSettings(device=args.device, threads=args.threads, tile=args.tile, overlap=args.overlap,
                             batch=args.batch, block=args.block)
    report = run_batch(args.manifest, args.out, settings=settings, scheduler=args.scheduler, workers=args.workers,
                       threads_per_worker=args.threads_per_worker, connect_timeout=args.connect_timeout,
                       progress=line, cancel=interrupts)
    sys.stdout.write(report.table())
    if report.canceled:
        raise Canceled("the batch stopped; the finished blocks are kept, and running it again computes only the "
                       "others.")
    return 0 if report.ok else EXIT_ERROR


def _add_report(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "report",
        help="a quality report without ground truth for the fusion of a real pair (HTML, consistency map)",
        description=(
            "Assess a fused raster made from a real pair without a reference (core.pair_report): the "
            "reduced-resolution check (both inputs degraded by the scale, fused again with the same method and "
            "compared with the LRHSI: PSNR, SAM, ERGAS per band and overall, against plain bicubic upsampling), the "
            "full-resolution D_lambda, D_s, QNR and HQNR, and the consistency map (the fused raster degraded by the "
            "sensor model against the LRHSI: SAM and RMSE per LR pixel). Bands outside the HRMSI's spectral "
            "coverage are scored apart. Writes DIR/report.html (one self-contained page), DIR/consistency.tif "
            "and DIR/per_band.csv."
        ),
    )
    parser.add_argument("--lrhsi", required=True, metavar="FILE", help="the low-resolution hyperspectral raster")
    parser.add_argument("--hrmsi", required=True, metavar="FILE", help="the high-resolution multispectral raster")
    parser.add_argument("--fused", required=True, metavar="FILE", help="the fused raster made from this pair")
    how = parser.add_mutually_exclusive_group(required=True)
    how.add_argument("--method", metavar="NAME",
                     help="the classical method the fused raster was made with (as for 'fuse_classic', e.g. gsa "
                          "or llr)")
    how.add_argument("--model", metavar="FILE", help="the CoFusion checkpoint (.safetensors) it was made with")
    parser.add_argument("--out", required=True, metavar="DIR", help="the folder the report is written to (created "
                        "if missing)")
    parser.add_argument("--compare", default="", metavar="NAMES",
                        help="more classical methods for the reduced-resolution check, comma-separated (e.g. "
                             "gsa,llr); bicubic always runs")
    parser.add_argument("--srf", metavar="SRF",
                        help="the HRMSI's spectral response (a preset such as sentinel2a:B2,B3,B4,B8 or rgb, or a "
                             "CSV), for the split into supported and extrapolated bands. Default: the HRMSI's band "
                             "metadata, else estimated from the pair")
    parser.add_argument("--device", default=DEVICES[0],
                        help=f"where a model runs: auto, cpu, cuda or cuda:N. Default {DEVICES[0]}")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_report)


def _report(args: argparse.Namespace, interrupts: Interrupts) -> int:
    from .core.pair_report import pair_report
    from .training.api import estimate_srf

    result = with_progress(args.quiet, lambda bar: pair_report(
        args.lrhsi, args.hrmsi, args.fused, args.method or args.model, args.out,
        compare=[m for m in args.compare.split(",") if m.strip()], srf=args.srf, srf_estimator=estimate_srf,
        device=args.device, progress=bar, cancel=interrupts))
    scores = "; ".join(f"{name} PSNR {c.psnr:.2f} dB, SAM {c.sam:.2f}, ERGAS {c.ergas:.2f}"
                       for name, c in result.candidates.items())
    sys.stdout.write(
        f"wrote {result.html}, {result.consistency_map} and {result.per_band_csv}\n"
        f"reduced resolution: {scores}\n"
        f"full resolution: QNR {result.qnr['QNR']:.4f} (D_lambda {result.qnr['D_lambda']:.4f}, D_s "
        f"{result.qnr['D_s']:.4f}), HQNR {result.hqnr:.4f}\n" + "".join(f"{line}\n" for line in result.verdict)
        + "".join(f"note: {note}\n" for note in result.notes))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``cofusion`` argument parser with one subparser per subcommand."""
    parser = argparse.ArgumentParser(
        prog="python -m cofusion",
        description="CoFusion: fuse low-resolution hyperspectral and high-resolution multispectral images.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens (to stderr)")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    _add_fuse(commands)
    _add_classic(commands)
    _add_fit(commands)
    _add_srf(commands)
    _add_wavelengths(commands)
    _add_batch(commands)
    _add_report(commands)
    return parser


def main(argv: Sequence[str] | None = None, interrupts: Interrupts | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the process exit code.

    ``interrupts``: the signal policy already in force (``__main__`` installs it before anything is imported, so
    that a signal during start-up is handled too); None installs one for this call.
    """
    if interrupts is None:
        with Interrupts() as own:
            return main(argv, own)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help(sys.stderr)
        return EXIT_ERROR
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s: %(message)s", stream=sys.stderr)
    try:
        return args.handler(args, interrupts)
    except Canceled as exc:
        sys.stderr.write(f"canceled: {exc}\n")
        return interrupts.exit_code
    except CoFusionError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_ERROR
    except KeyboardInterrupt:
        sys.stderr.write("interrupted; no output was written\n")
        return interrupts.exit_code
