# SPDX-License-Identifier: GPL-2.0-or-later
"""simulate, fuse_classic, align_to_grid, train and assess_qnr through processing.run, on tiny synthetic rasters."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cofusion.core.grid import check_coregistration
from cofusion.core.raster import read_info, read_raster

from .conftest import HR_GT, HSI, LR_GT, WAVELENGTHS, smooth_reference

pytestmark = pytest.mark.qgis
qgis_core = pytest.importorskip("qgis.core")


@pytest.fixture
def simulated(run, make_raster, tmp_path) -> tuple[Path, Path, Path]:
    """(reference 5 x 16 x 16, simulated LRHSI x2, simulated HRMSI with Sentinel-2 B2, B3, B4, B8)."""
    reference = make_raster(data=smooth_reference(16, 16), name="reference.tif", wavelengths_nm=WAVELENGTHS,
                            geotransform=HR_GT)
    outputs = {"OUTPUT_LRHSI": str(tmp_path / "sim_lr.tif"), "OUTPUT_HRMSI": str(tmp_path / "sim_hr.tif")}
    result = run("simulate", {"REFERENCE": str(reference), "SRF": "sentinel2a", "SCALE": 2, **outputs})
    return reference, Path(result["OUTPUT_LRHSI"]), Path(result["OUTPUT_HRMSI"])


def test_simulate_writes_a_coregistered_pair(simulated):
    _, lr, hr = simulated
    lr_info, hr_info = read_info(lr), read_info(hr)
    assert (lr_info.band_count, lr_info.width, lr_info.height, lr_info.geotransform) == (HSI, 8, 8, LR_GT)
    assert lr_info.wavelengths_nm == WAVELENGTHS
    assert (hr_info.band_count, hr_info.width, hr_info.geotransform) == (4, 16, HR_GT)
    assert hr_info.band_names == ("B2", "B3", "B4", "B8")
    assert check_coregistration(lr_info, hr_info).scale == 2


def test_simulate_without_wavelengths_says_so(run, make_raster, tmp_path):
    bare = make_raster(data=smooth_reference(16, 16), name="bare.tif", geotransform=HR_GT)
    with pytest.raises(qgis_core.QgsProcessingException, match="carries no band wavelengths"):
        run("simulate", {"REFERENCE": str(bare), "SRF": "sentinel2a", "SCALE": 2,
                         "OUTPUT_LRHSI": str(tmp_path / "a.tif"), "OUTPUT_HRMSI": str(tmp_path / "b.tif")})
    assert not (tmp_path / "a.tif").exists() and not (tmp_path / "b.tif").exists()


def _fused_error(run, simulated, folder: Path, method: str) -> float:
    """Mean absolute error against the reference of ``method``'s fusion of the simulated pair (run through
    processing.run), after checking the output's grid and bands."""
    reference, lr, hr = simulated
    out = folder / f"{method}.tif"
    run("fuse_classic", {"LRHSI": str(lr), "HRMSI": str(hr), "METHOD": method, "OUTPUT": str(out)})
    info = read_info(out)
    assert (info.band_count, info.width, info.geotransform, info.wavelengths_nm) == (HSI, 16, HR_GT, WAVELENGTHS)
    return float(np.abs(read_raster(out) - read_raster(reference)).mean())


@pytest.mark.parametrize("method", ["mtf_glp_hpm", "gsa", "sfim", "llr", "blend"])
def test_fuse_classic_sharpens_beyond_plain_upsampling(run, simulated, tmp_path, method):
    """Each method adds the HRMSI's detail: its error is well below bicubic upsampling's, which has none (on this
    scene SFIM, the weakest, is at 0.70 of bicubic's error; the others far below). A method that returned the
    upsampled LRHSI, or garbage, fails."""
    bicubic = _fused_error(run, simulated, tmp_path, "bicubic")
    assert 0 < bicubic < 0.05  # the upsampling itself is sane
    assert _fused_error(run, simulated, tmp_path, method) < 0.8 * bicubic


def test_fuse_classic_marks_measured_and_extrapolated_bands_by_the_srf_given(run, simulated, tmp_path):
    from cofusion.core.band_support import read_marking

    out = tmp_path / "gsa.tif"
    run("fuse_classic", {"LRHSI": str(simulated[1]), "HRMSI": str(simulated[2]), "METHOD": "gsa",
                         "SRF": "sentinel2a:B2,B3,B4,B5", "OUTPUT": str(out)})
    rule, bands = read_marking(out)
    assert "sentinel2a" in rule["COFUSION_DETAIL_RULE"].lower()
    details = [band["COFUSION_DETAIL"] for band in bands]
    # 450 nm below B2's half-maximum edge (457 nm), 750 and 850 nm past B5's (713 nm): no detail measured there
    assert (details[0], details[1], details[3], details[4]) == ("extrapolated", "measured", "extrapolated",
                                                                "extrapolated")


def test_fuse_classic_on_an_extent_fuses_its_pixels(run, simulated, tmp_path):
    """An extent covering HR columns 4-11 and rows 0-7 of the 16 x 16 output grid: an 8 x 8 output with those
    pixels of the whole run (the scene is one block) and its corner's georeference."""
    _, lr, hr = simulated
    whole = run("fuse_classic", {"LRHSI": str(lr), "HRMSI": str(hr), "METHOD": "gsa",
                                 "OUTPUT": str(tmp_path / "whole.tif")})["OUTPUT"]
    x0, pixel, y0 = HR_GT[0], HR_GT[1], HR_GT[3]
    extent = f"{x0 + 4 * pixel},{x0 + 12 * pixel},{y0 - 8 * pixel},{y0} [EPSG:32632]"
    area = run("fuse_classic", {"LRHSI": str(lr), "HRMSI": str(hr), "METHOD": "gsa", "REGION": extent,
                                "OUTPUT": str(tmp_path / "area.tif")})["OUTPUT"]
    np.testing.assert_array_equal(read_raster(area), read_raster(whole)[:, 0:8, 4:12])
    assert read_info(area).geotransform[:4] == (x0 + 4 * pixel, pixel, 0.0, y0)


def test_fuse_classic_cancel_leaves_no_file(run, simulated, tmp_path):
    feedback = qgis_core.QgsProcessingFeedback()
    feedback.cancel()
    with pytest.raises(qgis_core.QgsProcessingException, match="canceled"):
        run("fuse_classic", {"LRHSI": str(simulated[1]), "HRMSI": str(simulated[2]), "METHOD": "gsa",
                             "OUTPUT": str(tmp_path / "c.tif")}, feedback)
    assert not list(tmp_path.glob("*c.tif*"))


def test_align_to_grid_makes_a_shifted_hrmsi_fusable(run, pair, make_raster, tmp_path):
    shifted = make_raster(data=smooth_reference(18, 18, 3), name="shifted.tif",
                          geotransform=(499993.0, 10.0, 0.0, 5000004.0, 0.0, -10.0))
    out = run("align_to_grid", {"LRHSI": str(pair[0]), "HRMSI": str(shifted), "OUTPUT": str(tmp_path / "al.tif")})
    aligned = read_info(out["OUTPUT"])
    assert aligned.geotransform == HR_GT and (aligned.width, aligned.height, aligned.band_count) == (16, 16, 3)
    assert check_coregistration(read_info(pair[0]), aligned).scale == 2


def test_train_pair_mode_writes_a_model_and_a_log(run, make_pair, tmp_path):
    pair = make_pair(32)  # the validation strip needs 32 x 32 LR pixels
    result = run("train", {"MODE": "pair", "LRHSI": str(pair[0]), "HRMSI": str(pair[1]), "ITERATIONS": 2,
                           "BATCH_SIZE": 1, "DEVICE": "cpu", "OUTPUT_MODEL": str(tmp_path / "m.safetensors")})
    assert Path(result["OUTPUT_MODEL"]).is_file() and "PSNR" in result
    assert Path(result["OUTPUT_LOG"]).read_text().startswith("step,")


def test_train_reference_mode_needs_an_srf(run, pair, tmp_path):
    with pytest.raises(qgis_core.QgsProcessingException, match="Reference mode needs SRF"):
        run("train", {"MODE": "reference", "REFERENCE": str(pair[0]), "ITERATIONS": 2,
                      "OUTPUT_MODEL": str(tmp_path / "m.safetensors")})


@pytest.mark.parametrize("mode, given, missing", [
    ("pair", {}, "Pair mode needs LRHSI and HRMSI"),
    ("pair", {"LRHSI": "lr"}, "Pair mode needs HRMSI"),
    ("reference", {}, "Reference mode needs REFERENCE (a high-resolution hyperspectral raster) and SRF"),
    (1, {"SRF": "rgb"}, "Reference mode needs REFERENCE"),  # the mode by number too
])
def test_train_checks_each_modes_inputs_before_it_runs(plugin, pair, tmp_path, mode, given, missing):
    """Every input is optional for QGIS (each mode needs others): the dialog's check names what the mode lacks."""
    algorithm = qgis_core.QgsApplication.processingRegistry().createAlgorithmById("cofusion:train")
    files = {"lr": str(pair[0]), "hr": str(pair[1])}
    parameters = {"MODE": mode, "ITERATIONS": 2, "OUTPUT_MODEL": str(tmp_path / "m.safetensors"),
                  **{k: files.get(v, v) for k, v in given.items()}}
    ok, message = algorithm.checkParameterValues(parameters, qgis_core.QgsProcessingContext())
    assert not ok and message.startswith(missing), message
    assert not (tmp_path / "m.safetensors").exists()


def test_train_on_an_extent_trains_on_its_pixels(run, make_pair, tmp_path):
    from cofusion.core.checkpoint import read_card

    pair = make_pair(48)  # HRMSI 96 x 96 at 10 m; the extent covers its top-left 64 x 64 pixels
    x0, y0 = HR_GT[0], HR_GT[3]
    extent = f"{x0},{x0 + 640},{y0 - 640},{y0} [EPSG:32632]"
    result = run("train", {"MODE": "pair", "LRHSI": str(pair[0]), "HRMSI": str(pair[1]), "REGION": extent,
                           "ITERATIONS": 1, "BATCH_SIZE": 1, "DEVICE": "cpu",
                           "OUTPUT_MODEL": str(tmp_path / "m.safetensors")})
    assert read_card(result["OUTPUT_MODEL"]).provenance["region"] == [0, 0, 64, 64]
    with pytest.raises(qgis_core.QgsProcessingException, match="does not overlap"):
        run("train", {"MODE": "pair", "LRHSI": str(pair[0]), "HRMSI": str(pair[1]), "ITERATIONS": 1,
                      "REGION": f"{x0 + 5000},{x0 + 6000},{y0 - 640},{y0} [EPSG:32632]",
                      "OUTPUT_MODEL": str(tmp_path / "n.safetensors")})


def test_assess_qnr_gives_indices_in_range(run, make_pair, tmp_path):
    pair = make_pair(12)  # the quality index window is 11 x 11
    fused = run("fuse_classic", {"LRHSI": str(pair[0]), "HRMSI": str(pair[1]), "METHOD": "gsa",
                                 "OUTPUT": str(tmp_path / "f.tif")})["OUTPUT"]
    result = run("assess_qnr", {"FUSED": fused, "LRHSI": str(pair[0]), "HRMSI": str(pair[1]),
                                "OUTPUT_TABLE": str(tmp_path / "qnr.csv")})
    assert 0 <= result["D_lambda"] <= 1 and 0 <= result["D_s"] <= 1
    assert result["QNR"] == pytest.approx((1 - result["D_lambda"]) * (1 - result["D_s"]))
    assert "QNR" in (tmp_path / "qnr.csv").read_text()


def test_the_classical_methods_offered_are_the_cores():
    from cofusion.cofusion_qgis.algorithms import params
    from cofusion.core.classic import METHODS

    assert set(params.CLASSIC_METHODS) == set(METHODS)
