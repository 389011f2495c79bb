# SPDX-License-Identifier: GPL-2.0-or-later
"""The graphical-modeler model shipped in resources/ (simulate -> train -> fuse -> assess) runs unattended."""
from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import HR_GT, WAVELENGTHS, smooth_reference

pytestmark = [pytest.mark.qgis, pytest.mark.slow]
qgis_core = pytest.importorskip("qgis.core")
MODEL = Path(__file__).resolve().parents[2] / "resources" / "wald_benchmark.model3"


def test_wald_benchmark_model_runs_and_reports_metrics(plugin, make_raster, tmp_path):
    import processing

    model = qgis_core.QgsProcessingModelAlgorithm()
    assert model.fromFile(str(MODEL))
    reference = make_raster(data=smooth_reference(64, 64), name="reference.tif", wavelengths_nm=WAVELENGTHS,
                            geotransform=HR_GT)
    result = processing.run(model, {
        "REFERENCE": str(reference), "SCALE": 2, "ITERATIONS": 2, "assess:Metrics": str(tmp_path / "metrics.csv"),
        "assess:Report": str(tmp_path / "report.html"), "assess:SAM map": str(tmp_path / "sam.tif"),
        "fuse:Fused": str(tmp_path / "fused.tif"), "train:Model": str(tmp_path / "model.safetensors")})
    assert Path(result["fuse:Fused"]).is_file() and Path(result["train:Model"]).is_file()
    rows = dict(line.split(",")[:2] for line in (tmp_path / "metrics.csv").read_text().splitlines()[1:])
    assert {"PSNR", "SSIM", "SAM", "ERGAS"} <= set(rows) and float(rows["PSNR"]) > 10
