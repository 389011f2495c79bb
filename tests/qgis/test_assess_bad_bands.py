# SPDX-License-Identifier: GPL-2.0-or-later
"""cofusion:assess and cofusion:assess_qnr on a fusion with bad bands: finite metrics, the skipped bands named in
the feedback and the report; align_to_grid's scale range is core.scale's."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from .conftest import HR_GT, smooth_reference

pytestmark = pytest.mark.qgis
qgis_core = pytest.importorskip("qgis.core")
pytest.importorskip("torch")

#: 9 bands, 450-850 nm: band 4 (600 nm) nodata everywhere, band 6 (700 nm) constant, band 7 (750 nm) flagged.
WAVELENGTHS = tuple(450.0 + 50.0 * b for b in range(9))
NODATA = -9999.0


class _Feedback(qgis_core.QgsProcessingFeedback):
    """Keeps every pushInfo and pushWarning line."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def pushInfo(self, info: str) -> None:  # noqa: N802 (QGIS API name)
        self.lines.append(info)
        super().pushInfo(info)

    def pushWarning(self, warning: str) -> None:  # noqa: N802 (QGIS API name)
        self.lines.append(f"WARNING {warning}")
        super().pushWarning(warning)


@pytest.fixture
def fusion_with_bad_bands(make_raster, tmp_path) -> tuple[Path, Path, Path, Path]:
    """(reference, simulated LRHSI, simulated HRMSI, GSA fusion): the reference's bad bands are nodata with
    bbl = 0 in the LRHSI and the fusion."""
    from cofusion.core.classic_raster import fuse_classic_raster
    from cofusion.core.simulate_raster import simulate_raster
    from cofusion.core.srf import gaussian_bands

    data = smooth_reference(24, 24, bands=9)
    data[3] = NODATA
    data[5] = 0.4
    reference = make_raster(data=data, name="reference.tif", geotransform=HR_GT, wavelengths_nm=WAVELENGTHS,
                            nodata=NODATA)
    ds = gdal.Open(str(reference), gdal.GA_Update)
    for band in range(9):
        ds.GetRasterBand(band + 1).SetMetadataItem("bbl", "0" if band == 6 else "1")
    ds = None
    lr, hr = simulate_raster(reference, gaussian_bands([500.0, 550.0, 650.0, 825.0], [30.0, 30.0, 30.0, 60.0]), 2,
                             tmp_path / "lr.tif", tmp_path / "hr.tif")
    return reference, lr, hr, fuse_classic_raster(lr, hr, tmp_path / "fused.tif", "gsa")


def test_assess_names_the_skipped_bands(run, fusion_with_bad_bands, tmp_path):
    reference, _, _, fused = fusion_with_bad_bands
    feedback = _Feedback()
    result = run("assess", {"FUSED": str(fused), "REFERENCE": str(reference), "SCALE": 2,
                            "OUTPUT_TABLE": str(tmp_path / "metrics.csv"), "OUTPUT_REPORT": str(tmp_path / "r.html"),
                            "OUTPUT_SAM_MAP": str(tmp_path / "sam.tif")}, feedback)
    assert all(math.isfinite(result[m]) for m in ("PSNR", "SSIM", "SAM", "ERGAS", "RMSE"))
    skipped = [line for line in feedback.lines if line.startswith("Bad bands skipped")]
    assert len(skipped) == 1 and "3 of 9 bands" in skipped[0] and "band 4 (600 nm)" in skipped[0]
    assert "band 6 (700 nm)" in skipped[0] and "band 7 (750 nm) flagged bad (bbl = 0)" in skipped[0]
    assert "Bands skipped" in Path(result["OUTPUT_REPORT"]).read_text()


def test_assess_qnr_names_the_skipped_bands(run, fusion_with_bad_bands, tmp_path):
    _, lr, hr, fused = fusion_with_bad_bands
    feedback = _Feedback()
    result = run("assess_qnr", {"FUSED": str(fused), "LRHSI": str(lr), "HRMSI": str(hr),
                                "OUTPUT_TABLE": str(tmp_path / "qnr.csv")}, feedback)
    assert all(math.isfinite(result[m]) for m in ("D_lambda", "D_s", "QNR"))
    assert result["QNR"] == pytest.approx((1 - result["D_lambda"]) * (1 - result["D_s"]))
    skipped = [line for line in feedback.lines if line.startswith("Bad bands skipped")]
    assert len(skipped) == 1 and "hyperspectral 3 of 9 bands" in skipped[0] and "band 4 (600 nm)" in skipped[0]
    assert "QNR" in (tmp_path / "qnr.csv").read_text()


def test_assess_without_bad_bands_pushes_no_skip_line(run, make_raster, tmp_path):
    reference = smooth_reference(16, 16)
    noisy = reference + np.random.default_rng(1).normal(0, 0.01, reference.shape).astype(np.float32)
    feedback = _Feedback()
    run("assess", {"FUSED": str(make_raster(data=noisy, name="f.tif", geotransform=HR_GT)),
                   "REFERENCE": str(make_raster(data=reference, name="r.tif", geotransform=HR_GT)), "SCALE": 2,
                   "OUTPUT_TABLE": str(tmp_path / "m.csv"), "OUTPUT_REPORT": str(tmp_path / "r.html"),
                   "OUTPUT_SAM_MAP": str(tmp_path / "sam.tif")}, feedback)
    assert not [line for line in feedback.lines if "skipped" in line]


def test_align_to_grid_scale_range_is_the_cores(plugin):
    from cofusion.core.scale import MAX_SCALE, MIN_SCALE

    algorithm = qgis_core.QgsApplication.processingRegistry().algorithmById("cofusion:align_to_grid")
    scale = algorithm.parameterDefinition("SCALE")
    assert (scale.minimum(), scale.maximum()) == (MIN_SCALE, MAX_SCALE)


def test_the_core_log_of_bad_bands_reaches_the_processing_log(run, fusion_with_bad_bands, tmp_path):
    _reference, lr, hr, _fused = fusion_with_bad_bands
    feedback = _Feedback()
    run("fuse_classic", {"LRHSI": str(lr), "HRMSI": str(hr), "METHOD": "gsa", "OUTPUT": str(tmp_path / "g.tif")},
        feedback)
    warnings = [line for line in feedback.lines if line.startswith("WARNING")]
    # the simulated LRHSI flags the reference's bad bands (bbl = 0)
    assert any("lr.tif: bad bands, left out" in w and "bands 6-7 (700-750 nm) flagged bad (bbl = 0)" in w
               for w in warnings), feedback.lines
