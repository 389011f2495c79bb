# SPDX-License-Identifier: GPL-2.0-or-later
"""Reliability fixtures: a tiny co-registered scene (LRHSI 5 bands at 20 m, HRMSI 3 bands at 10 m, UTM 32N), a tiny
seeded CoFusion checkpoint whose head is not zero (so the whole network shapes the output), and the three entry
points (core API, CLI, Processing algorithm) behind one call that reports how a run ended."""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from cofusion import cli
from cofusion.core.errors import CoFusionError
from cofusion.core.fuse import fuse_raster
from cofusion.core.grid import check_inputs

HSI, MSI, SCALE = 5, 3, 2
WAVELENGTHS = (450.0, 550.0, 650.0, 750.0, 850.0)
LR_GT = (500000.0, 20.0, 0.0, 5000000.0, 0.0, -20.0)
HR_GT = (500000.0, 10.0, 0.0, 5000000.0, 0.0, -10.0)
TILE = 32  # HR pixels: the smallest tile of the tiny network, twice its alignment lcm(4 * 4, 2)
LR_SIZE, HR_SIZE = 16, 32  # the scene: one tile


def save_tiny_model(path: Path, seed: int = 0, hsi: int = HSI, msi: int = MSI, scale: int = SCALE) -> Path:
    """An untrained CoFusion checkpoint (width 8) with a seeded non-zero head; returns its path."""
    import torch

    from cofusion.core.checkpoint import ModelCard, Normalization, save_checkpoint
    from cofusion.core.model import ModelConfig, build_model

    torch.manual_seed(seed)
    config = ModelConfig(hsi, msi, scale, width=8, top_k=4)
    model = build_model(config).eval()
    with torch.no_grad():  # an untrained head is zero: the output would be the base alone
        for weight in (model.head[-1].weight, model.head[-1].bias):
            weight.normal_(0.0, 0.05)
    card = ModelCard(config=config, normalization=Normalization.identity(hsi, msi),
                     hsi_wavelengths_nm=WAVELENGTHS if hsi == HSI else None)
    return save_checkpoint(path, model, card)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("model") / "tiny.safetensors")


@dataclass(frozen=True)
class Scene:
    """The files of one run: inputs, model and the output path (in its own folder)."""

    lr: Path
    hr: Path
    model: Path
    out: Path

    def replace(self, **changes) -> Scene:
        return dataclasses.replace(self, **changes)


@pytest.fixture
def scene(make_raster, tiny_model, tmp_path) -> Scene:
    """LRHSI 16 x 16 with wavelengths, HRMSI 32 x 32, the tiny model, output tmp_path/out/fused.tif."""
    (tmp_path / "out").mkdir()
    return Scene(lr=make_raster(HSI, LR_SIZE, LR_SIZE, name="lr.tif", geotransform=LR_GT, wavelengths_nm=WAVELENGTHS),
                 hr=make_raster(MSI, HR_SIZE, HR_SIZE, name="hr.tif", geotransform=HR_GT),
                 model=tiny_model, out=tmp_path / "out" / "fused.tif")


# -------------------------------------------------------------------------------------------------- entry points


@dataclass(frozen=True)
class Outcome:
    """How a run ended: `error` None (the output was written) or the error class the caller saw, and its text."""

    error: type[Exception] | None
    message: str = ""


def run_core(scene: Scene, request: pytest.FixtureRequest | None, batch: int = 4, overlap: int = 0) -> Outcome:
    """The core API as the CLI and Processing use it: check the inputs, load the model, fuse."""
    from cofusion.core.inference import NetworkPredictor

    try:
        check_inputs(scene.lr, scene.hr, scene.out)
        predictor = NetworkPredictor.from_checkpoint(scene.model, device="cpu")
        fuse_raster(scene.lr, scene.hr, scene.out, predictor, tile=TILE, overlap=overlap, batch=batch)
    except CoFusionError as exc:
        return Outcome(type(exc), str(exc))
    return Outcome(None)


def run_cli(scene: Scene, request: pytest.FixtureRequest) -> Outcome:
    """`python -m cofusion fuse` in this process: exit 0, or exit 2 with a last line 'error: ...' and no traceback."""
    capsys = request.getfixturevalue("capsys")
    code = cli.main(["fuse", "--lrhsi", str(scene.lr), "--hrmsi", str(scene.hr), "--model", str(scene.model),
                     "--out", str(scene.out), "--device", "cpu", "--tile", str(TILE), "--overlap", "0", "-q"])
    err = capsys.readouterr().err
    if code == 0:
        return Outcome(None)
    last = err.rstrip("\n").splitlines()[-1]
    assert code == cli.EXIT_ERROR and last.startswith("error: ") and "Traceback" not in err, err
    return Outcome(SystemExit, last)


def run_qgis(scene: Scene, request: pytest.FixtureRequest) -> Outcome:
    """processing.run('cofusion:fuse'): a result, or a QgsProcessingException (never another exception)."""
    run = request.getfixturevalue("run")
    from qgis.core import QgsProcessingException

    try:
        run("fuse", {"LRHSI": str(scene.lr), "HRMSI": str(scene.hr), "MODEL": str(scene.model),
                     "OUTPUT": str(scene.out), "TILE_SIZE": TILE, "OVERLAP": 0, "DEVICE": "cpu"})
    except QgsProcessingException as exc:
        return Outcome(QgsProcessingException, str(exc))
    return Outcome(None)


ENTRIES: dict[str, Callable[[Scene, pytest.FixtureRequest], Outcome]] = {
    "core": run_core, "cli": run_cli, "qgis": run_qgis}
#: The entry-point names as parameters, the Processing one marked `qgis`.
ENTRY_PARAMS = [pytest.param(name, marks=[pytest.mark.qgis] if name == "qgis" else [], id=name) for name in ENTRIES]


def tree(folder: Path, ignore: tuple[str, ...] = ()) -> dict[str, tuple[int, int]]:
    """Every file below `folder` but those named in `ignore`, with its size and modification time (ns): a failed
    run must not change it."""
    return {os.path.relpath(os.path.join(root, name), folder): (st.st_size, st.st_mtime_ns)
            for root, _dirs, names in os.walk(folder) for name in names if name not in ignore
            for st in [os.stat(os.path.join(root, name))]}


def valid_mask(array: np.ndarray, nodata: float | None) -> np.ndarray:
    """(rows, cols) True where every band of `array` (B, rows, cols) is finite and not `nodata`."""
    valid = np.isfinite(array).all(axis=0)
    if nodata is not None:
        valid &= (array != np.float32(nodata)).all(axis=0)
    return valid
