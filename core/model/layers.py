# SPDX-License-Identifier: GPL-2.0-or-later
"""Small building layers of the CoFusion network. Shapes: B batch, C channels, H x W pixels of the level.

All layers are local (bounded receptive field, no global pooling), so the network is translation-equivariant for
shifts that are multiples of ``ModelConfig.align``: a scene fused tile by tile equals the scene fused at once.
"""
from __future__ import annotations

import pywt
import torch
import torch.nn.functional as F
from torch import nn

from ..resample import fits_matrix, separable, upsample_matrix


class LayerNorm2d(nn.Module):
    """Layer normalisation over the channels of each pixel: (B, C, H, W) -> (B, C, H, W).

    Per-pixel statistics (not GroupNorm's per-image ones) keep the result independent of the tile size.
    """

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, x.shape[-1:], self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class DepthwiseSeparableConv(nn.Module):
    """DWConv of the paper: depthwise k x k (optionally dilated) then pointwise 1 x 1. (B, C, H, W) -> same."""

    def __init__(self, channels: int, kernel_size: int = 3, dilation: int = 1) -> None:
        super().__init__()
        padding = dilation * (kernel_size // 2)
        self.depthwise = nn.Conv2d(channels, channels, kernel_size, padding=padding, dilation=dilation,
                                   groups=channels)
        self.pointwise = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


def depthwise_conv(channels: int, kernel_size: int = 3) -> nn.Conv2d:
    """A depthwise k x k convolution that keeps the size: (B, C, H, W) -> (B, C, H, W)."""
    return nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2, groups=channels)


class WaveletSplit(nn.Module):
    """Split features into a low- and a high-frequency part with a PyWavelets filter bank (SpeCAM, stage 1).

    (B, C, H, W) -> (low, high), both (B, C, H, W), with low + high == x.

    Choice where the paper is vague: the decomposition is the *undecimated* (stationary) DWT, so the parts keep
    the resolution of the input (needed for the residual of Algorithm 1 and for tile equivariance). ``low`` is the
    approximation band, the separable product of the wavelet's decomposition low-pass filter with itself,
    normalised to unit DC gain; ``high`` is its complement, what the three detail bands carry. The filter is a
    fixed (non-trainable) depthwise convolution, so the module stays differentiable and runs on any device.
    """

    def __init__(self, channels: int, wavelet: str = "haar") -> None:
        super().__init__()
        dec_lo = torch.tensor(pywt.Wavelet(wavelet).dec_lo, dtype=torch.float32)
        kernel = torch.outer(dec_lo, dec_lo)
        kernel = kernel / kernel.sum()
        size = kernel.shape[0]
        self.padding = ((size - 1) // 2, size // 2) * 2  # left, right, top, bottom
        self.channels = channels
        self.register_buffer("kernel", kernel.expand(channels, 1, size, size).clone(), persistent=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        low = F.conv2d(F.pad(x, self.padding, mode="replicate"), self.kernel, groups=self.channels)
        return low, x - low


class SaliencyPool(nn.Module):
    """Local max pooling onto a coarse saliency grid: (B, C, H, W) -> (B, C, H / stride, W / stride).

    The paper pools each feature map to one C x 1 x 1 vector. A global pool would make every output pixel depend
    on the whole input, so a fused scene would change with the tile size and memory could not stay bounded. We
    pool overlapping windows of 2*stride pixels with a step of ``stride``: each grid cell summarises its
    neighbourhood. :func:`expand_saliency` brings the cell values back to the pixel grid.
    """

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.pool = nn.MaxPool2d(2 * stride, stride=stride, padding=stride // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x)


def expand_saliency(cells: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear interpolation of saliency-grid values (B, C, h, w) to the pixel grid (B, C, *size)."""
    return F.interpolate(cells, size=size, mode="bilinear", align_corners=False)


class ResidualBlock(nn.Module):
    """A plain residual block, x + conv3x3(GELU(conv3x3(x))): (B, C, H, W) -> same.

    Stands in for SpaCAM, SpeCAM or SSCFM in the ablations (paper Table 3, "standard residual blocks").
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1), nn.GELU(), nn.Conv2d(channels, channels, 3, padding=1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def coordinate_update(candidates: torch.Tensor, initial: torch.Tensor) -> torch.Tensor:
    """The coordinate update of paper eq. (4) / Algorithm 1, traversing the C x K candidate matrix left to right.

    Args:
        candidates: M, (N, C, K): for each of N vectors, channel c's K candidate values (Top-K, descending).
        initial: z^0, (C,) the initial state.
    Returns:
        z^K, (N, C): z_c^k = M[c, k] where M[c, k] != 0 (an innovation is accepted), else z_c^(k-1) (the state is
        kept). Differentiable with respect to the accepted candidates and to z^0.
    """
    state = initial.to(candidates.dtype).expand(candidates.shape[0], -1)
    for k in range(candidates.shape[-1]):
        column = candidates[..., k]
        state = torch.where(column != 0, column, state)
    return state


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad (B, C, H, W) at bottom and right to multiples of ``multiple`` by half-sample symmetric mirroring.

    The edge pixel is repeated, then the pixels before it (numpy's 'symmetric', the tiler's padding in
    ``core.fuse``), repeating the mirror when the pad exceeds the size. Unlike whole-sample reflection it commutes
    with the LR/HR pixel nesting: an LRHSI padded by p pixels and its HRMSI padded by s*p stay co-registered.
    """
    height, width = x.shape[-2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    if pad_h:
        x = x.index_select(-2, _mirrored(height, height + pad_h, x.device))
    if pad_w:
        x = x.index_select(-1, _mirrored(width, width + pad_w, x.device))
    return x


def _mirrored(size: int, length: int, device: torch.device) -> torch.Tensor:
    """Indices 0..length-1 folded into 0..size-1 by half-sample symmetric mirroring (period 2 size)."""
    index = torch.arange(length, device=device) % (2 * size)
    return torch.where(index < size, index, 2 * size - 1 - index)


def upsample(x: torch.Tensor, factor: int, mode: str) -> torch.Tensor:
    """Interpolate (B, C, H, W) by an integer factor; align_corners=False puts LR pixel k's centre on the centre
    of HR pixels [k*s, (k+1)*s), the protocol's grid alignment. ``mode``: 'bicubic' or 'bilinear'."""
    height, width = x.shape[-2:]
    if fits_matrix(height * factor, width * factor):
        return separable(x, upsample_matrix(height, factor, mode), upsample_matrix(width, factor, mode))
    return F.interpolate(x, scale_factor=factor, mode=mode, align_corners=False)
