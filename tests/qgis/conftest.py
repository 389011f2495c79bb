# SPDX-License-Identifier: GPL-2.0-or-later
"""QGIS test fixtures: a tiny synthetic scene (reference, simulated-like pair) and a tiny untrained checkpoint.

The session's QgsApplication and the plugin (`qgis_app`, `plugin`, `run`) live in tests/conftest.py, shared with
tests/reliability."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
qgis_core = pytest.importorskip("qgis.core")

HSI, MSI, SCALE = 5, 3, 2
WAVELENGTHS = (450.0, 550.0, 650.0, 750.0, 850.0)
LR_GT = (500000.0, 20.0, 0.0, 5000000.0, 0.0, -20.0)
HR_GT = (500000.0, 10.0, 0.0, 5000000.0, 0.0, -10.0)


def smooth_reference(rows: int, cols: int, bands: int = HSI) -> np.ndarray:
    """A smooth positive (bands, rows, cols) float32 scene: fusion and metrics give sane numbers on it."""
    y, x = np.mgrid[0:rows, 0:cols] / max(rows, cols)
    return np.stack([0.3 + 0.2 * np.sin(3 * x + b) * np.cos(2 * y - b) + 0.05 * b for b in range(bands)]
                    ).astype(np.float32)


@pytest.fixture
def make_pair(make_raster):
    """make_pair(size) -> a co-registered LRHSI (5 bands, size x size, 20 m) and HRMSI (3 bands, 10 m) in UTM 32N."""
    def make(size: int) -> tuple[Path, Path]:
        lr = make_raster(data=smooth_reference(size, size), name=f"lr{size}.tif", wavelengths_nm=WAVELENGTHS,
                         geotransform=LR_GT)
        hr = make_raster(data=smooth_reference(2 * size, 2 * size, MSI), name=f"hr{size}.tif", geotransform=HR_GT)
        return lr, hr

    return make


@pytest.fixture
def pair(make_pair) -> tuple[Path, Path]:
    """The smallest pair: LRHSI 8 x 8, HRMSI 16 x 16."""
    return make_pair(8)


@pytest.fixture(scope="session")
def model(tmp_path_factory) -> Path:
    """An untrained CoFusion checkpoint for 5 HSI bands, 3 MSI bands, scale 2 (width 8: fast on a CPU)."""
    from cofusion.core.checkpoint import ModelCard, Normalization, save_checkpoint
    from cofusion.core.model import ModelConfig, build_model

    config = ModelConfig(HSI, MSI, SCALE, width=8, top_k=4)
    card = ModelCard(config=config, normalization=Normalization.identity(HSI, MSI), hsi_wavelengths_nm=WAVELENGTHS,
                     srf=tuple(tuple(row) for row in np.full((MSI, HSI), 1 / HSI)), msi_band_names=("B2", "B3", "B4"))
    return save_checkpoint(tmp_path_factory.mktemp("model") / "tiny.safetensors", build_model(config).eval(), card)


@pytest.fixture
def qgis_process(plugin, tmp_path):
    """qgis_process(*arguments, timeout=120) -> CompletedProcess: ``qgis_process.bin`` (Debian's binary; the
    wrapper passes a flag it rejects) with this checkout as the enabled plugin ``cofusion`` on QGIS_PLUGINPATH and
    the test's packages on PYTHONPATH, in a HOME of its own. Skips where qgis_process.bin is not installed."""
    import shutil
    import subprocess
    import sys

    if shutil.which("qgis_process.bin") is None:
        pytest.skip("qgis_process.bin is not installed")
    plugin_dir = tmp_path / "plugins"
    plugin_dir.mkdir()
    (plugin_dir / "cofusion").symlink_to(Path(__file__).resolve().parents[2])
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "QGIS_PLUGINPATH": str(plugin_dir),
           "PYTHONPATH": os.pathsep.join([str(plugin_dir), *sys.path[1:]]), "HOME": str(tmp_path)}
    subprocess.run(["qgis_process.bin", "plugins", "enable", "cofusion"], env=env, check=True, capture_output=True)

    def run(*arguments: str, timeout: int = 120) -> subprocess.CompletedProcess:
        return subprocess.run(["qgis_process.bin", *arguments], env=env, capture_output=True, text=True,
                              timeout=timeout)

    return run
