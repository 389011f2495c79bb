# SPDX-License-Identifier: GPL-2.0-or-later
"""NetworkPredictor: GSA weights are fitted on the whole scene, block by block; an untrained model is its base; the
forward runs in the precision of the predictor's device plan."""
import dataclasses
import os

import numpy as np
import pytest
import torch

from cofusion.core.checkpoint import ModelCard, Normalization, load_checkpoint, save_checkpoint
from cofusion.core.classic import gsa
from cofusion.core.degrade import simulate
from cofusion.core.device import compute_plan
from cofusion.core.fuse import fuse_raster
from cofusion.core.inference import NetworkPredictor
from cofusion.core.model import ModelConfig, build_model
from cofusion.core.raster import read_info, read_raster, write_raster
from cofusion.core.service import DEFAULT_MODEL
from cofusion.core.srf import parse_srf

SCALE = 4
#: The tiler mirrors tiles past the raster's edge where core.classic's bicubic replicates the edge pixel: the
#: two agree from two LR pixels inside the edge on.
INSIDE = (slice(None), slice(2 * SCALE, -2 * SCALE), slice(2 * SCALE, -2 * SCALE))


@pytest.fixture
def jasper_pair(shared_data, tmp_path):
    """Jasper Ridge 96 x 96 by Wald's protocol at x4 as GeoTIFFs: (lr path, hr path, lr array, hr array)."""
    path = shared_data / "aviris_jasper_ridge.tif"
    reference = read_raster(path)[:, :96, :96] / 10000.0
    srf = parse_srf("sentinel2a:B2,B3,B4,B8").matrix(read_info(path).wavelengths_nm)
    lr, hr = simulate(reference, srf, SCALE)
    lr_path, hr_path = tmp_path / "lr.tif", tmp_path / "hr.tif"
    write_raster(lr_path, lr, geotransform=(0.0, 80.0, 0.0, 0.0, 0.0, -80.0), wavelengths_nm=read_info(path)
                 .wavelengths_nm)
    write_raster(hr_path, hr, geotransform=(0.0, 20.0, 0.0, 0.0, 0.0, -20.0))
    return lr_path, hr_path, lr, hr


def _untrained_checkpoint(path, hsi_bands, msi_bands, base="gsa", consistency_steps=0):
    # Without back-projection (the default here) an untrained network returns its base exactly.
    config = ModelConfig(hsi_bands, msi_bands, SCALE, width=8, top_k=4, base=base,
                         consistency_steps=consistency_steps)
    card = ModelCard(config=config, normalization=Normalization.identity(hsi_bands, msi_bands),
                     hsi_wavelengths_nm=None, srf=None, msi_band_names=None, provenance={"mode": "test"},
                     metrics={})
    return save_checkpoint(path, build_model(config).eval(), card)


@pytest.mark.parametrize("block", [256, 5])
def test_a_fusion_with_an_untrained_model_is_the_whole_scene_gsa(jasper_pair, tmp_path, block, monkeypatch):
    # The head starts at zero, so the output is the base: GSA with weights fitted on the whole scene, whether
    # the fitting pass reads it in one block or in 5 x 5 LR-pixel blocks (margins make the blocks seamless).
    lr_path, hr_path, lr, hr = jasper_pair
    checkpoint = _untrained_checkpoint(tmp_path / "m.safetensors", lr.shape[0], hr.shape[0])
    monkeypatch.setattr("cofusion.core.inference.PREPARE_BLOCK", block)
    predictor = NetworkPredictor(load_checkpoint(checkpoint), device="cpu")
    fuse_raster(lr_path, hr_path, tmp_path / "out.tif", predictor, tile=96, overlap=0)  # one tile: no blending
    expected = gsa(lr, hr, SCALE)
    np.testing.assert_allclose(read_raster(tmp_path / "out.tif")[INSIDE], expected[INSIDE],
                               atol=1e-5 * abs(expected).max())


def test_without_the_base_an_untrained_model_is_bicubic_and_prepare_is_a_no_op(jasper_pair, tmp_path):
    from cofusion.core.classic import upsample_bicubic

    lr_path, hr_path, lr, hr = jasper_pair
    checkpoint = _untrained_checkpoint(tmp_path / "m.safetensors", lr.shape[0], hr.shape[0], "bicubic")
    fuse_raster(lr_path, hr_path, tmp_path / "out.tif", NetworkPredictor.from_checkpoint(checkpoint, "cpu"))
    expected = upsample_bicubic(lr, SCALE)
    np.testing.assert_allclose(read_raster(tmp_path / "out.tif")[INSIDE], expected[INSIDE],
                               atol=1e-5 * abs(expected).max())


@pytest.mark.parametrize("base", ["llr", "local", "blend"])
def test_an_untrained_model_is_its_base_the_local_regression_or_its_mean_with_gsa(jasper_pair, tmp_path, base):
    from cofusion.core.injection import local_regression

    lr_path, hr_path, lr, hr = jasper_pair
    checkpoint = _untrained_checkpoint(tmp_path / "m.safetensors", lr.shape[0], hr.shape[0], base)
    fuse_raster(lr_path, hr_path, tmp_path / "out.tif", NetworkPredictor.from_checkpoint(checkpoint, "cpu"),
                tile=96, overlap=0)  # one tile: no blending
    expected = local_regression(torch.from_numpy(lr)[None], torch.from_numpy(hr)[None], SCALE)[0].numpy()
    if base == "blend":
        expected = 0.5 * (gsa(lr, hr, SCALE) + expected)
    np.testing.assert_allclose(read_raster(tmp_path / "out.tif")[INSIDE], expected[INSIDE],
                               atol=1e-5 * abs(expected).max())


def test_back_projection_brings_the_fused_scene_closer_to_the_lrhsi(jasper_pair, tmp_path):
    from cofusion.core.degrade import spatial_degrade
    from cofusion.core.injection import back_project

    lr_path, hr_path, lr, hr = jasper_pair
    checkpoint = _untrained_checkpoint(tmp_path / "m.safetensors", lr.shape[0], hr.shape[0], consistency_steps=2)
    fuse_raster(lr_path, hr_path, tmp_path / "out.tif", NetworkPredictor.from_checkpoint(checkpoint, "cpu"),
                tile=96, overlap=0)  # one tile: no blending
    fused = read_raster(tmp_path / "out.tif")
    base = gsa(lr, hr, SCALE)
    expected = back_project(torch.from_numpy(base)[None], torch.from_numpy(lr)[None], SCALE, 2)[0].numpy()
    np.testing.assert_allclose(fused[INSIDE], expected[INSIDE], atol=1e-5 * abs(expected).max())
    discrepancy = [np.abs(spatial_degrade(z, SCALE) - lr).mean() for z in (base, fused)]
    assert discrepancy[1] < 0.5 * discrepancy[0]


def test_a_scene_one_lr_pixel_wide_is_refused_clearly(make_raster, tmp_path):
    from cofusion.core.errors import InputError

    lr = make_raster(5, 1, 4, name="lr.tif", geotransform=(0.0, 40.0, 0.0, 0.0, 0.0, -40.0))
    hr = make_raster(3, 4, 16, name="hr.tif", geotransform=(0.0, 10.0, 0.0, 0.0, 0.0, -10.0))
    predictor = NetworkPredictor.from_checkpoint(_untrained_checkpoint(tmp_path / "m.safetensors", 5, 3), "cpu")
    with pytest.raises(InputError, match="only 4 x 1 LR pixels.*at least 2 x 2"):
        fuse_raster(lr, hr, tmp_path / "out.tif", predictor)
    assert not (tmp_path / "out.tif").exists()


def test_a_cpu_fusion_runs_where_the_os_has_no_cpu_affinity(jasper_pair, tmp_path, monkeypatch):
    # Windows and macOS have no os.sched_getaffinity: the thread count falls back to os.cpu_count().
    from cofusion.core.classic import upsample_bicubic

    lr_path, hr_path, lr, hr = jasper_pair
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    threads = torch.get_num_threads()
    try:
        predictor = NetworkPredictor.from_checkpoint(
            _untrained_checkpoint(tmp_path / "m.safetensors", lr.shape[0], hr.shape[0], "bicubic"), "cpu")
        assert torch.get_num_threads() == (os.cpu_count() or 1)
        fuse_raster(lr_path, hr_path, tmp_path / "out.tif", predictor)
    finally:
        torch.set_num_threads(threads)
    expected = upsample_bicubic(lr, SCALE)
    np.testing.assert_allclose(read_raster(tmp_path / "out.tif")[INSIDE], expected[INSIDE],
                               atol=1e-5 * abs(expected).max())


def test_the_forward_runs_in_the_precision_of_the_predictors_plan():
    # The bundled (trained) model on the bundled sample. On CUDA the plan says float16 autocast; CPU autocast runs
    # float16 too, so the predictor's use of its plan is checked here: float16 changes the output, by at most 2e-3
    # of its range (5.5e-4 measured on torch 2.13).
    sample = DEFAULT_MODEL.parents[1] / "sample"
    lr, hr = read_raster(sample / "lrhsi.tif")[None], read_raster(sample / "hrmsi.tif")[None]
    predictor = NetworkPredictor.from_checkpoint(DEFAULT_MODEL, "cpu")
    assert predictor.plan == compute_plan("cpu") and predictor.device == predictor.plan.device
    full = predictor(lr, hr)
    predictor.plan = dataclasses.replace(predictor.plan, inference_dtype=torch.float16)
    half = predictor(lr, hr)
    assert half.dtype == full.dtype == np.float32 and half.shape == full.shape
    assert 0 < np.abs(half - full).max() < 2e-3 * np.ptp(full)
