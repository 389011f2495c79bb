# SPDX-License-Identifier: GPL-2.0-or-later
"""Running a CoFusion checkpoint on tiles: normalisation, the scene pre-pass, the device's precision.

:class:`NetworkPredictor` implements the tiler's ``Predictor`` protocol (core/fuse.py): numpy tiles in the
rasters' own units in, numpy tiles out. Nothing here knows about rasters or files beyond the checkpoint.
"""
from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable

import numpy as np
import torch

from .block_walk import coarse_valid, plan_blocks
from .checkpoint import Checkpoint, load_checkpoint
from .degrade import blur_kernel, spatial_degrade
from .device import compute_plan, configure_cpu_threads
from .errors import Canceled, InputError
from .injection import SceneMoments
from .model.prior import DetailInjection

log = logging.getLogger(__name__)

#: Block edge (LR pixels) of the pass that fits a base's GSA weights on a scene.
PREPARE_BLOCK = 256


class NetworkPredictor:
    """A checkpoint made callable on tiles: (lr (B, C_h, t, t), hr (B, C_m, s*t, s*t)) -> (B, C_h, s*t, s*t).

    Inputs and outputs are float32 in the rasters' own units; normalisation uses the checkpoint's training
    statistics only (never the tile's), so nodata handling and tiling cannot shift the result. A model whose base
    includes GSA ('gsa', 'blend') needs :meth:`prepare` on the scene first (the engine calls it). The device and
    the forward's precision are the device name's ``core.device.ComputePlan`` (``self.plan``): float16 autocast on
    CUDA, float32 on the CPU; channels-last memory layout.
    """

    def __init__(self, checkpoint: Checkpoint, device: str = "auto", threads: int | None = None) -> None:
        self.checkpoint = checkpoint
        self.plan = compute_plan(device)
        self.device = self.plan.device
        if self.device.type == "cpu":
            configure_cpu_threads(threads)
        config = checkpoint.card.config
        self.scale = config.scale
        self.hsi_bands = config.hsi_bands
        self.msi_bands = config.msi_bands
        self.align = config.align
        self.wavelengths_nm = checkpoint.card.hsi_wavelengths_nm
        self.name = f"The model {checkpoint.path}"  # how the engine's errors name it
        self.source_path = checkpoint.path  # an output may not overwrite it
        hsi_mean, hsi_std, msi_mean, msi_std = checkpoint.card.normalization.arrays()
        self.hsi_fill, self.msi_fill = hsi_mean, msi_mean
        self._stats = [torch.from_numpy(a).to(self.device).view(1, -1, 1, 1)
                       for a in (hsi_mean, hsi_std, msi_mean, msi_std)]
        self.model = checkpoint.model.to(self.device, memory_format=torch.channels_last).eval()
        log.info("CoFusion model %s on %s", checkpoint.path, self.plan.describe())

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: str = "auto",
                        threads: int | None = None) -> NetworkPredictor:
        return cls(load_checkpoint(path), device=device, threads=threads)

    def prepare(self, lr_reader, hr_reader, grid, block: int | None = None, *,
                progress: Callable[[float, str], None] | None = None,
                cancel: Callable[[], bool] | None = None) -> None:
        """Fit the GSA weights of the model's base on the whole fusion grid (a no-op for bases without GSA).

        lr_reader, hr_reader: ``core.raster.RasterReader`` of the LRHSI and the HRMSI; grid: their
        ``core.grid.FusionGrid``. Walks the grid in blocks of at most ``block`` x ``block`` LR pixels (default
        :data:`PREPARE_BLOCK`), each HRMSI block read with the blur's margin so the degraded HRMSI equals a
        whole-scene degradation: the fit is the whole scene's, in memory that depends on ``block`` and the band
        counts only. LR pixels with nodata in either input are left out. ``progress(fraction, message)`` is told
        the share of the blocks done after each; ``cancel()`` is asked between blocks (not before the first) and
        True raises Canceled.
        """
        base = self.model.base
        if not isinstance(base, DetailInjection):
            return
        hsi_mean, hsi_std, msi_mean, msi_std = (t.cpu()[0] for t in self._stats)
        s, lr_grid, hr_grid = grid.scale, grid.lr_window, grid.hr_window
        if min(lr_grid.width, lr_grid.height) < 2:
            raise InputError(f"The inputs overlap on only {lr_grid.width} x {lr_grid.height} LR pixels; this model's "
                             "GSA base needs at least 2 x 2 LR pixels to fit: fuse a larger area.")
        margin = math.ceil((blur_kernel(s).size - s) // 2 / s)  # LR pixels of context the blur needs
        moments = SceneMoments(self.hsi_bands, self.msi_bands)
        blocks = plan_blocks(lr_grid.width, lr_grid.height, block or PREPARE_BLOCK, margin)
        for done, blk in enumerate(blocks):
            if done and cancel is not None and cancel():
                raise Canceled("Canceled while fitting the model's scene statistics; nothing was written.")
            lr, lr_valid = lr_reader.read_valid(blk.keep.within(lr_grid))
            hr, hr_valid = hr_reader.read_valid(blk.read.scaled(s).within(hr_grid))
            hr[:, ~hr_valid] = self.msi_fill[:, None]
            msi_lr = spatial_degrade((torch.from_numpy(hr) - msi_mean) / msi_std, s)
            inner = blk.inner()
            moments.add((torch.from_numpy(lr) - hsi_mean) / hsi_std, msi_lr[(slice(None), *inner)],
                        torch.from_numpy(lr_valid & coarse_valid(hr_valid, s)[inner]))
            if progress is not None:
                progress((done + 1) / len(blocks), f"the model's scene statistics: block {done + 1} of {len(blocks)}")
        if moments.count:
            base.set_weights(moments.weights())

    def __call__(self, lr: np.ndarray, hr: np.ndarray) -> np.ndarray:
        hsi_mean, hsi_std, msi_mean, msi_std = self._stats
        with torch.inference_mode(), self.plan.inference_autocast():
            lr_t = (self._to_device(lr) - hsi_mean) / hsi_std
            hr_t = (self._to_device(hr) - msi_mean) / msi_std
            out = self.model(lr_t, hr_t).float() * hsi_std + hsi_mean
        return out.contiguous().cpu().numpy()

    def _to_device(self, array: np.ndarray) -> torch.Tensor:
        tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
        return tensor.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
