# SPDX-License-Identifier: GPL-2.0-or-later
"""The scene-adaptive bases of CoFusionNet: the network's head corrects a classical fusion of the scene.

Not in the paper, which adds its head to the bicubic LRHSI. Our benchmark (bench/results/baselines.md) shows why
we add it: classical fusions beat bicubic by 11-15 dB at x4 on every scene, because they fit their weights on
the very scene they fuse; a network that starts from bicubic, or from weights learned on a training region, must
relearn that adaptation and does not get it from a small training region in a CPU budget. So the base is a
classical fusion fitted on the scene being fused (the inputs only: no reference), and the network learns what it
misses (``Z = base + Head(...)``, the paper's residual structure). The same fit runs on the training scenes during
training, so the head learns to correct exactly what it will correct at fusion time. Two classical fusions, and
their blend, the default (normalised units; up (B, C_h, H, W) = bicubic LRHSI, Y (B, C_m, H, W) = HRMSI,
X (B, C_h, h, w) = LRHSI):

``LLRBase``: the local linear regression (``core.injection.local_regression``). Where a window holds two materials
(an edge), the spectra are affine in the MSI along the mixing line, so the local fit recovers the HR spectrum of
each edge pixel, where global gains fit to all materials at once cannot; edges are where most of GSA's squared
error lies (on cave_balloons 1 % of the pixels, where the HRMSI's gradient is 15 times its mean, hold 51 % of it:
bench/results/error_structure.md). No scene-level pass is needed, and the fit is local, so tiles need no shared
state.

``DetailInjection``: GSA with the scene's weights (``core.injection``: ``SceneMoments`` fits them over the whole
scene, ``inject`` applies them).

:class:`BlendedBase` (the default): the mean of GSA and the local regression. The two make partly independent
errors (their mean is within 0.2 dB of the better of the two on every benchmark scene at x4, and beats both on
cave_oil_painting: 47.26 dB against 46.57 and 46.67), and the head learns more on the mean than on the local
regression alone, whose 5 x 5-pixel fits leave a noisier residual (cave_oil_painting, same budget and code: 50.07
dB in bench/results/cofusion_x4.md as of commit 7b99acc, against 49.11 in cofusion_x4_oil_local_base.md). A trained
weight per band instead of the fixed mean fitted the training region and lowered the test regions' base by 0.2-0.4
dB (aviris_jasper_ridge 43.94 against 44.38, cave_oil_painting 47.03 against 47.26; stop-10 models).
"""
from __future__ import annotations

import torch
from torch import nn

from ..injection import InjectionWeights, inject, local_regression


class DetailInjection(nn.Module):
    """GSA: base = up + G (Y - A up - b); (B, C_h, h, w) LRHSI (unused), up (B, C_h, H, W), Y (B, C_m, H, W)
    -> (B, C_h, H, W).

    A, b, G are buffers set per scene with :meth:`set_weights` (not trained, not saved in checkpoints). Until
    then G is zero and the base is the bicubic LRHSI.
    """

    def __init__(self, hsi_bands: int, msi_bands: int) -> None:
        super().__init__()
        self.register_buffer("intensity", torch.zeros(msi_bands, hsi_bands), persistent=False)
        self.register_buffer("offset", torch.zeros(msi_bands), persistent=False)
        self.register_buffer("gains", torch.zeros(hsi_bands, msi_bands), persistent=False)

    def set_weights(self, weights: InjectionWeights) -> None:
        for name in ("intensity", "offset", "gains"):
            getattr(self, name).copy_(getattr(weights, name))

    def forward(self, lr_hsi: torch.Tensor, upsampled: torch.Tensor, hr_msi: torch.Tensor) -> torch.Tensor:
        return inject(upsampled, hr_msi, InjectionWeights(self.intensity, self.offset, self.gains))


class BicubicBase(nn.Module):
    """base = up, the bicubic LRHSI (the paper's): (B, C_h, h, w), up (B, C_h, H, W), (B, C_m, H, W) -> up.

    No weights, no state: what ``config.base = "bicubic"`` puts where the other bases fit the scene.
    """

    def forward(self, lr_hsi: torch.Tensor, upsampled: torch.Tensor, hr_msi: torch.Tensor) -> torch.Tensor:
        return upsampled


class LLRBase(nn.Module):
    """base = local_regression(X, Y) (LLR): (B, C_h, h, w), (B, C_m, H, W) -> (B, C_h, H, W); no weights, no
    state."""

    def __init__(self, scale: int) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, lr_hsi: torch.Tensor, upsampled: torch.Tensor, hr_msi: torch.Tensor) -> torch.Tensor:
        return local_regression(lr_hsi, hr_msi, self.scale)


class BlendedBase(DetailInjection):
    """base = (GSA + LLR) / 2: (B, C_h, h, w), up (B, C_h, H, W), (B, C_m, H, W) -> (B, C_h, H, W).

    GSA's weights are the parent's buffers, set per scene with :meth:`set_weights`; no trained weights.
    """

    def __init__(self, hsi_bands: int, msi_bands: int, scale: int) -> None:
        super().__init__(hsi_bands, msi_bands)
        self.scale = scale

    def forward(self, lr_hsi: torch.Tensor, upsampled: torch.Tensor, hr_msi: torch.Tensor) -> torch.Tensor:
        gsa = super().forward(lr_hsi, upsampled, hr_msi)
        return 0.5 * (gsa + local_regression(lr_hsi, hr_msi, self.scale))
