# SPDX-License-Identifier: GPL-2.0-or-later
"""The streaming engine with the real network on a real scene: tiled equals untiled, no seam, determinism.

The network is a small CoFusionNet (width 16) whose every parameter is perturbed by seeded noise: an
untrained network has a zero head and would return its base (the bicubic LRHSI plus a linear detail
injection), which any tiling nearly reproduces. The pair
is a 96 x 96 crop of aviris_jasper_ridge on [0, 1], simulated at x4 with the Sentinel-2 10 m bands (96 is a
multiple of the network's alignment, 16, so the untiled forward needs no padding of its own).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from cofusion.core.checkpoint import Checkpoint, ModelCard, Normalization
from cofusion.core.degrade import simulate
from cofusion.core.fuse import fuse_raster
from cofusion.core.grid import check_coregistration
from cofusion.core.inference import NetworkPredictor
from cofusion.core.metrics import psnr
from cofusion.core.model import ModelConfig, build_model
from cofusion.core.raster import RasterReader, read_info, read_raster, write_raster
from cofusion.core.srf import parse_srf

SIZE, SCALE = 96, 4
TILE, OVERLAP = 64, 32  # 2 x 2 tiles with the engine's default overlap
NOISE = 0.02  # standard deviation of the parameter perturbation


@dataclass(frozen=True)
class Scene:
    lr: Path  # LRHSI GeoTIFF (198, 24, 24)
    hr: Path  # HRMSI GeoTIFF (4, 96, 96)
    predictor: NetworkPredictor
    untiled: np.ndarray  # (198, 96, 96): the network on the whole crop at once, its base fitted on the scene
    bicubic: np.ndarray  # (198, 96, 96): the bicubic LRHSI


def perturbed_network(hsi_bands: int, msi_bands: int) -> NetworkPredictor:
    """A CPU predictor around a width-16 CoFusionNet with every parameter moved by seeded Gaussian noise."""
    config = ModelConfig(hsi_bands, msi_bands, SCALE, width=16, top_k=4)
    torch.manual_seed(0)
    model = build_model(config).eval()
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * NOISE)
    card = ModelCard(config, Normalization.identity(hsi_bands, msi_bands))
    return NetworkPredictor(Checkpoint(model, card, "perturbed"), device="cpu")


@pytest.fixture(scope="module")
def scene(shared_data, tmp_path_factory) -> Scene:
    path = shared_data / "aviris_jasper_ridge.tif"
    reference = read_raster(path)[:, :SIZE, :SIZE] / np.float32(10000)
    srf = parse_srf("sentinel2a:B2,B3,B4,B8").matrix(read_info(path).wavelengths_nm)
    lr, hr = simulate(reference, srf, SCALE)
    folder = tmp_path_factory.mktemp("jasper")
    paths = folder / "lr.tif", folder / "hr.tif"
    write_raster(paths[0], lr, geotransform=(0.0, float(SCALE), 0.0, 0.0, 0.0, -float(SCALE)))
    write_raster(paths[1], hr)
    predictor = perturbed_network(lr.shape[0], hr.shape[0])
    with RasterReader(paths[0]) as lr_reader, RasterReader(paths[1]) as hr_reader:
        predictor.prepare(lr_reader, hr_reader, check_coregistration(lr_reader.info, hr_reader.info))
    bicubic = torch.nn.functional.interpolate(torch.from_numpy(lr)[None], scale_factor=SCALE, mode="bicubic",
                                              align_corners=False)[0].numpy()
    return Scene(*paths, predictor, predictor(lr[None], hr[None])[0], bicubic)


def fused(scene: Scene, out: Path, batch: int = 3, overlap: int = OVERLAP) -> np.ndarray:
    result = fuse_raster(scene.lr, scene.hr, out, scene.predictor, tile=TILE, overlap=overlap, batch=batch)
    return read_raster(result.out_path)


def seam_and_inside(image: np.ndarray, tile: int, overlap: int) -> tuple[float, float]:
    """Mean absolute difference of (C, H, W) ``image`` between neighbouring pixels across the tile grid's
    borders (tile starts and ends, both axes) and between all other neighbours."""
    size = image.shape[-1]
    edges = sorted({e for k in range(0, size, tile - overlap) for e in (k, k + tile) if 0 < e < size})
    across = np.zeros(size - 1, bool)
    across[[e - 1 for e in edges]] = True  # difference j is between pixels j and j + 1
    columns = np.abs(np.diff(image, axis=2)).mean(axis=(0, 1))
    rows = np.abs(np.diff(image, axis=1)).mean(axis=(0, 2))
    return (columns[across].mean() + rows[across].mean()) / 2, (columns[~across].mean() + rows[~across].mean()) / 2


def test_the_perturbed_network_is_not_bicubic(scene):
    assert psnr(scene.bicubic, scene.untiled) < 35.0


def test_tiled_fusion_matches_the_untiled_forward_of_a_real_scene(scene, tmp_path):
    tiled = fused(scene, tmp_path / "out.tif")
    assert tiled.shape == scene.untiled.shape
    assert psnr(scene.untiled, tiled) >= 50.0


def test_tile_borders_leave_no_seam(scene, tmp_path):
    seam, inside = seam_and_inside(fused(scene, tmp_path / "out.tif"), TILE, OVERLAP)
    assert seam <= inside
    # the measure sees a seam where there is one: tiles side by side without overlap and blending
    seam, inside = seam_and_inside(fused(scene, tmp_path / "raw.tif", overlap=0), TILE, 0)
    assert seam > 1.5 * inside


def test_eval_mode_is_deterministic_and_the_batch_size_does_not_matter(scene, tmp_path):
    first = fused(scene, tmp_path / "a.tif")
    np.testing.assert_array_equal(fused(scene, tmp_path / "b.tif"), first)
    # oneDNN picks its algorithms by batch size: equal to float32 rounding (about 120 dB on [0, 1] data)
    np.testing.assert_allclose(fused(scene, tmp_path / "c.tif", batch=1), first, rtol=0, atol=1e-6)
