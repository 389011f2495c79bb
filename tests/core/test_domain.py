# SPDX-License-Identifier: GPL-2.0-or-later
"""The trust map: 1 on spectra like the training ones, 0 on novel ones; fitted, saved and reloaded."""
import numpy as np
import torch

from cofusion.core.checkpoint import ModelCard, Normalization, load_checkpoint, save_checkpoint
from cofusion.core.model import ModelConfig, build_model
from cofusion.core.model.domain import RADIUS_QUANTILE, RADIUS_SCALE, TrainingDomain

FALLOFF = 3.0


def _two_materials(count=400, bands=6, seed=0):
    gen = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[1.0] * bands, [-1.0] * bands])
    return centres[torch.arange(count) % 2] + 0.05 * torch.randn(count, bands, generator=gen)


def _as_image(spectra):  # (N, C) -> (1, C, 1, N)
    return spectra.T[None, :, None, :]


def test_an_unfitted_domain_trusts_everything():
    domain = TrainingDomain(6, 4, FALLOFF)
    assert torch.equal(domain(torch.randn(1, 6, 3, 5) * 100, 2), torch.ones(1, 1, 6, 10))


def test_training_spectra_are_trusted_and_a_novel_material_is_not():
    domain = TrainingDomain(6, 4, FALLOFF)
    training = _two_materials()
    domain.fit(training)
    trust = domain(_as_image(training), 1)
    assert trust.min() >= 0 and trust.max() <= 1
    inside = (trust == 1).float().mean()  # each radius is RADIUS_SCALE times its members' RADIUS_QUANTILE quantile
    assert 0.5 < inside < RADIUS_QUANTILE and RADIUS_SCALE < 1
    assert (trust > 0).float().mean() >= RADIUS_QUANTILE
    novel = torch.full((1, 6), 3.0)
    assert domain(_as_image(novel), 1).item() == 0.0
    nearest = int(torch.cdist(torch.ones(1, 6), domain.centres).argmin())
    centre, radius = domain.centres[nearest], float(domain.radii[nearest])
    direction = torch.ones(6) / 6 ** 0.5
    for distance, expected in ((0.5, 1.0), (2.0, 0.5), (3.5, 0.0)):  # in radii: 1 inside, linear to 0 at FALLOFF
        point = (centre + distance * radius * direction)[None]
        assert abs(domain(_as_image(point), 1).item() - expected) < 1e-4


def test_trust_is_interpolated_to_the_hr_grid():
    domain = TrainingDomain(6, 2, FALLOFF)
    domain.fit(_two_materials())
    lr = torch.stack([torch.ones(6), torch.full((6,), 5.0)], 1)[None, :, None, :]  # trusted, novel
    trust = domain(lr, 4)
    assert trust.shape == (1, 1, 4, 8)
    assert trust[0, 0, 0, 0] == 1 and trust[0, 0, 0, -1] == 0 and 0 < trust[0, 0, 0, 4] < 1


def test_fit_is_deterministic_and_copes_with_few_or_identical_spectra():
    first, second = TrainingDomain(6, 8, FALLOFF), TrainingDomain(6, 8, FALLOFF)
    first.fit(_two_materials(), seed=3)
    second.fit(_two_materials(), seed=3)
    assert torch.equal(first.centres, second.centres) and torch.equal(first.radii, second.radii)
    few = TrainingDomain(6, 8, FALLOFF)
    few.fit(_two_materials(count=3))  # fewer spectra than clusters
    assert torch.isfinite(few.radii).all() and (few.radii > 0).all()
    same = TrainingDomain(6, 4, FALLOFF)
    same.fit(torch.ones(50, 6))
    assert same(torch.ones(1, 6, 2, 2), 1).eq(1).all() and same(torch.zeros(1, 6, 2, 2), 1).eq(0).all()


def test_the_fitted_domain_is_saved_with_the_weights(tmp_path):
    config = ModelConfig(6, 2, 4, width=8, top_k=2, domain_prototypes=4)
    model = build_model(config).eval()
    model.domain.fit(_two_materials())
    card = ModelCard(config=config, normalization=Normalization.identity(6, 2), hsi_wavelengths_nm=None, srf=None,
                     msi_band_names=None, provenance={"mode": "test"}, metrics={})
    loaded = load_checkpoint(save_checkpoint(tmp_path / "m.safetensors", model, card)).model
    np.testing.assert_allclose(loaded.domain.centres, model.domain.centres, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(loaded.domain.radii, model.domain.radii, rtol=1e-3)
    assert build_model(ModelConfig(6, 2, 4, width=8, top_k=2, domain_prototypes=0)).domain is None


def test_a_cancel_stops_the_fit_between_its_steps_and_changes_nothing():
    import pytest

    from cofusion.core.errors import Canceled
    from cofusion.core.model.domain import KMEANS_ITERATIONS

    spectra = _two_materials()
    domain = TrainingDomain(spectra.shape[1], 8, 3.0)
    before = [t.clone() for t in (domain.centres, domain.radii)]
    for stop_at in (1, 8, 8 + KMEANS_ITERATIONS // 2):  # in the seeding, at its end, in the iterations
        asked = []

        def cancel(asked=asked, stop_at=stop_at):
            asked.append(1)
            return len(asked) >= stop_at

        with pytest.raises(Canceled, match="trust map"):
            domain.fit(spectra, cancel=cancel)
        assert len(asked) == stop_at
        assert all(torch.equal(a, b) for a, b in zip(before, (domain.centres, domain.radii)))
    asked = []
    domain.fit(spectra, cancel=lambda: asked.append(1) or False)
    assert len(asked) == 7 + KMEANS_ITERATIONS  # 7 more seeds after the first, then every iteration
