# SPDX-License-Identifier: GPL-2.0-or-later
"""CoFusionNet: the Multi-Scale Generator (paper section 3.2, eq. 1) around CoFusion blocks.

Data flow (B batch, C_h / C_m hyperspectral / multispectral bands, s scale, D width, H = s*h):

    X (B, C_h, h, w) --1x1--> D --bicubic xs--\\
                                               + = F^1 (B, D, H, W)                     (feature alignment)
    Y (B, C_m, H, W) --3x3--> D --------------/
    F^2 = E_2(down2 F^1), F^3 = E_3(down2 F^2)                                   (local features, eq. 1)
    R^3 = Blocks_3(F^3); R^l = Blocks_l(F^l + up2(E'_l(R^(l+1))))  for l = 2, 1   (global proxies, eq. 1)
    Z = Base(bicubic_xs(X), Y) + Head(R^1 + F^1)                    (progressive upsampling, residuals)
    Z <- BackProject(Base + Trust(X) * Head, X)                         (our additions, below)

Base is a classical fusion of the scene (our addition, see ``core.model.prior`` why), per ``config.base``: the
blend of GSA and the local linear regression (default), either alone, or the bicubic LRHSI alone as in the paper
("bicubic"); GSA's weights are set per scene with ``self.base.set_weights``. Trust (``core.model.domain``,
fitted on the training LR spectra with ``self.domain.fit``) weighs the head down on materials the training never
saw; back-projection (``core.injection.back_project``) makes the output reproduce the LRHSI under the sensor model.

Choices where the paper is vague: down2 is 2 x 2 average pooling (what bilinear x0.5 computes); E_l is a 3 x 3
convolution + GELU; the proxy encoder E'_l is a 1 x 1 convolution applied before the bilinear up2 (the two
commute, so the convolution runs at the coarse resolution); the LRHSI is embedded by a 1 x 1 convolution at low
resolution before its bicubic upsampling (same linear map, s^2 times cheaper); the head is 3 x 3 conv + GELU +
1 x 1 conv to C_h, its last layer zero-initialised so an untrained network returns the base (the bicubic LRHSI
until the base's weights are set).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError
from ..injection import back_project
from ..resample import upsample
from .blocks import CoFusionBlock
from .config import ModelConfig
from .domain import TrainingDomain
from .layers import pad_to_multiple
from .prior import BicubicBase, BlendedBase, DetailInjection, LLRBase

LEVELS = 3


class CoFusionNet(nn.Module):
    """HRHSI = CoFusionNet(LRHSI, HRMSI):  (B, C_h, h, w), (B, C_m, s*h, s*w) -> (B, C_h, s*h, s*w).

    Inputs are normalised data (see core.checkpoint.Normalization); any h, w >= 1 work (the input is padded at the
    bottom and right by half-sample symmetric mirroring, ``layers.pad_to_multiple``, to a multiple of
    ``config.align`` HR pixels and the output cropped back).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        width = config.width
        self.lr_embed = nn.Conv2d(config.hsi_bands, width, 1)
        self.msi_embed = nn.Conv2d(config.msi_bands, width, 3, padding=1)
        self.encoders = nn.ModuleList(
            nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.GELU()) for _ in range(LEVELS - 1)
        )
        self.proxies = nn.ModuleList(nn.Conv2d(width, width, 1) for _ in range(LEVELS - 1))
        self.levels = nn.ModuleList(
            nn.Sequential(*(
                CoFusionBlock(width, config.top_k, config.wavelet, config.saliency_stride, config.dropout,
                              config.spacam, config.specam, config.sscfm)
                for _ in range(config.blocks_per_level)
            ))
            for _ in range(LEVELS)
        )
        bases = {"llr": lambda: LLRBase(config.scale),
                 "gsa": lambda: DetailInjection(config.hsi_bands, config.msi_bands),
                 "blend": lambda: BlendedBase(config.hsi_bands, config.msi_bands, config.scale),
                 "bicubic": BicubicBase}
        self.base = bases[config.base]()
        self.domain = (TrainingDomain(config.hsi_bands, config.domain_prototypes, config.trust_falloff)
                       if config.domain_prototypes else None)
        self.head = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1), nn.GELU(), nn.Conv2d(width, config.hsi_bands, 1)
        )
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)

    def forward(self, lr_hsi: torch.Tensor, hr_msi: torch.Tensor) -> torch.Tensor:
        self._check_inputs(lr_hsi, hr_msi)
        scale = self.config.scale
        height, width = hr_msi.shape[-2:]
        lr_hsi = pad_to_multiple(lr_hsi, self.config.align // scale)
        hr_msi = pad_to_multiple(hr_msi, self.config.align)

        upsampled = upsample(lr_hsi, scale, "bicubic")
        # Sums accumulate in place into a fresh operand (here and below): one pass, no new allocation of a
        # full-resolution tensor (each costs its page faults); none of them is saved for the backward pass.
        aligned = upsample(self.lr_embed(lr_hsi), scale, "bicubic").add_(self.msi_embed(hr_msi))
        local = [aligned]
        for encoder in self.encoders:
            local.append(encoder(F.avg_pool2d(local[-1], 2)))
        refined = self.levels[-1](local[-1])
        for level in range(LEVELS - 2, -1, -1):
            proxy = upsample(self.proxies[level](refined), 2, "bilinear")
            refined = self.levels[level](local[level] + proxy)
        base = self.base(lr_hsi, upsampled, hr_msi)
        correction = self.head(refined.add_(aligned))
        if self.domain is not None:  # None, not an identity, without clusters: callers test `model.domain is None`
            fused = torch.addcmul(base, correction, self.domain(lr_hsi, scale))  # base + correction * trust
        else:
            fused = correction.add_(base)
        fused = back_project(fused, lr_hsi, scale, self.config.consistency_steps)
        return fused[..., :height, :width]

    def _check_inputs(self, lr_hsi: torch.Tensor, hr_msi: torch.Tensor) -> None:
        config = self.config
        if lr_hsi.ndim != 4 or hr_msi.ndim != 4:
            raise InputError(
                f"expected batched 4-D tensors (B, C, H, W), got LRHSI {tuple(lr_hsi.shape)} and HRMSI "
                f"{tuple(hr_msi.shape)}."
            )
        if lr_hsi.shape[1] != config.hsi_bands or hr_msi.shape[1] != config.msi_bands:
            raise InputError(
                f"the model expects {config.hsi_bands} hyperspectral and {config.msi_bands} multispectral bands, "
                f"got {lr_hsi.shape[1]} and {hr_msi.shape[1]}."
            )
        expected = (lr_hsi.shape[-2] * config.scale, lr_hsi.shape[-1] * config.scale)
        if tuple(hr_msi.shape[-2:]) != expected or lr_hsi.shape[0] != hr_msi.shape[0]:
            raise InputError(
                f"HRMSI {tuple(hr_msi.shape)} must be the LRHSI {tuple(lr_hsi.shape)} times the scale "
                f"{config.scale} in rows and columns, with the same batch size."
            )


def build_model(config: ModelConfig) -> CoFusionNet:
    """The network for ``config``, freshly initialised."""
    return CoFusionNet(config)
