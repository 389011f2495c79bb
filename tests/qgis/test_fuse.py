# SPDX-License-Identifier: GPL-2.0-or-later
"""cofusion:fuse through processing.run: output grid and bands, cancel, bad inputs, the bundled-model default."""
from __future__ import annotations

import numpy as np
import pytest

from cofusion.core.raster import read_info, read_raster

from .conftest import HR_GT, HSI, SCALE, WAVELENGTHS

pytestmark = pytest.mark.qgis
qgis_core = pytest.importorskip("qgis.core")


def _params(pair, model, out, **extra) -> dict:
    return {"LRHSI": str(pair[0]), "HRMSI": str(pair[1]), "MODEL": str(model), "OUTPUT": str(out),
            "TILE_SIZE": 32, "OVERLAP": 0, "DEVICE": "cpu", **extra}


def test_fuse_writes_the_hr_grid_with_the_lrhsi_bands(run, pair, model, tmp_path):
    out = tmp_path / "fused.tif"
    result = run("fuse", _params(pair, model, out))
    assert result["OUTPUT"] == str(out)
    info = read_info(out)
    assert (info.band_count, info.width, info.height) == (HSI, 8 * SCALE, 8 * SCALE)
    assert info.geotransform == HR_GT and "UTM zone 32N" in info.crs_wkt
    assert info.wavelengths_nm == WAVELENGTHS
    assert np.isfinite(read_raster(out)).all()


def test_cancel_stops_and_leaves_no_file(run, pair, model, tmp_path):
    feedback = qgis_core.QgsProcessingFeedback()
    feedback.cancel()
    out = tmp_path / "fused.tif"
    with pytest.raises(qgis_core.QgsProcessingException, match="canceled"):
        run("fuse", _params(pair, model, out), feedback)
    assert list(tmp_path.glob("*fused*")) == []


def test_band_mismatch_is_the_core_message_and_no_file(run, pair, model, make_raster, tmp_path):
    four = make_raster(4, 8, 8, name="lr4.tif", geotransform=(500000.0, 20.0, 0.0, 5000000.0, 0.0, -20.0))
    out = tmp_path / "fused.tif"
    with pytest.raises(qgis_core.QgsProcessingException, match="The model expects 5 hyperspectral bands"):
        run("fuse", _params((four, pair[1]), model, out))
    assert not out.exists()


def test_misaligned_grids_suggest_align_to_grid(run, pair, model, make_raster, tmp_path):
    shifted = make_raster(3, 16, 16, name="shifted.tif", geotransform=(500003.0, 10.0, 0.0, 5000000.0, 0.0, -10.0))
    with pytest.raises(qgis_core.QgsProcessingException, match="align_to_grid"):
        run("fuse", _params((pair[0], shifted), model, tmp_path / "fused.tif"))


def test_missing_bundled_model_is_a_clear_error(run, pair, tmp_path, monkeypatch):
    from cofusion.core import service

    monkeypatch.setattr(service, "DEFAULT_MODEL", tmp_path / "absent.safetensors")
    with pytest.raises(qgis_core.QgsProcessingException, match="bundled model .*absent.safetensors is missing"):
        run("fuse", _params(pair, "", tmp_path / "fused.tif"))


def test_cancel_during_the_run_stops_after_the_batch(run, make_pair, model, tmp_path):
    feedback = qgis_core.QgsProcessingFeedback()
    feedback.progressChanged.connect(lambda percent: percent > 0 and feedback.cancel())
    out = tmp_path / "fused.tif"
    with pytest.raises(qgis_core.QgsProcessingException, match="canceled"):
        run("fuse", _params(make_pair(32), model, out, BATCH_SIZE=1), feedback)
    assert 0 < feedback.progress() < 100 and list(tmp_path.glob("*fused*")) == []
