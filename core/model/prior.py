# SPDX-License-Identifier: GPL-2.0-or-later
"""The scene-adaptive detail-injection base of CoFusionNet: the network's head corrects a GSA fusion.

Not in the paper, which adds its head to the bicubic LRHSI. Our benchmark (bench/results/baselines.md) shows why
we add it: GSA (Aiazzi, Baronti, Selva 2007) beats bicubic by 11-15 dB at x4 on every scene, because it fits its
weights on the very scene it fuses; a network that starts from bicubic, or from weights learned on the training
region, must relearn that adaptation and does not get it from a small training region in a CPU budget. So the
base is GSA, fitted on the scene being fused (the inputs only: no reference), and the network learns what GSA
misses (``Z = base + Head(...)``, the paper's residual structure). The same estimator fits the base on the
training scenes during training, so the head learns to correct exactly what it will correct at fusion time.

    up (B, C_h, H, W) = bicubic LRHSI,  Y (B, C_m, H, W) = HRMSI                      (normalised units)
    I = A up + b          (B, C_m, H, W)    intensity: the HSI as the MSI sees it
    base = up + G (Y - I) (B, C_h, H, W)    injected detail, one gain per (HSI band, MSI band)

A and b regress the HRMSI, degraded to the LR grid by the protocol's sensor model, on the LRHSI (C_h + 1
unknowns per MSI band, fitted on every LR pixel of the scene); G = Cov(HSI, I) Cov(I)^-1 at low resolution (the
multivariate GSA gain). :class:`SceneMoments` accumulates the second moments these need block by block, so a
scene of any size is fitted in bounded memory, and a sub-window fusion uses the same weights as the whole run.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

#: Relative cut-off of small singular values in the pseudo-inverses (collinear bands, a constant scene).
RCOND = 1e-10


@dataclass(frozen=True)
class InjectionWeights:
    """GSA weights of one scene: ``intensity`` A ``(C_m, C_h)``, ``offset`` b ``(C_m,)``, ``gains`` G
    ``(C_h, C_m)``, float32 tensors in normalised units."""

    intensity: torch.Tensor
    offset: torch.Tensor
    gains: torch.Tensor


class SceneMoments:
    """Running sums over LR pixels of ``x = [h, 1]`` (LRHSI pixel and 1) and ``d`` (degraded HRMSI pixel).

    Holds ``S_xx = sum x x^T`` ``(C_h + 1, C_h + 1)`` and ``S_xd = sum x d^T`` ``(C_h + 1, C_m)`` in float64:
    memory depends on the band counts only.
    """

    def __init__(self, hsi_bands: int, msi_bands: int) -> None:
        self.count = 0
        self.xx = torch.zeros(hsi_bands + 1, hsi_bands + 1, dtype=torch.float64)
        self.xd = torch.zeros(hsi_bands + 1, msi_bands, dtype=torch.float64)

    def add(self, lr_hsi: torch.Tensor, msi_lr: torch.Tensor, valid: torch.Tensor | None = None) -> None:
        """Add a co-registered pair on the LR grid: ``lr_hsi`` ``(C_h, h, w)`` and ``msi_lr`` ``(C_m, h, w)``, the
        HRMSI degraded to the LR grid by the sensor model (``core.degrade.spatial_degrade``), normalised units;
        ``valid`` ``(h, w)`` bool marks the LR pixels to use (all when None)."""
        lr_pixels, msi_pixels = lr_hsi.flatten(1), msi_lr.flatten(1)
        if valid is not None:
            lr_pixels, msi_pixels = lr_pixels[:, valid.flatten()], msi_pixels[:, valid.flatten()]
        x = torch.cat([lr_pixels.double(), torch.ones_like(lr_pixels[:1], dtype=torch.float64)])
        self.xx += x @ x.T
        self.xd += x @ msi_pixels.double().T
        self.count += lr_pixels.shape[1]

    def weights(self) -> InjectionWeights:
        """The GSA weights of the pixels added so far (minimum-norm where bands are collinear)."""
        if self.count == 0:
            raise ValueError("no pixels were added to fit the detail-injection base")
        a = torch.linalg.pinv(self.xx, rtol=RCOND, hermitian=True) @ self.xd  # (C_h + 1, C_m), [A^T; b]
        mean_x = self.xx[-1] / self.count  # E[x]: the last row of S_xx is sum x (x's last entry is 1)
        second_x = self.xx / self.count
        mean_i = mean_x @ a  # E[I] (C_m,)
        cov_hi = (second_x @ a)[:-1] - torch.outer(mean_x[:-1], mean_i)  # Cov(h, I) (C_h, C_m)
        cov_ii = a.T @ second_x @ a - torch.outer(mean_i, mean_i)  # Cov(I) (C_m, C_m)
        gains = cov_hi @ torch.linalg.pinv(cov_ii, rtol=RCOND, hermitian=True)
        return InjectionWeights(a[:-1].T.float().contiguous(), a[-1].float(), gains.float())


class DetailInjection(nn.Module):
    """base = up + G (msi - A up - b):  (B, C_h, H, W), (B, C_m, H, W) -> (B, C_h, H, W).

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

    def forward(self, upsampled: torch.Tensor, hr_msi: torch.Tensor) -> torch.Tensor:
        intensity = torch.einsum("mc,bchw->bmhw", self.intensity.to(upsampled.dtype), upsampled)
        detail = hr_msi - intensity - self.offset.to(upsampled.dtype).view(1, -1, 1, 1)
        return upsampled + torch.einsum("cm,bmhw->bchw", self.gains.to(upsampled.dtype), detail)
