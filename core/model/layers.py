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


def channel_softmax(x: torch.Tensor) -> torch.Tensor:
    """Softmax over the channels of each pixel: (B, C, H, W) -> (B, C, H, W), in ``x``'s memory format.

    ``torch.softmax(x, dim=1)`` on a channels-last tensor returns a contiguous (channels-first) one, and every
    operation mixing it with the channels-last rest then runs on strided data; so channels-last input is taken as
    the (B, H, W, C) tensor it is in memory, whose softmax over the last, contiguous axis stays channels-last.
    """
    if x.is_contiguous(memory_format=torch.channels_last):
        return torch.softmax(x.permute(0, 2, 3, 1), dim=-1).permute(0, 3, 1, 2)
    return torch.softmax(x, dim=1)


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
    """Split features into a low- and a high-frequency part with a wavelet's low-pass (SpeCAM, stage 1).

    (B, C, H, W) -> (low, high), both (B, C, H, W), with ``high = x - low`` (so low + high == x up to rounding).

    What it computes: ``low`` is a fixed (non-trainable) depthwise filter, the outer product of PyWavelets'
    ``dec_lo`` with itself divided by its sum (unit DC gain), applied as a cross-correlation (``F.conv2d``: taps
    not flipped): for n taps, pixel i's window spans i - (n - 1) // 2 .. i + n // 2 along each axis, the image
    edges replicated. ``high`` is the residual; no detail filter is applied. With the default "haar" (n = 2) that
    is a 2 x 2 box filter:

        low[i, j] = (x[i, j] + x[i + 1, j] + x[i, j + 1] + x[i + 1, j + 1]) / 4    (last row / column repeated)

    i.e. the level-1 approximation band of the undecimated (stationary) Haar transform divided by 2 (its DC gain):
    with ``cA, (cH, cV, cD) = pywt.swt2(x, "haar", 1)[0]``, ``low == cA / 2`` and ``high == (cH + cV + cD) / 2``
    away from the last row and column (PyWavelets extends periodically, this replicates). For another wavelet
    ``high`` is only the residual, not a sum of its detail bands, and for an asymmetric one (e.g. "db2") the
    correlation makes ``low`` the SWT approximation of the time-reversed low-pass (``rec_lo``), still unit-DC.

    Choice where the paper is vague ("DWT"): the decomposition is undecimated, so the parts keep the resolution of
    the input (needed for the residual of Algorithm 1 and for tile equivariance), and only one level is taken.
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
    """Local max pooling onto a coarse saliency grid: (B, C, H, W) -> (B, C, H // stride, W // stride).

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
    """The coordinate update of paper eq. (4) / Algorithm 1, in closed form.

    The paper's traversal of the C x K candidate matrix from left to right, ``z_c^k = M[c, k]`` where
    ``M[c, k] != 0`` (an innovation is accepted) else ``z_c^(k-1)`` (the state is kept), ends at each row's last
    non-zero entry, or at ``z^0`` where the row has none. That is what this computes, for any M (sorted or not),
    without the loop: same values, and the same gradients (to the selected entry, to ``z^0`` where a row has no
    non-zero entry). Like ``!= 0``, a NaN counts as an innovation.

    Args:
        candidates: M, (N, C, K): for each of N vectors, channel c's K candidate values.
        initial: z^0, (C,) the initial state.
    Returns:
        z^K, (N, C), in ``candidates``' dtype.
    """
    accepted = candidates != 0
    order = torch.arange(1, candidates.shape[-1] + 1, device=candidates.device)
    last = (accepted * order).amax(-1, keepdim=True)  # 1-based position of the last innovation, 0 for none
    value = candidates.gather(-1, (last - 1).clamp_min(0)).squeeze(-1)
    return torch.where(last.squeeze(-1) > 0, value, initial.to(candidates.dtype).expand_as(value))


def top_k_of_relu_outer(u: torch.Tensor, w: torch.Tensor, k: int) -> torch.Tensor:
    """``torch.topk(ReLU(u_c w_j), k, dim=-1).values`` without forming the (N, C, C) matrix: (N, C) x2 -> (N, C, k).

    Row c of ``ReLU(u w^T)`` is ``ReLU(u_c w)``, a non-decreasing function of ``w`` where ``u_c > 0`` and a
    non-increasing one otherwise; order statistics commute with monotone maps (rounding included), so its k
    largest entries, in descending order, are ``ReLU(u_c w_j)`` over the k largest ``w_j`` (descending) where
    ``u_c > 0``, else over the k smallest (ascending). The products are the same floating-point products, so the
    result equals the materialised top-k element for element (NaNs, which topk ranks first, included).
    """
    largest = torch.topk(w, k, dim=-1, sorted=True).values
    smallest = -torch.topk(-w, k, dim=-1, sorted=True).values  # ascending; unlike largest=False, NaNs first
    u = u.unsqueeze(-1)
    return torch.relu(u * torch.where(u > 0, largest.unsqueeze(-2), smallest.unsqueeze(-2)))


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
