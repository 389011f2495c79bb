# SPDX-License-Identifier: GPL-2.0-or-later
"""The detail-injection base of CoFusionNet: a learned, linear component-substitution fusion.

Not in the paper, which adds its head to the bicubic LRHSI. Our benchmark (bench/results/baselines.md) shows
why we add it: on every scene the classical GSA beats bicubic by 11-15 dB at x4, so a network that starts from
bicubic spends most of a short CPU training budget relearning what one linear map of the HRMSI already gives.
Starting from a GSA-like base, the network learns only what a linear method misses (non-linear spectral
mixing, edges, SRF errors). The base keeps the paper's residual structure: ``Z = base + Head(...)``.

    up (B, C_h, H, W) = bicubic LRHSI,  Y (B, C_m, H, W) = HRMSI          (normalised units)
    I = A up + b          (B, C_m, H, W)   intensity: what the MSI sees of the upsampled HSI
    base = up + G (Y - I) (B, C_h, H, W)   injected detail, one gain per (HSI band, MSI band)

A, b, G are 1 x 1 convolutions, trained with the rest of the network. G starts at zero (base = bicubic, so an
untrained network is the bicubic LRHSI); :func:`fit_detail_injection` gives them their least-squares values
on training data before gradient descent starts (after GSA's regressions, Aiazzi et al. 2007).
"""
from __future__ import annotations

import torch
from torch import nn


class DetailInjection(nn.Module):
    """base = up + G (msi - A up - b):  (B, C_h, H, W), (B, C_m, H, W) -> (B, C_h, H, W)."""

    def __init__(self, hsi_bands: int, msi_bands: int) -> None:
        super().__init__()
        self.intensity = nn.Conv2d(hsi_bands, msi_bands, 1)
        self.gain = nn.Conv2d(msi_bands, hsi_bands, 1, bias=False)
        nn.init.zeros_(self.gain.weight)

    def forward(self, upsampled: torch.Tensor, hr_msi: torch.Tensor) -> torch.Tensor:
        return upsampled + self.gain(hr_msi - self.intensity(upsampled))


@torch.no_grad()
def fit_detail_injection(module: DetailInjection, hr_msi: torch.Tensor, upsampled: torch.Tensor,
                         target: torch.Tensor) -> None:
    """Set A, b and G to their least-squares values on a batch of training pairs (normalised units).

    hr_msi (B, C_m, H, W); upsampled (B, C_h, H, W), the network's bicubic LRHSI; target (B, C_h, H, W), the
    HRHSI to reach. A and b regress the HRMSI on the target HRHSI: the sensor's spectral response, fitted
    where both are known at the same resolution (GSA fits it between the LRHSI and the degraded HRMSI, which
    leaves fewer pixels than a 200-band HSI has bands on a small training region). G regresses the missing
    detail ``target - up`` on the injected detail ``msi - A up - b``. Solved in float64 (minimum-norm where
    bands are collinear).
    """
    upsampled, target = upsampled.double(), target.double()
    weights = _least_squares(_pixels(target), _pixels(hr_msi.double()), intercept=True)  # (C_h + 1, C_m)
    module.intensity.weight.copy_(weights[:-1].T[..., None, None])
    module.intensity.bias.copy_(weights[-1])
    intensity = torch.einsum("bchw,cm->bmhw", upsampled, weights[:-1]) + weights[-1].view(1, -1, 1, 1)
    gains = _least_squares(_pixels(hr_msi.double() - intensity), _pixels(target - upsampled), intercept=False)
    module.gain.weight.copy_(gains.T[..., None, None])


def _pixels(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B*H*W, C)."""
    return x.movedim(1, -1).reshape(-1, x.shape[1])


def _least_squares(inputs: torch.Tensor, targets: torch.Tensor, intercept: bool) -> torch.Tensor:
    """Weights (P [+ 1], Q) minimising ||[inputs, 1] W - targets||; inputs (N, P), targets (N, Q)."""
    if intercept:
        inputs = torch.cat([inputs, torch.ones_like(inputs[:, :1])], dim=1)
    return torch.linalg.lstsq(inputs, targets, driver="gelsd").solution
