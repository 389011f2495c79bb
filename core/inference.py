# SPDX-License-Identifier: GPL-2.0-or-later
"""Running a CoFusion checkpoint on tiles: device choice, normalisation, precision, threads.

:class:`NetworkPredictor` implements the tiler's ``Predictor`` protocol (core/fuse.py): numpy tiles in the
rasters' own units in, numpy tiles out. Nothing here knows about rasters or files beyond the checkpoint.
"""
from __future__ import annotations

import logging
import os

import numpy as np
import torch

from .checkpoint import Checkpoint, load_checkpoint
from .errors import InputError

log = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' -> CUDA when available, else CPU; 'cuda' without a GPU -> InputError with the fix."""
    if name not in DEVICES and not name.startswith("cuda:"):
        raise InputError(f"device '{name}' is not one of {DEVICES} (or 'cuda:N').")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("device 'cuda' was asked for but PyTorch sees no CUDA GPU here; use device 'auto' or 'cpu' "
                         "(or install a CUDA build of PyTorch).")
    return torch.device(name)


def configure_cpu_threads(threads: int | None = None) -> int:
    """Use every core this process may run on (or ``threads``) for intra-op parallelism; returns the count."""
    count = threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(count)
    return count


class NetworkPredictor:
    """A checkpoint made callable on tiles: (lr (B, C_h, t, t), hr (B, C_m, s*t, s*t)) -> (B, C_h, s*t, s*t).

    Inputs and outputs are float32 in the rasters' own units; normalisation uses the checkpoint's training
    statistics only (never the tile's), so nodata handling and tiling cannot shift the result. On CUDA the
    forward runs under float16 autocast; on the CPU in float32 with channels-last memory layout.
    """

    def __init__(self, checkpoint: Checkpoint, device: str = "auto", threads: int | None = None) -> None:
        self.checkpoint = checkpoint
        self.device = resolve_device(device)
        if self.device.type == "cpu":
            configure_cpu_threads(threads)
        config = checkpoint.card.config
        self.scale = config.scale
        self.hsi_bands = config.hsi_bands
        self.msi_bands = config.msi_bands
        self.align = config.align
        hsi_mean, hsi_std, msi_mean, msi_std = checkpoint.card.normalization.arrays()
        self.hsi_fill, self.msi_fill = hsi_mean, msi_mean
        self._stats = [torch.from_numpy(a).to(self.device).view(1, -1, 1, 1)
                       for a in (hsi_mean, hsi_std, msi_mean, msi_std)]
        self.model = checkpoint.model.to(self.device, memory_format=torch.channels_last).eval()
        log.info("CoFusion model %s on %s", checkpoint.path, self.device)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: str = "auto",
                        threads: int | None = None) -> NetworkPredictor:
        return cls(load_checkpoint(path), device=device, threads=threads)

    def __call__(self, lr: np.ndarray, hr: np.ndarray) -> np.ndarray:
        hsi_mean, hsi_std, msi_mean, msi_std = self._stats
        with torch.inference_mode(), torch.autocast("cuda", enabled=self.device.type == "cuda"):
            lr_t = (self._to_device(lr) - hsi_mean) / hsi_std
            hr_t = (self._to_device(hr) - msi_mean) / msi_std
            out = self.model(lr_t, hr_t).float() * hsi_std + hsi_mean
        return out.contiguous().cpu().numpy()

    def _to_device(self, array: np.ndarray) -> torch.Tensor:
        tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
        return tensor.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
