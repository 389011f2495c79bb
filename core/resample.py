# SPDX-License-Identifier: GPL-2.0-or-later
"""Separable resampling as matrix products: upsampling by an integer factor and the sensor's blur + decimation.

Both are linear and separable, so an image ``x (..., H, W)`` maps to ``A_rows @ x @ A_cols^T``, with one small
matrix per axis. On many bands this is several times faster on the CPU than ``F.interpolate`` and a strided
single-channel ``F.conv2d`` (198 bands, 72 -> 288 pixels, one thread: bicubic 0.16 s and degradation 0.27 s
through torch's kernels), because a matrix product keeps the CPU's vector units busy. The matrices are dense,
so the work per pixel grows with the axis length: beyond :data:`MAX_MATRIX_SIZE` pixels the callers use the
direct kernels (whole-scene passes), below it (tiles, patches) the matrices.

The matrices reproduce the direct operators exactly (up to float rounding): the upsampling matrix is
``F.interpolate`` applied to the identity (torch's bicubic and bilinear kernels are separable), and the
degradation matrix holds the blur taps with reflect padding folded in. Tests check both against the kernels.
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

#: Longest axis (pixels, input or output) resampled by a dense matrix.
MAX_MATRIX_SIZE = 1024


def fits_matrix(*sizes: int) -> bool:
    """True when every axis length is small enough for the dense-matrix path."""
    return max(sizes) <= MAX_MATRIX_SIZE


def separable(x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """``rows @ x @ cols^T``: (..., H, W) with rows (H', H) and cols (W', W) -> (..., H', W').

    A channels-last (B, C, H, W) stays channels-last (the network's layout on the CPU): its pixels are (B, H, W, C)
    in memory, so both products run on contiguous data (along W, then along H, as in the general case), and the
    result needs no layout copy before the next convolution.
    """
    rows, cols = rows.to(x), cols.to(x)
    if x.ndim == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        batch, channels, height, width = x.shape
        pixels = x.permute(0, 2, 3, 1).reshape(batch * height, width, channels)
        along_w = torch.bmm(cols.expand(batch * height, *cols.shape), pixels)  # (B H, W', C)
        out = rows @ along_w.view(batch, height, -1)  # (B, H', W' C)
        return out.view(batch, rows.shape[0], cols.shape[0], channels).permute(0, 3, 1, 2)
    return rows @ (x @ cols.T)


@functools.lru_cache(maxsize=128)
def upsample_matrix(size: int, factor: int, mode: str) -> torch.Tensor:
    """(size * factor, size) float64 matrix of ``F.interpolate(..., mode, align_corners=False)`` along one axis.

    ``mode`` is 'bicubic' or 'bilinear'.
    """
    with torch.inference_mode(False):  # a cached tensor made in inference mode could not enter autograd later
        eye = torch.eye(size, dtype=torch.float64).view(1, size, 1, size)  # one channel per unit impulse
        out = F.interpolate(eye, scale_factor=(1, factor), mode=mode, align_corners=False)
        return out.view(size, size * factor).T.contiguous()


@functools.lru_cache(maxsize=128)
def decimation_matrix(size: int, kernel: tuple[float, ...], step: int) -> torch.Tensor:
    """(size // step, size) float64 matrix of a 1-D blur with ``kernel`` and stride ``step`` on an axis padded
    by reflection (``F.pad(..., mode='reflect')``) by ``(len(kernel) - step) // 2`` on each side.

    Output ``i`` weighs padded input ``i * step + t`` by ``kernel[t]``; padded positions outside ``[0, size)``
    fold back by reflection about the edge pixels.
    """
    pad = (len(kernel) - step) // 2
    with torch.inference_mode(False):  # as in upsample_matrix
        matrix = torch.zeros(size // step, size, dtype=torch.float64)
        for i in range(size // step):
            for tap, weight in enumerate(kernel):
                j = i * step + tap - pad
                j = -j if j < 0 else (2 * (size - 1) - j if j >= size else j)
                matrix[i, j] += weight
        return matrix


def upsample(x: torch.Tensor, factor: int, mode: str) -> torch.Tensor:
    """Interpolate (B, C, H, W) by an integer factor; align_corners=False puts LR pixel k's centre on the centre
    of HR pixels [k*s, (k+1)*s), the protocol's grid alignment. ``mode``: 'bicubic' or 'bilinear'."""
    height, width = x.shape[-2:]
    if fits_matrix(height * factor, width * factor):
        return separable(x, upsample_matrix(height, factor, mode), upsample_matrix(width, factor, mode))
    return F.interpolate(x, scale_factor=factor, mode=mode, align_corners=False)
