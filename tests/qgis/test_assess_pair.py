# SPDX-License-Identifier: GPL-2.0-or-later
"""cofusion:assess_pair through processing.run on tiny rasters: the HTML report, the consistency map (styled when
loaded), the per-band CSV and the numbers."""
from __future__ import annotations

import math
from pathlib import Path

import pytest

from cofusion.core.raster import read_info

from .conftest import HR_GT, LR_GT, MSI, WAVELENGTHS, smooth_reference

pytestmark = pytest.mark.qgis
qgis_core = pytest.importorskip("qgis.core")
NUMBERS = ("QNR", "D_lambda", "D_s", "HQNR", "PSNR", "SAM", "ERGAS", "BICUBIC_PSNR", "BICUBIC_SAM", "BICUBIC_ERGAS")


@pytest.fixture
def fused_pair(make_raster, tmp_path) -> tuple[Path, Path, Path]:
    """A 24 x 24 LRHSI of 5 bands, a 48 x 48 HRMSI of 3 bands (x2), and their GSA fusion."""
    from cofusion.core.classic_raster import fuse_classic_raster

    lr = make_raster(data=smooth_reference(24, 24), name="lr.tif", wavelengths_nm=WAVELENGTHS, geotransform=LR_GT)
    hr = make_raster(data=smooth_reference(48, 48, MSI), name="hr.tif", geotransform=HR_GT)
    return lr, hr, fuse_classic_raster(lr, hr, tmp_path / "gsa.tif", "gsa")


def _params(lr, hr, fused, folder: Path, **extra) -> dict:
    return {"LRHSI": str(lr), "HRMSI": str(hr), "FUSED": str(fused), "OUTPUT_REPORT": str(folder / "report.html"),
            "OUTPUT_MAP": str(folder / "consistency.tif"), **extra}


def test_assess_pair_writes_the_report_the_map_and_the_numbers(run, fused_pair, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    result = run("assess_pair", _params(*fused_pair, out, METHOD="gsa", COMPARE=["llr"]))
    assert all(isinstance(result[name], float) and math.isfinite(result[name]) for name in NUMBERS)
    assert 0 < result["QNR"] <= 1 and result["HQNR"] <= 1 and result["PSNR"] > 0
    assert isinstance(result["SHARPENS"], bool) and "bicubic" in result["VERDICT"]
    page = Path(result["OUTPUT_REPORT"]).read_text()
    assert f"{result['PSNR']:.2f}" in page and "llr" in page
    # the HRMSI has no band wavelengths: its response is estimated from the pair and plotted with the two others
    assert page.count("</svg>") == 3 and "estimated from the pair" in page
    info = read_info(result["OUTPUT_MAP"])
    assert (info.band_count, info.width, info.height, info.geotransform) == (2, 24, 24, LR_GT)
    assert info.band_names == ("SAM (degrees)", "RMSE (LRHSI units)")
    assert Path(result["OUTPUT_PER_BAND"]) == out / "report_per_band.csv"
    assert len(Path(result["OUTPUT_PER_BAND"]).read_text().splitlines()) == 1 + len(WAVELENGTHS)
    assert sorted(p.name for p in out.iterdir()) == ["consistency.tif", "report.html", "report_per_band.csv"]


def test_a_model_is_checked_when_no_method_is_given_and_both_are_refused(run, fused_pair, model, tmp_path):
    result = run("assess_pair", _params(*fused_pair, tmp_path, MODEL=str(model), DEVICE="cpu"))
    assert "CoFusion (tiny.safetensors)" in Path(result["OUTPUT_REPORT"]).read_text()
    assert math.isfinite(result["PSNR"]) and result["PSNR"] != result["BICUBIC_PSNR"]
    other = tmp_path / "both"
    other.mkdir()
    with pytest.raises(qgis_core.QgsProcessingException, match="either the classical method"):
        run("assess_pair", _params(*fused_pair, other, METHOD=1, MODEL=str(model)))  # METHOD by number: gsa
    assert list(other.iterdir()) == []


def test_the_consistency_map_loads_with_a_colour_ramp(plugin, fused_pair, tmp_path):
    import processing

    project = qgis_core.QgsProject.instance()
    project.removeAllMapLayers()
    try:
        processing.runAndLoadResults("cofusion:assess_pair", _params(*fused_pair, tmp_path, METHOD="gsa",
                                                                      OUTPUT_MAP="TEMPORARY_OUTPUT"))
        layers = {layer.name(): layer for layer in project.mapLayers().values()}
        layer = layers[f"Consistency (SAM degrees, RMSE) – {fused_pair[2].stem}"]
        assert layer.renderer().type() == "singlebandpseudocolor" and layer.renderer().band() == 1
    finally:
        project.removeAllMapLayers()
