# SPDX-License-Identifier: GPL-2.0-or-later
"""Training: both modes end to end on tiny rasters, reproducibility, resume, no leakage, SRF estimation, CLI."""
import csv
import functools
import itertools
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors import safe_open

from cofusion.core.checkpoint import load_checkpoint
from cofusion.core.degrade import spatial_degrade
from cofusion.core.errors import Canceled, InputError, OutputError
from cofusion.core.metrics import d_lambda, uqi
from cofusion.core.model import ModelConfig, build_model
from cofusion.core.model.config import AUTO_CANDIDATES
from cofusion.core.srf import gaussian_bands
from cofusion.training.api import estimate_srf, train_pair, train_reference
from cofusion.training.data import Batch, PairSource, split_validation
from cofusion.training.trainer import (
    BAND_WEIGHT_RATIO,
    CLASSICAL_CANDIDATES,
    TrainSettings,
    _loss,
    _no_reference_loss,
    band_weights,
    base_network,
    learning_rate_factor,
    resume_path,
)

WAVELENGTHS = tuple(float(w) for w in np.linspace(420, 880, 8))
TINY = {"width": 8, "top_k": 2}


def _smooth_scene(bands=8, size=64, seed=0):
    """A smooth, positive hyperspectral image (B, H, W): a few blobs with distinct spectra."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    image = np.full((bands, size, size), 0.1, np.float32)
    for _ in range(5):
        cy, cx, radius = rng.uniform(0, 1, 2).tolist() + [rng.uniform(0.1, 0.3)]
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / radius**2)
        image += rng.uniform(0.05, 0.5, (bands, 1, 1)).astype(np.float32) * blob.astype(np.float32)
    return image * 1000


def _settings(**kw):
    return TrainSettings(**{"iterations": 4, "batch_size": 2, "patch": 16, "validate_every": 2, "warmup": 2,
                            "device": "cpu", "model": TINY, **kw})


@pytest.fixture
def reference(make_raster):
    return make_raster(data=_smooth_scene(), wavelengths_nm=WAVELENGTHS, name="reference.tif")


class _StopAfter:
    """A progress and cancel pair: ``cancel()`` answers True once ``steps`` training steps were reported."""

    def __init__(self, steps):
        self.steps, self.done = steps, 0

    def progress(self, fraction, message):
        self.done += message.startswith("step ")

    def cancel(self):
        return self.done >= self.steps


def _state(path):
    with safe_open(str(path), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}


def test_reference_mode_writes_a_loadable_checkpoint_and_log(reference, tmp_path):
    out = tmp_path / "model.safetensors"
    seen = []
    result = train_reference([reference], "sentinel2a:B2,B3,B4", 4, out, settings=_settings(),
                             progress=lambda f, m: seen.append(f))
    checkpoint = load_checkpoint(out)
    card = checkpoint.card
    assert (card.config.hsi_bands, card.config.msi_bands, card.config.scale) == (8, 3, 4)
    assert card.hsi_wavelengths_nm == WAVELENGTHS and card.msi_band_names == ("B2", "B3", "B4")
    assert np.allclose(np.sum(card.srf, axis=1), 1.0)
    assert card.provenance["mode"] == "reference" and card.provenance["steps"] in (0, 2, 4)
    assert set(card.metrics) == {"PSNR", "SAM"} and card.metrics == result.metrics
    assert torch.isfinite(checkpoint.model.domain.radii).all()  # the trust map was fitted on the training region
    rows = list(csv.DictReader(open(result.log)))
    assert [int(r["step"]) for r in rows] == [0, 1, 2, 3, 4]  # step 0: the untrained start, validated too
    assert rows[0]["val_psnr"] and rows[2]["val_psnr"] and rows[4]["val_psnr"] and not rows[1]["val_psnr"]
    assert seen == sorted(seen) and seen[-1] == 1.0
    assert not resume_path(out).exists()


def test_same_seed_gives_the_same_weights(reference, tmp_path):
    a = train_reference([reference], "sentinel2a:B2,B3,B4", 4, tmp_path / "a.safetensors", settings=_settings())
    b = train_reference([reference], "sentinel2a:B2,B3,B4", 4, tmp_path / "b.safetensors", settings=_settings())
    state_a, state_b = _state(a.checkpoint), _state(b.checkpoint)
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)


def test_resume_after_an_interruption_continues_where_it_stopped(reference, tmp_path):
    whole = train_reference([reference], "sentinel2a:B2,B3,B4", 4, tmp_path / "whole.safetensors",
                            settings=_settings(iterations=6, validate_every=3))
    out = tmp_path / "cut.safetensors"
    stop = _StopAfter(4)
    with pytest.raises(Canceled):  # interrupted after step 4: the last resume point is step 3
        train_reference([reference], "sentinel2a:B2,B3,B4", 4, out, settings=_settings(iterations=6, validate_every=3),
                        progress=stop.progress, cancel=stop.cancel)
    assert resume_path(out).exists()
    resumed = train_reference([reference], "sentinel2a:B2,B3,B4", 4, out,
                              settings=_settings(iterations=6, validate_every=3))
    assert resumed.steps == 6
    assert [int(r["step"]) for r in csv.DictReader(open(resumed.log))] == [0, 1, 2, 3, 4, 5, 6]
    state_whole, state_resumed = _state(whole.checkpoint), _state(resumed.checkpoint)
    assert all(torch.equal(state_whole[k], state_resumed[k]) for k in state_whole)


def test_an_average_of_the_weights_is_kept_and_resumed(reference, tmp_path):
    out = tmp_path / "m.safetensors"
    stop = _StopAfter(5)
    with pytest.raises(Canceled):  # stops after step 5; the last resume point is step 4
        train_reference([reference], "sentinel2a:B2,B3,B4", 4, out, progress=stop.progress, cancel=stop.cancel,
                        settings=_settings(iterations=6, validate_every=4, ema_decay=0.5))
    saved = torch.load(resume_path(out), weights_only=True)
    averaged, raw = saved["averaged"], saved["model"]
    assert int(averaged["n_averaged"]) == 4  # one update per optimisation step
    name = "head.2.weight"  # zero at the start, so every step moves it
    assert not torch.equal(averaged[f"module.{name}"], raw[name])
    with pytest.raises(InputError, match="ema_decay"):
        _settings(ema_decay=1.0)


def test_validation_strip_never_overlaps_training_and_stats_ignore_it():
    train_box, val_box = split_validation(100, 52, 16)
    assert train_box[1] <= val_box[0]  # rows: training part ends before the strip starts
    lr = np.ones((3, 32, 32), np.float32)
    hr = np.ones((2, 128, 128), np.float32)
    source = PairSource(lr, hr, lr * 1e6, hr * 1e6, 4)
    norm = source.normalization()
    np.testing.assert_allclose(norm.hsi_mean + norm.msi_mean, 1.0, rtol=1e-6)


def test_full_resolution_patches_are_the_pair_at_its_own_resolution_where_it_is_valid():
    rows, cols = np.mgrid[0:40, 0:40].astype(np.float32)
    lr = np.stack([rows * 1000 + cols, -(rows * 1000 + cols)])        # the top-left pixel holds band 1's minimum
    hr_rows, hr_cols = np.mgrid[0:160, 0:160].astype(np.float32)
    hr = (hr_rows * 1000 + hr_cols)[None]
    valid = np.ones((40, 40), bool)
    valid[:, 20:] = False                                              # no patch may read the right half
    source = PairSource(lr, hr, lr[:, :16], hr[:, :64], 4, valid)
    batch = source.full_resolution(6, 8, torch.Generator().manual_seed(3))
    assert (batch.lr.shape, batch.msi.shape, batch.msi_lr.shape) == ((6, 2, 8, 8), (6, 1, 32, 32), (6, 1, 8, 8))
    for lr_patch, msi_patch, msi_lr_patch in zip(batch.lr, batch.msi, batch.msi_lr):
        row, col = divmod(int(lr_patch[0].min()), 1000)
        assert col + 8 <= 20                                           # inside the valid half
        np.testing.assert_array_equal(np.sort(lr_patch[0].flatten()), np.sort(lr[0, row:row + 8, col:col + 8].ravel()))
        hr_crop = hr[0, 4 * row:4 * row + 32, 4 * col:4 * col + 32]
        np.testing.assert_array_equal(np.sort(msi_patch.flatten()), np.sort(hr_crop.ravel()))
        lr_corner = np.unravel_index(int(lr_patch[0].argmin()), (8, 8))
        msi_corner = np.unravel_index(int(msi_patch[0].argmin()), (32, 32))
        assert tuple(v // 4 for v in msi_corner) == tuple(lr_corner)  # the same flip and turn
        expected = source.inputs_msi[0, row:row + 8, col:col + 8].numpy()
        np.testing.assert_array_equal(np.sort(msi_lr_patch.flatten()), np.sort(expected.ravel()))


def test_the_no_reference_loss_is_d_lambda_plus_d_s_of_the_fusion_and_trains_the_network():
    scene = _smooth_scene(bands=6, size=96)
    truth = gaussian_bands([480, 800], [80, 120]).matrix(np.linspace(420, 880, 6)).astype(np.float32)
    lr, hr = spatial_degrade(scene, 4), np.einsum("mc,chw->mhw", truth, scene).astype(np.float32)
    source = PairSource(lr, hr, lr[:, :16], hr[:, :64], 4)
    batch = source.full_resolution(1, 24, torch.Generator().manual_seed(0))
    model = build_model(ModelConfig(6, 2, 4, **TINY)).eval()                 # no dropout: one fusion, twice
    norm = source.normalization()
    stats = [torch.tensor(v, dtype=torch.float32).view(1, -1, 1, 1)
             for v in (norm.hsi_mean, norm.hsi_std, norm.msi_mean, norm.msi_std)]
    loss = _no_reference_loss(model, batch, stats, torch.Generator())
    with torch.no_grad():
        fused = model((batch.lr - stats[0]) / stats[1], (batch.msi - stats[2]) / stats[3]) * stats[1] + stats[0]
    f, x, y, y_lr = (a[0].numpy().astype(np.float64) for a in (fused, batch.lr, batch.msi, batch.msi_lr))
    d_s = np.mean([abs(uqi(f[i], y[j]) - uqi(x[i], y_lr[j])) for i in range(6) for j in range(2)])
    assert loss.item() == pytest.approx(d_lambda(f, x) + d_s, rel=1e-4)  # D_lambda over every band pair (15)
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    with pytest.raises(InputError, match="no_reference_weight"):
        TrainSettings(no_reference_weight=-1)


def test_validation_strip_goes_where_the_region_has_detail():
    texture = np.zeros((100, 52))
    texture[:30] = np.random.default_rng(0).random((30, 52))  # detail at the top, flat below
    train_box, val_box = split_validation(100, 52, 16, texture=texture)
    assert val_box[:2] == (0, 16) and train_box[:2] == (16, 96)
    assert split_validation(100, 52, 16, texture=texture[::-1]) == split_validation(100, 52, 16)  # detail at the end
    wide_train, wide_val = split_validation(52, 100, 16, texture=texture.T)
    assert wide_val[2:] == (0, 16) and wide_train[2:] == (16, 96)  # across the longer side: columns


def test_estimate_srf_recovers_a_known_response():
    rng = np.random.default_rng(3)
    scene = _smooth_scene(bands=8, size=128) + rng.uniform(0, 200, (8, 128, 128)).astype(np.float32)
    truth = gaussian_bands([480, 560, 800], [60, 60, 100]).matrix(WAVELENGTHS)
    lr = spatial_degrade(scene, 4)
    msi = np.einsum("mc,chw->mhw", truth, scene).astype(np.float32)
    estimated = estimate_srf(lr, msi, 4)
    assert estimated.shape == (3, 8) and (estimated >= 0).all()
    np.testing.assert_allclose(estimated, truth, atol=0.01)


def test_pair_mode_trains_on_a_real_style_pair(make_raster, tmp_path):
    scene = _smooth_scene(size=128)
    truth = gaussian_bands([480, 560, 800], [60, 60, 100]).matrix(WAVELENGTHS).astype(np.float32)
    lr = spatial_degrade(scene, 4)
    hr = np.einsum("mc,chw->mhw", truth, scene).astype(np.float32)
    lr_path = make_raster(data=lr, wavelengths_nm=WAVELENGTHS, geotransform=(500000, 40, 0, 5000000, 0, -40))
    hr_path = make_raster(data=hr, geotransform=(500000, 10, 0, 5000000, 0, -10))
    result = train_pair(lr_path, hr_path, tmp_path / "pair.safetensors", settings=_settings())
    card = load_checkpoint(result.checkpoint).card
    assert card.provenance["mode"] == "pair" and card.provenance["srf"].startswith("estimated")
    col, row, width, height = card.provenance["validation_strip"]  # HR pixels of the pair's grid, whole LR pixels
    assert all(v % 4 == 0 for v in (col, row, width, height)) and col + width <= 128 and row + height <= 128
    assert sorted((width, height)) == [64, 128]                    # 16 of the 32 LR pixels (the alignment, x4)
    steps = [row for row in csv.DictReader(open(result.log)) if row["step"] != "0"]
    measured = [float(row["no_reference"]) for row in steps if row["no_reference"]]
    assert len(measured) == len(steps) // 2 and all(v > 0 for v in measured)  # every second step has the loss
    assert card.config.scale == 4 and np.asarray(card.srf).shape == (3, 8)
    domain = load_checkpoint(result.checkpoint).model.domain  # fitted on the LRHSI as fusion sees it
    hsi_mean, hsi_std = (np.asarray(v, np.float32)[:, None, None] for v in (card.normalization.hsi_mean,
                                                                           card.normalization.hsi_std))
    normalised = torch.from_numpy((lr - hsi_mean) / hsi_std)[None]
    assert domain(normalised, 1).mean() > 0.6  # the scene's own spectra (a fifth is the validation strip)
    assert domain(normalised + 10, 1).max() == 0  # every band 10 standard deviations brighter: novel


def test_bad_training_inputs_are_refused(reference, tmp_path, make_raster):
    with pytest.raises(OutputError, match=".safetensors"):
        train_reference([reference], "sentinel2a:B2,B3,B4", 4, tmp_path / "model.pt", settings=_settings())
    with pytest.raises(InputError, match="budget"):
        TrainSettings(iterations=None, minutes=None)
    no_wavelengths = make_raster(bands=8, rows=64, cols=64)
    with pytest.raises(InputError, match="no band wavelengths"):
        train_reference([no_wavelengths], "sentinel2a:B2,B3,B4", 4, tmp_path / "m.safetensors", settings=_settings())


class _ZeroModel(torch.nn.Module):
    """Predicts 0 in normalised units: with identity statistics its error is minus the target."""

    def forward(self, lr, msi):
        return torch.zeros(lr.shape[0], lr.shape[1], *msi.shape[-2:])


class _ConstantBands:
    """A source whose target band b is ``levels[b]`` everywhere (value range 1): a known error per band."""

    def __init__(self, levels):
        self.levels = torch.tensor(levels, dtype=torch.float32)
        self.hsi_bands, self.value_range = len(levels), 1.0

    def sample(self, batch, patch, generator):
        target = self.levels.view(1, -1, 1, 1).expand(batch, -1, patch, patch).clone()
        return Batch(torch.zeros(batch, self.hsi_bands, patch // 4, patch // 4), torch.zeros(batch, 1, patch, patch),
                     target)


def test_band_weights_are_the_inverse_base_error_capped_and_keep_the_plain_l1_scale():
    levels = [1.0, 2.0, 4.0, 0.001]  # the base's RMS error per band; the last is below the cap
    stats = [torch.zeros(1, 4, 1, 1), torch.ones(1, 4, 1, 1), torch.zeros(1, 1, 1, 1), torch.ones(1, 1, 1, 1)]
    weights = band_weights(_ZeroModel(), _ConstantBands(levels), stats, torch.device("cpu"), _settings())
    floor = max(levels) / BAND_WEIGHT_RATIO
    expected = np.mean(levels) / np.maximum(levels, floor)
    assert weights.numpy() == pytest.approx(expected, rel=1e-6)
    weighted_error = (weights * torch.tensor(levels)).numpy()
    assert weighted_error[:3] == pytest.approx([np.mean(levels)] * 3, rel=1e-6)  # equal, at the plain mean error
    assert weighted_error[3] < weighted_error[0] / 10  # the capped band does not take over the loss
    batch = _ConstantBands(levels).sample(2, 16, None)
    _, weighted, _ = _loss(_ZeroModel(), batch, stats, 1.0, weights)
    _, plain, _ = _loss(_ZeroModel(), batch, stats, 1.0, None)
    assert float(plain) == pytest.approx(np.mean(levels))
    assert float(weighted) == pytest.approx(np.mean(np.asarray(levels) * expected), rel=1e-6)


def test_learning_rate_schedule_warms_up_and_decays():
    settings = TrainSettings(iterations=100, warmup=10)
    factors = [learning_rate_factor(settings, step / 100, step) for step in range(100)]
    assert factors[0] == pytest.approx(0.1) and max(factors) == pytest.approx(1.0, abs=0.03)
    assert factors[-1] < 0.02 and all(b <= a for a, b in zip(factors[10:], factors[11:]))


def test_cli_help_and_bad_region():
    run = [sys.executable, "-m", "cofusion.training"]
    for mode in ("reference", "pair"):
        result = subprocess.run(run + [mode, "--help"], capture_output=True, text=True)
        assert result.returncode == 0 and "--iterations" in result.stdout and "--region" in result.stdout
        assert all(option in result.stdout for option in ("--init", "--threads", "'auto'"))
    bad = subprocess.run(run + ["pair", "--lrhsi", "a.tif", "--hrmsi", "b.tif", "--out", "m.safetensors",
                                "--region", "5,5,1,1"], capture_output=True, text=True)
    assert bad.returncode == 2 and "empty" in bad.stderr


def test_the_auto_base_is_the_best_candidate_on_the_validation_set_and_the_card_says_so(reference, tmp_path):
    result = train_reference([reference], "sentinel2a:B2,B3,B4", 4, tmp_path / "auto.safetensors",
                             settings=_settings(iterations=1, model={**TINY, "base": "auto"}))  # as the CLI passes it
    card = load_checkpoint(result.checkpoint).card
    choice = card.provenance["base_choice"]
    assert set(choice["candidates"]) == set(AUTO_CANDIDATES) == set(result.base_scores)
    best = max(AUTO_CANDIDATES, key=lambda name: result.base_scores[name]["PSNR"])
    assert card.config.base == choice["chosen"] == best
    start = next(csv.DictReader(open(result.log)))  # step 0 validates the network with the chosen base
    assert float(start["val_psnr"]) == pytest.approx(result.base_scores[best]["PSNR"], abs=1e-4)
    assert set(card.provenance["classical_validation"]) == set(CLASSICAL_CANDIDATES) == set(result.classical)
    fixed = train_reference([reference], "sentinel2a:B2,B3,B4", 4, tmp_path / "gsa.safetensors",
                            settings=_settings(iterations=1, model={**TINY, "base": "gsa"}))
    fixed_card = load_checkpoint(fixed.checkpoint).card
    assert fixed_card.config.base == "gsa" and "base_choice" not in fixed_card.provenance and not fixed.base_scores


def test_a_cancel_during_the_start_up_leaves_no_file(reference, make_raster, tmp_path):
    out = tmp_path / "m.safetensors"
    asked = []  # the cancel checks of an uncanceled run up to its first step
    stop = _StopAfter(1)
    train_reference([reference], "sentinel2a:B2,B3,B4", 4, tmp_path / "count.safetensors",
                    settings=_settings(iterations=1), progress=stop.progress,
                    cancel=lambda: asked.append(stop.done) or False)
    for path in tmp_path.glob("count.*"):
        path.unlink()
    checks = asked.count(0)
    assert checks >= 10  # the reading, each classical method, each base, the band weights, the step-0 validation
    for phase in sorted({*range(0, checks, 4), checks - 1}):  # a cancel at every fourth check, and at the last
        with pytest.raises(Canceled, match="before its first step"):
            train_reference([reference], "sentinel2a:B2,B3,B4", 4, out, settings=_settings(),
                            cancel=functools.partial(next, itertools.chain([False] * phase, itertools.repeat(True))))
        assert [p for p in tmp_path.iterdir() if p.name != reference.name] == []
    scene = _smooth_scene(size=128)
    lr = make_raster(data=spatial_degrade(scene, 4), wavelengths_nm=WAVELENGTHS,
                     geotransform=(500000, 40, 0, 5000000, 0, -40))
    hr = make_raster(data=scene[[1, 4, 6]], geotransform=(500000, 10, 0, 5000000, 0, -10))
    before = set(tmp_path.iterdir())
    with pytest.raises(Canceled, match="while reading"):
        train_pair(lr, hr, out, settings=_settings(), cancel=lambda: True)
    assert set(tmp_path.iterdir()) == before


def test_fine_tuning_starts_from_the_given_model_and_refuses_one_that_does_not_fit(reference, make_raster,
                                                                                    tmp_path):
    first = train_reference([reference], "sentinel2a:B2,B3,B4", 4, tmp_path / "first.safetensors",
                            settings=_settings(iterations=2, model={**TINY, "base": "llr"}))
    start = load_checkpoint(first.checkpoint)
    tuned = train_reference([reference], "sentinel2a:B2,B3,B4", 4, tmp_path / "tuned.safetensors",
                            settings=_settings(iterations=2, model={"width": 16}), init=first.checkpoint)
    card = load_checkpoint(tuned.checkpoint).card
    assert card.config == start.card.config  # the starting model's architecture and base, not the settings'
    assert card.normalization == start.card.normalization
    assert card.provenance["started_from"]["model"] == str(first.checkpoint)
    step0 = float(next(csv.DictReader(open(tuned.log)))["val_psnr"])
    assert step0 == pytest.approx(first.metrics["PSNR"], abs=1e-3)  # step 0 is the starting model itself
    with pytest.raises(InputError, match="cannot be fine-tuned.*2 multispectral bands.*train from scratch"):
        train_reference([reference], "sentinel2a:B2,B3", 4, tmp_path / "x.safetensors", settings=_settings(),
                        init=first.checkpoint)
    with pytest.raises(InputError, match="scale factor of 2.*train from scratch"):
        train_reference([reference], "sentinel2a:B2,B3,B4", 2, tmp_path / "x.safetensors", settings=_settings(),
                        init=first.checkpoint)


def test_the_threads_setting_is_applied_and_checked(reference, tmp_path):
    before = torch.get_num_threads()
    try:
        train_reference([reference], "sentinel2a:B2,B3,B4", 4, tmp_path / "m.safetensors",
                        settings=_settings(iterations=1, threads=1))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    with pytest.raises(InputError, match="threads 0 .--threads"):
        _settings(threads=0)


@pytest.mark.parametrize("base", ["llr", "bicubic"])
def test_a_fresh_network_gives_exactly_what_its_base_network_gives(base):
    """What lets the start-up score bases, weigh bands and score step 0 on the cheap base network."""
    config = ModelConfig(6, 2, 4, base=base, domain_prototypes=4)
    torch.manual_seed(0)
    full = build_model(config).eval()
    full.domain.fit(torch.randn(200, 6))  # a fitted trust map does not change a zero head's output either
    lr, hr = torch.rand(2, 6, 12, 12), torch.rand(2, 2, 48, 48)
    with torch.no_grad():  # float rounding apart: the trust map's product changes the memory layout downstream
        torch.testing.assert_close(full(lr, hr), base_network(config).eval()(lr, hr), rtol=1e-6, atol=1e-6)
