# SPDX-License-Identifier: GPL-2.0-or-later
"""cofusion:assess through processing.run and through qgis_process --json."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cofusion.core.raster import read_info, read_raster

from .conftest import HR_GT, smooth_reference

pytestmark = pytest.mark.qgis
qgis_core = pytest.importorskip("qgis.core")
METRICS = ("PSNR", "SSIM", "SAM", "ERGAS")


@pytest.fixture
def fused_and_reference(make_raster) -> tuple[Path, Path]:
    reference = smooth_reference(16, 16)
    noisy = reference + np.random.default_rng(1).normal(0, 0.01, reference.shape).astype(np.float32)
    return (make_raster(data=noisy, name="fused.tif", geotransform=HR_GT),
            make_raster(data=reference, name="reference.tif", geotransform=HR_GT))


def _params(fused, reference, folder: Path) -> dict:
    return {"FUSED": str(fused), "REFERENCE": str(reference), "SCALE": 2,
            "OUTPUT_TABLE": str(folder / "metrics.csv"), "OUTPUT_REPORT": str(folder / "report.html"),
            "OUTPUT_SAM_MAP": str(folder / "sam.tif")}


def test_assess_returns_metrics_table_report_and_sam_map(run, fused_and_reference, tmp_path):
    result = run("assess", _params(*fused_and_reference, tmp_path))
    assert 30 < result["PSNR"] < 60 and 0.5 < result["SSIM"] <= 1 and 0 < result["SAM"] < 10
    assert result["ERGAS"] > 0 and result["RMSE"] > 0
    assert "PSNR" in (tmp_path / "metrics.csv").read_text()
    assert "PSNR" in Path(result["OUTPUT_REPORT"]).read_text()
    sam = read_info(tmp_path / "sam.tif")
    assert (sam.band_count, sam.width, sam.height, sam.geotransform) == (1, 16, 16, HR_GT)
    assert abs(float(np.nanmean(read_raster(tmp_path / "sam.tif"))) - result["SAM"]) < 1e-3


def test_the_metrics_table_has_text_and_double_fields_without_deprecated_calls(qgis_app):
    """QgsField(name, QVariant type) is deprecated from QGIS 3.38 (QGIS 4 / Qt 6 drops it): QMetaType there."""
    import warnings

    from cofusion.cofusion_qgis.algorithms.tables import metrics_fields

    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        fields = metrics_fields()
    assert fields.names() == ["metric", "value", "unit"]
    assert [fields.field(n).isNumeric() for n in fields.names()] == [False, True, False]


def test_size_mismatch_is_the_core_message_and_no_output(run, fused_and_reference, make_raster, tmp_path):
    small = make_raster(data=smooth_reference(12, 12), name="small.tif", geotransform=HR_GT)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(qgis_core.QgsProcessingException, match="must cover the fused raster on the same grid"):
        run("assess", _params(fused_and_reference[0], small, out))
    assert list(out.iterdir()) == []


def test_qgis_process_assess_json(qgis_process, fused_and_reference, tmp_path):
    """The headless runner, with the plugin found on QGIS_PLUGINPATH: --json gives the metrics as numbers."""
    args = [f"{k}={v}" for k, v in _params(*fused_and_reference, tmp_path).items()]
    done = qgis_process("run", "cofusion:assess", "--json", "--", *args)
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout[done.stdout.index("{"):])["results"]
    assert all(isinstance(results[m], float) for m in METRICS)
    assert (tmp_path / "sam.tif").exists()
