# SPDX-License-Identifier: GPL-2.0-or-later
"""PSRT, the Pyramid Shuffle-and-Reshuffle Transformer, reimplemented to time it beside CoFusion.

S.-Q. Deng, L.-J. Deng, X. Wu, R. Ran, D. Hong and G. Vivone, "PSRT: Pyramid Shuffle-and-Reshuffle Transformer for
Multispectral and Hyperspectral Image Fusion", IEEE Transactions on Geoscience and Remote Sensing, vol. 61, 2023.

Our own code, written from the paper and from reading the authors' public code (github.com/shangqideng/PSRT,
``model/model_SR.py``: the network that its ``main_x4.py`` trains and its ``eval_x4.py`` tests), with its default
hyper-parameters:

- input: the LRHSI upsampled to the HR grid (bicubic; the authors' data files hold it precomputed, ``HSI_up``)
  stacked with the HRMSI, a 3 x 3 convolution to ``embed`` = 32 features;
- ``pyramid_blocks`` = 2 pyramid blocks of ``levels`` = 3 shuffle-and-reshuffle (SaR) blocks whose windows are 8, 4
  and 2 pixels; a SaR block is window attention, shuffle, window attention, reshuffle, window attention, plus its
  input;
- a window attention is a transformer layer on non-overlapping windows (no shift, no position bias): LayerNorm,
  multi-head self-attention with 8 heads and a biased qkv projection, the query scaled by 4 (the code's
  ``qk_scale=4``, not head_dim^-1/2), residual; LayerNorm, an MLP of ratio 4 with GELU, residual (dropout and
  drop path are 0 by default and left out);
- head: a 3 x 3 convolution to the HSI bands, LeakyReLU(0.2), plus the upsampled LRHSI;
- weights: linear layers N(0, 0.01), convolution biases 0, as the code initialises them (speed does not depend on
  them; no trained weights are used).

Where this differs from the code, it is faster, never slower: the features stay channels-last ``(B, H, W, C)``
between layers instead of being rearranged to ``(B, C, H, W)`` around each of the 18 attention layers, and the
shuffle is one view + permute instead of a zero tensor filled by four strided copies (the same permutation).

The authors' evaluation fuses 256 x 256 HR patches of the test images one by one (``test_cavepatches256``, batch 1,
no overlap); :func:`fuse_patches` does the same. A patch's sides must be multiples of the largest window (8).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from cofusion.core.resample import upsample

#: HR patch edge of the authors' evaluation (eval_x4.py reads 256 x 256 test patches).
PATCH = 256


def shuffle(x: torch.Tensor, window: int, inverse: bool = False) -> torch.Tensor:
    """The paper's window shuffle: ``x (B, H, W, C) -> (B, H, W, C)``, H and W multiples of ``window``.

    The image is cut into sub-blocks of ``window / 2`` pixels; the sub-blocks at even rows and even columns of that
    grid go, in order, to the top-left quadrant, (even, odd) to the top right, (odd, even) to the bottom left,
    (odd, odd) to the bottom right, so a window after the shuffle holds four sub-blocks that were a window apart.
    ``inverse`` is the reshuffle, which puts them back.
    """
    b, h, w, c = x.shape
    d = window // 2
    if inverse:  # quadrant, sub-block, pixel -> sub-block, parity, pixel
        x = x.view(b, 2, h // window, d, 2, w // window, d, c)
    else:  # sub-block pair, parity, pixel -> parity, sub-block pair, pixel
        x = x.view(b, h // window, 2, d, w // window, 2, d, c)
    return x.permute(0, 2, 1, 3, 5, 4, 6, 7).reshape(b, h, w, c)


class WindowAttention(nn.Module):
    """A transformer layer on non-overlapping ``window`` x ``window`` windows (the code's ``Window_Attention``).

    ``x (B, H, W, C) -> (B, H, W, C)``: ``x + MSA(LN(x))`` with the attention inside each window, then
    ``+ MLP(LN(.))``; H and W multiples of ``window``.

    Args:
        dim: C, the feature width.
        heads: attention heads (C / heads features each).
        window: window edge in pixels.
        mlp_ratio: hidden width of the MLP over C.
        qk_scale: factor on the queries before the dot products.
    """

    def __init__(self, dim: int, heads: int, window: int, mlp_ratio: float = 4.0, qk_scale: float = 4.0) -> None:
        super().__init__()
        self.heads, self.window, self.scale = heads, window, qk_scale
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x.shape
        s, n = self.window, self.window ** 2
        windows = self.norm1(x).view(b, h // s, s, w // s, s, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, n, c)
        q, k, v = self.qkv(windows).view(-1, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        attention = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
        out = self.proj((attention @ v).transpose(1, 2).reshape(-1, n, c))
        x = x + out.view(b, h // s, w // s, s, s, c).permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, c)
        return x + self.mlp(self.norm2(x))


class SaRBlock(nn.Module):
    """Shuffle and reshuffle (the code's ``W2W_Block``): ``x (B, H, W, C) -> x + WA3(R(WA2(S(WA1(x)))))``, S the
    shuffle and R the reshuffle of ``window``; H and W multiples of ``window``."""

    def __init__(self, dim: int, heads: int, window: int, mlp_ratio: float = 4.0, qk_scale: float = 4.0) -> None:
        super().__init__()
        self.window = window
        self.attend = nn.ModuleList(WindowAttention(dim, heads, window, mlp_ratio, qk_scale) for _ in range(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = shuffle(self.attend[0](x), self.window)
        y = shuffle(self.attend[1](y), self.window, inverse=True)
        return x + self.attend[2](y)


class PSRT(nn.Module):
    """The PSRT network: ``(up_hsi (B, C_h, H, W), msi (B, C_m, H, W)) -> (B, C_h, H, W)``.

    ``up_hsi`` is the LRHSI upsampled to the HR grid; H and W multiples of ``window``.

    Args:
        hsi_bands: C_h.
        msi_bands: C_m.
        embed: feature width (32).
        heads: attention heads (8).
        window: the largest window, halved at each level of a pyramid block (8: windows 8, 4, 2).
        pyramid_blocks: pyramid blocks in sequence (2).
        levels: SaR blocks per pyramid block (3).
        mlp_ratio: MLP hidden width over ``embed`` (4).
        qk_scale: query scale (4, the code's default).
    """

    def __init__(self, hsi_bands: int, msi_bands: int, embed: int = 32, heads: int = 8, window: int = 8,
                 pyramid_blocks: int = 2, levels: int = 3, mlp_ratio: float = 4.0, qk_scale: float = 4.0) -> None:
        super().__init__()
        self.window = window
        self.embed = nn.Conv2d(hsi_bands + msi_bands, embed, 3, padding=1)
        self.blocks = nn.Sequential(*(SaRBlock(embed, heads, window // 2 ** level, mlp_ratio, qk_scale)
                                      for _ in range(pyramid_blocks) for level in range(levels)))
        self.head = nn.Sequential(nn.Conv2d(embed, hsi_bands, 3, padding=1), nn.LeakyReLU(0.2))
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0.0, 0.01)
            elif isinstance(module, nn.Conv2d):
                nn.init.zeros_(module.bias)

    def forward(self, up_hsi: torch.Tensor, msi: torch.Tensor) -> torch.Tensor:
        h, w = up_hsi.shape[-2:]
        if h % self.window or w % self.window:
            raise ValueError(f"PSRT needs sides that are multiples of {self.window}; got {h} x {w}")
        x = self.embed(torch.cat((up_hsi, msi), dim=1)).permute(0, 2, 3, 1).contiguous()
        x = self.blocks(x).permute(0, 3, 1, 2)
        return self.head(x) + up_hsi


def fuse_patches(model: PSRT, lr_hsi: torch.Tensor, hr_msi: torch.Tensor, scale: int,
                 patch: int = PATCH) -> torch.Tensor:
    """Fuse as the authors' evaluation does: the LRHSI ``(C_h, h, w)`` upsampled bicubically by ``scale`` and cut
    to the HRMSI's ``(C_m, H, W)`` grid, then the network on each ``patch`` x ``patch`` HR patch alone (batch 1, no
    overlap). H and W must be multiples of ``patch``, and ``h * scale >= H``, ``w * scale >= W``. Returns
    ``(C_h, H, W)``. Call it in eval and inference mode."""
    height, width = hr_msi.shape[-2:]
    if height % patch or width % patch:
        raise ValueError(f"the HR size {height} x {width} is not a multiple of the patch {patch}")
    up = upsample(lr_hsi[None], scale, "bicubic")[0, :, :height, :width]
    out = torch.empty_like(up)
    for row in range(0, height, patch):
        for col in range(0, width, patch):
            window = (slice(None), slice(row, row + patch), slice(col, col + patch))
            out[window] = model(up[window][None], hr_msi[window][None])[0]
    return out
