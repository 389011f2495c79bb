# SPDX-License-Identifier: GPL-2.0-or-later
"""Where the CoFusion network's CPU forward spends its time: torch.profiler over the bare forward, by operator and
by part of the network.

From the repository root::

    taskset -c 0,1 .venv/bin/python bench/profile_forward.py --section after \\
        --out bench/results/forward_profile.md [--settings jasper enmap] [--threads 2] [--repeats 3]

For each setting of ``fuse_speed.SETTINGS`` (untrained, fully built network; the engine's default tile and batch;
eval + inference mode, the predictor's layout) it measures, in one process:

- the fp32 matmul peak (``fuse_speed.matmul_peak``) and the network's FLOPs per output pixel
  (``fuse_speed.flops_per_pixel``: convolutions and matrix products), both before and after the forwards;
- the bare forward time (``fuse_speed.forward_seconds``, median of ``--repeats``), without the profiler: output
  MP/s, GFLOP/s and its share of the peak;
- one profiled forward (after a warm-up) with the profiler's shapes and FLOPs: the wall time of each top-level
  operator (an ``aten::`` call made from Python, its callees included), grouped by kind (``KINDS``: a
  convolution by its weight's shape, a matrix product with a 2-D resampling matrix as resampling, ...) and by the
  part of the network it runs in (the modules of a block, the base's GSA and local regression, the trust map,
  the back-projection). GFLOP/s of a group counts the FLOPs of its convolutions and matrix products (the
  profiler's count, which matches ``flops_per_pixel``; element-wise operations count none).

``--section`` names the section of ``--out`` this run writes (e.g. "before" / "after" a change); the file's other
sections are kept, so one file holds both runs of the same command.
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
from collections import defaultdict
from pathlib import Path
from unittest import mock

import torch
from common import command_line, machine, markdown_table
from fuse_speed import SETTINGS, build_predictor, flops_per_pixel, forward_seconds, matmul_peak, network_inputs
from torch.autograd.profiler_util import FunctionEvent
from torch.profiler import ProfilerActivity, profile, record_function

from cofusion.core.fuse import DEFAULT_BATCH
from cofusion.core.model import net, prior
from cofusion.core.tiling import default_tiling

log = logging.getLogger("profile_forward")

#: Operators whose FLOPs the profiler counts and ``flops_per_pixel`` counts too (not the element-wise ones).
FLOP_OPS = {"aten::conv2d", "aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm"}
#: Top-level operator name -> kind, for those whose kind the name alone gives (convolutions and matrix products
#: are told apart by their operands' shapes in ``kind_of``).
KINDS = {
    **dict.fromkeys(["aten::linear", "aten::addmm", "aten::mm"], "linear / mm (SCM)"),
    "aten::einsum": "einsum (GSA channel mixing)",
    **dict.fromkeys(["aten::bmm", "aten::baddbmm"], "resampling (separable bmm)"),
    "aten::avg_pool2d": "avg pooling (down2, LLR windows)",
    **dict.fromkeys(["aten::max_pool2d", "aten::max_pool2d_with_indices"], "max pooling"),
    **dict.fromkeys(["aten::linalg_solve", "aten::linalg_solve_ex"], "LLR solve"),
    "aten::layer_norm": "layer norm",
    **dict.fromkeys(["aten::topk", "aten::gather", "aten::amax", "aten::ne", "aten::gt", "aten::where",
                     "aten::arange", "aten::clamp_min", "aten::squeeze"], "SCM top-k / update"),
    **dict.fromkeys(["aten::cdist", "aten::_cdist_forward", "aten::min"], "trust (cdist)"),
    **dict.fromkeys(["aten::gelu", "aten::sigmoid", "aten::softmax", "aten::_softmax", "aten::relu", "aten::mul",
                     "aten::add", "aten::sub", "aten::rsub", "aten::div", "aten::add_", "aten::mul_", "aten::clamp",
                     "aten::neg", "aten::sum", "aten::eye", "aten::expand_as", "aten::addcmul", "aten::addcmul_",
                     "aten::lerp"], "element-wise"),
    **dict.fromkeys(["aten::copy_", "aten::contiguous", "aten::clone", "aten::to", "aten::_to_copy",
                     "aten::cat", "aten::index_select", "aten::pad", "aten::replication_pad2d", "aten::reshape",
                     "aten::permute", "aten::view", "aten::slice", "aten::select", "aten::unsqueeze",
                     "aten::expand", "aten::transpose", "aten::t", "aten::empty", "aten::empty_like",
                     "aten::zeros", "aten::stack", "aten::flatten", "aten::narrow"], "layout copies / padding"),
    **dict.fromkeys(["aten::upsample_bilinear2d", "aten::upsample_bicubic2d"], "resampling (interpolate)"),
}
#: Module name pattern -> part of the network (the first match wins; unmatched modules add to their parent's).
PARTS = [
    (r"levels\.\d+\.\d+\.spatial$", "SpaCAM"),
    (r"levels\.\d+\.\d+\.spectral$", "SpeCAM"),
    (r"levels\.\d+\.\d+\.fusion$", "SSCFM"),
    (r"(lr_embed|msi_embed|encoders\.\d+|proxies\.\d+)$", "embeddings, encoders, proxies"),
    (r"head$", "head"),
    (r"domain$", "trust map"),
    (r"base$", "base: GSA"),
]
#: Functions the network calls by name, labelled as parts: (module, attribute, part).
LABELLED = [(prior, "local_regression", "base: local regression"), (net, "back_project", "back-projection")]
GLUE = "net glue (input resampling, pooling, pad, crop)"


def kind_of(event: FunctionEvent) -> str:
    """The kind of a top-level operator (a key of the operator table)."""
    shapes = event.input_shapes or []
    if event.name == "aten::conv2d" and len(shapes) > 1 and len(shapes[1]) == 4:
        out_ch, in_per_group, kh, kw = shapes[1]
        if in_per_group == 1 and out_ch == shapes[0][1] and out_ch > 1:
            return f"conv depthwise {kh}x{kw}"
        return "conv 1x1" if kh == kw == 1 else f"conv dense {kh}x{kw}"
    if event.name in ("aten::matmul", "aten::addmm") and part_of(event) == "base: GSA":
        return "matmul (GSA channel mixing)"
    if event.name == "aten::matmul":
        dims = sorted(len(s) for s in shapes[:2])
        return "resampling (separable matmul)" if dims[0] == 2 and dims[1] >= 3 else "matmul other (LLR systems)"
    return KINDS.get(event.name, f"other: {event.name}")


def part_of(event: FunctionEvent) -> str:
    """The innermost labelled part (a ``record_function`` range opened by ``labelled_parts``) holding ``event``."""
    parent = event.cpu_parent
    while parent is not None:
        if parent.name.startswith("part: "):
            return parent.name[len("part: "):]
        parent = parent.cpu_parent
    return GLUE


def subtree_flops(event: FunctionEvent) -> int:
    """FLOPs of the convolutions and matrix products in ``event`` and its callees (each counted once)."""
    own = (event.flops or 0) if event.name in FLOP_OPS else 0
    if own:
        return own
    return sum(subtree_flops(child) for child in event.cpu_children)


@contextlib.contextmanager
def labelled_parts(model: torch.nn.Module):
    """Open a ``record_function("part: <name>")`` range around each module of ``PARTS`` and each function of
    ``LABELLED`` while the context is active."""
    handles, ranges = [], {}

    def enter(name):
        def hook(module, args):
            ranges[id(module)] = record_function(f"part: {name}")
            ranges[id(module)].__enter__()
        return hook

    def leave(module, args, output):
        ranges.pop(id(module)).__exit__(None, None, None)

    for name, module in model.named_modules():
        part = next((label for pattern, label in PARTS if re.search(pattern, name)), None)
        if part is not None:
            handles += [module.register_forward_pre_hook(enter(part)), module.register_forward_hook(leave)]

    def wrapped(function, part):
        def call(*args, **kwargs):
            with record_function(f"part: {part}"):
                return function(*args, **kwargs)
        return call

    with contextlib.ExitStack() as stack:
        for owner, attribute, part in LABELLED:
            stack.enter_context(mock.patch.object(owner, attribute, wrapped(getattr(owner, attribute), part)))
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()


def profiled(predictor, tile: int, batch: int) -> list[FunctionEvent]:
    """The top-level operators of one profiled forward (after a warm-up): ``aten::`` events with no ``aten::``
    caller."""
    lr, hr = network_inputs(predictor, tile, batch)
    with torch.inference_mode(), labelled_parts(predictor.model):
        predictor.model(lr, hr)
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True, with_flops=True) as prof:
            predictor.model(lr, hr)
    top = []
    for event in prof.events():
        if not event.name.startswith("aten::"):
            continue
        parent = event.cpu_parent
        while parent is not None and not parent.name.startswith("aten::"):
            parent = parent.cpu_parent
        if parent is None:
            top.append(event)
    return top


def grouped(events: list[FunctionEvent], key) -> list[dict]:
    """Rows (name, seconds, share, GFLOP, GFLOP/s, calls) of ``events`` grouped by ``key(event)``, slowest first."""
    seconds, flops, calls = defaultdict(float), defaultdict(int), defaultdict(int)
    for event in events:
        name = key(event)
        seconds[name] += event.cpu_time_total / 1e6
        flops[name] += subtree_flops(event)
        calls[name] += 1
    total = sum(seconds.values())
    return [{"name": name, "seconds": s, "share": s / total, "GFLOP": flops[name] / 1e9,
             "GFLOP/s": flops[name] / s / 1e9 if flops[name] else 0.0, "calls": calls[name]}
            for name, s in sorted(seconds.items(), key=lambda item: -item[1])]


COLUMNS = {"name": "", "seconds": ".3f", "share": ".1%", "GFLOP": ".2f", "GFLOP/s": ".1f", "calls": "d"}
SUMMARY = {"setting": "", "bands": "", "tile": "d", "batch": "d", "MFLOP/px": ".3f", "forward_s": ".3f",
           "MP/s": ".4f", "GFLOP/s": ".1f", "peak_GFLOP/s": ".1f", "of_peak": ".1%", "profiled_s": ".3f",
           "profiled_MFLOP/px": ".3f"}


def measure(setting: str, threads: int, repeats: int) -> tuple[dict, list[dict], list[dict]]:
    """(summary row, operator rows, part rows) of ``setting`` at the engine's default tile and batch."""
    predictor = build_predictor(setting, threads)
    tile, batch = default_tiling(predictor.align)[0], DEFAULT_BATCH
    flops = flops_per_pixel(predictor, tile)
    peak_before = matmul_peak()
    seconds = forward_seconds(predictor, tile, batch, repeats)
    peak = max(peak_before, matmul_peak())
    events = profiled(predictor, tile, batch)
    operators, parts = grouped(events, kind_of), grouped(events, part_of)
    pixels = batch * tile ** 2
    rate = flops * pixels / seconds / 1e9
    row = {"setting": setting, "bands": "{}/{}/x{}".format(*SETTINGS[setting]), "tile": tile, "batch": batch,
           "MFLOP/px": flops / 1e6, "forward_s": seconds, "MP/s": pixels / seconds / 1e6, "GFLOP/s": rate,
           "peak_GFLOP/s": peak, "of_peak": rate / peak, "profiled_s": sum(r["seconds"] for r in operators),
           "profiled_MFLOP/px": sum(r["GFLOP"] for r in operators) * 1e3 / pixels}
    log.info("%s", row)
    return row, operators, parts


def write_section(path: Path, section: str, text: str, title: str) -> None:
    """Replace (or append) the ``## <section>`` part of the Markdown file ``path``, keeping its other sections."""
    sections = {}
    if path.exists():
        for chunk in re.split(r"^## ", path.read_text(encoding="utf-8"), flags=re.M)[1:]:
            name, _, body = chunk.partition("\n")
            sections[name.strip()] = body.strip("\n")
    sections[section] = text.strip("\n")
    body = "".join(f"## {name}\n\n{content}\n\n" for name, content in sections.items())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"# {title}\n\n{body}".rstrip("\n") + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench/results/forward_profile.md"))
    parser.add_argument("--section", default="after", help="section of --out this run (re)writes")
    parser.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=["jasper", "enmap"])
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--repeats", type=int, default=3, help="timed forwards per setting (median)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    rows, tables = [], []
    for setting in args.settings:
        row, operators, parts = measure(setting, args.threads, args.repeats)
        rows.append(row)
        tables += [f"{setting}, by operator:", markdown_table(operators, COLUMNS),
                   f"{setting}, by part of the network:", markdown_table(parts, COLUMNS)]
    load = Path("/proc/loadavg").read_text().split()[:3] if os.path.exists("/proc/loadavg") else ["?"] * 3
    text = "\n\n".join([
        f"Command: `{command_line()}`", f"Machine: {machine()}. Load average before the run: {' '.join(load)}.",
        "Bare forward (median of the timed forwards, no profiler); peak: the best torch.mm 4096^2 before and after "
        "them; profiled_s: the sum of the top-level operators' wall time in one profiled forward; "
        "profiled_MFLOP/px: their convolution and matrix-product FLOPs per output pixel, to compare "
        "with MFLOP/px:", markdown_table(rows, SUMMARY), PARTS_NOTE, *tables])
    write_section(args.out, args.section, text, "Where the CoFusion forward spends its time (CPU, torch.profiler)")
    log.info("wrote section %r of %s", args.section, args.out)


PARTS_NOTE = ("Operators: a top-level aten call with its callees; conv kinds from the weight's shape; "
              "'resampling (separable matmul)' a matrix product with a 2-D resampling matrix (core.resample, "
              "core.degrade); parts: the module or labelled function the operator runs in ('net glue': "
              "CoFusionNet.forward itself).")


if __name__ == "__main__":
    main()
