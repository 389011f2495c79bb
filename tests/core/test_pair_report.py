# SPDX-License-Identifier: GPL-2.0-or-later
"""core.pair_report: the quality report without ground truth, on a synthetic pair whose truth is known.

The pair is Wald-simulated from a scene of three materials in Voronoi cells (sharp edges at every scale), so that a
regression method recovers it from the HRMSI and bicubic upsampling cannot: GSA must beat bicubic in the
reduced-resolution check, a method returning garbage must not, and the truth itself, given as the fused raster, must
be consistent with the LRHSI to float rounding.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

from cofusion.core import pair_report as report_module
from cofusion.core.classic import METHODS
from cofusion.core.classic_raster import fuse_classic_raster
from cofusion.core.degrade import spatial_degrade, spectral_degrade
from cofusion.core.errors import InputError
from cofusion.core.pair_report import MAP_BANDS, pair_report
from cofusion.core.raster import RasterReader, read_info, write_raster
from cofusion.core.srf import gaussian_bands

SCALE = 2
HR_SIZE = 96
WAVELENGTHS = tuple(425.0 + 50.0 * k for k in range(12))  # 425..975 nm
HSI_FWHM = (40.0,) * 12
MSI_CENTRES, MSI_FWHM = (450.0, 550.0, 650.0), (100.0, 100.0, 100.0)  # half maximum from 400 to 700 nm
SUPPORTED = np.array([w < 700 for w in WAVELENGTHS])  # 425..675 supported, 725..975 extrapolated
LR_GT = (500000.0, 20.0, 0.0, 5000000.0, 0.0, -20.0)
HR_GT = (500000.0, 10.0, 0.0, 5000000.0, 0.0, -10.0)
WKT = ('PROJCS["WGS 84 / UTM zone 32N",GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563]],'
       'PRIMEM["Greenwich",0],UNIT["degree",0.0174532925199433]],PROJECTION["Transverse_Mercator"],'
       'PARAMETER["latitude_of_origin",0],PARAMETER["central_meridian",9],PARAMETER["scale_factor",0.9996],'
       'PARAMETER["false_easting",500000],PARAMETER["false_northing",0],UNIT["metre",1]]')


def truth(size: int = HR_SIZE, seed: int = 0) -> np.ndarray:
    """(12, size, size) float32: three materials with distinct spectra in Voronoi cells, under smooth shading."""
    rng = np.random.default_rng(seed)
    seeds = rng.uniform(0, size, (40, 2))
    rows, cols = np.mgrid[0:size, 0:size]
    cell = np.argmin((rows[..., None] - seeds[:, 0]) ** 2 + (cols[..., None] - seeds[:, 1]) ** 2, axis=-1)
    material = rng.integers(0, 3, len(seeds))[cell]
    wl = np.asarray(WAVELENGTHS)
    spectra = np.stack([0.2 + 0.15 * np.sin(wl / 90.0), 0.5 - 0.3 * (wl - 425) / 550, 0.1 + 0.5 * (wl > 700)])
    shade = 0.8 + 0.2 * np.sin(rows / 17.0) * np.cos(cols / 23.0)
    return (spectra[material].transpose(2, 0, 1) * shade).astype(np.float32)


def response_matrix() -> np.ndarray:
    return gaussian_bands(MSI_CENTRES, MSI_FWHM).matrix(WAVELENGTHS, HSI_FWHM)


def write_pair(folder: Path, z: np.ndarray, *, msi_metadata: bool = True, lr_nodata: float | None = None,
               hr_nodata: float | None = None, lr: np.ndarray | None = None,
               hr: np.ndarray | None = None) -> tuple[Path, Path]:
    lr = spatial_degrade(z, SCALE) if lr is None else lr
    hr = spectral_degrade(z, response_matrix()).astype(np.float32) if hr is None else hr
    lr_path, hr_path = folder / "lrhsi.tif", folder / "hrmsi.tif"
    write_raster(lr_path, lr, geotransform=LR_GT, crs_wkt=WKT, nodata=lr_nodata, wavelengths_nm=WAVELENGTHS,
                 fwhm_nm=HSI_FWHM)
    write_raster(hr_path, hr, geotransform=HR_GT, crs_wkt=WKT, nodata=hr_nodata,
                 wavelengths_nm=MSI_CENTRES if msi_metadata else None, fwhm_nm=MSI_FWHM if msi_metadata else None,
                 band_names=("blue", "green", "red"))
    return lr_path, hr_path


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """The simulated pair, its truth as a raster, and its GSA and bicubic fusions."""
    folder = tmp_path_factory.mktemp("pair")
    z = truth()
    lr, hr = write_pair(folder, z)
    exact = folder / "truth.tif"
    write_raster(exact, z, geotransform=HR_GT, crs_wkt=WKT, wavelengths_nm=WAVELENGTHS, fwhm_nm=HSI_FWHM)
    fused = {m: fuse_classic_raster(lr, hr, folder / f"{m}.tif", m) for m in ("gsa", "bicubic")}
    return {"folder": folder, "lr": lr, "hr": hr, "truth": exact, **fused}


@pytest.fixture(scope="module")
def gsa_report(scene, tmp_path_factory):
    out = tmp_path_factory.mktemp("report_gsa")
    return pair_report(scene["lr"], scene["hr"], scene["gsa"], "gsa", out, compare=["llr"]), out


def test_a_good_method_beats_bicubic_and_the_report_says_so(gsa_report):
    result, out = gsa_report
    assert list(result.candidates) == ["gsa", "bicubic", "llr"]
    gsa, bicubic = result.candidates["gsa"], result.candidates["bicubic"]
    assert gsa.psnr > bicubic.psnr + 3 and gsa.sam < bicubic.sam and gsa.ergas < bicubic.ergas
    assert gsa.beats_bicubic is True and bicubic.beats_bicubic is None and result.sharpens
    assert any(line.startswith("gsa beats bicubic") for line in result.verdict)
    assert not any("No method sharpens" in line for line in result.verdict)
    assert (out / "report.html").is_file() and (out / "consistency.tif").is_file() and (out / "per_band.csv").is_file()
    assert not (out / ".tmp").exists()  # the degraded pair and the reduced fusions are gone


def test_per_band_arrays_have_the_band_count_and_the_csv_a_row_per_band(gsa_report):
    result, out = gsa_report
    for scores in result.candidates.values():
        for array in (scores.psnr_per_band, scores.rmse_per_band, scores.rel_rmse_per_band):
            assert array.shape == (len(WAVELENGTHS),) and np.isfinite(array).all()
        assert scores.psnr == pytest.approx(float(scores.psnr_per_band.mean()))
    lines = (out / "per_band.csv").read_text().splitlines()
    assert len(lines) == 1 + len(WAVELENGTHS) and lines[1].startswith("1,425.00,1,")


def test_a_method_that_returns_garbage_is_flagged(scene, tmp_path, monkeypatch):
    def garbage(lr, hr, scale):
        up = lr.repeat(scale, 1).repeat(scale, 2)
        return (up * np.random.default_rng(1).uniform(0.5, 1.5, up.shape)).astype(np.float32)

    monkeypatch.setitem(METHODS, "garbage", garbage)
    result = pair_report(scene["lr"], scene["hr"], scene["bicubic"], "garbage", tmp_path)
    scores = result.candidates["garbage"]
    assert scores.beats_bicubic is False and not result.sharpens
    assert scores.psnr < result.candidates["bicubic"].psnr
    assert any(line.startswith("garbage does not beat bicubic") for line in result.verdict)
    assert "No method sharpens reliably on this pair" in result.verdict[-1]
    page = (tmp_path / "report.html").read_text()
    assert "No method sharpens reliably on this pair" in page and f"{scores.psnr:.2f}" in page


def test_bands_outside_the_hrmsi_coverage_are_marked_extrapolated_and_scored_apart(gsa_report):
    result, out = gsa_report
    assert result.supported.tolist() == SUPPORTED.tolist()
    assert "metadata" in result.srf_source and "400-700 nm" in result.support_rule
    gsa = result.candidates["gsa"]
    assert gsa.supported["bands"] == gsa.extrapolated["bands"] == 6
    assert gsa.supported["PSNR"] == pytest.approx(float(gsa.psnr_per_band[SUPPORTED].mean()))
    assert gsa.extrapolated["PSNR"] == pytest.approx(float(gsa.psnr_per_band[~SUPPORTED].mean()))
    page = (out / "report.html").read_text()
    assert page.count("<title>extrapolated bands</title>") == 3  # shaded in both per-band plots and the SRF plot
    assert "Extrapolated: 6 bands: 7-12 (725-975 nm)" in page


@pytest.mark.parametrize("strip_lr_rows", [None, 5])
def test_the_consistency_map_of_the_exact_simulation_is_zero(scene, gsa_report, tmp_path, monkeypatch, strip_lr_rows):
    """The truth as the fused raster, whole or walked in strips of 5 LR rows (the HRMSI's and the fused raster's
    strips then need their blur margins to equal a whole-image degradation)."""
    if strip_lr_rows is not None:
        margin = report_module._margin(SCALE) // SCALE
        monkeypatch.setattr(report_module, "STRIP_VALUES", 12 * HR_SIZE * SCALE * (strip_lr_rows + 2 * margin))
        assert len(report_module._strips(HR_SIZE // SCALE, 12 * HR_SIZE, SCALE)) > 5
    result = pair_report(scene["lr"], scene["hr"], scene["truth"], "gsa", tmp_path)
    with RasterReader(result.consistency_map) as reader:
        info = reader.info
        angles, errors = reader.read(info.window)
    lr_info = read_info(scene["lr"])
    assert (info.band_count, info.width, info.height) == (2, lr_info.width, lr_info.height)
    assert info.band_names == MAP_BANDS and info.geotransform == LR_GT
    assert np.isfinite(angles).all() and float(angles.max()) < 1e-3 and float(errors.max()) < 1e-5
    assert result.consistency["SAM mean"] < 1e-3 and result.d_lambda_k < 1e-6
    assert result.hqnr == pytest.approx(1 - result.qnr["D_s"], abs=1e-6)
    # the map measures something: a GSA fusion of the same pair is not exactly consistent
    assert gsa_report[0].consistency["RMSE mean"] > 100 * result.consistency["RMSE mean"]


def test_a_hole_in_the_fused_raster_is_nodata_on_the_map_and_does_not_spread(scene, tmp_path):
    z = truth()
    z[:, 40:46, 20:30] = np.nan  # nodata in the fused raster only: LR pixels rows 20-22, columns 10-14
    holed = tmp_path / "holed.tif"
    write_raster(holed, z, geotransform=HR_GT, crs_wkt=WKT, nodata=math.nan, wavelengths_nm=WAVELENGTHS)
    result = pair_report(scene["lr"], scene["hr"], holed, "gsa", tmp_path / "report")
    with RasterReader(result.consistency_map) as reader:
        angles, errors = reader.read(reader.info.window)
    hole = np.zeros(angles.shape, bool)
    hole[20:23, 10:15] = True
    assert np.isnan(angles[hole]).all() and np.isfinite(angles[~hole]).all()
    # the pixels around the hole see its LRHSI values in its place, not nodata: nearly consistent still
    assert float(np.nanmax(angles)) < 5.0 and float(np.nanmax(errors)) < 0.05


def test_beating_bicubic_takes_more_psnr_a_lower_ergas_and_no_higher_sam():
    base = {"PSNR": 30.0, "SAM": 2.0, "ERGAS": 5.0}
    assert report_module._beats({"PSNR": 30.2, "SAM": 2.0, "ERGAS": 4.9}, base)
    assert not report_module._beats({"PSNR": 30.05, "SAM": 1.0, "ERGAS": 4.0}, base)  # within 0.1 dB
    assert not report_module._beats({"PSNR": 35.0, "SAM": 2.1, "ERGAS": 4.0}, base)  # spectra worse
    assert not report_module._beats({"PSNR": 35.0, "SAM": 1.0, "ERGAS": 5.0}, base)  # ERGAS not lower
    assert report_module._beats({"PSNR": 35.0, "SAM": math.nan, "ERGAS": 4.0}, base)  # one band: no SAM


def test_the_html_holds_the_summary_and_svg_plots_and_nothing_external(gsa_report):
    result, out = gsa_report
    page = (out / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    for heading in ("Does it beat bicubic?", "Summary", "Full-resolution indices", "Consistency with the LRHSI",
                    "Supported and extrapolated bands"):
        assert heading in page
    assert len(re.findall(r"<svg [^>]*>", page)) == 3 and page.count("</svg>") == 3
    assert "Reduced-resolution PSNR per band" in page and "HRMSI response on the LRHSI" in page
    assert page.count("<polyline") >= 3 * 2 + 3  # 3 candidates in 2 plots, 3 MSI bands
    for c in result.candidates.values():
        assert f"{c.psnr:.2f}" in page and f"{c.sam:.2f}" in page
    assert f"{result.qnr['QNR']:.4f}" in page and f"{result.hqnr:.4f}" in page
    assert not re.search(r"<(script|link|img|iframe)\b|\bsrc=|url\(", page)


def test_nodata_pixels_and_bad_bands_are_left_out(tmp_path):
    z = truth()
    lr = spatial_degrade(z, SCALE)
    lr[:, 30:36, 10:16] = -1.0  # a nodata patch of the LRHSI
    lr[4] = 0.25  # a constant band: bad
    hr = spectral_degrade(z, response_matrix()).astype(np.float32)
    hr[:, 4:14, 70:80] = -9.0  # a nodata patch of the HRMSI elsewhere
    lr_path, hr_path = write_pair(tmp_path, z, lr_nodata=-1.0, hr_nodata=-9.0, lr=lr, hr=hr)
    fused = fuse_classic_raster(lr_path, hr_path, tmp_path / "gsa.tif", "gsa")
    result = pair_report(lr_path, hr_path, fused, "gsa", tmp_path / "report")
    assert result.bands == tuple(b for b in range(12) if b != 4) and "constant" in result.skipped
    for scores in result.candidates.values():
        assert np.isnan(scores.psnr_per_band[4]) and np.isfinite(np.delete(scores.psnr_per_band, 4)).all()
        assert math.isfinite(scores.psnr) and math.isfinite(scores.sam) and math.isfinite(scores.ergas)
    assert result.candidates["gsa"].beats_bicubic
    # compared: the LR pixels valid in the LRHSI (less its 6 x 6 patch) and under valid degraded HRMSI pixels (less
    # the HR patch's 5 x 5 LR footprint)
    assert {c.pixels for c in result.candidates.values()} == {48 * 48 - 36 - 25}
    assert all(math.isfinite(v) for v in (*result.qnr.values(), result.hqnr, *result.consistency.values()))
    with RasterReader(result.consistency_map) as reader:
        angles = reader.read(reader.info.window)[0]
    assert np.isnan(angles[30:36, 10:16]).all() and np.isnan(angles[2:7, 35:40]).all()
    assert np.isfinite(angles).sum() == result.consistency["pixels"] > 0.9 * angles.size


def test_the_fused_rasters_band_metadata_splits_the_bands_as_the_report_does(scene, gsa_report):
    from osgeo import gdal

    ds = gdal.Open(str(scene["gsa"]))
    detail = [ds.GetRasterBand(b + 1).GetMetadataItem("COFUSION_DETAIL") for b in range(ds.RasterCount)]
    ds = None
    assert [d == "measured" for d in detail] == gsa_report[0].supported.tolist() == SUPPORTED.tolist()
    assert set(detail) == {"measured", "extrapolated"}


def test_an_estimated_response_is_used_plotted_and_judged(scene, tmp_path):
    from cofusion.training.api import estimate_srf

    lr, hr = write_pair(tmp_path, truth(), msi_metadata=False)
    fused = fuse_classic_raster(lr, hr, tmp_path / "gsa.tif", "gsa")
    result = pair_report(lr, hr, fused, "gsa", tmp_path / "estimated", srf_estimator=estimate_srf)
    assert result.srf_source.startswith("estimated") and result.srf.shape == (3, 12)
    assert np.allclose(result.srf.sum(axis=1), 1) and result.srf_bands == ("blue", "green", "red")
    assert "central 76%" in result.support_rule and result.notes[0].startswith("The estimated response's weighted")
    page = (tmp_path / "estimated" / "report.html").read_text()
    assert "HRMSI response on the LRHSI" in page and page.count("</svg>") == 3
    # without an estimator or metadata the split is unknown and said to be
    unknown = pair_report(lr, hr, fused, "gsa", tmp_path / "unknown")
    assert unknown.supported.all() and unknown.srf is None and "unknown" in unknown.support_rule
    assert unknown.candidates["gsa"].extrapolated is None
    assert (tmp_path / "unknown" / "report.html").read_text().count("</svg>") == 2


def test_a_given_srf_decides_the_split_and_must_fit_the_hrmsi(scene, tmp_path):
    result = pair_report(scene["lr"], scene["hr"], scene["gsa"], "gsa", tmp_path / "s2", srf="sentinel2a:B2,B3,B4")
    assert result.srf_source == "the SRF given, sentinel2a:B2,B3,B4" and result.srf_bands == ("B2", "B3", "B4")
    # B2 459-525, B3 542-578, B4 650-680 nm at half maximum (ESA's curves): 475, 525?, 575?, 675 nm, nothing beyond
    assert result.supported[[1, 5]].all() and not result.supported[[0, 6, 7, 8, 9, 10, 11]].any()
    with pytest.raises(InputError, match="The SRF has 4 bands but the HRMSI"):
        pair_report(scene["lr"], scene["hr"], scene["gsa"], "gsa", tmp_path / "s2b", srf="sentinel2a")


def test_an_estimate_centred_far_from_its_band_name_is_called_implausible():
    wl = np.asarray(WAVELENGTHS)
    plausible = np.zeros((3, 12))
    plausible[0, 0], plausible[1, 2], plausible[2, 4] = 1, 1, 1  # blue 425, green 525, red 625
    assert len(report_module._judge_estimate(plausible, wl, ("blue", "green", "red"))) == 1
    implausible = plausible.copy()
    implausible[2] = 0
    implausible[2, 0] = 1  # "red" at 425 nm
    notes = report_module._judge_estimate(implausible, wl, ("blue", "green", "red"))
    assert len(notes) == 2 and "'red' at 425 nm" in notes[1] and "'green'" not in notes[1]


def test_a_scene_above_the_memory_bound_is_refused_in_one_line(scene, tmp_path, monkeypatch):
    monkeypatch.setattr(report_module, "available_memory", lambda: 2 ** 20)
    with pytest.raises(InputError) as raised:
        pair_report(scene["lr"], scene["hr"], scene["gsa"], "gsa", tmp_path / "out")
    message = str(raised.value)
    assert "\n" not in message and "1 MiB are available" in message and "crop" in message
    assert not (tmp_path / "out").exists()


def test_inputs_that_do_not_fit_are_refused_before_anything_is_written(scene, tmp_path):
    with pytest.raises(InputError, match="neither a classical method"):
        pair_report(scene["lr"], scene["hr"], scene["gsa"], "nearest", tmp_path / "a")
    with pytest.raises(InputError, match="is not the fusion of this pair"):
        pair_report(scene["lr"], scene["hr"], scene["hr"], "gsa", tmp_path / "b")
    with pytest.raises(InputError, match="Unknown classical method"):
        pair_report(scene["lr"], scene["hr"], scene["gsa"], "gsa", tmp_path / "c", compare=["magic"])
    assert not any((tmp_path / name).exists() for name in "abc")


def test_a_cofusion_checkpoint_is_checked_on_the_degraded_pair_through_the_engine(scene, tmp_path):
    from dataclasses import replace

    from cofusion.core import service
    from cofusion.core.assess import assess_no_reference
    from cofusion.core.checkpoint import ModelCard, Normalization, save_checkpoint
    from cofusion.core.model import ModelConfig, build_model
    from cofusion.core.window import Window

    config = ModelConfig(12, 3, SCALE, width=8, top_k=4)
    card = ModelCard(config=config, normalization=Normalization.identity(12, 3), hsi_wavelengths_nm=WAVELENGTHS,
                     srf=tuple(tuple(row) for row in response_matrix()), msi_band_names=("blue", "green", "red"))
    model = save_checkpoint(tmp_path / "tiny.safetensors", build_model(config).eval(), card)
    result = pair_report(scene["lr"], scene["hr"], scene["gsa"], str(model), tmp_path / "report", device="cpu")
    assert result.subject == "CoFusion (tiny.safetensors)" and list(result.candidates)[0] == result.subject
    scores = result.candidates[result.subject]
    assert np.isfinite(scores.psnr_per_band).all() and scores.beats_bicubic  # untrained: its classical base
    assert not any("no-reference loss" in note for note in result.notes)  # its card says no pair training
    # The raster records that GSA made it, not this model: the report says what it checks instead.
    assert [note for note in result.notes if "was made by the classical method gsa, not by CoFusion (tiny" in note]
    # A model trained on a real pair with the no-reference loss: its QNR on that pair is no independent check.
    pair_card = replace(card, provenance={"mode": "pair", "inputs": ["lr.tif", "hr.tif"],
                                          "settings": {"no_reference_weight": 1.0}})
    fitted = save_checkpoint(tmp_path / "fitted.safetensors", build_model(config).eval(), pair_card)
    by_fitted = service.fuse(service.FusionRequest(scene["lr"], scene["hr"], tmp_path / "by_fitted.tif",
                                                   model=fitted, device="cpu")).out_path
    result = pair_report(scene["lr"], scene["hr"], by_fitted, str(fitted), tmp_path / "fitted", device="cpu")
    assert any("lr.tif + hr.tif with a no-reference loss" in note and "no independent check" in note
               for note in result.notes)
    assert not any("was made by" in note or "does not record" in note for note in result.notes)
    assert "no independent check" in (tmp_path / "fitted" / "report.html").read_text()
    assert result.qnr_held_out is None                                  # another pair: no strip of this one
    # Not fused by that model (a fit that fell back to GSA): its training says nothing of the raster's QNR.
    result = pair_report(scene["lr"], scene["hr"], scene["gsa"], str(fitted), tmp_path / "fallback", device="cpu")
    assert not any("no independent check" in note for note in result.notes)
    assert any("was made by the classical method gsa" in note for note in result.notes)
    # Trained on this very pair: the report assesses the card's validation strip apart.
    strip = [0, 8 * SCALE, 16 * SCALE, 12 * SCALE]
    this_pair = replace(card, provenance={**pair_card.provenance, "inputs": [str(scene["lr"]), str(scene["hr"])],
                                          "validation_strip": strip})
    fitted = save_checkpoint(tmp_path / "this_pair.safetensors", build_model(config).eval(), this_pair)
    result = pair_report(scene["lr"], scene["hr"], scene["gsa"], str(fitted), tmp_path / "held", device="cpu")
    expected = assess_no_reference(scene["gsa"], scene["lr"], scene["hr"], area=Window(*strip))
    assert result.qnr_held_out == pytest.approx({k: expected[k] for k in ("D_lambda", "D_s", "QNR")}, abs=1e-12)
    assert result.qnr_held_out["QNR"] != pytest.approx(result.qnr["QNR"], abs=1e-4)
    assert "QNR, validation strip" in (tmp_path / "held" / "report.html").read_text()
    # A forged strip outside the pair is named in a note; the report is still written.
    forged = replace(card, provenance={**this_pair.provenance, "validation_strip": [0, 0, 10**6, 8]})
    fitted = save_checkpoint(tmp_path / "forged.safetensors", build_model(config).eval(), forged)
    result = pair_report(scene["lr"], scene["hr"], scene["gsa"], str(fitted), tmp_path / "forged", device="cpu")
    assert result.qnr_held_out is None and any("could not be assessed" in note for note in result.notes)


def test_the_report_says_when_the_raster_records_nothing_or_another_method(scene, tmp_path):
    # the truth, written as another tool writes a raster: no record of what made it
    result = pair_report(scene["lr"], scene["hr"], scene["truth"], "gsa", tmp_path / "none")
    assert any("does not record what made it" in note and "measures gsa" in note for note in result.notes)
    result = pair_report(scene["lr"], scene["hr"], scene["bicubic"], "gsa", tmp_path / "other")
    note = [n for n in result.notes if "was made by" in n]
    assert len(note) == 1 and "the classical method bicubic, not by gsa" in note[0], result.notes
    result = pair_report(scene["lr"], scene["hr"], scene["bicubic"], "bicubic", tmp_path / "same")
    assert not any("was made by" in n or "does not record" in n for n in result.notes)


def test_the_command_line_writes_the_report_and_prints_the_numbers(scene, tmp_path, capsys):
    from cofusion import cli

    out = tmp_path / "cli"
    code = cli.main(["report", "--lrhsi", str(scene["lr"]), "--hrmsi", str(scene["hr"]), "--fused",
                     str(scene["gsa"]), "--method", "gsa", "--compare", "llr", "--out", str(out), "-q"])
    printed = capsys.readouterr().out
    assert code == 0 and (out / "report.html").is_file() and (out / "consistency.tif").is_file()
    assert "reduced resolution: gsa PSNR" in printed and "QNR" in printed and "gsa beats bicubic" in printed
    with pytest.raises(SystemExit) as raised:
        cli.main(["report", "--lrhsi", "a", "--hrmsi", "b", "--fused", "c", "--method", "gsa", "--model", "m.st",
                  "--out", str(out)])
    assert raised.value.code == 2
