# SPDX-License-Identifier: GPL-2.0-or-later
"""Where the head can be trusted: the LR spectra the network was trained on, and a trust map for new ones.

The head learns corrections from the materials of the training region. On a material it never saw they can be
wrong: on aviris_jasper_ridge, trained on 52 columns of vegetation, water and soil, the head lowered the test
region's PSNR from 43.9 (its base) to 39.8 dB, most (up to 14 dB more squared error) in 10 x 10-pixel blocks of
bright soil whose SWIR reflectance is twice any in the training region. So the head's output is weighted by a
trust map that is 1 on spectra like the training ones and falls to 0 on novel ones:

- Fit (training, :meth:`TrainingDomain.fit`): k-means of the training LR spectra (normalised units) into K
  clusters; each cluster's radius is 0.75 times the 90 % quantile of its members' distances to its centre.
- Trust (every forward pass): ``z = min_k |x - c_k| / r_k`` for each LR pixel x (its *novelty*);
  ``trust = clip((F - z) / (F - 1), 0, 1)`` with F = ``ModelConfig.trust_falloff`` (3): 1 inside a cluster's
  radius, 0 beyond F radii; interpolated bilinearly to the HR grid.

The rule (the radius scale 0.75 and F = 3) was chosen without test data, by cross-validation inside the training
regions of aviris_jasper_ridge and cave_oil_painting (``bench/trust_calibration.py``,
bench/results/trust_calibration.md): a model trained on two thirds of each region, scored on the last third; the
chosen rule has the best mean PSNR gain over the head off among the rules that lower neither scene's PSNR nor the
mean SAM. K = 16 dates from probes on the stop-10 models. Before fitting, the radii are infinite and the trust is 1
everywhere.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..errors import Canceled
from ..resample import upsample

#: Quantile of the members' distances that, times RADIUS_SCALE, defines a cluster's radius.
RADIUS_QUANTILE = 0.9
RADIUS_SCALE = 0.75
#: Lloyd iterations of the k-means fit.
KMEANS_ITERATIONS = 25
#: Radii are at least this fraction of the median radius (a cluster of identical spectra has radius 0).
MIN_RADIUS_FRACTION = 0.25


class TrainingDomain(nn.Module):
    """trust(X, s): (B, C_h, h, w) normalised LRHSI -> (B, 1, s*h, s*w) in [0, 1]; see the module docstring.

    Buffers (saved with the weights): ``centres`` (K, C_h) and ``radii`` (K,), normalised units.
    """

    def __init__(self, hsi_bands: int, prototypes: int, falloff: float) -> None:
        super().__init__()
        self.falloff = falloff
        self.register_buffer("centres", torch.zeros(prototypes, hsi_bands))
        self.register_buffer("radii", torch.full((prototypes,), float("inf")))

    @torch.no_grad()
    def fit(self, spectra: torch.Tensor, seed: int = 0, cancel: Callable[[], bool] | None = None) -> None:
        """Fit the clusters to ``spectra`` (N, C_h), normalised training LR pixels (N >= 1). ``cancel()`` is asked
        before each centre of the seeding and each k-means iteration (True raises Canceled; nothing is changed)."""
        spectra = spectra.double()
        count = self.centres.shape[0]
        centres = _kmeans_plus_plus(spectra, count, torch.Generator().manual_seed(seed), cancel)
        for _ in range(KMEANS_ITERATIONS):
            _check(cancel)
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
                radii[k] = RADIUS_SCALE * torch.quantile(member_distances, RADIUS_QUANTILE)
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
        """Trust on the HR grid: lr_hsi (B, C_h, h, w) -> (B, 1, s*h, s*w), float32 in [0, 1] (bilinear weights are
        convex)."""
        return upsample(trust_of(self.novelty(lr_hsi), self.falloff), scale, "bilinear")


def trust_of(novelty: torch.Tensor, falloff: float) -> torch.Tensor:
    """Trust of a novelty map (any shape): 1 up to ``z = 1``, falling linearly to 0 at ``z = falloff`` (> 1)."""
    return ((falloff - novelty) / (falloff - 1.0)).clamp(0.0, 1.0)


def _check(cancel: Callable[[], bool] | None) -> None:
    if cancel is not None and cancel():
        raise Canceled("canceled while fitting the trust map")


def _kmeans_plus_plus(points: torch.Tensor, count: int, generator: torch.Generator,
                      cancel: Callable[[], bool] | None = None) -> torch.Tensor:
    """k-means++ seeding: (N, C) -> (count, C) centres drawn from the points (repeated when N < count); ``cancel``
    as for ``TrainingDomain.fit``."""
    centres = [points[int(torch.randint(len(points), (1,), generator=generator))]]
    for _ in range(count - 1):
        _check(cancel)
        squared = torch.cdist(points, torch.stack(centres)).min(1).values ** 2
        if float(squared.sum()) == 0.0:
            centres.append(centres[-1])
            continue
        centres.append(points[int(torch.multinomial(squared / squared.sum(), 1, generator=generator))])
    return torch.stack(centres).clone()
