# SPDX-License-Identifier: GPL-2.0-or-later
"""The three modules of a CoFusion block (paper section 3.3-3.4): SpaCAM, SpeCAM (with SCM) and SSCFM.

Shapes: B batch, D feature width, H x W pixels of the pyramid level. Every module maps (B, D, H, W) to
(B, D, H, W) (SSCFM takes two such tensors).
"""
from __future__ import annotations

import torch
from torch import nn

from .layers import (
    DepthwiseSeparableConv,
    LayerNorm2d,
    ResidualBlock,
    SaliencyPool,
    WaveletSplit,
    channel_softmax,
    coordinate_update,
    depthwise_conv,
    expand_saliency,
    top_k_of_relu_outer,
)

SPACAM_DILATIONS = (1, 2, 4)


class GatedSpatialBlock(nn.Module):
    """GSB, paper eq. (3): F_out = Softmax(D_j) * GELU(DWConv(F)) + F.  (B, D, H, W) x2 -> (B, D, H, W).

    Choice where the paper is vague: the softmax runs over the channels of each pixel (a spatial softmax would be
    global, see layers.SaliencyPool) and is multiplied by D so that a uniform gate is 1, not 1/D.
    """

    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv = depthwise_conv(width)
        self.act = nn.GELU()

    def forward(self, features: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(features, channel_softmax(context), self.act(self.conv(features)), value=context.shape[1])


class SpaCAM(nn.Module):
    """Spatial Coordinate-Aware Mixing, paper eqs. (2)-(3): multi-scale context gates spatial features.

    D_j = DWConv_{3x3, d_j}(MaxPool(F)) for dilations d_j = 1, 2, 4 (eq. 2); three GSBs in series, GSB j gated by
    D_j (eq. 3). Choices: MaxPool is 3 x 3 with stride 1 (keeps the resolution); DWConv is depthwise-separable
    (depthwise dilated 3 x 3, then pointwise 1 x 1), as the paper's efficiency section says.
    (B, D, H, W) -> (B, D, H, W).
    """

    def __init__(self, width: int) -> None:
        super().__init__()
        self.pool = nn.MaxPool2d(3, stride=1, padding=1)
        self.contexts = nn.ModuleList(DepthwiseSeparableConv(width, 3, d) for d in SPACAM_DILATIONS)
        self.gates = nn.ModuleList(GatedSpatialBlock(width) for _ in SPACAM_DILATIONS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.pool(x)
        out = x
        for context, gate in zip(self.contexts, self.gates):
            out = gate(out, context(pooled))
        return out


class SpectralCoordinateMixing(nn.Module):
    """SCM, paper Algorithm 1 stage 2 and eq. (4): per saliency vector, (N, 2D) -> channel weights a (N, D).

    The paper: z_in = G_g(concat(v_low, v_high)); Expansion builds a D x D interaction space; Top-K keeps each
    row's K key coordinates as the D x K candidate matrix M; the coordinate update of eq. (4) traverses M from
    left to right starting at an initial state z^0, accepting non-zero "innovations" and keeping the state at
    zeros; a = Map(z). Ours: A[c, j] = ReLU(u_c w_j) with u = W_u z_in, w = W_w z_in (a learned rank-1 bilinear
    form, made sparse by the ReLU); M = each row's K largest entries of A in descending order; Map(z) =
    sigmoid(W_m z + b).

    What that computes, in closed form: M's rows are non-negative and descending, so their zeros form a tail and
    the traversal ends at the last positive entry,

        z_c = min{ M[c, k] : M[c, k] > 0 }   (the smallest positive of row c's top-K), z^0_c if there is none;

    that is u_c times the smallest positive w_j among the K largest w where u_c > 0, u_c times the largest
    negative w_j among the K smallest where u_c < 0. The zeros only trail, so no candidate before the last positive
    one matters (z_c is the K-th candidate where all K are positive), and z^0_c is read only where row c has no
    positive entry at all: u_c = 0, or no w_j of u_c's sign. That is rare: with random weights 5e-3 of the rows
    at D = 8, 7e-5 at D = 16, none of 640 000 at D = 64; the shipped default model (D = 64) has z^0 = 0 exactly
    (training never moved it) and none of its 435 456 rows on the sample scene reads it. ``initial_state`` is
    kept, for those rows and so that every checkpoint loads with its keys. The paper's traversal of a "sparse
    matrix" only remembers earlier candidates where zeros lie *between* innovations, which no sorted non-negative
    top-K has; its rule (accept non-zero values, keep the state at zeros) is what
    :func:`~.layers.coordinate_update` computes, for any M.

    Computed without the loop and without the D x D matrix: :func:`~.layers.top_k_of_relu_outer` gives M from the
    sorted w (the same numbers as the top-K of A), :func:`~.layers.coordinate_update` picks each row's last
    non-zero entry (the same numbers and gradients as the loop). Outputs equal the loop-and-matrix version bit for
    bit; the gradients of W_w and of G_g agree to float32 rounding (1e-7 relative: another summation order).
    """

    def __init__(self, width: int, top_k: int) -> None:
        super().__init__()
        self.top_k = top_k
        self.gather = nn.Sequential(nn.Linear(2 * width, width), nn.GELU())
        self.row = nn.Linear(width, width)
        self.column = nn.Linear(width, width)
        self.initial_state = nn.Parameter(torch.zeros(width))
        self.map = nn.Linear(width, width)

    def forward(self, saliency: torch.Tensor) -> torch.Tensor:
        z_in = self.gather(saliency)
        candidates = top_k_of_relu_outer(self.row(z_in), self.column(z_in), self.top_k)  # M, (N, D, K)
        state = coordinate_update(candidates, self.initial_state)
        return torch.sigmoid(self.map(state))


class SpeCAM(nn.Module):
    """Spectral Coordinate-Aware Mixing, paper section 3.3 and Algorithm 1.  (B, D, H, W) -> (B, D, H, W).

    Stage 1: wavelet split into f_low, f_high (layers.WaveletSplit: with haar, a 2 x 2 box filter and the
    residual); each f <- GELU(DWConv(f)); saliency v = MaxPool(f).
    Stage 2: SCM turns (v_low, v_high) into channel weights a.
    Stage 3: F_mid = GELU(DWConv(f_low * a * alpha + f_high * a * (1 - alpha))); output F_mid + F.
    Choices: the saliency vectors live on a coarse local grid (layers.SaliencyPool) instead of one global vector,
    and a is interpolated back to the pixels; alpha is one learnable coefficient per channel, sigmoid(0) = 0.5 at
    start; DWConv here is a depthwise 3 x 3.
    """

    def __init__(self, width: int, top_k: int, wavelet: str, saliency_stride: int) -> None:
        super().__init__()
        self.split = WaveletSplit(width, wavelet)
        self.low_conv = depthwise_conv(width)
        self.high_conv = depthwise_conv(width)
        self.pool = SaliencyPool(saliency_stride)
        self.mixing = SpectralCoordinateMixing(width, top_k)
        self.alpha_logit = nn.Parameter(torch.zeros(width, 1, 1))
        self.out_conv = depthwise_conv(width)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low, high = self.split(x)
        low = self.act(self.low_conv(low))
        high = self.act(self.high_conv(high))
        saliency = torch.cat([self.pool(low), self.pool(high)], dim=1)  # (B, 2D, h, w)
        batch, channels, h, w = saliency.shape
        vectors = saliency.permute(0, 2, 3, 1).reshape(-1, channels)
        weights = self.mixing(vectors).reshape(batch, h, w, -1).permute(0, 3, 1, 2)
        weights = expand_saliency(weights, x.shape[-2:])
        alpha = torch.sigmoid(self.alpha_logit).to(low.dtype)
        mixed = weights * torch.lerp(high, low, alpha)  # alpha low + (1 - alpha) high, one pass
        return self.act(self.out_conv(mixed)).add_(x)


class SSCFM(nn.Module):
    """Spatial-Spectral Cross-Fusion Module, paper section 3.4.  (B, D, H, W) x2 -> (B, D, H, W).

    LKA branch: S = sum over k in {3, 5} of softmax_k(m_k) * m_k with m_k = DWConv_{k x k}(LN(F_spa)) (the softmax
    runs across the two scales: a per-pixel, per-channel selection of the receptive field); 10 % dropout on S in
    training. SSE branch: V = sigmoid(W_2 ReLU(W_1 MaxPool(LN(F_spe)))) (squeeze-excitation, reduction 4, on the
    local saliency grid). Cross-fusion in four channel groups of D/4: the spectral stream is F_spe * S (spatial
    attention selects spectral features), the spatial stream F_spa * V (spectral excitation recalibrates spatial
    features), each through a grouped 1 x 1 convolution; the streams are concatenated and a 3 x 3 convolution
    gives the residual map R. Output F_spa + F_spe + R.
    """

    groups = 4

    def __init__(self, width: int, saliency_stride: int, dropout: float) -> None:
        super().__init__()
        self.norm_spa = LayerNorm2d(width)
        self.norm_spe = LayerNorm2d(width)
        self.lka3 = depthwise_conv(width, 3)
        self.lka5 = depthwise_conv(width, 5)
        self.drop = nn.Dropout(dropout)
        self.pool = SaliencyPool(saliency_stride)
        self.excite = nn.Sequential(
            nn.Conv2d(width, width // 4, 1), nn.ReLU(), nn.Conv2d(width // 4, width, 1), nn.Sigmoid()
        )
        self.spectral_stream = nn.Conv2d(width, width, 1, groups=self.groups)
        self.spatial_stream = nn.Conv2d(width, width, 1, groups=self.groups)
        self.fuse = nn.Conv2d(2 * width, width, 3, padding=1)

    def forward(self, spa: torch.Tensor, spe: torch.Tensor) -> torch.Tensor:
        normed = self.norm_spa(spa)
        m3, m5 = self.lka3(normed), self.lka5(normed)
        select3 = torch.sigmoid(m3 - m5)  # softmax over the two scales == sigmoid of the difference
        attention = self.drop(select3 * m3 + (1 - select3) * m5)
        excitation = expand_saliency(self.excite(self.pool(self.norm_spe(spe))), spe.shape[-2:])
        streams = torch.cat([self.spectral_stream(spe * attention), self.spatial_stream(spa * excitation)], dim=1)
        return self.fuse(streams).add_(spa).add_(spe)  # in place into the fresh convolution output


class CoFusionBlock(nn.Module):
    """One dual-branch stage: SSCFM(SpaCAM(x), SpeCAM(x)).  (B, D, H, W) -> (B, D, H, W).

    With an ablation switch off, the module is a plain residual block (paper Table 3); without SSCFM the two
    branches are summed and refined by a residual block.
    """

    def __init__(self, width: int, top_k: int, wavelet: str, saliency_stride: int, dropout: float,
                 spacam: bool = True, specam: bool = True, sscfm: bool = True) -> None:
        super().__init__()
        self.spatial = SpaCAM(width) if spacam else ResidualBlock(width)
        self.spectral = SpeCAM(width, top_k, wavelet, saliency_stride) if specam else ResidualBlock(width)
        self.fusion = SSCFM(width, saliency_stride, dropout) if sscfm else _SumThenResidual(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fusion(self.spatial(x), self.spectral(x))


class _SumThenResidual(nn.Module):
    """The SSCFM ablation: ResidualBlock(spa + spe). (B, D, H, W) x2 -> (B, D, H, W)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.block = ResidualBlock(width)

    def forward(self, spa: torch.Tensor, spe: torch.Tensor) -> torch.Tensor:
        return self.block(spa + spe)

