# SPDX-License-Identifier: GPL-2.0-or-later
"""``python -m cofusion.training``: train CoFusion on your own scenes. Run with --help for every option.

  reference  HR hyperspectral scene(s) + an MSI spectral response: pairs simulated by Wald's protocol.
  pair       a real co-registered LRHSI + HRMSI pair, no reference: reduced-resolution self-supervision.

This command line is a contract: scripts and the QGIS Processing algorithm rely on its options.
"""
from __future__ import annotations

import argparse
import logging
import sys

from ..core.errors import Canceled, CoFusionError
from ..core.interrupts import Interrupts
from ..core.model.config import AUTO_BASE, AUTO_CANDIDATES, BASE_ALIASES, BASES
from ..core.progress import ProgressBar
from ..core.scale import MAX_SCALE, MIN_SCALE
from ..core.window import Window
from .trainer import TrainSettings

SRF_HELP = ("MSI spectral response: a sensor preset such as 'sentinel2a:B2,B3,B4,B8', 'landsat8', 'worldview3', "
            "'ikonos', 'rgb', or the path of a CSV (columns band,wavelength_nm,response)")


def parse_region(text: str) -> Window:
    """'COL0,ROW0,COL1,ROW1' (HR pixels, end exclusive) -> Window."""
    try:
        col0, row0, col1, row1 = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"region '{text}' is not COL0,ROW0,COL1,ROW1 (four integers)") from None
    if col1 <= col0 or row1 <= row0:
        raise argparse.ArgumentTypeError(f"region '{text}' is empty: COL1 > COL0 and ROW1 > ROW0 are needed")
    return Window(col0, row0, col1 - col0, row1 - row0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m cofusion.training", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    modes = parser.add_subparsers(dest="mode", required=True, metavar="{reference,pair}")
    reference = modes.add_parser("reference", help="train from HR hyperspectral reference scene(s)",
                                 description="Simulate LRHSI/HRMSI pairs from HR hyperspectral scenes by Wald's "
                                             "protocol and learn to recover the reference.")
    reference.add_argument("--hsi", action="append", required=True, metavar="REF.tif",
                           help="a high-resolution hyperspectral reference scene; repeat for several scenes")
    reference.add_argument("--srf", required=True, help=SRF_HELP)
    reference.add_argument("--scale", type=int, required=True, choices=range(MIN_SCALE, MAX_SCALE + 1),
                           metavar=f"{{{MIN_SCALE}..{MAX_SCALE}}}",
                           help="HR pixels per LR pixel of the simulated pairs (3 for EnMAP/PRISMA with Sentinel-2)")
    pair = modes.add_parser("pair", help="train on a real co-registered LRHSI + HRMSI pair (no reference)",
                            description="Degrade both images by the scale factor, learn to recover the LRHSI "
                                        "from the degraded pair, then apply the model at full resolution.")
    pair.add_argument("--lrhsi", required=True, help="low-resolution hyperspectral raster")
    pair.add_argument("--hrmsi", required=True, help="high-resolution multispectral raster on an aligned grid")
    pair.add_argument("--srf", help=SRF_HELP + "; left out: estimated from the pair by non-negative least squares")
    for sub in (reference, pair):
        sub.add_argument("--region", type=parse_region, metavar="COL0,ROW0,COL1,ROW1",
                         help="training window in HR pixels, end exclusive (default: everything); the validation "
                              "strip (about 20%% of its longer side) is carved from inside it")
        sub.add_argument("--iterations", type=int, default=None,
                         help="optimisation steps (default 2000 when --minutes is not given)")
        sub.add_argument("--minutes", type=float, help="wall-clock budget; with --iterations, whichever ends first")
        sub.add_argument("--out", required=True, metavar="MODEL.safetensors", help="the checkpoint to write "
                         "(the best by validation PSNR); a .log.csv is written beside it")
        sub.add_argument("--batch", type=int, default=8, help="patches per step (default 8)")
        sub.add_argument("--patch", type=int, default=None, help="patch size in target pixels, a multiple of the "
                         "model's alignment: 16 at x2, x4, x8, 48 at x3 and x6 (default: the multiple nearest 64; "
                         "shrunk to fit a small region)")
        sub.add_argument("--lr", type=float, default=1e-3, help="AdamW peak learning rate (default 1e-3)")
        sub.add_argument("--schedule", choices=("cosine", "step"), default="cosine",
                         help="learning-rate schedule after a 50-step warm-up (default cosine)")
        sub.add_argument("--validate-every", type=int, default=100,
                         help="steps between validations and resume points (default 100)")
        sub.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
        sub.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
        sub.add_argument("--width", type=int, default=64, help="hidden feature width D (default 64, as the paper)")
        sub.add_argument("--blocks", type=int, default=1, help="CoFusion blocks per pyramid level (default 1)")
        sub.add_argument("--ablation", choices=("spacam", "specam", "sscfm"),
                         help="replace this module by a plain residual block (paper Table 3)")
        sub.add_argument("--base", choices=(AUTO_BASE, *BASES, *BASE_ALIASES), default=AUTO_BASE,
                         help="the classical fusion of the scene that the network's head corrects: 'auto' "
                              f"(default), the best of {', '.join(AUTO_CANDIDATES)} on the validation set, chosen "
                              "before the first step and written in the model's card; 'blend', the mean of GSA and "
                              "LLR; 'llr' ('local' is its earlier name), the local "
                              "linear regression of the LRHSI on the HRMSI in 5 x 5 LR-pixel windows; 'gsa', component "
                              "substitution with weights fitted on the whole scene; or 'bicubic', the upsampled "
                              "LRHSI alone, as in the paper")
        sub.add_argument("--trust-clusters", type=int, default=16, metavar="K",
                         help="clusters of training LR spectra; the head's correction is weighed down on spectra "
                              "far from all of them, materials the training never saw (default 16; 0 applies "
                              "the head everywhere)")
        sub.add_argument("--consistency-steps", type=int, default=2, metavar="N",
                         help="back-projection steps that make the output reproduce the LRHSI under the sensor "
                              "model (default 2; 0 for none)")
        sub.add_argument("--plain-l1", action="store_true",
                         help="the paper's unweighted L1 term (default: each band's L1 weighted by the inverse "
                              "error of the classical base on that band, so that bands the base already has "
                              "almost right are not traded for the others)")
        sub.add_argument("--no-reference-weight", type=float, default=1.0, metavar="W",
                         help="pair mode: weight of the loss at the pair's own resolution, D_lambda + D_s (the "
                              "factors of QNR) of fused patches, beside the reduced-resolution loss; it keeps the "
                              "detail the network adds consistent with both inputs at full resolution (default 1; "
                              "0 for the reduced-resolution loss alone; a reference scene does not use it)")
        sub.add_argument("--ema-decay", type=float, default=0.99, metavar="D",
                         help="validate and keep an exponential moving average of the weights, decay D per step "
                              "(default 0.99; 0 keeps the raw weights)")
        sub.add_argument("--init", metavar="MODEL.safetensors",
                         help="fine-tune this model instead of training from scratch: it must fit the data's bands "
                              "and scale; its architecture, base and normalisation are kept (the model options "
                              "above are not used)")
        sub.add_argument("--threads", type=int, metavar="N",
                         help="CPU threads of the training (default: every core available to this process)")
        sub.add_argument("--restart", action="store_true",
                         help="ignore the resume state an interrupted run left beside --out")
    return parser


def main(argv: list[str] | None = None, interrupts: Interrupts | None = None) -> int:
    """Run the training command line with ``argv`` (default ``sys.argv[1:]``); returns the exit code: 0 done, 2 a
    problem with the inputs or settings (the message says which and the fix), 128 + the signal's number when
    interrupted (``core.interrupts``: the run stops before its next step, the model at --out is left as it was
    and rerunning resumes from the last validation step).

    ``interrupts``: the signal policy already in force (``__main__`` installs it first); None installs one.
    """
    if interrupts is None:
        with Interrupts() as own:
            return main(argv, own)
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    model = {"width": args.width, "blocks_per_level": args.blocks, "base": args.base,
             "domain_prototypes": args.trust_clusters, "consistency_steps": args.consistency_steps}
    if args.ablation:
        model[args.ablation] = False
    try:
        settings = TrainSettings(
            iterations=2000 if args.iterations is None and args.minutes is None else args.iterations,
            minutes=args.minutes,
            batch_size=args.batch, patch=args.patch, learning_rate=args.lr, schedule=args.schedule,
            validate_every=args.validate_every, seed=args.seed, band_weighting=not args.plain_l1,
            no_reference_weight=args.no_reference_weight, ema_decay=args.ema_decay, device=args.device,
            threads=args.threads, model=model)
        from . import api  # GDAL loads here, after the settings are known to be sane (TrainSettings checks them)

        with ProgressBar(sys.stderr, interval=0.5) as bar:  # its line ends before any message below
            common = {"region": args.region, "settings": settings, "progress": bar,
                      "cancel": interrupts.stop_if_requested, "restart": args.restart, "init": args.init}
            if args.mode == "reference":
                result = api.train_reference(args.hsi, args.srf, args.scale, args.out, **common)
            else:
                result = api.train_pair(args.lrhsi, args.hrmsi, args.out, srf=args.srf, **common)
    except Canceled as exc:
        print(f"canceled: {exc}", file=sys.stderr)
        return interrupts.exit_code
    except KeyboardInterrupt:
        from pathlib import Path

        from .trainer import partial_path

        kept = partial_path(Path(args.out))
        where = f"; the best checkpoint so far is in {kept}" if kept.exists() else ""
        print(f"interrupted: rerun the same command to resume from the last validation step{where}",
              file=sys.stderr)
        return interrupts.exit_code
    except CoFusionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    metrics = ", ".join(f"{k} {v:.3f}" for k, v in result.metrics.items())
    print(f"wrote {result.checkpoint} ({result.steps} steps, {result.seconds / 60:.1f} min; validation {metrics}); "
          f"log {result.log}", file=sys.stderr)
    return 0
