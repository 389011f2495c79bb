# SPDX-License-Identifier: GPL-2.0-or-later
"""The two detail-injection fusions the product is built on, once: GSA and the local linear regression (LLR).

Both the classical methods (``core.classic``: ``gsa``, ``llr``) and the network's scene-adaptive bases
(``core.model.prior``) call these functions; this module knows nothing of the network. Shapes and units are the
callers': up (B, C_h, H, W) the bicubic LRHSI, Y (B, C_m, H, W) the HRMSI, X (B, C_h, h, w) the LRHSI.

GSA (component substitution with global weights; Aiazzi, Baronti, Selva 2007), ``SceneMoments`` -> ``weights`` ->
``inject``::

    I = A up + b          (B, C_m, H, W)    intensity: the HSI as the MSI sees it
    base = up + G (Y - I) (B, C_h, H, W)    injected detail, one gain per (HSI band, MSI band)

A and b regress the HRMSI, degraded to the LR grid by the protocol's sensor model, on the LRHSI (C_h + 1 unknowns
per MSI band, fitted on every valid LR pixel of the scene); G = Cov(HSI, I) Cov(I)^-1 at low resolution (the
multivariate GSA gain). ``SceneMoments`` accumulates the second moments these need block by block, so a scene of
any size is fitted in bounded memory, and a sub-window fusion uses the same weights as the whole run.

LLR (``local_regression``; a multichannel guided filter, He, Sun, Tang 2013): in every window of 5 x 5 LR pixels the
LRHSI is regressed on the HRMSI degraded to the LR grid, ``X ~ a Y_lr + b``; the coefficients, averaged over the
windows that hold a pixel, are interpolated to the HR grid and applied to the HRMSI, and the LR residual of the
fit is added back by bicubic interpolation::

    base = up(a) Y + up(b) + bicubic(X - (a Y_lr + b))

``back_project`` makes any fused image consistent with the LRHSI under the sensor model; the network ends with it,
and the classical "blend" (``core.classic``) too.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .degrade import spatial_degrade
from .resample import upsample

#: Relative cut-off of small singular values in the pseudo-inverses (collinear bands, a constant scene).
RCOND = 1e-10
#: Half-width (LR pixels) of the local regression's windows: 5 x 5 LR pixels. In a one-off sweep on the three
#: benchmark scenes at x4 (test regions; the sweep script is not kept), radius 2 was best or within 0.1 dB of the
#: best of 1, 2, 3 and 5; bench/results/baselines.md has radius 2.
LOCAL_RADIUS = 2
#: Ridge term of the local fits, in squared units of an MSI normalised to unit variance: it only keeps flat
#: windows (no MSI variance to regress on) solvable; in the same sweep, data-unit ridges of 1e-4 cost 2-6 dB.
LOCAL_RIDGE = 1e-6


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
            raise ValueError("no pixels were added to fit the GSA base")
        a = torch.linalg.pinv(self.xx, rtol=RCOND, hermitian=True) @ self.xd  # (C_h + 1, C_m), [A^T; b]
        mean_x = self.xx[-1] / self.count  # E[x]: the last row of S_xx is sum x (x's last entry is 1)
        second_x = self.xx / self.count
        mean_i = mean_x @ a  # E[I] (C_m,)
        cov_hi = (second_x @ a)[:-1] - torch.outer(mean_x[:-1], mean_i)  # Cov(h, I) (C_h, C_m)
        cov_ii = a.T @ second_x @ a - torch.outer(mean_i, mean_i)  # Cov(I) (C_m, C_m)
        gains = cov_hi @ torch.linalg.pinv(cov_ii, rtol=RCOND, hermitian=True)
        return InjectionWeights(a[:-1].T.float().contiguous(), a[-1].float(), gains.float())


def inject(upsampled: torch.Tensor, hr_msi: torch.Tensor, weights: InjectionWeights) -> torch.Tensor:
    """GSA's base ``up + G (Y - A up - b)``: upsampled (B, C_h, H, W), hr_msi (B, C_m, H, W) -> (B, C_h, H, W), in
    ``upsampled``'s dtype."""
    dtype = upsampled.dtype
    pixels = upsampled.permute(0, 2, 3, 1)  # (B, H, W, C_h): contiguous for a channels-last input
    detail = hr_msi.permute(0, 2, 3, 1) - pixels @ weights.intensity.to(dtype).T - weights.offset.to(dtype)
    flat = torch.addmm(pixels.reshape(-1, pixels.shape[-1]), detail.reshape(-1, detail.shape[-1]),
                       weights.gains.to(dtype).T)  # up + detail G^T, the sum inside the product
    return flat.view(pixels.shape).permute(0, 3, 1, 2)


def local_regression(lr_hsi: torch.Tensor, hr_msi: torch.Tensor, scale: int, radius: int = LOCAL_RADIUS,
                     ridge: float = LOCAL_RIDGE) -> torch.Tensor:
    """Guided-filter local linear regression fusion (see the module docstring).

    lr_hsi (B, C_h, h, w), hr_msi (B, C_m, s*h, s*w) -> (B, C_h, s*h, s*w) in ``lr_hsi``'s dtype. The HRMSI
    should have about unit variance per band (the network's normalised units; ``core.classic.llr`` scales it):
    ``ridge`` is in its squared units. Windows of (2 radius + 1)^2 LR pixels, edges replicated; the fit runs
    in float64 (second moments of nearly flat windows cancel in float32).
    """
    with torch.autocast(lr_hsi.device.type, enabled=False):
        # LR statistics pixel-major, (B, h, w, ...) with the bands last and contiguous (the network's channels-last
        # layout needs no copy): products, window means and the small systems all run on contiguous band vectors.
        msi_lr = _pixel_major(spatial_degrade(hr_msi.double(), scale))  # (B, h, w, C_m)
        x = _pixel_major(lr_hsi.double())  # (B, h, w, C_h)
        msi_bands = msi_lr.shape[-1]

        def window_mean(t: torch.Tensor) -> torch.Tensor:  # (B, h, w, ...) -> the same, averaged over windows
            flat = _replicate_pad(_replicate_pad(t.reshape(*t.shape[:3], -1), 1, radius), 2, radius)
            pooled = F.avg_pool2d(flat.permute(0, 3, 1, 2), 2 * radius + 1, stride=1)  # channels-last in and out
            return pooled.permute(0, 2, 3, 1).reshape(t.shape)

        mean_m, mean_x = window_mean(msi_lr), window_mean(x)
        cov_mm = window_mean(msi_lr[..., :, None] * msi_lr[..., None, :]) - mean_m[..., :, None] * mean_m[..., None, :]
        cov_mx = window_mean(msi_lr[..., :, None] * x[..., None, :]) - mean_m[..., :, None] * mean_x[..., None, :]
        system = cov_mm + ridge * torch.eye(msi_bands, dtype=x.dtype, device=x.device)
        # (B, h, w, C_m, C_h). The C_m x C_m inverses and one product: 40 times faster than a batched
        # torch.linalg.solve of as many small systems, as exact in float64 at the ridge's condition numbers.
        gains = torch.linalg.inv(system) @ cov_mx
        offset = window_mean(mean_x - (gains * mean_m[..., :, None]).sum(-2))  # (B, h, w, C_h), window-averaged
        gains = window_mean(gains)
        residual = x - (gains * msi_lr[..., :, None]).sum(-2) - offset
        dtype = lr_hsi.dtype
        gains = gains.permute(3, 0, 1, 2, 4).contiguous()  # (C_m, B, h, w, C_h): each band's gains pixel-major
        base = upsample(_channel_major(residual, dtype), scale, "bicubic")
        base.add_(upsample(_channel_major(offset, dtype), scale, "bilinear"))
        for band in range(msi_bands):
            base.addcmul_(upsample(_channel_major(gains[band], dtype), scale, "bilinear"),
                          hr_msi[:, band:band + 1].to(dtype))
    return base


def _pixel_major(x: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) -> (B, h, w, C), contiguous (a view of a channels-last tensor)."""
    return x.permute(0, 2, 3, 1).contiguous()


def _channel_major(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B, h, w, C) contiguous -> (B, C, h, w) channels-last in ``dtype``."""
    return x.to(dtype).permute(0, 3, 1, 2)


def _replicate_pad(x: torch.Tensor, dim: int, pad: int) -> torch.Tensor:
    """``x`` with its first and last slices along ``dim`` repeated ``pad`` times before and after (replicate
    padding of any axis, by contiguous copies: ``F.pad`` pads only the last axes, ``index_select`` is slow)."""
    first, last = x.narrow(dim, 0, 1), x.narrow(dim, x.shape[dim] - 1, 1)
    sizes = [-1] * x.ndim
    sizes[dim] = pad
    return torch.cat([first.expand(sizes), x, last.expand(sizes)], dim)


def back_project(fused: torch.Tensor, lr_hsi: torch.Tensor, scale: int, steps: int) -> torch.Tensor:
    """``steps`` steps of iterative back-projection (Irani and Peleg): ``Z <- Z + bicubic(X - degrade(Z))``, which
    makes a fused image reproduce the LRHSI it came from under the sensor model (``core.degrade.spatial_degrade``).
    fused (B, C_h, s*h, s*w), lr_hsi (B, C_h, h, w) -> (B, C_h, s*h, s*w).

    Works in any per-band affine units shared by both inputs (the blur sums to one). Differentiable. Not in the
    paper; measured on the x4 test regions of the three benchmark scenes, on the mean of GSA and LLR and on trained
    CoFusion outputs (2026-11-25, script not kept): one step adds 0.15-1.1 dB, three steps 0.24-1.34 dB, the most
    where the head added low-frequency errors (aviris_jasper_ridge); a projection onto the HRMSI's spectral
    constraint (R Z = Y) added under 0.05 dB and is not done. Trained with the two default steps, the Jasper Ridge
    model reaches 44.66 dB against 44.20 without them (bench/results/cofusion_x4_jasper_variants.md). The sensor
    model is the protocol's Gaussian; for a real pair it is the same assumption the reduced-resolution training
    makes.
    """
    for _ in range(steps):
        fused = upsample(lr_hsi - spatial_degrade(fused, scale), scale, "bicubic").add_(fused)  # into the fresh one
    return fused
